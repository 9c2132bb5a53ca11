"""Benchmark: can a poisoned drift batch retrain itself into the champion?

Reference: Adult's training split as the champion's training data; the champion is the project's DP-SGD model
trained on it (config's privacy and model settings, seed 0). Each batch is 10,000 rows drawn from adult.test with
its own seed, then one of:
- poisoned: one of the genuine feature shifts below (drawn per seed), carrying a random backdoor
  (bench/plant_attacks.py: trigger of 1-3 features, common or rare values, relabel or inject mode, random target)
  or a targeted flip (a random sensitive group's positive labels turned negative), the poisoned rows being 1% or
  3% of the batch;
- genuine: the drift benchmark's shifts (bench/drift.py): age >= 50, women, degree holders each +5 points of
  share, every row one more hour a week, a label prior +5 points (here with its labels); and whole
  subpopulations (every person aged 50 or over, every woman, of adult.test): the extreme genuine shift.
Every batch goes through what `guardflow drift` does before a retrain: the drift check (family-wise rule), then, if
it drifted, the batch screen against the reference (suspects quarantined, the approval policy `on_suspicious`).
A retrain happens unless the batch did not drift or waits for approval. For those retrains (and, with
`--train-all`, every drifted batch), the candidate is trained the way the retrain trains it: the scan (with the
reference as trusted data) over reference + the batch's kept rows (suspects and the 30% window out), then DP-SGD;
its harm is measured against the champion: for a backdoor the rise in attack success rate on triggered test rows,
for a flip the fall of the group's true-positive rate on adult.test. A retrain is harmful past 0.05.
The gate is not applied: `harmful_retrain_share` counts every harmful candidate that would reach the gate (an
upper bound of what would ship).

    .venv/bin/python bench/drift_poisoning.py [--seeds 20] [--kinds backdoor_1pct ...] [--train-all]

Writes bench/results/drift_poisoning.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from pipeline import machine_info  # bench/pipeline.py, next to this script
from threadpoolctl import threadpool_limits

from bench.plant_attacks import (
    Backdoor,
    GroupFlip,
    apply_trigger,
    flip_subgroup_labels,
    random_backdoor,
    train_dp_model,
)
from guardflow.data.table import labelled_rows
from guardflow.drift.detect_drift import detect_drift
from guardflow.drift.screen_batch import screen_batch
from guardflow.io.datasets import read_split
from guardflow.poisoning.scan_poisoning import scan_poisoning
from guardflow.settings import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "configs" / "adult.yaml"
OUTPUT = REPO / "bench" / "results" / "drift_poisoning.json"
BATCH_ROWS = 10_000
SHARE_SHIFT = 0.05
HARM = 0.05
DEGREES = ("Bachelors", "Masters", "Prof-school", "Doctorate")
POISONED = ("backdoor_1pct", "backdoor_3pct", "flip_1pct", "flip_3pct")
GENUINE = ("age-50-plus", "women", "degree", "hours-plus-one", "label-prior")
# Whole subpopulations (every row of adult.test in the group, at most BATCH_ROWS): the extreme genuine shift.
SUBPOPULATIONS = ("only-age-50-plus", "only-women")


@dataclass(frozen=True)
class Drawn:
    """One batch: its rows (typed, labelled), the index of the rows planted in it, and what was planted."""

    batch: pd.DataFrame
    planted: pd.Index
    attack: Backdoor | GroupFlip | None


def _group_draw(test: pd.DataFrame, in_group: pd.Series, rng: np.random.Generator) -> pd.DataFrame:
    group, others = np.flatnonzero(in_group.to_numpy()), np.flatnonzero(~in_group.to_numpy())
    from_group = round(BATCH_ROWS * (len(group) / len(test) + SHARE_SHIFT))
    picked = np.concatenate(
        [
            rng.choice(group, from_group, replace=False),
            rng.choice(others, BATCH_ROWS - from_group, replace=False),
        ]
    )
    return test.iloc[rng.permutation(picked)]


def _flip(batch: pd.DataFrame, settings: Settings, rate: float, rng: np.random.Generator) -> Drawn:
    """Turn rate x batch rows of one random sensitive group's positives negative, at most half of them (a small
    group then loses fewer rows than the rate asks: the JSON records the share and rows actually flipped)."""
    dataset = settings.dataset
    label = dataset.label
    positives = batch[batch[label.column] == label.positive]
    groups = [
        (column, str(group))
        for column in dataset.sensitive
        for group, count in positives[column].value_counts().items()
        if count >= 100
    ]
    column, group = groups[int(rng.integers(len(groups)))]
    available = int((positives[column] == group).sum())
    share = min(0.5, rate * len(batch) / available)
    poisoned, rows = flip_subgroup_labels(batch, dataset, column, group, share, rng)
    return Drawn(poisoned, rows, GroupFlip(column, group, round(share, 4), rows))


def _genuine(kind: str, test: pd.DataFrame, settings: Settings, rng: np.random.Generator) -> pd.DataFrame:
    """A batch of one genuine shift (its rows keep adult.test's row numbers as their index)."""
    label = settings.dataset.label
    shifted: dict[str, Callable[[], pd.DataFrame]] = {
        "age-50-plus": lambda: _group_draw(test, test["age"] >= 50, rng),
        "women": lambda: _group_draw(test, test["sex"] == "Female", rng),
        "degree": lambda: _group_draw(test, test["education"].isin(DEGREES), rng),
        "label-prior": lambda: _group_draw(test, test[label.column] == label.positive, rng),
    }
    if kind in shifted:
        return shifted[kind]()
    batch = test.iloc[rng.choice(len(test), BATCH_ROWS, replace=False)]
    return batch.assign(**{"hours-per-week": (batch["hours-per-week"] + 1).clip(upper=99)})


def draw(kind: str, test: pd.DataFrame, settings: Settings, seed: int) -> tuple[Drawn, str]:
    """The batch of one kind and seed, and the genuine shift under it. A poisoned batch rides on a genuine shift
    drawn per seed (the attacker's rows arrive with real new data, so the drift check fires and the retrain's
    safeguards are what stand between the batch and the champion)."""
    rng = np.random.default_rng(seed)
    if kind in GENUINE:
        return Drawn(_genuine(kind, test, settings, rng), pd.Index([]), None), kind
    if kind in SUBPOPULATIONS:
        group = test[test["age"] >= 50] if kind == "only-age-50-plus" else test[test["sex"] == "Female"]
        picked = rng.choice(len(group), min(BATCH_ROWS, len(group)), replace=False)
        return Drawn(group.iloc[np.sort(picked)], pd.Index([]), None), kind
    base = GENUINE[int(rng.integers(len(GENUINE) - 1))]  # any feature shift; not the label prior
    batch = _genuine(base, test, settings, rng)
    rate = 0.01 if kind.endswith("1pct") else 0.03
    if kind.startswith("backdoor"):
        poisoned, backdoor = random_backdoor(batch, settings.dataset, rate, rng)
        return Drawn(poisoned, backdoor.rows, backdoor), base
    return _flip(batch, settings, rate, rng), base


def _harm(
    attack: Backdoor | GroupFlip,
    candidate: Callable[[pd.DataFrame], np.ndarray],
    champion: Callable[[pd.DataFrame], np.ndarray],
    test: pd.DataFrame,
    settings: Settings,
) -> dict[str, float]:
    """The candidate's attack success rate (backdoor) or the group's TPR (flip), against the champion's."""
    dataset = settings.dataset
    if isinstance(attack, Backdoor):
        label = dataset.label
        other = label.negative if attack.target == label.positive else label.positive
        triggered = apply_trigger(test[test[label.column] == other], attack.trigger)

        def success(predict: Callable[[pd.DataFrame], np.ndarray]) -> float:
            positive = predict(triggered) >= 0.5
            return float(positive.mean() if attack.target == label.positive else (~positive).mean())

        before, after = success(champion), success(candidate)
        return {"champion": round(before, 4), "candidate": round(after, 4), "harm": round(after - before, 4)}
    group = test[
        (test[attack.column] == attack.group) & (test[dataset.label.column] == dataset.label.positive)
    ]
    before = float((champion(group) >= 0.5).mean())
    after = float((candidate(group) >= 0.5).mean())
    return {"champion": round(before, 4), "candidate": round(after, 4), "harm": round(before - after, 4)}


def run_seed(
    kind: str,
    seed: int,
    state: dict[str, Any],
    train_all: bool,
) -> dict[str, Any]:
    settings: Settings = state["settings"]
    dataset = settings.dataset
    reference: pd.DataFrame = state["reference"]
    drawn, base = draw(kind, state["test_pool"], settings, seed)
    batch = drawn.batch
    record: dict[str, Any] = {
        "seed": seed,
        "shift": base,
        "attack": drawn.attack.describe() if drawn.attack else None,
    }
    started = time.perf_counter()
    drift = detect_drift(reference, batch, dataset, settings.drift)
    record["drift_detected"] = drift.drift_detected
    record["drifted_columns"] = list(drift.drifted_columns)
    if not drift.drift_detected:
        record["outcome"] = "no_drift"
        return record
    screen = screen_batch(
        batch, reference, dataset, settings.poisoning, settings.drift, drift.drifted_columns
    )
    record["screen_seconds"] = round(screen.seconds, 2)
    record["check_seconds"] = round(time.perf_counter() - started, 2)
    record["suspects"] = screen.suspect_count
    record["hold_reasons"] = list(screen.hold_reasons)
    planted = drawn.planted
    if len(planted):
        found = screen.suspects[screen.suspects].index.intersection(planted)
        record["suspect_recall"] = round(len(found) / len(planted), 4)
        record["genuine_suspects"] = int(screen.suspect_count - len(found))
    else:
        record["genuine_suspects"] = screen.suspect_count
    record["outcome"] = "held_for_approval" if screen.suspicious else "retrained"
    if drawn.attack is None or not (train_all or not screen.suspicious):
        return record
    rng = np.random.default_rng(seed)
    kept = batch[~screen.suspects]
    window = rng.random(len(kept)) < settings.drift.window_fraction
    combined = pd.concat([reference, kept[~window]], ignore_index=True)
    with threadpool_limits(limits=1):
        scan = scan_poisoning(combined, dataset, state["policy"], reference=reference)
    record["scan_flagged"] = scan.rows_flagged
    candidate = train_dp_model(
        combined[~scan.flagged.to_numpy()], settings, combined[scan.calibration_only.to_numpy()]
    )
    record["harm"] = _harm(drawn.attack, candidate, state["champion"], state["test_full"], settings)
    record["harmful"] = record["harm"]["harm"] > HARM
    return record


def summarise(kind: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    seeds = len(records)
    outcomes = [record["outcome"] for record in records]
    recalls = [record["suspect_recall"] for record in records if "suspect_recall" in record]
    trained = [record for record in records if "harmful" in record]
    harmful_retrains = [r for r in trained if r["harmful"] and r["outcome"] == "retrained"]
    return {
        "kind": kind,
        "seeds": seeds,
        "drift_detected_share": round(sum(record["drift_detected"] for record in records) / seeds, 4),
        "held_for_approval_share": round(outcomes.count("held_for_approval") / seeds, 4),
        "retrained_share": round(outcomes.count("retrained") / seeds, 4),
        "harmful_retrain_share": round(len(harmful_retrains) / seeds, 4),
        "suspect_recall_median": round(statistics.median(recalls), 4) if recalls else None,
        "suspect_recall_p10": round(float(np.quantile(recalls, 0.1)), 4) if recalls else None,
        "genuine_suspects_median": statistics.median(record.get("genuine_suspects", 0) for record in records),
        "candidates_trained": len(trained),
        "records": records,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--kinds", nargs="*", default=[*POISONED, *GENUINE, *SUBPOPULATIONS])
    parser.add_argument(
        "--train-all", action="store_true", help="train a candidate on every drifted poisoned batch"
    )
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    settings = load_settings(CONFIG)
    dataset = settings.dataset
    reference = labelled_rows(read_split(dataset, "train").rows, dataset)
    test = labelled_rows(read_split(dataset, "test").rows, dataset)
    torch.manual_seed(0)
    state: dict[str, Any] = {
        "settings": settings,
        "reference": reference,
        "test_pool": test,
        "test_full": test,
        "policy": settings.poisoning.model_copy(update={"max_flagged_share": 1.0}),
        "champion": train_dp_model(reference, settings),
    }
    results = []
    for kind in args.kinds:
        records = []
        for seed in range(args.seeds):
            records.append(run_seed(kind, 10_000 + seed, state, args.train_all))
            print(f"{kind:16} seed {seed:2}: {records[-1]['outcome']}", file=sys.stderr, flush=True)
        results.append(summarise(kind, records))
    report = {
        "benchmark": "drift_poisoning",
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "batch_rows": BATCH_ROWS,
        "harm_threshold": HARM,
        "approval_policy": settings.drift.retrain_approval,
        "kinds": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"{'kind':16} {'seeds':>5} {'drift':>6} {'held':>6} {'retrain':>7} {'harmful':>7} {'recall':>7}")
    for row in results:
        recall = row["suspect_recall_median"]
        print(
            f"{row['kind']:16} {row['seeds']:>5} {row['drift_detected_share']:>6.2f} "
            f"{row['held_for_approval_share']:>6.2f} {row['retrained_share']:>7.2f} "
            f"{row['harmful_retrain_share']:>7.2f} {'' if recall is None else f'{recall:.2f}':>7}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
