"""Differentially-private training with Opacus: DP-SGD with Poisson sampling to a target epsilon.

Two mechanisms run on disjoint rows, so by parallel composition the whole run is (epsilon, delta)-DP with the
larger of their two epsilons:
1. the MLP, trained with DP-SGD on most rows;
2. Platt scaling (a slope and an offset on the MLP's logit), fitted with DP-SGD on a held-out share of rows.
   DP-SGD leaves models over-confident (Bu et al. 2021); the MLP never sees these rows and the calibration
   never sees the MLP's rows. The fitted scaling is folded into the MLP's last layer. The calibration share also
   takes the rows the scan flagged only for label noise (never trained on): removing the data's own label noise
   from the calibration would leave the model over-confident on real labels.
The accountant that calibrates the noise (PRV by default) is the one reported; RDP is reported beside it.
"""

from __future__ import annotations

import hashlib
import logging
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from opacus import PrivacyEngine
from opacus.accountants import RDPAccountant
from opacus.optimizers import DPOptimizer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from guardflow.privacy.network import build_mlp
from guardflow.privacy.noise import epsilon_spent, noise_multiplier
from guardflow.settings import ModelSettings, PrivacySettings

if TYPE_CHECKING:
    from guardflow.privacy.train_streaming import EncodedArrays

logger = logging.getLogger(__name__)

# Platt scaling has two parameters: small batches and a modest step size converge well under DP noise.
CALIBRATION_BATCH_SIZE = 256
CALIBRATION_EPOCHS = 20
CALIBRATION_LEARNING_RATE = 0.2
# RDP orders wide enough that the optimum is never the largest one for our sample rates and step counts.
RDP_ORDERS = [1 + step / 10.0 for step in range(1, 100)] + list(range(11, 64)) + [128, 256, 512, 1024, 4096]


@dataclass(frozen=True)
class PrivacyReport:
    """The DP guarantee of one trained model, and the parameters of the training mechanism behind it."""

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
    training_rows: int
    calibration_rows: int
    calibration_epsilon: float
    # Accepted rows held out of training for the membership audit (never trained on, so nothing is spent).
    audit_rows: int = 0
    # Of the calibration rows, those the scan flagged for label noise alone (never trained on).
    label_noise_calibration_rows: int = 0


@dataclass(frozen=True)
class TrainedModel:
    """A plain (non-Opacus) torch module ready to export, with its privacy report."""

    model: nn.Sequential
    privacy: PrivacyReport
    input_width: int
    hidden_units: tuple[int, ...]
    seconds: float


@dataclass(frozen=True)
class Mechanism:
    """What one DP-SGD run spent and how."""

    epsilon: float
    epsilon_rdp: float
    noise_multiplier: float
    sample_rate: float
    steps: int
    empty_batches: int


@contextmanager
def quiet_opacus() -> Iterator[None]:
    """Keep Opacus' known and benign warnings off the console while a private model is made and trained."""
    with warnings.catch_warnings():
        # Secure RNG is off (torchcsprng is not installable here; stated in the model card), and the first
        # layer's backward hook fires without input grads.
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        warnings.filterwarnings("ignore", message="Full backward hook")
        # The PRV accountant sizes its domain with an internal RDP bound at a tiny delta, whose optimum sits at
        # Opacus' largest default order; it does not affect the epsilon PRV reports.
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        yield


def step_through(
    private_module: nn.Module,
    private_optimizer: torch.optim.Optimizer,
    private_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
) -> tuple[int, int]:
    """The DP-SGD loop both samplers share: one noisy clipped step per Poisson batch; (steps, empty batches)."""
    steps = empty_batches = 0
    private_module.train()
    for batch_features, batch_labels in batches:
        if len(batch_features) == 0:
            # A Poisson batch can be empty; nothing is released for it, so nothing is spent.
            empty_batches += 1
            continue
        private_optimizer.zero_grad(set_to_none=True)
        loss = private_loss(private_module(batch_features).squeeze(-1), batch_labels)
        loss.backward()
        private_optimizer.step()
        steps += 1
    return steps, empty_batches


def spent_by(
    engine: PrivacyEngine,
    private_optimizer: DPOptimizer,
    sample_rate: float,
    steps: int,
    empty_batches: int,
    delta: float,
) -> Mechanism:
    """What the accountant recorded for a finished DP-SGD run (its own accountant, and RDP beside it)."""
    rdp = RDPAccountant()
    rdp.history = list(engine.accountant.history)
    # One uninterrupted run is one history entry: the epsilon the noise search already evaluated for it.
    if len(engine.accountant.history) == 1:
        ((sigma, rate, count),) = engine.accountant.history
        epsilon = epsilon_spent(engine.accountant.mechanism(), float(sigma), float(rate), int(count), delta)
    else:
        epsilon = float(engine.get_epsilon(delta))
    return Mechanism(
        epsilon=epsilon,
        epsilon_rdp=float(rdp.get_epsilon(delta, alphas=RDP_ORDERS)),
        noise_multiplier=float(private_optimizer.noise_multiplier),
        sample_rate=sample_rate,
        steps=steps,
        empty_batches=empty_batches,
    )


def _run_dp_sgd(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    features: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int,
    epochs: int,
    privacy: PrivacySettings,
    generator: torch.Generator,
) -> tuple[nn.Module, Mechanism]:
    """DP-SGD with Poisson sampling, noise calibrated to `privacy.target_epsilon`; returns the plain module."""
    loader = DataLoader(TensorDataset(features, labels), batch_size=batch_size, generator=generator)
    with quiet_opacus():
        engine = PrivacyEngine(accountant=privacy.accountant)
        # Ghost clipping: per-sample gradient norms without materialising per-sample gradients (exact for
        # Linear layers), about 4x faster per epoch than Opacus' hooks on this MLP.
        # What Opacus' make_private_with_epsilon does, with the search remembered (privacy/noise.py).
        sample_rate = 1 / len(loader)
        sigma = noise_multiplier(
            target_epsilon=privacy.target_epsilon, delta=privacy.delta, sample_rate=sample_rate,
            steps=int(epochs / sample_rate), accountant=privacy.accountant,
        )  # fmt: skip
        private_module, private_optimizer, private_loss, private_loader = engine.make_private(
            module=module,
            optimizer=optimizer,
            data_loader=loader,
            criterion=nn.BCEWithLogitsLoss(),
            noise_multiplier=sigma,
            max_grad_norm=privacy.max_grad_norm,
            poisson_sampling=True,
            grad_sample_mode="ghost",
        )
        batches = (batch for _ in range(epochs) for batch in private_loader)
        steps, empty_batches = step_through(private_module, private_optimizer, private_loss, batches)
        mechanism = spent_by(
            engine, private_optimizer, float(private_loader.sample_rate), steps, empty_batches, privacy.delta
        )
    plain = private_module.to_standard_module()
    plain.eval()
    return plain, mechanism


def _split_for_calibration(
    features: np.ndarray, labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Training and calibration row positions, each row's side decided by a keyed hash of that row alone.

    Parallel composition needs a row's side not to depend on the other rows: adding or removing one row must
    not move any other row between the two mechanisms (a shuffled split would move hundreds).
    """
    return split_by_row_hash(features, labels, fraction, seed.to_bytes(8, "little", signed=True))


def split_by_row_hash(
    features: np.ndarray, labels: np.ndarray, fraction: float, key: bytes
) -> tuple[np.ndarray, np.ndarray]:
    """Kept and held-out row positions: a row is held out when the keyed hash of its content falls below
    `fraction`, so its side depends on that row and the key alone (never on the other rows)."""
    rows = np.ascontiguousarray(np.column_stack([features, labels]).astype("float32"))
    # One buffer sliced per row (not a bytes copy per row): about twice as fast at millions of rows.
    buffer, width = memoryview(rows.tobytes()), rows.shape[1] * rows.itemsize
    digests = b"".join(
        hashlib.blake2b(buffer[start : start + width], key=key, digest_size=8).digest()
        for start in range(0, len(buffer), width)
    )
    draws = np.frombuffer(digests, dtype="<u8").astype("float64") / 2.0**64
    held_out = draws < fraction
    return np.flatnonzero(~held_out), np.flatnonzero(held_out)


# The audit split's hash key is apart from the calibration split's, so the two splits are independent.
AUDIT_KEY = b"guardflow-audit-split"


@dataclass(frozen=True)
class AuditSplit:
    """Positions, among the accepted rows, of the rows trained on (members) and of the audit split (never
    trained on): members and non-members of the membership audit, drawn from one pool."""

    members: np.ndarray
    held_out: np.ndarray


def split_for_audit(features: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> AuditSplit:
    """Hold out a seeded `fraction` of the rows for the membership audit, by a keyed hash of each row.

    Training on the kept rows only is DP with respect to all of them (adding or removing one row changes the
    kept rows by at most that row), so the accounting holds, on the kept rows' own sample rate.
    """
    kept, held_out = split_by_row_hash(
        features, labels, fraction, AUDIT_KEY + seed.to_bytes(8, "little", signed=True)
    )
    return AuditSplit(members=kept, held_out=held_out)


def _fold_platt_scaling(model: nn.Sequential, slope: float, offset: float) -> None:
    """Rewrite the last layer so the MLP outputs `slope * logit + offset` directly."""
    last = model[-1]
    if not isinstance(last, nn.Linear):
        raise TypeError("the MLP must end in a Linear layer")
    with torch.no_grad():
        last.weight.mul_(slope)
        last.bias.mul_(slope).add_(offset)


def new_optimizer(model: nn.Module, privacy: PrivacySettings) -> torch.optim.Optimizer:
    """The configured optimizer over the MLP's parameters."""
    if privacy.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=privacy.learning_rate)
    return torch.optim.Adam(model.parameters(), lr=privacy.learning_rate)


def new_platt_scaling() -> tuple[nn.Linear, torch.optim.Optimizer]:
    """Platt scaling as a 1-to-1 linear layer starting at the identity, with its optimizer."""
    platt = nn.Linear(1, 1)
    with torch.no_grad():
        platt.weight.fill_(1.0)
        platt.bias.fill_(0.0)
    return platt, torch.optim.SGD(platt.parameters(), lr=CALIBRATION_LEARNING_RATE)


def as_sequential(trained: nn.Module) -> nn.Sequential:
    return trained if isinstance(trained, nn.Sequential) else nn.Sequential(*trained.children())


def fold_calibration(mlp: nn.Sequential, fitted: nn.Module) -> None:
    """Fold a fitted Platt scaling into the MLP's last layer."""
    slope, offset = float(fitted.weight.item()), float(fitted.bias.item())  # type: ignore[operator]
    _fold_platt_scaling(mlp, slope, offset)
    logger.debug("Platt scaling: slope %.3f, offset %.3f", slope, offset)


def trained_model(
    mlp: nn.Sequential,
    main: Mechanism,
    calibration: Mechanism | None,
    *,
    training_rows: int,
    calibration_rows: int,
    privacy: PrivacySettings,
    model_settings: ModelSettings,
    input_width: int,
    started: float,
    label_noise_calibration_rows: int = 0,
) -> TrainedModel:
    """The trained model with its privacy report: the larger epsilon of two mechanisms on disjoint rows."""
    calibration_epsilon = calibration.epsilon if calibration else 0.0
    calibration_epsilon_rdp = calibration.epsilon_rdp if calibration else 0.0
    report = PrivacyReport(
        epsilon=max(main.epsilon, calibration_epsilon),  # disjoint rows: parallel composition
        delta=privacy.delta,
        accountant=privacy.accountant,
        epsilon_rdp=max(main.epsilon_rdp, calibration_epsilon_rdp),
        noise_multiplier=main.noise_multiplier,
        max_grad_norm=privacy.max_grad_norm,
        sample_rate=main.sample_rate,
        steps=main.steps,
        epochs=privacy.epochs,
        empty_batches=main.empty_batches,
        training_rows=training_rows,
        calibration_rows=calibration_rows,
        calibration_epsilon=calibration_epsilon,
        label_noise_calibration_rows=label_noise_calibration_rows,
    )
    mlp.eval()
    return TrainedModel(
        model=mlp,
        privacy=report,
        input_width=input_width,
        hidden_units=tuple(model_settings.hidden_units),
        seconds=time.perf_counter() - started,
    )


def train_private(
    features: np.ndarray,
    labels: np.ndarray,
    privacy: PrivacySettings,
    model_settings: ModelSettings,
    calibration_extra: tuple[np.ndarray, np.ndarray] | None = None,
) -> TrainedModel:
    """Train and calibrate the MLP with DP-SGD so that the whole run is (target_epsilon, delta)-DP.

    `calibration_extra`: features and labels of rows that may calibrate but never train (the scan's label-noise
    rows). Each goes to the side its own hash picks, as every row does; those on the training side are not used.
    """
    started = time.perf_counter()
    seed = model_settings.seed
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    # A 64-unit MLP gains nothing from a second thread; on 2 shared cores one thread is about twice as fast.
    torch.set_num_threads(1)
    all_features = torch.tensor(features, dtype=torch.float32)
    all_labels = torch.tensor(labels, dtype=torch.float32)
    train_rows, calibration_rows = _split_for_calibration(
        features, labels, privacy.calibration_fraction, seed
    )
    extra_rows = np.zeros(0, dtype="int64")
    if calibration_extra is not None and len(calibration_extra[1]):
        extra_features, extra_labels = calibration_extra
        _, extra_rows = _split_for_calibration(extra_features, extra_labels, privacy.calibration_fraction, seed)
        calibration_rows = np.concatenate([calibration_rows, len(labels) + extra_rows])
        all_features = torch.cat([all_features, torch.tensor(extra_features, dtype=torch.float32)])
        all_labels = torch.cat([all_labels, torch.tensor(extra_labels, dtype=torch.float32)])

    model = build_mlp(features.shape[1], list(model_settings.hidden_units))
    trained, main = _run_dp_sgd(
        model, new_optimizer(model, privacy), all_features[train_rows], all_labels[train_rows],
        batch_size=privacy.batch_size, epochs=privacy.epochs, privacy=privacy, generator=generator,
    )  # fmt: skip
    mlp = as_sequential(trained)

    calibration = None
    if len(calibration_rows):
        with torch.no_grad():
            logits = mlp(all_features[calibration_rows]).reshape(-1, 1)
        platt, platt_optimizer = new_platt_scaling()
        fitted, calibration = _run_dp_sgd(
            platt, platt_optimizer, logits, all_labels[calibration_rows],
            batch_size=CALIBRATION_BATCH_SIZE, epochs=CALIBRATION_EPOCHS, privacy=privacy, generator=generator,
        )  # fmt: skip
        fold_calibration(mlp, fitted)
    return trained_model(
        mlp, main, calibration,
        training_rows=len(train_rows), calibration_rows=len(calibration_rows), privacy=privacy,
        model_settings=model_settings, input_width=features.shape[1], started=started,
        label_noise_calibration_rows=len(extra_rows),
    )  # fmt: skip


@dataclass(frozen=True)
class SavedModel:
    """A trained model with its weights saved (safetensors) and their sha256."""

    trained: TrainedModel
    weights_path: Path
    weights_sha256: str
    # Which accepted rows were trained on and which were held out for the membership audit.
    audit: AuditSplit | None = None
    # Out of core: the encoded rows on disk by role (training, calibration, audit) and a bounded typed sample.
    encoded: EncodedArrays | None = None
