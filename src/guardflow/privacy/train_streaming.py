"""Out-of-core DP training: rows encoded per part into memory-mapped arrays on disk, DP-SGD sampled from them.

The encoding uses public bounds only (`data.encode_features`), so encoding part by part gives exactly the rows
encoding the whole table would. Each row's role (trained on, Platt calibration, membership-audit hold-out) is
decided by the same keyed hashes of that row alone as in memory (`train_private`), so parallel composition and
the audit's accounting hold unchanged. Each DP-SGD step draws a Poisson sample of rate q from the memmap: a
batch size ~ Binomial(N, q), then that many distinct positions uniformly; the law is that of Opacus' sampler
(every row in independently with probability q) at O(batch) instead of O(N) per step, and Opacus' accountant
records every step at q, so the reported epsilon is exact. Memory holds one part's chunk and one batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
from opacus import PrivacyEngine
from torch import nn
from torch.utils.data import DataLoader

from guardflow.data.encode_features import encode_features
from guardflow.data.partitioned import CALIBRATION_ONLY, FLAGGED
from guardflow.data.table import SOURCE_ROW, label_vector
from guardflow.privacy.network import build_mlp
from guardflow.privacy.noise import noise_multiplier
from guardflow.privacy.train_private import (
    AUDIT_KEY,
    CALIBRATION_BATCH_SIZE,
    CALIBRATION_EPOCHS,
    Mechanism,
    TrainedModel,
    as_sequential,
    fold_calibration,
    new_optimizer,
    new_platt_scaling,
    quiet_opacus,
    spent_by,
    split_by_row_hash,
    step_through,
    trained_model,
)
from guardflow.settings import DatasetSettings, ModelSettings, PrivacySettings

# Rows read, encoded and written at a time: bounds memory whatever the size of a part.
CHUNK_ROWS = 65_536
# Typed rows kept aside (a seeded uniform sample of the rows trained on) for checks that need raw columns:
# the champion comparison and its differential check.
SAMPLE_ROWS = 20_000
ROLES = ("training", "calibration", "audit")


@dataclass(frozen=True)
class EncodedArrays:
    """Encoded rows on disk, by role: `<folder>/<role>.features.f32` (rows x width) and `<role>.labels.f32`;
    `sample_path`: a bounded sample of the typed rows trained on (Parquet)."""

    folder: Path
    width: int
    rows: dict[str, int]
    sample_path: Path
    # Of the calibration rows, those the scan flagged for label noise alone (never candidates for training).
    extra_calibration: int = 0

    def features(self, role: str) -> np.ndarray:
        return _open(self.folder / f"{role}.features.f32", (self.rows[role], self.width))

    def labels(self, role: str) -> np.ndarray:
        return _open(self.folder / f"{role}.labels.f32", (self.rows[role],))

    @property
    def total(self) -> int:
        """The rows to train on, by role: every row the scan kept (the label-noise calibration rows aside)."""
        return sum(self.rows.values()) - self.extra_calibration


def _open(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    if shape[0] == 0:
        return np.zeros(shape, dtype="float32")
    return np.memmap(path, dtype="float32", mode="r", shape=shape)


def _flagged_rows(scan_part: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """`source_row`s the scan flagged in one part, and those of them fit for the calibration (none when there is
    no scan part)."""
    if scan_part is None:
        return np.zeros(0, dtype="int64"), np.zeros(0, dtype="int64")
    columns = [name for name in (SOURCE_ROW, FLAGGED, CALIBRATION_ONLY) if name in pq.read_schema(scan_part).names]
    flags = pq.read_table(scan_part, columns=columns).to_pandas()
    flagged = flags.loc[flags[FLAGGED].astype(bool), SOURCE_ROW].to_numpy(dtype="int64")
    if CALIBRATION_ONLY not in flags:
        return flagged, np.zeros(0, dtype="int64")
    return flagged, flags.loc[flags[CALIBRATION_ONLY].astype(bool), SOURCE_ROW].to_numpy(dtype="int64")


def encode_parts(
    parts: Sequence[Path],
    scan_parts: Sequence[Path] | None,
    dataset: DatasetSettings,
    privacy: PrivacySettings,
    seed: int,
    out_dir: Path,
) -> EncodedArrays:
    """Encode the accepted parts, minus the rows their scan part flags, into memmaps by role (see the module)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    total = sum(pq.ParquetFile(part).metadata.num_rows for part in parts)
    sample_rate = min(1.0, SAMPLE_ROWS / max(total, 1))
    chooser = np.random.default_rng(seed)
    audit_key = AUDIT_KEY + seed.to_bytes(8, "little", signed=True)
    calibration_key = seed.to_bytes(8, "little", signed=True)
    files = {
        (role, kind): (out_dir / f"{role}.{kind}.f32").open("wb")
        for role in ROLES
        for kind in ("features", "labels")
    }
    rows = dict.fromkeys(ROLES, 0)
    extra_calibration = 0
    samples: list[pd.DataFrame] = []
    width = 0

    def write(role: str, features: np.ndarray, labels: np.ndarray) -> None:
        files[(role, "features")].write(np.ascontiguousarray(features).tobytes())
        files[(role, "labels")].write(np.ascontiguousarray(labels).tobytes())
        rows[role] += len(labels)

    try:
        for index, part in enumerate(parts):
            flagged, noisy = _flagged_rows(scan_parts[index] if scan_parts is not None else None)
            for batch in pq.ParquetFile(part).iter_batches(batch_size=CHUNK_ROWS):
                frame = batch.to_pandas()
                if len(noisy) and SOURCE_ROW in frame:
                    # label-noise rows calibrate on their hash's side, as in memory; never trained on
                    extra = frame[frame[SOURCE_ROW].isin(noisy)]
                    if len(extra):
                        features = encode_features(extra, dataset)
                        labels = label_vector(extra, dataset).to_numpy().astype("float32")
                        width = features.shape[1]
                        _, calibration = split_by_row_hash(
                            features, labels, privacy.calibration_fraction, calibration_key
                        )
                        write("calibration", features[calibration], labels[calibration])
                        extra_calibration += len(calibration)
                if len(flagged) and SOURCE_ROW in frame:
                    frame = frame[~frame[SOURCE_ROW].isin(flagged)]
                if frame.empty:
                    continue
                features = encode_features(frame, dataset)
                labels = label_vector(frame, dataset).to_numpy().astype("float32")
                width = features.shape[1]
                members, held_out = split_by_row_hash(features, labels, privacy.audit_fraction, audit_key)
                kept, calibration = split_by_row_hash(
                    features[members], labels[members], privacy.calibration_fraction, calibration_key
                )
                for role, positions in (
                    ("training", members[kept]),
                    ("calibration", members[calibration]),
                    ("audit", held_out),
                ):
                    write(role, features[positions], labels[positions])
                chosen = chooser.random(len(frame)) < sample_rate
                if chosen.any():
                    samples.append(frame[chosen])
    finally:
        for handle in files.values():
            handle.close()
    sample_path = out_dir / "sample.parquet"
    columns = [*dataset.features, dataset.label.column]
    sample = pd.concat(samples, ignore_index=True) if samples else pd.DataFrame(columns=columns)
    sample.to_parquet(sample_path, index=False)
    return EncodedArrays(
        folder=out_dir, width=width, rows=rows, sample_path=sample_path, extra_calibration=extra_calibration
    )


class PoissonBatches:
    """Poisson sampling over `rows` positions at rate q = 1 / ceil(rows / batch_size) (Opacus' own rate for a
    loader of that batch size): each draw is a batch size ~ Binomial(rows, q), then that many distinct
    positions uniformly, sorted (so a memmap is read in order). One "epoch" is 1 / q draws."""

    def __init__(self, rows: int, batch_size: int, generator: np.random.Generator) -> None:
        self.rows = rows
        self.steps_per_epoch = max(1, math.ceil(rows / batch_size))
        self.sample_rate = 1.0 / self.steps_per_epoch
        self._generator = generator

    def __len__(self) -> int:
        return self.steps_per_epoch

    def __iter__(self) -> Iterator[list[int]]:
        for _ in range(self.steps_per_epoch):
            yield self.draw().tolist()

    def draw(self) -> np.ndarray:
        size = int(self._generator.binomial(self.rows, self.sample_rate))
        return np.sort(self._generator.choice(self.rows, size=size, replace=False))

    def draws(self, steps: int) -> Iterator[np.ndarray]:
        for _ in range(steps):
            yield self.draw()


class _Positions(torch.utils.data.Dataset[int]):
    """A dataset of `rows` positions: what Opacus reads from a loader (its length and the sampler's)."""

    def __init__(self, rows: int) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return self.rows

    def __getitem__(self, position: int) -> int:
        return position


def planned_steps(sampler: PoissonBatches, epochs: int, max_steps: int | None) -> int:
    """`epochs` passes at the sampler's rate, capped at `max_steps` when given."""
    steps = epochs * len(sampler)
    return min(steps, max_steps) if max_steps is not None else steps


def run_sampled_dp_sgd(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    features: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int,
    epochs: int,
    privacy: PrivacySettings,
    generator: np.random.Generator,
) -> tuple[nn.Module, Mechanism]:
    """DP-SGD on rows in a (memory-mapped) array: noise calibrated to `privacy.target_epsilon` over the planned
    steps at the sampler's rate; the same step loop and accounting as in memory. Returns the plain module."""
    sampler = PoissonBatches(len(labels), batch_size, generator)
    steps = planned_steps(sampler, epochs, privacy.max_steps)
    # Opacus reads the rate (1 / len(loader)) and the expected batch size from this loader; the batches
    # themselves are read from the memmap below, by the same sampler.
    loader = DataLoader(_Positions(len(labels)), batch_sampler=sampler)
    with quiet_opacus():
        sigma = noise_multiplier(
            target_epsilon=privacy.target_epsilon,
            delta=privacy.delta,
            sample_rate=sampler.sample_rate,
            steps=steps,
            accountant=privacy.accountant,
        )
        engine = PrivacyEngine(accountant=privacy.accountant)
        private_module, private_optimizer, private_loss, _ = engine.make_private(
            module=module,
            optimizer=optimizer,
            data_loader=loader,
            criterion=nn.BCEWithLogitsLoss(),
            noise_multiplier=sigma,
            max_grad_norm=privacy.max_grad_norm,
            # The Poisson sample is ours (above); Opacus would swap in its O(N)-per-step sampler.
            poisson_sampling=False,
            grad_sample_mode="ghost",
        )
        batches = (
            (torch.from_numpy(np.array(features[positions])), torch.from_numpy(np.array(labels[positions])))
            for positions in sampler.draws(steps)
        )
        done, empty_batches = step_through(private_module, private_optimizer, private_loss, batches)
        mechanism = spent_by(
            engine, private_optimizer, sampler.sample_rate, done, empty_batches, privacy.delta
        )
    plain = private_module.to_standard_module()
    plain.eval()
    return plain, mechanism


def _logits_to_disk(mlp: nn.Sequential, features: np.ndarray, path: Path) -> np.ndarray:
    """The MLP's logit for every row, computed chunk by chunk into a memmap (rows x 1)."""
    logits = np.memmap(path, dtype="float32", mode="w+", shape=(max(len(features), 1), 1))
    with torch.no_grad():
        for start in range(0, len(features), CHUNK_ROWS):
            chunk = torch.from_numpy(np.array(features[start : start + CHUNK_ROWS]))
            logits[start : start + len(chunk)] = mlp(chunk).reshape(-1, 1).numpy()
    logits.flush()
    return logits[: len(features)]


def train_streaming(
    arrays: EncodedArrays, privacy: PrivacySettings, model_settings: ModelSettings
) -> TrainedModel:
    """`train_private` on encoded arrays on disk: the MLP with DP-SGD on the training rows, Platt scaling with
    DP-SGD on the calibration rows (disjoint), each step a Poisson sample from the memmap."""
    started = time.perf_counter()
    seed = model_settings.seed
    torch.manual_seed(seed)
    generator = np.random.default_rng(seed)
    torch.set_num_threads(1)  # as in memory: one thread is faster for a 64-unit MLP on shared cores
    model = build_mlp(arrays.width, list(model_settings.hidden_units))
    trained, main = run_sampled_dp_sgd(
        model, new_optimizer(model, privacy), arrays.features("training"), arrays.labels("training"),
        batch_size=privacy.batch_size, epochs=privacy.epochs, privacy=privacy, generator=generator,
    )  # fmt: skip
    mlp = as_sequential(trained)
    calibration = None
    if arrays.rows["calibration"]:
        logits = _logits_to_disk(
            mlp, arrays.features("calibration"), arrays.folder / "calibration.logits.f32"
        )
        platt, platt_optimizer = new_platt_scaling()
        fitted, calibration = run_sampled_dp_sgd(
            platt, platt_optimizer, logits, arrays.labels("calibration"),
            batch_size=CALIBRATION_BATCH_SIZE, epochs=CALIBRATION_EPOCHS, privacy=privacy, generator=generator,
        )  # fmt: skip
        fold_calibration(mlp, fitted)
    return trained_model(
        mlp, main, calibration,
        training_rows=arrays.rows["training"], calibration_rows=arrays.rows["calibration"], privacy=privacy,
        model_settings=model_settings, input_width=arrays.width, started=started,
        label_noise_calibration_rows=arrays.extra_calibration,
    )  # fmt: skip


def sample_rows(arrays: EncodedArrays, role: str, limit: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded uniform sample (at most `limit` rows, without replacement) of one role's encoded rows and labels:
    the bounded read the membership audit makes."""
    rows = arrays.rows[role]
    positions = np.sort(np.random.default_rng(seed).choice(rows, size=min(rows, limit), replace=False))
    return np.asarray(arrays.features(role)[positions]), np.asarray(arrays.labels(role)[positions])
