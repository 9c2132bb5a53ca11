"""Poisoning scan on 5,000 rows of adult.data: deterministic, and each detector catches the attack it is for
(exact and near duplicate floods, extreme and off-manifold rows, out-of-range values, confident label flips, a
backdoor trigger) while leaving clean rows mostly alone."""

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from bench.plant_attacks import (
    apply_trigger,
    duplicate_flood,
    off_manifold_rows,
    out_of_range_rows,
    plant_backdoor,
)
from guardflow.data.table import SOURCE_ROW, typed_frame
from guardflow.errors import PoisoningError
from guardflow.io.datasets import read_split
from guardflow.poisoning.scan_poisoning import scan_poisoning
from guardflow.poisoning.scan_result import (
    BACKDOOR,
    DETECTORS,
    DUPLICATE_FLOOD,
    LABEL_NOISE,
    OFF_MANIFOLD,
    OUT_OF_RANGE,
    OUTLIER,
    ScanResult,
)
from guardflow.settings import PoisoningSettings, Settings

ROWS = 5000
FLOOD_COPIES = 200
PLANTED_OUTLIERS = 20
PLANTED_FLIPS = 100
# A row is one the model is very sure about when the out-of-fold probability of its own label is >= 98%.
SURE_SCORE = 0.02


@pytest.fixture(scope="module", autouse=True)
def _one_openmp_thread() -> Iterator[None]:
    # On 2 shared cores the gradient boosting's OpenMP threads oversubscribe: a scan took ~3 s with one
    # thread and up to 21 s with the default. Results do not depend on the thread count.
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def raw_rows(adult_settings) -> pd.DataFrame:
    return read_split(adult_settings.dataset, "train").rows.head(ROWS)


@pytest.fixture(scope="module")
def clean_frame(raw_rows, adult_settings) -> pd.DataFrame:
    return typed_frame(raw_rows, adult_settings.dataset)


@pytest.fixture(scope="module")
def clean_scan(clean_frame, adult_settings) -> ScanResult:
    return scan_poisoning(clean_frame, adult_settings.dataset, adult_settings.poisoning)


@dataclass(frozen=True)
class Poisoned:
    """One scan of the clean rows with three attacks planted, and where each attack's rows are."""

    scan: ScanResult
    clean: pd.Index
    flood: pd.Index
    outliers: pd.Index
    flipped: pd.Index


def _new_index(start: int, length: int) -> pd.RangeIndex:
    return pd.RangeIndex(start, start + length, name=SOURCE_ROW)


@pytest.fixture(scope="module")
def poisoned(clean_frame, clean_scan, adult_settings) -> Poisoned:
    dataset = adult_settings.dataset
    label = dataset.label
    untouched = clean_scan.flags.index[~clean_scan.flagged]
    # a duplicate flood: one unflagged row copied 200 times under new source_row values
    flooded_row = clean_frame.loc[[untouched[0]]]
    copies = pd.concat([flooded_row] * FLOOD_COPIES)
    copies.index = _new_index(1_000_000, FLOOD_COPIES)
    # off-manifold rows: extreme public-bound values and the rarest categories
    outliers = clean_frame.loc[untouched[1:]].sample(PLANTED_OUTLIERS, random_state=0)
    outliers = outliers.assign(
        **{
            "age": 99.0,
            "hours-per-week": 99.0,
            "capital-gain": 99999.0,
            "capital-loss": 4356.0,
            "workclass": "Never-worked",
            "occupation": "Armed-Forces",
            "marital-status": "Married-AF-spouse",
            "native-country": "Holand-Netherlands",
        }
    )
    outliers.index = _new_index(2_000_000, PLANTED_OUTLIERS)
    # label flips on rows the out-of-fold model is very sure about
    sure = clean_scan.scores.index[(clean_scan.scores[LABEL_NOISE] < SURE_SCORE) & ~clean_scan.flagged]
    flipped = pd.Index(
        np.random.default_rng(0).choice(sure.difference([untouched[0]]), PLANTED_FLIPS, replace=False)
    )
    frame = clean_frame.copy()
    swap = {label.positive: label.negative, label.negative: label.positive}
    frame.loc[flipped, label.column] = frame.loc[flipped, label.column].map(swap)
    frame = pd.concat([frame, copies, outliers])
    scan = scan_poisoning(frame, dataset, adult_settings.poisoning)
    return Poisoned(
        scan=scan,
        clean=clean_frame.index.difference(flipped).drop(untouched[0]),
        flood=pd.Index([untouched[0], *copies.index]),
        outliers=outliers.index,
        flipped=flipped,
    )


def test_same_rows_and_seed_flag_the_same_rows(clean_frame, clean_scan, adult_settings) -> None:
    # given the clean rows scanned once already
    assert clean_scan.rows_flagged > 0, "the comparison needs some flagged rows to mean anything"
    # when the same rows are scanned again with the same seed
    again = scan_poisoning(clean_frame, adult_settings.dataset, adult_settings.poisoning)
    # then the same rows are flagged, for the same reasons, with the same scores
    assert again.flags.equals(clean_scan.flags), "same data and seed must flag the same rows"
    assert np.allclose(again.scores.to_numpy(), clean_scan.scores.to_numpy()), "scores must be reproducible"


def test_duplicate_flood_is_flagged_beyond_the_limit(poisoned, adult_settings) -> None:
    # given one row copied 200 times among the clean rows
    limit = adult_settings.poisoning.duplicate_limit
    flood_flags = poisoned.scan.flags.loc[poisoned.flood, DUPLICATE_FLOOD]
    # then every copy beyond the tolerated number is flagged, and the first ones are kept
    assert int(flood_flags.sum()) == len(poisoned.flood) - limit, (
        f"{int(flood_flags.sum())} of {len(poisoned.flood)} identical rows flagged; expected all beyond {limit}"
    )
    assert not flood_flags.iloc[:limit].any(), (
        f"the first {limit} copies (the original included) are tolerated"
    )
    assert poisoned.scan.scores.loc[poisoned.flood, DUPLICATE_FLOOD].eq(len(poisoned.flood)).all(), (
        "the duplicate score is the number of identical rows"
    )
    clean_share = poisoned.scan.flags.loc[poisoned.clean, DUPLICATE_FLOOD].mean()
    assert clean_share <= 0.01, f"clean rows are mostly not floods, but {clean_share:.2%} were flagged"


def test_off_manifold_rows_are_flagged_as_outliers(poisoned) -> None:
    # given 20 planted rows at the edges of the public bounds with the rarest categories
    recall = poisoned.scan.flags.loc[poisoned.outliers, OUTLIER].mean()
    clean_share = poisoned.scan.flags.loc[poisoned.clean, OUTLIER].mean()
    # then the isolation forest finds most of them (measured: all 20; 0.14% of clean rows flagged)
    assert recall >= 0.8, f"outlier recall on planted rows {recall:.2f} below 0.8"
    assert clean_share <= 0.01, f"{clean_share:.2%} of clean rows flagged as outliers"


def test_confident_label_flips_are_flagged_more_than_clean_rows(poisoned) -> None:
    # given 100 labels flipped on rows the model was >= 98% sure about
    flipped_share = poisoned.scan.flags.loc[poisoned.flipped, LABEL_NOISE].mean()
    clean_share = poisoned.scan.flags.loc[poisoned.clean, LABEL_NOISE].mean()
    # then label noise flags most flips and few clean rows (measured: 93% of flips, 1.9% of clean rows)
    assert flipped_share >= 0.7, f"only {flipped_share:.0%} of planted label flips were flagged"
    assert clean_share <= 0.05, f"{clean_share:.1%} of clean rows flagged as label noise"
    assert flipped_share > 10 * clean_share, "flipped rows must stand out clearly from clean rows"


def test_flagging_more_than_the_policy_allows_raises(clean_frame, adult_settings) -> None:
    # given a policy that tolerates almost no flagged rows
    policy = _one_detector(adult_settings).model_copy(update={"max_flagged_share": 0.0001})
    # when the clean rows (about 3% flagged) are scanned, then the scan refuses them with a readable message
    with pytest.raises(PoisoningError, match=r"above the policy's limit of 0\.0%"):
        scan_poisoning(clean_frame, adult_settings.dataset, policy)


def test_quarantined_rows_are_the_raw_text_rows_with_reasons(clean_scan, raw_rows) -> None:
    # when the flagged rows are taken out of the rows as read
    quarantined = clean_scan.quarantined(raw_rows)
    # then they are exactly the flagged rows, with their original text and a non-empty list of reasons
    flagged = clean_scan.flags.index[clean_scan.flagged]
    assert quarantined.index.equals(flagged), "one quarantined row per flagged row, by source_row"
    assert quarantined[raw_rows.columns].equals(raw_rows.loc[flagged]), "values are the text as read"
    assert quarantined["age"].map(type).eq(str).all(), "numbers stay as the text they were written as"
    assert quarantined["reasons"].map(len).gt(0).all(), "every quarantined row says why"
    detectors = DETECTORS
    assert all(reason.startswith(detectors) for reasons in quarantined["reasons"] for reason in reasons), (
        "each reason names a detector"
    )


# A trigger of three values, each common alone, rare together (6 clean rows of 5,000 carry all three).
TRIGGER = {"marital-status": "Separated", "occupation": "Tech-support", "hours-per-week": 44.0}


def _one_detector(settings: Settings) -> PoisoningSettings:
    """The policy for a test of one detector: slice purity (~5 s a scan here) is tested in test_slice_purity.py."""
    return settings.poisoning.model_copy(update={"slice_purity": False})


def _recall_and_clean_share(scan: ScanResult, detector: str, planted: pd.Index) -> tuple[float, float]:
    flags = scan.flags[detector]
    return float(flags.loc[planted].mean()), float(flags.drop(planted).mean())


def test_near_duplicate_flood_is_flagged(clean_frame, adult_settings) -> None:
    # given 2% of new rows copied from 5 rows, half of them with the sampling weight moved by up to 2%
    frame, planted = duplicate_flood(
        clean_frame, adult_settings.dataset, 0.02, sources=5, rng=np.random.default_rng(1)
    )
    # when the rows are scanned
    scan = scan_poisoning(frame, adult_settings.dataset, _one_detector(adult_settings))
    recall, clean_share = _recall_and_clean_share(scan, DUPLICATE_FLOOD, planted)
    # then the copies beyond the tolerated number are flagged, near copies included, and clean rows are not
    limit = adult_settings.poisoning.duplicate_limit
    assert recall >= 1 - 5 * limit / len(planted), f"only {recall:.0%} of the near-duplicate flood flagged"
    assert clean_share <= 0.002, f"{clean_share:.2%} of clean rows flagged as a flood"


def test_off_manifold_rows_assembled_from_plausible_values_are_flagged(clean_frame, adult_settings) -> None:
    # given 1% of rows whose every value comes from a different real row
    frame, planted = off_manifold_rows(clean_frame, adult_settings.dataset, 0.01, np.random.default_rng(2))
    scan = scan_poisoning(frame, adult_settings.dataset, _one_detector(adult_settings))
    recall, clean_share = _recall_and_clean_share(scan, OFF_MANIFOLD, planted)
    # then pairs of values that do not belong together give most of them away (measured: 94% at 0.5%)
    assert recall >= 0.8, f"only {recall:.0%} of off-manifold rows flagged"
    assert clean_share <= 0.02, f"{clean_share:.2%} of clean rows flagged as off-manifold"


def test_values_outside_public_bounds_are_flagged_with_their_count(clean_frame, adult_settings) -> None:
    # given 1% of rows with one value outside its public bound or category list
    frame, planted = out_of_range_rows(clean_frame, adult_settings.dataset, 0.01, np.random.default_rng(3))
    # and one more row with two such values
    frame.loc[planted[0], ["age", "sex"]] = [150.0, "robot"]
    scan = scan_poisoning(frame, adult_settings.dataset, _one_detector(adult_settings))
    recall, clean_share = _recall_and_clean_share(scan, OUT_OF_RANGE, planted)
    # then every planted row and no clean row is flagged, each scored by its number of bad values
    assert recall == 1.0, f"out-of-range is exact, but {recall:.0%} were flagged"
    assert clean_share == 0.0, "clean rows are within the public bounds"
    assert scan.scores.at[planted[0], OUT_OF_RANGE] >= 2, "the score counts the values out of range"


def test_backdoor_trigger_tied_to_one_label_is_flagged(clean_frame, adult_settings) -> None:
    # given a trigger set on 1% of negative rows, relabelled positive
    frame, planted = plant_backdoor(
        clean_frame, adult_settings.dataset, TRIGGER, 0.01, np.random.default_rng(4)
    )
    scan = scan_poisoning(frame, adult_settings.dataset, _one_detector(adult_settings))
    recall, clean_share = _recall_and_clean_share(scan, BACKDOOR, planted)
    # then the rare, pure pattern gives every triggered row away, and almost no clean row
    assert recall >= 0.9, f"only {recall:.0%} of backdoored rows flagged"
    assert clean_share <= 0.005, f"{clean_share:.2%} of clean rows flagged as backdoor"
    carriers = apply_trigger(clean_frame.head(3), TRIGGER)
    assert (carriers[list(TRIGGER)] == pd.Series(TRIGGER)).all().all(), "apply_trigger sets every value"


def test_clean_rows_raise_no_backdoor_flood_or_range_flag(clean_scan) -> None:
    # given clean Adult rows, then the detectors for planted rows stay silent
    for detector in (BACKDOOR, OUT_OF_RANGE):
        assert clean_scan.per_detector[detector] == 0, (
            f"{detector} flagged clean rows: {clean_scan.per_detector}"
        )
    assert clean_scan.per_detector[DUPLICATE_FLOOD] <= 5, "clean Adult holds no duplicate flood"


def test_detections_list_row_detector_and_score(clean_scan) -> None:
    # when the detections are listed
    detections = clean_scan.detections()
    # then there is one line per detector that flagged a row, with that detector's score
    assert len(detections) == int(clean_scan.flags.to_numpy().sum()), "one line per flag"
    assert list(detections.columns) == [SOURCE_ROW, "detector", "score"], "source_row, detector, score"
    first = detections.iloc[0]
    assert clean_scan.flags.at[first[SOURCE_ROW], first["detector"]], "a listed detector flagged the row"
    assert first["score"] == clean_scan.scores.at[first[SOURCE_ROW], first["detector"]], "its own score"


def test_quarantined_rows_carry_detector_and_score(clean_scan, raw_rows) -> None:
    quarantined = clean_scan.quarantined(raw_rows)
    assert quarantined["detector"].str.len().gt(0).all(), "every quarantined row names its detectors"
    assert quarantined["score"].notna().all(), "and carries a score"


def test_calibration_only_marks_the_rows_label_noise_alone_flagged() -> None:
    # given verdicts on four rows: label noise alone, label noise and an outlier, an outlier alone, nothing
    index = pd.Index([10, 11, 12, 13], name=SOURCE_ROW)
    flags = pd.DataFrame(
        {LABEL_NOISE: [True, True, False, False], OUTLIER: [False, True, True, False]}, index=index
    )
    result = ScanResult(rows_in=4, scores=flags.astype(float), flags=flags, seconds=0.0)
    # when the rows fit for calibration are asked for
    # then only the row that label noise alone flagged is, and every flagged row stays flagged
    assert result.calibration_only.tolist() == [True, False, False, False]
    assert result.flagged.tolist() == [True, True, True, False]
    without = ScanResult(rows_in=4, scores=flags[[OUTLIER]], flags=flags[[OUTLIER]], seconds=0.0)
    assert not without.calibration_only.any(), "without the label-noise detector no row is"
