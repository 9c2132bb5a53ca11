"""The model: a small MLP with no cross-sample layers, and its weights stored as safetensors (never pickle)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn


def build_mlp(input_width: int, hidden_units: list[int]) -> nn.Sequential:
    """Linear layers with ReLU, ending in one logit. No BatchNorm: it mixes samples and breaks DP-SGD."""
    layers: list[nn.Module] = []
    width = input_width
    for units in hidden_units:
        layers += [nn.Linear(width, units), nn.ReLU()]
        width = units
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def save_weights(model: nn.Module, path: Path) -> str:
    """Write the model's state dict as safetensors and return the file's sha256."""
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(path))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_weights(path: Path, input_width: int, hidden_units: list[int]) -> nn.Sequential:
    """Rebuild the MLP and load safetensors weights into it (no code execution on load)."""
    model = build_mlp(input_width, hidden_units)
    model.load_state_dict(load_file(str(path)))
    model.eval()
    return model


def predict_proba(model: nn.Module, features: torch.Tensor | object) -> torch.Tensor:
    """Probability of the positive class for each row of an encoded feature matrix."""
    inputs = (
        features if isinstance(features, torch.Tensor) else torch.as_tensor(features, dtype=torch.float32)
    )
    with torch.no_grad():
        return torch.sigmoid(model(inputs).squeeze(-1))
