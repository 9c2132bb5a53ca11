"""Randomized poisoning benchmark: every attack kind drawn anew per seed, on every bundled dataset, then scanned.

Kinds (bench/plant_attacks.py): backdoors at 0.5%, 1% and 3% whose trigger (1-3 features, categorical or exact
numeric values, common or rare), mode (relabel or inject) and target class are drawn per seed, each scanned
without a reference (a first training has no champion) and with one (`_ref`: the trusted reference is a clean random
half of the training rows, the attack planted in the other half); targeted flips of 20-50% of one random sensitive
group's positive labels, with and without a reference; random flips at 5% and 10%; out-of-range and off-manifold
rows at 1%; a duplicate flood at 2% (10 source rows); and the clean data itself (with and without a reference).

Per kind: recall (median, 10th percentile) of the whole scan and of each detector, the share of genuine rows
flagged (median), the scan's seconds (one thread), and for backdoors the attack success rate of the project's DP
model (train_private at the config's privacy settings) trained on the rows the scan kept, against that of a DP model
trained on the clean rows (once per dataset; for `_ref` kinds once on a clean half), with the share of seeds where
the scanned model's ASR stays within 0.05 of the clean one. Without a reference, the ASR is also compared with a
DP model trained on the clean rows through the same scan (`asr_clean_scanned`, `asr_held_share_vs_clean_scanned`):
what the pipeline trains when nobody attacks, so the scan's own effect on the model is not counted as the attack's.
For targeted flips with a reference, the recall ceiling of any detector that ranks rows by the reference model
(`flip_ceiling`: an oracle that knows the flipped group) at 0.5-4% of all rows flagged genuine.
Every seed's drawn attack is in the JSON.

Saves bench/results/attacks.json and prints a table. `--seeds 5` while developing; 20 for the record.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from pipeline import machine_info  # bench/pipeline.py, next to this script
from threadpoolctl import threadpool_limits

from bench import plant_attacks
from guardflow.data.table import label_vector, labelled_rows, typed_frame
from guardflow.io.datasets import read_split
from guardflow.poisoning.scan_poisoning import scan_poisoning
from guardflow.poisoning.scan_result import ScanResult
from guardflow.poisoning.trusted_reference import reference_probabilities
from guardflow.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"adult": ROOT / "configs" / "adult.yaml", "fair": ROOT / "configs" / "fair.yaml"}
RESULTS = ROOT / "bench" / "results" / "attacks.json"
# The scanned model's ASR counts as held when it is at most this far above the clean model's.
ASR_MARGIN = 0.05
# The kinds the targets are stated on; `--secondary-seeds` may run the others on fewer seeds (CPU budget).
TARGET_KINDS = ("clean", "clean_ref", "backdoor_1pct", "backdoor_1pct_ref", "group_flip_ref")

Predict = Callable[[pd.DataFrame], np.ndarray]


@dataclass(frozen=True)
class Drawn:
    """One seed's attack: the poisoned rows, the rows it planted, what was drawn, and the backdoor or the flipped
    group if it is one."""

    poisoned: pd.DataFrame
    planted: pd.Index
    described: dict[str, object]
    backdoor: plant_attacks.Backdoor | None = None
    group: plant_attacks.GroupFlip | None = None


Plant = Callable[[pd.DataFrame, np.random.Generator], Drawn]


def _kinds(settings: Settings) -> dict[str, tuple[Plant, bool]]:
    """Each kind's planter and whether it is scanned with a trusted reference (a clean disjoint half)."""
    dataset = settings.dataset

    def backdoor(rate: float) -> Plant:
        def plant(frame: pd.DataFrame, rng: np.random.Generator) -> Drawn:
            poisoned, drawn = plant_attacks.random_backdoor(frame, dataset, rate, rng)
            return Drawn(poisoned, drawn.rows, drawn.describe(), drawn)

        return plant

    def group_flip(frame: pd.DataFrame, rng: np.random.Generator) -> Drawn:
        poisoned, drawn = plant_attacks.random_group_flip(frame, dataset, rng, min_positives=30)
        return Drawn(poisoned, drawn.rows, drawn.describe(), group=drawn)

    def planted(
        attack: Callable[[pd.DataFrame, np.random.Generator], plant_attacks.Planted], what: dict[str, object]
    ) -> Plant:
        def plant(frame: pd.DataFrame, rng: np.random.Generator) -> Drawn:
            poisoned, rows = attack(frame, rng)
            return Drawn(poisoned, rows, what)

        return plant

    kinds: dict[str, tuple[Plant, bool]] = {
        "clean": (planted(lambda f, rng: (f, pd.Index([])), {}), False),
        "clean_ref": (planted(lambda f, rng: (f, pd.Index([])), {}), True),
    }
    for name, rate in (("0.5pct", 0.005), ("1pct", 0.01), ("3pct", 0.03)):
        kinds[f"backdoor_{name}"] = (backdoor(rate), False)
        kinds[f"backdoor_{name}_ref"] = (backdoor(rate), True)
    kinds["group_flip"] = (group_flip, False)
    kinds["group_flip_ref"] = (group_flip, True)
    for name, rate in (("5pct", 0.05), ("10pct", 0.10)):
        kinds[f"label_flips_{name}"] = (
            planted(
                lambda f, rng, rate=rate: plant_attacks.flip_labels(f, dataset, rate, rng), {"rate": rate}
            ),
            False,
        )
    kinds["out_of_range_1pct"] = (
        planted(lambda f, rng: plant_attacks.out_of_range_rows(f, dataset, 0.01, rng), {"rate": 0.01}),
        False,
    )
    kinds["off_manifold_1pct"] = (
        planted(lambda f, rng: plant_attacks.off_manifold_rows(f, dataset, 0.01, rng), {"rate": 0.01}),
        False,
    )
    kinds["duplicate_flood_2pct"] = (
        planted(
            lambda f, rng: plant_attacks.duplicate_flood(f, dataset, 0.02, 10, rng),
            {"rate": 0.02, "sources": 10},
        ),
        False,
    )
    return kinds


def _recall(flags: pd.Series, planted: pd.Index) -> float | None:
    return round(float(flags.loc[planted].mean()), 4) if len(planted) else None


def _run_seed(
    kind: str,
    plant: Plant,
    with_reference: bool,
    seed: int,
    clean: pd.DataFrame,
    test: pd.DataFrame,
    settings: Settings,
    clean_models: dict[str, Predict],
    asr: bool,
) -> dict[str, object]:
    dataset = settings.dataset
    # The bench reports every figure, so the policy's flagged-share limit must not stop a scan midway.
    policy = settings.poisoning.model_copy(update={"max_flagged_share": 1.0})
    rng = np.random.default_rng([seed, sum(map(ord, kind))])
    reference = None
    frame = clean
    if with_reference:
        order = rng.permutation(len(clean))
        reference = clean.iloc[order[: len(clean) // 2]]
        frame = clean.iloc[np.sort(order[len(clean) // 2 :])]
    drawn = plant(frame, rng)
    cpu_started = time.process_time()
    with threadpool_limits(limits=1):
        scan: ScanResult = scan_poisoning(drawn.poisoned, dataset, policy, reference=reference)
    cpu_seconds = time.process_time() - cpu_started
    genuine = scan.flagged.drop(drawn.planted)
    record: dict[str, object] = {
        "seed": seed,
        "attack": drawn.described,
        "rows": len(drawn.poisoned),
        "planted": len(drawn.planted),
        "recall": _recall(scan.flagged, drawn.planted),
        "clean_flagged_share": round(float(genuine.mean()), 4),
        "detector_recall": {name: _recall(scan.flags[name], drawn.planted) for name in scan.flags.columns},
        "detector_clean_share": {
            name: round(float(scan.flags[name].drop(drawn.planted).mean()), 4) for name in scan.flags.columns
        },
        "scan_seconds": round(scan.seconds, 2),
        "scan_cpu_seconds": round(cpu_seconds, 2),
        "detector_seconds": scan.detector_seconds,
        "shifted_slices": [shift.describe() for shift in scan.reference.slices[:5]] if scan.reference else [],
    }
    if drawn.group is not None and reference is not None:
        record["recall_ceiling_at_genuine_share"] = flip_ceiling(drawn, reference, settings)
    if drawn.backdoor is not None and asr:
        success = plant_attacks.attack_success_rate
        clean_model = clean_models["half" if with_reference else "full"]
        kept = plant_attacks.train_dp_model(
            drawn.poisoned[~scan.flagged], settings, drawn.poisoned[scan.calibration_only]
        )
        record["asr_clean"] = round(success(clean_model, test, dataset, drawn.backdoor), 4)
        record["asr_after_scan"] = round(success(kept, test, dataset, drawn.backdoor), 4)
        if not with_reference and "full_scanned" in clean_models:
            # what the pipeline trains when nobody attacks: the clean rows through the same scan
            record["asr_clean_scanned"] = round(
                success(clean_models["full_scanned"], test, dataset, drawn.backdoor), 4
            )
    return record


# Genuine rows an oracle may flag, as shares of all rows, for the ceiling of targeted-flip recall.
CEILING_BUDGETS = (0.005, 0.01, 0.02, 0.04)


def flip_ceiling(drawn: Drawn, reference: pd.DataFrame, settings: Settings) -> dict[str, float]:
    """The most a per-row detector that ranks by the reference model can recall of a targeted flip: an oracle that
    knows the flipped group and its shifted label ranks the group's rows of that label by how likely the model
    trained on the reference finds them of the other label, and flags from the top while the genuine rows among
    them stay within each budget (a share of all rows). A flipped positive that the model also finds negative looks
    like any genuine low earner: no ranking on these features separates them."""
    assert drawn.group is not None
    dataset = settings.dataset
    frame = drawn.poisoned
    positive = reference_probabilities(reference, frame, dataset, settings.poisoning.seed)
    labels = label_vector(frame, dataset).to_numpy()
    flipped = frame.index.isin(drawn.planted)
    holders = np.flatnonzero((frame[drawn.group.column] == drawn.group.group).to_numpy() & (labels == 0))
    ranked = flipped[holders[np.argsort(-positive[holders], kind="stable")]]
    genuine_so_far = np.cumsum(~ranked)
    found_so_far = np.cumsum(ranked) / max(int(flipped.sum()), 1)
    ceiling: dict[str, float] = {}
    for budget in CEILING_BUDGETS:
        taken = int(np.searchsorted(genuine_so_far, budget * len(frame), side="right"))
        ceiling[str(budget)] = round(float(found_so_far[taken - 1]) if taken else 0.0, 4)
    return ceiling


def _quantile(values: list[float], q: float) -> float | None:
    return round(float(np.quantile(values, q)), 4) if values else None


def _summarize(records: list[dict]) -> dict[str, object]:
    """Per kind: medians and 10th percentiles over seeds, per detector too."""
    recalls = [r["recall"] for r in records if r["recall"] is not None]
    summary: dict[str, object] = {
        "seeds": [r["seed"] for r in records],
        "recall_median": _quantile(recalls, 0.5),
        "recall_p10": _quantile(recalls, 0.1),
        "clean_flagged_share": _quantile([r["clean_flagged_share"] for r in records], 0.5),
        "clean_flagged_share_max": _quantile([r["clean_flagged_share"] for r in records], 1.0),
        "scan_seconds": _quantile([r["scan_seconds"] for r in records], 0.5),
        "scan_cpu_seconds": _quantile([r["scan_cpu_seconds"] for r in records], 0.5),
        "detector_recall_median": {
            name: _quantile(
                [r["detector_recall"][name] for r in records if r["detector_recall"][name] is not None], 0.5
            )
            for name in records[0]["detector_recall"]
        },
        "detector_clean_share_median": {
            name: _quantile([r["detector_clean_share"][name] for r in records], 0.5)
            for name in records[0]["detector_clean_share"]
        },
        "detector_seconds_median": {
            name: _quantile([r["detector_seconds"][name] for r in records], 0.5)
            for name in records[0]["detector_seconds"]
        },
    }
    with_ceiling = [
        r["recall_ceiling_at_genuine_share"] for r in records if "recall_ceiling_at_genuine_share" in r
    ]
    if with_ceiling:
        summary["recall_ceiling_median_at_genuine_share"] = {
            budget: _quantile([ceiling[budget] for ceiling in with_ceiling], 0.5)
            for budget in with_ceiling[0]
        }
    with_asr = [r for r in records if "asr_after_scan" in r]
    if with_asr:
        summary["asr_clean"] = _quantile([r["asr_clean"] for r in with_asr], 0.5)
        summary["asr_after_scan"] = _quantile([r["asr_after_scan"] for r in with_asr], 0.5)
        held = [r["asr_after_scan"] <= r["asr_clean"] + ASR_MARGIN for r in with_asr]
        summary["asr_held_share"] = round(float(np.mean(held)), 4)
        against_scanned = [r for r in with_asr if "asr_clean_scanned" in r]
        if against_scanned:
            summary["asr_clean_scanned"] = _quantile([r["asr_clean_scanned"] for r in against_scanned], 0.5)
            summary["asr_held_share_vs_clean_scanned"] = round(
                float(
                    np.mean(
                        [r["asr_after_scan"] <= r["asr_clean_scanned"] + ASR_MARGIN for r in against_scanned]
                    )
                ),
                4,
            )
    return summary


def run_dataset(
    name: str,
    seeds: int,
    secondary_seeds: int,
    only: list[str] | None,
    asr: bool,
    save: Callable[[dict[str, dict]], None] = lambda results: None,
) -> dict[str, dict]:
    settings = load_settings(CONFIGS[name])
    dataset = settings.dataset
    clean = typed_frame(read_split(dataset, "train").rows, dataset)
    clean = clean[clean[dataset.label.column].isin([dataset.label.positive, dataset.label.negative])]
    test = labelled_rows(read_split(dataset, "test").rows, dataset)
    clean_models: dict[str, Predict] = {}
    if asr:
        half = clean.iloc[np.sort(np.random.default_rng(0).permutation(len(clean))[: len(clean) // 2])]
        policy = settings.poisoning.model_copy(update={"max_flagged_share": 1.0})
        with threadpool_limits(limits=1):
            clean_scan = scan_poisoning(clean, dataset, policy)
        clean_models = {
            "full": plant_attacks.train_dp_model(clean, settings),
            "half": plant_attacks.train_dp_model(half, settings),
            "full_scanned": plant_attacks.train_dp_model(
                clean[~clean_scan.flagged], settings, clean[clean_scan.calibration_only]
            ),
        }
    results: dict[str, dict] = {}
    for kind, (plant, with_reference) in _kinds(settings).items():
        if only and kind not in only:
            continue
        records = [
            _run_seed(kind, plant, with_reference, seed, clean, test, settings, clean_models, asr)
            for seed in range(seeds if kind in TARGET_KINDS else secondary_seeds)
        ]
        results[kind] = {**_summarize(records), "with_reference": with_reference, "per_seed": records}
        print(_row(name, kind, results[kind]), flush=True)
        save(results)  # after every kind: a run cut short keeps what it measured
    return results


def _fmt(value: object, pattern: str = "{:.3f}") -> str:
    return "-" if value is None else pattern.format(value)


HEADER = (
    f"{'dataset':<7} {'kind':<24} {'seeds':>5} {'recall':>7} {'p10':>6} {'clean fl.':>9} {'scan s':>6} "
    f"{'ASR clean':>9} {'ASR scan':>8} {'held':>5} {'held*':>5}"
)


def _row(dataset: str, kind: str, result: dict) -> str:
    return (
        f"{dataset:<7} {kind:<24} {len(result['seeds']):>5} {_fmt(result['recall_median']):>7} "
        f"{_fmt(result['recall_p10']):>6} {_fmt(result['clean_flagged_share'], '{:.2%}'):>9} "
        f"{_fmt(result['scan_seconds'], '{:.1f}'):>6} {_fmt(result.get('asr_clean')):>9} "
        f"{_fmt(result.get('asr_after_scan')):>8} {_fmt(result.get('asr_held_share'), '{:.2f}'):>5} "
        f"{_fmt(result.get('asr_held_share_vs_clean_scanned'), '{:.2f}'):>5}"
    )


def merge_results(parts: list[Path], out: Path) -> None:
    """One result file from several runs (e.g. one process per dataset or per group of kinds); each run's seeds and
    machine record are kept apiece, and every kind keeps its own `seeds`."""
    loaded = [json.loads(part.read_text(encoding="utf-8")) for part in parts]
    merged = {**loaded[0], "datasets": {}, "runs": []}
    run = ("timestamp_utc", "configs", "seeds_per_kind", "seeds_per_secondary_kind", "machine", "seconds")
    for part, payload in zip(parts, loaded, strict=True):
        for name, kinds in payload["datasets"].items():
            merged["datasets"].setdefault(name, {}).update(kinds)
        merged["runs"].append({key: payload.get(key) for key in run} | {"file": part.name})
    out.write_text(json.dumps(merged, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"merged {len(parts)} runs into {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds per attack kind")
    parser.add_argument("--datasets", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--secondary-seeds", type=int, help="seeds for the kinds outside TARGET_KINDS")
    parser.add_argument("--only", nargs="*", help="run only these kinds")
    parser.add_argument("--no-asr", action="store_true", help="skip the DP trainings (scan figures only)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--merge", nargs="+", type=Path, help="only merge these result files (one dataset each) into --out"
    )
    args = parser.parse_args()
    if args.merge:
        merge_results(args.merge, args.out)
        return
    load_before = list(os.getloadavg())
    started = time.perf_counter()
    print(HEADER)
    secondary = args.seeds if args.secondary_seeds is None else args.secondary_seeds
    datasets: dict[str, dict] = {}

    def save(name: str, results: dict[str, dict]) -> None:
        datasets[name] = results
        payload = {
            "benchmark": "attacks",
            "timestamp_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "configs": {name: str(CONFIGS[name].relative_to(ROOT)) for name in args.datasets},
            "seeds_per_kind": args.seeds,
            "seeds_per_secondary_kind": secondary,
            "target_kinds": list(TARGET_KINDS),
            "asr_margin": ASR_MARGIN,
            "machine": {
                **machine_info(),
                "load_average_before": load_before,
                "load_average_after": list(os.getloadavg()),
            },
            "seconds": round(time.perf_counter() - started, 1),
            "datasets": datasets,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")

    for name in args.datasets:
        run_dataset(
            name,
            args.seeds,
            secondary,
            args.only,
            not args.no_asr,
            lambda results, name=name: save(name, results),
        )
    print(f"saved {args.out} ({time.perf_counter() - started:.0f}s)")


if __name__ == "__main__":
    main()
