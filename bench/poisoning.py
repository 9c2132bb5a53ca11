"""Poisoning benchmark: plant each attack in Adult's training file with fixed seeds, scan, and measure.

Attacks (bench/plant_attacks.py): random label flips at 5% and 10%; flips targeted at one subgroup
(half of the women earning >50K relabelled <=50K); out-of-range rows and off-manifold rows at 1%; a duplicate
flood at 2% (10 source rows, half exact copies, half near copies); a backdoor (three values set plus the
label >50K) at 0.5%, 1% and 3%.

For each: precision and recall of the scan (any detector) and of the attack's own detector, the share of
clean rows flagged, the scan's seconds (one thread), and the effect on a model: test accuracy trained clean,
poisoned, and poisoned then scanned (flagged rows left out), and for backdoors the attack success rate: the
share of triggered test rows whose true label is <=50K that the model calls >50K.
Model: `--model hgb` (default) a non-private HistGradientBoosting on the scan's ordinal encoding, which
learns triggers readily; `--model dp` the project's DP-SGD MLP at the config's epsilon (slower).

Saves bench/results/poisoning.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from bench import plant_attacks
from guardflow.data.encode_features import encode_features, ordinal_features
from guardflow.data.table import label_vector, labelled_rows, typed_frame
from guardflow.io.datasets import read_split
from guardflow.poisoning.scan_poisoning import scan_poisoning
from guardflow.poisoning.scan_result import (
    BACKDOOR,
    DUPLICATE_FLOOD,
    LABEL_NOISE,
    OFF_MANIFOLD,
    OUT_OF_RANGE,
)
from guardflow.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "adult.yaml"
RESULTS = ROOT / "bench" / "results" / "poisoning.json"
# Three values, each common alone (separated; tech support; 44 hours a week), rare together in Adult.
TRIGGER = {"marital-status": "Separated", "occupation": "Tech-support", "hours-per-week": 44.0}
SEED = 0

Attack = Callable[[pd.DataFrame, np.random.Generator], plant_attacks.Planted]


def _attacks(settings: Settings) -> dict[str, tuple[str | None, Attack]]:
    """Each variant's name, the detector meant for it, and how it is planted."""
    dataset = settings.dataset
    return {
        "clean": (None, lambda frame, rng: (frame, pd.Index([]))),
        "label_flips_5pct": (LABEL_NOISE, lambda f, rng: plant_attacks.flip_labels(f, dataset, 0.05, rng)),
        "label_flips_10pct": (LABEL_NOISE, lambda f, rng: plant_attacks.flip_labels(f, dataset, 0.10, rng)),
        "label_flips_women_50pct_of_positives": (
            LABEL_NOISE,
            lambda f, rng: plant_attacks.flip_subgroup_labels(f, dataset, "sex", "Female", 0.5, rng),
        ),
        "out_of_range_1pct": (
            OUT_OF_RANGE,
            lambda f, rng: plant_attacks.out_of_range_rows(f, dataset, 0.01, rng),
        ),
        "off_manifold_1pct": (
            OFF_MANIFOLD,
            lambda f, rng: plant_attacks.off_manifold_rows(f, dataset, 0.01, rng),
        ),
        "duplicate_flood_2pct": (
            DUPLICATE_FLOOD,
            lambda f, rng: plant_attacks.duplicate_flood(f, dataset, 0.02, 10, rng),
        ),
        **{
            f"backdoor_{label}": (
                BACKDOOR,
                lambda f, rng, rate=rate: plant_attacks.plant_backdoor(f, dataset, TRIGGER, rate, rng),
            )
            for label, rate in (("0.5pct", 0.005), ("1pct", 0.01), ("3pct", 0.03))
        },
    }


def _train_and_predict(
    kind: str, train: pd.DataFrame, tests: list[pd.DataFrame], settings: Settings
) -> list[np.ndarray]:
    """Fit the benchmark's model on `train` and return the positive-class probability for each test frame."""
    dataset = settings.dataset
    labels = label_vector(train, dataset).to_numpy()
    if kind == "hgb":
        features, categorical = ordinal_features(train, dataset)
        model = HistGradientBoostingClassifier(categorical_features=categorical, random_state=SEED)
        with threadpool_limits(limits=1):
            model.fit(features, labels)
            return [model.predict_proba(ordinal_features(test, dataset)[0])[:, 1] for test in tests]
    import torch

    from guardflow.privacy.network import predict_proba
    from guardflow.privacy.train_private import train_private

    trained = train_private(encode_features(train, dataset), labels, settings.privacy, settings.model)
    with torch.no_grad():
        return [
            predict_proba(trained.model, torch.tensor(encode_features(test, dataset))).numpy()
            for test in tests
        ]


def _effect(
    kind: str,
    settings: Settings,
    clean: pd.DataFrame,
    poisoned: pd.DataFrame,
    scanned: pd.DataFrame,
    test: pd.DataFrame,
    backdoor: bool,
    cache: dict[str, list[np.ndarray]],
) -> dict[str, float | None]:
    """Test accuracy trained clean / poisoned / poisoned then scanned; for a backdoor, its success rate."""
    dataset = settings.dataset
    truth = label_vector(test, dataset).to_numpy()
    negatives = test[truth == 0]
    triggered = plant_attacks.apply_trigger(negatives, TRIGGER)
    tests = [test, triggered]
    if "clean" not in cache:
        cache["clean"] = _train_and_predict(kind, clean, tests, settings)
    figures: dict[str, float | None] = {}
    for name, rows in (("clean", None), ("poisoned", poisoned), ("scanned", scanned)):
        probabilities = cache["clean"] if rows is None else _train_and_predict(kind, rows, tests, settings)
        figures[f"accuracy_{name}"] = round(float(((probabilities[0] >= 0.5) == truth).mean()), 4)
        success = float((probabilities[1] >= 0.5).mean())
        figures[f"attack_success_{name}"] = round(success, 4) if backdoor else None
    return figures


def _detection(scan_flags: pd.Series, planted: pd.Index) -> dict[str, float | None]:
    flagged = scan_flags[scan_flags].index
    hits = len(flagged.intersection(planted))
    clean = scan_flags.drop(planted)
    return {
        "precision": round(hits / len(flagged), 4) if len(flagged) and len(planted) else None,
        "recall": round(hits / len(planted), 4) if len(planted) else None,
        "clean_flagged_share": round(float(clean.mean()), 4),
    }


def run(kind: str, only: list[str] | None) -> dict:
    settings = load_settings(CONFIG)
    dataset = settings.dataset
    # The bench reports every figure, so the policy's flagged-share limit must not stop a scan midway.
    policy = settings.poisoning.model_copy(update={"max_flagged_share": 1.0})
    clean = typed_frame(read_split(dataset, "train").rows, dataset)
    test = labelled_rows(read_split(dataset, "test").rows, dataset)
    plant_attacks.check_trigger(TRIGGER, dataset)
    cache: dict[str, list[np.ndarray]] = {}
    results: dict[str, dict] = {}
    for name, (detector, plant) in _attacks(settings).items():
        if only and name not in only:
            continue
        poisoned, planted = plant(clean, np.random.default_rng(SEED))
        cpu_started = time.process_time()
        with threadpool_limits(limits=1):
            scan = scan_poisoning(poisoned, dataset, policy)
        # One thread: CPU seconds are what the scan costs; wall seconds also count the other loads on the machine.
        scan_cpu_seconds = time.process_time() - cpu_started
        scanned = poisoned[~scan.flagged]
        effect = _effect(kind, settings, clean, poisoned, scanned, test, name.startswith("backdoor"), cache)
        results[name] = {
            "rows": len(poisoned),
            "planted": len(planted),
            "detector": detector,
            "scan": _detection(scan.flagged, planted),
            "detector_only": _detection(scan.flags[detector], planted) if detector else None,
            "per_detector": scan.per_detector,
            "flagged_share": round(scan.rows_flagged / len(poisoned), 4),
            "policy_would_fail": scan.rows_flagged / len(poisoned) > settings.poisoning.max_flagged_share,
            "scan_seconds": round(scan.seconds, 2),
            "scan_cpu_seconds": round(scan_cpu_seconds, 2),
            "detector_seconds": scan.detector_seconds,
            "load_average": list(os.getloadavg()),
            **effect,
        }
        print(_row(name, results[name]), flush=True)
    return results


def _fmt(value: float | None, pattern: str = "{:.3f}") -> str:
    return "-" if value is None else pattern.format(value)


COLUMNS = (
    ("attack", 38),
    ("planted", 7),
    ("det.recall", 10),
    ("det.clean", 9),
    ("recall", 6),
    ("prec.", 6),
    ("clean fl.", 9),
    ("wall s", 6),
    ("cpu s", 5),
    ("acc clean", 9),
    ("acc pois", 8),
    ("acc scan", 8),
    ("ASR clean", 9),
    ("ASR pois", 8),
    ("ASR scan", 8),
)
HEADER = " ".join(
    f"{name:<{width}}" if index == 0 else f"{name:>{width}}" for index, (name, width) in enumerate(COLUMNS)
)


def _row(name: str, result: dict) -> str:
    own = result["detector_only"] or {}
    scan = result["scan"]
    cells = [
        name,
        str(result["planted"]),
        _fmt(own.get("recall")),
        _fmt(own.get("clean_flagged_share"), "{:.2%}"),
        _fmt(scan["recall"]),
        _fmt(scan["precision"]),
        _fmt(scan["clean_flagged_share"], "{:.2%}"),
        f"{result['scan_seconds']:.1f}",
        f"{result['scan_cpu_seconds']:.1f}",
        *(_fmt(result[f"accuracy_{model}"]) for model in ("clean", "poisoned", "scanned")),
        *(_fmt(result[f"attack_success_{model}"]) for model in ("clean", "poisoned", "scanned")),
    ]
    return " ".join(
        f"{cell:<{width}}" if index == 0 else f"{cell:>{width}}"
        for index, (cell, (_, width)) in enumerate(zip(cells, COLUMNS, strict=True))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", choices=("hgb", "dp"), default="hgb", help="the model trained for the effect"
    )
    parser.add_argument("--only", nargs="*", help="run only these variants")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    load_before = list(os.getloadavg())
    started = time.perf_counter()
    print(HEADER)
    results = run(args.model, args.only)
    payload = {
        "benchmark": "poisoning",
        "timestamp_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": str(CONFIG),
        "model": args.model,
        "seed": SEED,
        "trigger": TRIGGER,
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_before": load_before,
            "load_average_after": list(os.getloadavg()),
        },
        "seconds": round(time.perf_counter() - started, 1),
        "variants": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    after = payload["machine"]["load_average_after"]
    print(f"saved {args.out} ({payload['seconds']:.0f}s, load average {load_before} -> {after})")


if __name__ == "__main__":
    main()
