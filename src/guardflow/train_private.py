"""Differentially-private training with Opacus: DP-SGD with Poisson sampling to a target epsilon.

The privacy claim covers the training step on the rows it is given. The accountant that calibrates the
noise (PRV by default) is the one reported; RDP is reported beside it for comparison.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from opacus import PrivacyEngine
from opacus.accountants import RDPAccountant
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from guardflow.network import build_mlp
from guardflow.settings import ModelSettings, PrivacySettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrivacyReport:
    """What the DP guarantee of one trained model is, and the mechanism's parameters behind it."""

    epsilon: float
    delta: float
    accountant: str
    epsilon_rdp: float
    noise_multiplier: float
    max_grad_norm: float
    sample_rate: float
    steps: int
    epochs: int
    empty_batches: int


@dataclass(frozen=True)
class TrainedModel:
    """A plain (non-Opacus) torch module ready to export, with its privacy report."""

    model: nn.Sequential
    privacy: PrivacyReport
    input_width: int
    hidden_units: tuple[int, ...]
    seconds: float


def _seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def train_private(
    features: np.ndarray, labels: np.ndarray, privacy: PrivacySettings, model_settings: ModelSettings
) -> TrainedModel:
    """Train the MLP with DP-SGD so that the whole run spends at most `privacy.target_epsilon`."""
    started = time.perf_counter()
    generator = _seed_everything(model_settings.seed)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    dataset = TensorDataset(
        torch.tensor(features, dtype=torch.float32), torch.tensor(labels, dtype=torch.float32)
    )
    loader = DataLoader(dataset, batch_size=privacy.batch_size, generator=generator)
    model = build_mlp(features.shape[1], list(model_settings.hidden_units))
    optimizer = torch.optim.Adam(model.parameters(), lr=privacy.learning_rate)

    with warnings.catch_warnings():
        # Known and benign, so kept off the console: secure RNG is off (torchcsprng is not installable
        # here; stated in the model card), and the first layer's backward hook fires without input grads.
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        warnings.filterwarnings("ignore", message="Full backward hook")
        engine = PrivacyEngine(accountant=privacy.accountant)
        private_model, private_optimizer, private_loader = engine.make_private_with_epsilon(
            module=model,
            optimizer=optimizer,
            data_loader=loader,
            target_epsilon=privacy.target_epsilon,
            target_delta=privacy.delta,
            epochs=privacy.epochs,
            max_grad_norm=privacy.max_grad_norm,
            poisson_sampling=True,
        )
        loss_function = nn.BCEWithLogitsLoss()
        steps = empty_batches = 0
        private_model.train()
        for epoch in range(privacy.epochs):
            for batch_features, batch_labels in private_loader:
                if len(batch_features) == 0:
                    # A Poisson batch can be empty; nothing is released for it, so nothing is spent.
                    empty_batches += 1
                    continue
                private_optimizer.zero_grad(set_to_none=True)
                loss = loss_function(private_model(batch_features).squeeze(-1), batch_labels)
                loss.backward()
                private_optimizer.step()
                steps += 1
            logger.debug("epoch %d/%d done", epoch + 1, privacy.epochs)

    epsilon = float(engine.get_epsilon(privacy.delta))
    rdp = RDPAccountant()
    rdp.history = list(engine.accountant.history)
    report = PrivacyReport(
        epsilon=epsilon,
        delta=privacy.delta,
        accountant=privacy.accountant,
        epsilon_rdp=float(rdp.get_epsilon(privacy.delta)),
        noise_multiplier=float(private_optimizer.noise_multiplier),
        max_grad_norm=privacy.max_grad_norm,
        sample_rate=float(private_loader.sample_rate),
        steps=steps,
        epochs=privacy.epochs,
        empty_batches=empty_batches,
    )
    plain_model = private_model.to_standard_module()
    plain_model.eval()
    return TrainedModel(
        model=plain_model,
        privacy=report,
        input_width=features.shape[1],
        hidden_units=tuple(model_settings.hidden_units),
        seconds=time.perf_counter() - started,
    )
