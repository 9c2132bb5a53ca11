"""Planted bad candidates against the gate, randomized: does the gate reject what harms, and pass what does not?

A clean champion is trained once on Adult (the config's DP settings, model seed from the config), as the rows
are for the scan-off cases and after the scan (as `guardflow train` trains it) for the scan-on ones. Then, for each
seed, candidates are trained with the library functions (no Prefect flow, to save CPU) and judged by the same
evaluation, champion comparison and gate as `guardflow train`:

- backdoor_gate_only: a random backdoor at 1% of the rows (bench/plant_attacks.random_backdoor: trigger of 1-3
  values, common or rare, target class, relabel or inject), the poisoning scan switched off, so the gate alone
  is measured;
- backdoor_with_scan: the same draw, with the scan's detectors on (flagged rows left out of training);
- group_flip: random targeted flips (random_group_flip: 20-50% of the positives of a random sensitive group);
- sound: no attack, another training seed;
- sound_with_scan: the same, with the scan's detectors on, as `guardflow train` trains a sound candidate (flagged
  rows left out of training, rows flagged for label noise alone used for the calibration only).

The poisoned rows are not re-validated by the contract (the generator only draws values the contract allows).
Per case: seeds, rejected_share, the lines that rejected (counts per line), the share rejected by a line that
names the harm (a differential slice carrying a trigger value, or the flipped group), and per seed what was
drawn and the attack success rate (candidate and champion). `--fixed` runs the older fixed cases instead, as
full `guardflow train` flows (saved to planted_candidates_fixed.json).
Saves bench/results/planted_candidates.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits

from bench import plant_attacks
from bench.planted_fixed import run_fixed
from guardflow.contract.validate_contract import validate_contract
from guardflow.data.encode_features import encode_features, encode_rows
from guardflow.data.table import label_vector, labelled_rows
from guardflow.evaluation.compare_champion import ScoredRows, compare_with_champion
from guardflow.evaluation.decide_gate import GateDecision, decide_gate
from guardflow.evaluation.evaluate_safety import check_behaviour, evaluate_safety, save_plots
from guardflow.io.datasets import read_split
from guardflow.poisoning.scan_poisoning import scan_poisoning
from guardflow.poisoning.scan_result import ScanResult
from guardflow.privacy.audit_membership import audit_membership
from guardflow.privacy.network import predict_proba
from guardflow.privacy.train_private import train_private
from guardflow.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "adult.yaml"
RESULTS = ROOT / "bench" / "results" / "planted_candidates.json"
CASES = ("backdoor_gate_only", "backdoor_with_scan", "group_flip", "sound", "sound_with_scan")
BACKDOOR_RATE = 0.01
Predict = Callable[[pd.DataFrame], np.ndarray]


def _train(
    settings: Settings, rows: pd.DataFrame, seed: int, calibration_only: pd.DataFrame | None = None
) -> tuple[Predict, float]:
    """A DP model trained on typed rows with the config's privacy settings and this model seed (calibrated also
    on `calibration_only`, the scan's label-noise rows, as `guardflow train` does)."""
    dataset = settings.dataset
    model_settings = settings.model.model_copy(update={"seed": seed})
    trained = train_private(
        *encode_rows(rows, dataset),
        settings.privacy,
        model_settings,
        calibration_extra=None if calibration_only is None else encode_rows(calibration_only, dataset),
    )

    def predict(frame: pd.DataFrame) -> np.ndarray:
        return predict_proba(trained.model, encode_features(frame, dataset)).double().numpy()

    return predict, trained.seconds


def judge(
    settings: Settings,
    candidate: Predict,
    champion: Predict | None,
    training: pd.DataFrame,
    test: pd.DataFrame,
    plots: Path | None = None,
    reference: pd.DataFrame | None = None,
    given: pd.DataFrame | None = None,
) -> tuple[GateDecision, tuple[float, float]]:
    """Evaluation (membership audit, metrics with intervals, robustness, counterfactuals), champion comparison and
    gate, as the training flow runs them; returns the decision and the wall and CPU seconds it took (one thread).
    `reference`: the champion's training rows with their own labels (the flow's trusted reference); `given`: the
    rows the candidate was given, scan-flagged ones included (default: `training`), judged by the differential."""
    dataset, gate = settings.dataset, settings.gate
    started, cpu_started = time.perf_counter(), time.process_time()
    labels = label_vector(test, dataset).to_numpy()
    probabilities = candidate(test)
    membership = audit_membership(
        candidate(training), label_vector(training, dataset).to_numpy(), probabilities, labels,
        delta=settings.privacy.delta, seed=settings.model.seed,
    )  # fmt: skip
    evaluation = evaluate_safety(
        probabilities, labels, test[dataset.sensitive], membership, min_group_size=gate.min_group_size
    )
    evaluation = check_behaviour(evaluation, candidate, test, labels, dataset)
    if plots is not None:
        save_plots(evaluation, plots)
    comparison = None
    given = training if given is None else given  # without a scan, the rows given are the rows trained on
    if champion is not None:
        comparison = compare_with_champion(
            "champion",
            ScoredRows(test, probabilities, champion(test)),
            ScoredRows(given, candidate(given), champion(given), label_vector(given, dataset).to_numpy()),
            labels, evaluation, dataset, gate,
            reference=None if reference is None else ScoredRows(
                reference, candidate(reference), champion(reference), label_vector(reference, dataset).to_numpy()
            ),
        )  # fmt: skip
    decision = decide_gate(evaluation, gate, settings.privacy.target_epsilon, comparison)
    return decision, (time.perf_counter() - started, time.process_time() - cpu_started)


_BIN = re.compile(r"([\w-]+) in \[([-\d.e+]+), ([-\d.e+]+)\)")


def names_harm(text: str, harm: dict[str, str]) -> bool:
    """Whether a failed line's text names the harm: a slice or group carrying one of the planted `column=value`,
    or the public bin of a column that holds the planted value."""
    if any(f"{column}={value}" in text for column, value in harm.items()):
        return True
    for column, low, high in _BIN.findall(text):
        value = harm.get(column)
        if value is not None and _is_number(value) and float(low) <= float(value) < float(high):
            return True
    return False


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _plain(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Champions:
    """The clean champion twice: trained on the clean rows as they are (judging the scan-off cases), and trained
    as `guardflow train` trains it, after the scan (judging the scan-on cases, as the pipeline would)."""

    plain: Predict
    scanned: Predict
    clean_scan: ScanResult

    def for_case(self, case: str) -> Predict:
        return self.scanned if case.endswith("with_scan") else self.plain


def _scanned_training(settings: Settings, rows: pd.DataFrame) -> tuple[ScanResult, pd.DataFrame, pd.DataFrame]:
    """The scan on `rows` (no share limit): its result, the rows to train on and the label-noise rows."""
    policy = settings.poisoning.model_copy(update={"max_flagged_share": 1.0})
    scan = scan_poisoning(rows, settings.dataset, policy)
    return scan, rows[~scan.flagged], rows[scan.calibration_only]


def run_seed(
    case: str, seed: int, settings: Settings, clean: pd.DataFrame, test: pd.DataFrame, champions: Champions
) -> dict:
    dataset = settings.dataset
    champion = champions.for_case(case)
    rng = np.random.default_rng(seed)
    drawn: dict[str, object] = {}
    harm: dict[str, str] = {}
    backdoor = None
    training = clean
    noisy = None
    given: pd.DataFrame | None = None  # every row the candidate was given (default: those it trained on)
    if case.startswith("backdoor"):
        poisoned, backdoor = plant_attacks.random_backdoor(clean, dataset, BACKDOOR_RATE, rng)
        drawn = backdoor.describe()
        harm = {column: _plain(value) for column, value in backdoor.trigger.items()}
        training = given = poisoned
        if case == "backdoor_with_scan":
            scan, training, noisy = _scanned_training(settings, poisoned)
            caught = scan.flagged.reindex(backdoor.rows, fill_value=False)
            drawn = {
                **drawn,
                "scan_flagged": scan.rows_flagged,
                "scan_recall": round(float(caught.mean()), 4),
            }
    elif case == "sound_with_scan":
        scan = champions.clean_scan  # the same rows and scan seed flag the same rows
        training, noisy, given = clean[~scan.flagged], clean[scan.calibration_only], clean
        drawn = {"scan_flagged": scan.rows_flagged}
    elif case == "group_flip":
        training, flip = plant_attacks.random_group_flip(clean, dataset, rng)
        drawn = flip.describe()
        harm = {flip.column: flip.group}
    candidate, train_seconds = _train(settings, training, seed=1000 + seed, calibration_only=noisy)
    # The differential judges every row the candidate was given (the scan's flagged ones included), as the flow
    # does; the membership audit's members are the rows it trained on.
    decision, (seconds, cpu_seconds) = judge(
        settings, candidate, champion, training, test, reference=clean, given=given
    )
    failed = [line for line in decision.lines if not line.passed]
    result = {
        "seed": seed,
        "model_seed": 1000 + seed,
        "drawn": drawn,
        "rejected": not decision.passed,
        "failed_lines": [line.name for line in failed],
        "failed_details": [line.describe() for line in failed],
        "closest_group_lines": closest_group_lines(decision),
        "rejected_by_harm_line": any(names_harm(line.describe(), harm) for line in failed) if harm else None,
        "train_seconds": round(train_seconds, 2),
        "gate_seconds": round(seconds, 2),
        "gate_cpu_seconds": round(cpu_seconds, 2),
    }
    if backdoor is not None:
        result["asr"] = round(plant_attacks.attack_success_rate(candidate, test, dataset, backdoor), 4)
        result["asr_champion"] = round(
            plant_attacks.attack_success_rate(champion, test, dataset, backdoor), 4
        )
    return result


def closest_group_lines(decision: GateDecision, count: int = 3) -> list[str]:
    """The per-group no-regression lines nearest to failing (or furthest past it): how much room a sound
    candidate had, and how clearly a harmful one failed."""
    judged = [line for line in decision.lines if line.name.startswith("no_regression[") and "=" in line.name]
    judged = [line for line in judged if line.waived is None]
    slack = {
        line.name: (line.value - line.threshold) * (1 if line.comparison == ">=" else -1) for line in judged
    }
    return [line.describe() for line in sorted(judged, key=lambda line: slack[line.name])[:count]]


def summarize(case: str, runs: list[dict]) -> dict:
    lines = Counter(name for run in runs for name in run["failed_lines"])
    named = [run["rejected_by_harm_line"] for run in runs if run["rejected_by_harm_line"] is not None]
    summary = {
        "case": case,
        "seeds": [run["seed"] for run in runs],
        "rejected_share": round(sum(run["rejected"] for run in runs) / len(runs), 4),
        "rejected_by_harm_line_share": round(sum(named) / len(named), 4) if named else None,
        "rejecting_lines": dict(lines.most_common()),
        "median_gate_seconds": round(statistics.median(run["gate_seconds"] for run in runs), 2),
        "median_gate_cpu_seconds": round(statistics.median(run["gate_cpu_seconds"] for run in runs), 2),
        "max_gate_seconds": round(max(run["gate_seconds"] for run in runs), 2),
        "median_train_seconds": round(statistics.median(run["train_seconds"] for run in runs), 2),
        "runs": runs,
    }
    if runs and "asr" in runs[0]:
        summary["median_asr"] = round(statistics.median(run["asr"] for run in runs), 4)
        summary["median_asr_champion"] = round(statistics.median(run["asr_champion"] for run in runs), 4)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1"
    )
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=CASES)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--fixed", action="store_true", help="the older fixed cases, as full flows")
    args = parser.parse_args(argv)
    if args.fixed:
        return run_fixed(args.output.with_name("planted_candidates_fixed.json"))
    torch.set_num_threads(1)
    settings = load_settings(CONFIG)
    dataset = settings.dataset
    cpu_started, wall_started = time.process_time(), time.perf_counter()
    with threadpool_limits(limits=1):
        contract = validate_contract(read_split(dataset, "train").rows, dataset, settings.contract)
        clean = contract.accepted
        test = labelled_rows(read_split(dataset, "test").rows, dataset)
        champion, champion_seconds = _train(settings, clean, settings.model.seed)
        clean_scan, kept, noisy = _scanned_training(settings, clean)
        champions = Champions(
            plain=champion,
            scanned=_train(settings, kept, settings.model.seed, calibration_only=noisy)[0],
            clean_scan=clean_scan,
        )
        # One candidate judged with no champion and with plots, as the first run of `guardflow train` is.
        with tempfile.TemporaryDirectory() as folder:
            first, (first_seconds, first_cpu) = judge(
                settings, champion, None, clean, test, plots=Path(folder)
            )
        print(f"champion: trained in {champion_seconds:.1f}s; judged alone (with plots) in {first_seconds:.2f}s, "
              f"{'passed' if first.passed else 'REJECTED'}", flush=True)  # fmt: skip
        runs: dict[str, list[dict]] = {case: [] for case in args.cases}
        # Seed by seed across the cases, saved after each seed: a run cut short keeps as many seeds of every case.
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for case in args.cases:
                run = run_seed(case, seed, settings, clean, test, champions)
                runs[case].append(run)
                print(f"{case:<20} seed {seed:>2} {'REJECTED' if run['rejected'] else 'passed  '} "
                      f"asr {run.get('asr', '-')}  {'; '.join(run['failed_lines'])}", flush=True)  # fmt: skip
            cases = [summarize(case, case_runs) for case, case_runs in runs.items()]
            report = {
                "benchmark": "planted_candidates",
                "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "config": str(CONFIG.relative_to(ROOT)),
                "backdoor_rate": BACKDOOR_RATE,
                "champion": {"model_seed": settings.model.seed, "train_seconds": round(champion_seconds, 2),
                             "judged_alone_seconds_with_plots": round(first_seconds, 2),
                             "judged_alone_cpu_seconds_with_plots": round(first_cpu, 2),
                             "passed_alone": first.passed},
                "gate": settings.gate.model_dump(mode="json"),
                "cases": cases,
                "seeds_asked": args.seeds,
                "cpu_seconds": round(time.process_time() - cpu_started, 1),
                "wall_seconds": round(time.perf_counter() - wall_started, 1),
                "load_average": list(os.getloadavg()),
            }  # fmt: skip
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{'case':<20} {'seeds':>5} {'rejected':>8} {'by harm line':>12} {'gate cpu s':>10}  lines")
    for case in cases:
        named = case["rejected_by_harm_line_share"]
        lines = ", ".join(f"{name} {count}" for name, count in list(case["rejecting_lines"].items())[:4])
        by_harm = "-" if named is None else f"{named:.0%}"
        print(f"{case['case']:<20} {len(case['seeds']):>5} {case['rejected_share']:>8.0%} "
              f"{by_harm:>12} {case['median_gate_cpu_seconds']:>10.2f}  {lines}")  # fmt: skip
    print(f"saved {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
