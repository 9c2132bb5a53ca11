"""Out-of-core DP training: encoding part by part equals encoding the whole table, the memmap sampler draws
Poisson batches of the right expected size, and the accountant records every step at that sample rate."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from opacus.accountants import PRVAccountant

from guardflow.data.encode_features import encode_features
from guardflow.data.table import label_vector, labelled_rows
from guardflow.io.datasets import read_split
from guardflow.privacy.train_private import AUDIT_KEY, split_by_row_hash
from guardflow.privacy.train_streaming import PoissonBatches, encode_parts, sample_rows, train_streaming

pytestmark = [
    pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha:UserWarning"),
    pytest.mark.filterwarnings("ignore:divide by zero encountered in log:RuntimeWarning"),
]

SLICE_ROWS = 3000


@pytest.fixture(scope="module")
def adult_rows(adult_settings) -> pd.DataFrame:
    dataset = adult_settings.dataset
    rows = labelled_rows(read_split(dataset, "train").rows.head(SLICE_ROWS), dataset).reset_index(drop=True)
    rows["source_row"] = np.arange(len(rows), dtype="int64")
    return rows


def _write_parts(rows: pd.DataFrame, folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, positions in enumerate(np.array_split(np.arange(len(rows)), count)):
        path = folder / f"part-{index:05d}.parquet"
        rows.iloc[positions].to_parquet(path, index=False)
        paths.append(path)
    return paths


def _concat(arrays, role: str) -> np.ndarray:
    return np.asarray(arrays.features(role))


def test_encoding_per_part_equals_encoding_the_whole_table(adult_rows, adult_settings, tmp_path) -> None:
    # given the same rows as one part and as three parts
    privacy, dataset = adult_settings.privacy, adult_settings.dataset
    whole = encode_parts(
        _write_parts(adult_rows, tmp_path / "one", 1), None, dataset, privacy, 0, tmp_path / "a"
    )
    parts = encode_parts(
        _write_parts(adult_rows, tmp_path / "three", 3), None, dataset, privacy, 0, tmp_path / "b"
    )
    # then every role holds the same encoded rows and labels in the same order
    for role in ("training", "calibration", "audit"):
        assert np.array_equal(_concat(whole, role), _concat(parts, role)), f"{role} features differ by parts"
        assert np.array_equal(whole.labels(role), parts.labels(role)), f"{role} labels differ by parts"
    # and the rows are those the in-memory encoding gives, split by the same row hashes as in memory
    features = encode_features(adult_rows, dataset)
    labels = label_vector(adult_rows, dataset).to_numpy()
    members, held_out = split_by_row_hash(
        features, labels, privacy.audit_fraction, AUDIT_KEY + (0).to_bytes(8, "little", signed=True)
    )
    assert np.array_equal(_concat(parts, "audit"), features[held_out]), (
        "the audit split differs from memory's"
    )
    assert parts.total == len(adult_rows), "every accepted row has exactly one role"
    assert parts.rows["training"] + parts.rows["calibration"] == len(members), (
        "members are trained or calibrate"
    )


def _write_scan_part(path: Path, rows: pd.Series, flagged_below: int, noisy_below: int | None = None) -> Path:
    """A scan part flagging the rows numbered below `flagged_below` (and, when given, marking those below
    `noisy_below` as flagged for label noise alone)."""
    verdicts = pd.DataFrame({"source_row": rows, "flagged": rows < flagged_below, "reason": ""})
    if noisy_below is not None:
        verdicts["calibration_only"] = rows < noisy_below
    verdicts.to_parquet(path, index=False)
    return path


def test_rows_flagged_by_the_scan_are_not_encoded(adult_rows, adult_settings, tmp_path) -> None:
    # given one part and a scan part flagging its first 100 rows
    parts = _write_parts(adult_rows, tmp_path / "parts", 1)
    scan = _write_scan_part(tmp_path / "scan-00000.parquet", adult_rows["source_row"], flagged_below=100)
    # when encoded with the scan part
    arrays = encode_parts(parts, [scan], adult_settings.dataset, adult_settings.privacy, 0, tmp_path / "enc")
    # then exactly the unflagged rows are encoded
    assert arrays.total == len(adult_rows) - 100, f"expected {len(adult_rows) - 100} rows, got {arrays.total}"


def test_label_noise_rows_are_encoded_for_calibration_only(adult_rows, adult_settings, tmp_path) -> None:
    # given one part and a scan part flagging its first 300 rows, the first 200 of them for label noise alone
    parts = _write_parts(adult_rows, tmp_path / "parts", 1)
    scan = _write_scan_part(
        tmp_path / "scan-00000.parquet", adult_rows["source_row"], flagged_below=300, noisy_below=200
    )
    privacy = adult_settings.privacy
    # when encoded with and without the scan part's calibration_only column
    arrays = encode_parts(parts, [scan], adult_settings.dataset, privacy, 0, tmp_path / "enc")
    pd.read_parquet(scan).drop(columns="calibration_only").to_parquet(scan, index=False)
    without = encode_parts(parts, [scan], adult_settings.dataset, privacy, 0, tmp_path / "plain")
    # then the rows to train on are the unflagged ones either way, and some noisy rows join the calibration only
    assert arrays.total == without.total == len(adult_rows) - 300, f"rows to train on: {arrays.total}"
    assert 0 < arrays.extra_calibration < 200, f"noisy rows on the calibration side: {arrays.extra_calibration}"
    assert arrays.rows["calibration"] == without.rows["calibration"] + arrays.extra_calibration
    assert arrays.rows["training"] == without.rows["training"], "no noisy row is trained on"


def test_poisson_batches_have_the_expected_size_and_distinct_sorted_positions() -> None:
    # given a sampler over a million rows at batch size 512
    sampler = PoissonBatches(1_000_000, 512, np.random.default_rng(0))
    # when it draws 2,000 batches
    draws = list(sampler.draws(2000))
    sizes = np.array([len(draw) for draw in draws])
    # then the rate is Opacus' 1 / ceil(N / batch) and the mean size is N q, within 4 standard errors
    assert sampler.sample_rate == 1 / 1954, f"sample rate {sampler.sample_rate}"
    expected = 1_000_000 * sampler.sample_rate
    standard_error = np.sqrt(expected * (1 - sampler.sample_rate) / len(sizes))
    assert abs(sizes.mean() - expected) < 4 * standard_error, (
        f"mean batch {sizes.mean():.1f} vs {expected:.1f}"
    )
    # and the sizes vary as a binomial does (variance ~ N q (1 - q)), not a fixed batch
    assert 0.8 < sizes.var() / (expected * (1 - sampler.sample_rate)) < 1.2, f"variance {sizes.var():.1f}"
    # and each batch holds distinct positions in range, sorted for the memmap
    assert all(np.all(np.diff(draw) > 0) for draw in draws), "positions repeat or are unsorted"
    assert max(int(draw.max()) for draw in draws if len(draw)) < 1_000_000, "a position is out of range"


def test_streaming_training_accounts_every_step_at_the_sample_rate(
    adult_rows, adult_settings, tmp_path
) -> None:
    # given the rows as two parts, encoded, and a schedule (2 epochs of ~39 steps) capped at 40 steps
    privacy = adult_settings.privacy.model_copy(update={"epochs": 2, "batch_size": 64, "max_steps": 40})
    arrays = encode_parts(
        _write_parts(adult_rows, tmp_path / "parts", 2),
        None,
        adult_settings.dataset,
        privacy,
        0,
        tmp_path / "enc",
    )
    # when trained out of core
    trained = train_streaming(arrays, privacy, adult_settings.model)
    report = trained.privacy
    # then the steps run are the cap, the rate is Opacus' rate for this batch size, and the epsilon reported is
    # what Opacus' PRV accountant gives for those steps at that rate and noise
    rows = arrays.rows["training"]
    assert report.sample_rate == 1 / np.ceil(rows / privacy.batch_size), f"sample rate {report.sample_rate}"
    assert report.steps + report.empty_batches == 40, f"{report.steps} steps, {report.empty_batches} empty"
    accountant = PRVAccountant()
    accountant.history = [(report.noise_multiplier, report.sample_rate, report.steps)]
    expected = accountant.get_epsilon(privacy.delta)
    assert report.epsilon == pytest.approx(max(expected, report.calibration_epsilon), rel=1e-6), (
        f"reported epsilon {report.epsilon} vs accountant {expected}"
    )
    assert report.epsilon <= privacy.target_epsilon + 1e-6, f"epsilon {report.epsilon} over the target"
    assert report.training_rows == rows and report.calibration_rows == arrays.rows["calibration"], (
        "row counts"
    )
    # and the model is a plain MLP that reads the encoded width
    assert trained.input_width == arrays.width, f"input width {trained.input_width} vs {arrays.width}"


def test_audit_sample_is_bounded_and_seeded(adult_rows, adult_settings, tmp_path) -> None:
    # given encoded arrays
    arrays = encode_parts(
        _write_parts(adult_rows, tmp_path / "p", 1), None, adult_settings.dataset, adult_settings.privacy, 0,
        tmp_path / "enc",
    )  # fmt: skip
    # when 500 training rows are sampled twice with one seed
    first, first_labels = sample_rows(arrays, "training", 500, seed=3)
    second, _ = sample_rows(arrays, "training", 500, seed=3)
    # then the sample has 500 rows, the same both times, each one a training row
    assert first.shape == (500, arrays.width) and len(first_labels) == 500, f"sample shape {first.shape}"
    assert np.array_equal(first, second), "the same seed gave another sample"
    training = {row.tobytes() for row in _concat(arrays, "training")}
    assert all(row.tobytes() in training for row in first), "a sampled row is not a training row"
