"""Benchmark: what differential privacy costs in utility and speed, on the full Adult train/test split.

Measured, all on the features `encode_features` makes from configs/adult.yaml:
- DP models from `train_private` (DP-SGD to a target epsilon, then DP Platt scaling on a disjoint share of
  rows) at several target epsilons and seeds: test accuracy, ROC AUC, ECE, spent epsilon, training seconds;
- the same MLP trained without privacy (plain minibatch Adam, see NONPRIVATE_*), same seeds;
- scikit-learn baselines: logistic regression and histogram gradient boosting;
- seconds per epoch of DP-SGD (Opacus, fixed noise multiplier) against a plain epoch of the same MLP.
Rows are filtered only for labels outside the two classes, as `bench/bare_dp.py` does: no contract, no
poisoning scan. One torch thread throughout (what `train_private` uses). Figures go to
bench/results/privacy_utility.json, a plot to bench/results/privacy_utility.png, a table to stdout.

    .venv/bin/python bench/privacy_utility.py [--seeds 0 1 2] [--epsilons 0.5 1 2 4 8] [--log-mlflow]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from opacus import PrivacyEngine
from pipeline import machine_info, package_version  # bench/pipeline.py, next to this script
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from guardflow.data.encode_features import encode_features
from guardflow.data.table import label_vector, typed_frame
from guardflow.evaluation.evaluate_safety import expected_calibration_error
from guardflow.io.datasets import read_split
from guardflow.privacy.network import build_mlp, predict_proba
from guardflow.privacy.train_private import train_private
from guardflow.settings import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO / "configs" / "adult.yaml"
DEFAULT_OUTPUT = REPO / "bench" / "results" / "privacy_utility.json"
DEFAULT_EPSILONS = (0.5, 1.0, 2.0, 4.0, 8.0)
DEFAULT_SEEDS = (0, 1, 2)
MLFLOW_EXPERIMENT = "guardflow-benchmarks"
# The non-private reference: a common default for a small MLP on tabular data, not tuned on the test rows.
NONPRIVATE_OPTIMIZER = "adam"
NONPRIVATE_LEARNING_RATE = 1e-3
NONPRIVATE_BATCH_SIZE = 256
NONPRIVATE_EPOCHS = 10
# Epoch timing: epochs timed per variant (after one untimed warm-up each), and the epsilon whose noise
# multiplier the timed DP epoch uses (noise does not change the work done, only which numbers are drawn).
TIMED_EPOCHS = 5
TIMING_EPSILON = 1.0
FIGURES = ("accuracy", "roc_auc", "ece", "epsilon", "train_seconds")


@dataclass(frozen=True)
class EncodedSplit:
    """The encoded train and test rows, with 0/1 labels."""

    train_features: np.ndarray
    train_labels: np.ndarray
    test_features: np.ndarray
    test_labels: np.ndarray


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="guardflow YAML config")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON")
    parser.add_argument(
        "--epsilons", type=float, nargs="+", default=list(DEFAULT_EPSILONS), help="target epsilons"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS), help="model seeds")
    parser.add_argument(
        "--log-mlflow",
        action="store_true",
        help=f"log the JSON, the plot and the mean accuracies to MLflow experiment {MLFLOW_EXPERIMENT!r}",
    )
    args = parser.parse_args(argv)
    if any(epsilon <= 0 for epsilon in args.epsilons):
        parser.error("--epsilons must be positive")
    args.epsilons = sorted(set(args.epsilons))
    args.seeds = list(dict.fromkeys(args.seeds))
    return args


def load_encoded_split(settings: Settings) -> EncodedSplit:
    """Read adult.data and adult.test as the pipeline does and encode them from the config's public bounds.

    The only filtering: rows whose label is neither class cannot be trained or scored on.
    """
    dataset = settings.dataset
    known_labels = [dataset.label.positive, dataset.label.negative]
    frames = {}
    for split in ("train", "test"):
        frame = typed_frame(read_split(dataset, split).rows, dataset)
        frames[split] = frame[frame[dataset.label.column].isin(known_labels)]
    return EncodedSplit(
        train_features=encode_features(frames["train"], dataset),
        train_labels=label_vector(frames["train"], dataset).to_numpy(),
        test_features=encode_features(frames["test"], dataset),
        test_labels=label_vector(frames["test"], dataset).to_numpy(),
    )


def score(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Test accuracy at the 0.5 threshold, ROC AUC and ECE, as the pipeline's evaluation computes them."""
    return {
        "accuracy": float(np.mean((probabilities >= 0.5) == labels)),
        "roc_auc": float(roc_auc_score(labels, probabilities)),
        "ece": expected_calibration_error(probabilities, labels),
    }


def run_private(split: EncodedSplit, settings: Settings, target_epsilon: float, seed: int) -> dict[str, Any]:
    """One `train_private` model at `target_epsilon` with model seed `seed`, scored on the test rows."""
    privacy = settings.privacy.model_copy(update={"target_epsilon": target_epsilon})
    model_settings = settings.model.model_copy(update={"seed": seed})
    trained = train_private(split.train_features, split.train_labels, privacy, model_settings)
    probabilities = predict_proba(trained.model, split.test_features).numpy()
    report = trained.privacy
    return {
        "target_epsilon": target_epsilon,
        "seed": seed,
        **score(probabilities, split.test_labels),
        "epsilon": report.epsilon,
        "epsilon_rdp": report.epsilon_rdp,
        "calibration_epsilon": report.calibration_epsilon,
        "noise_multiplier": report.noise_multiplier,
        "steps": report.steps,
        "train_seconds": trained.seconds,
    }


def _plain_optimizer(model: nn.Module, kind: str, learning_rate: float) -> torch.optim.Optimizer:
    if kind == "adam":
        return torch.optim.Adam(model.parameters(), lr=learning_rate)
    return torch.optim.SGD(model.parameters(), lr=learning_rate)


def _train_epoch(
    model: nn.Module, optimizer: torch.optim.Optimizer, loader: DataLoader, loss_function: nn.Module
) -> None:
    """One pass over `loader`; empty batches (possible under Poisson sampling) are skipped, as in train_private."""
    model.train()
    for batch_features, batch_labels in loader:
        if len(batch_features) == 0:
            continue
        optimizer.zero_grad(set_to_none=True)
        loss = loss_function(model(batch_features).squeeze(-1), batch_labels)
        loss.backward()
        optimizer.step()


def _tensors(features: np.ndarray, labels: np.ndarray) -> TensorDataset:
    return TensorDataset(
        torch.tensor(features, dtype=torch.float32), torch.tensor(labels, dtype=torch.float32)
    )


def run_nonprivate(split: EncodedSplit, hidden_units: list[int], seed: int) -> dict[str, Any]:
    """The config's MLP trained without privacy (shuffled minibatches, NONPRIVATE_* settings) on every train row."""
    started = time.perf_counter()
    torch.manual_seed(seed)
    model = build_mlp(split.train_features.shape[1], hidden_units)
    optimizer = _plain_optimizer(model, NONPRIVATE_OPTIMIZER, NONPRIVATE_LEARNING_RATE)
    loader = DataLoader(
        _tensors(split.train_features, split.train_labels),
        batch_size=NONPRIVATE_BATCH_SIZE,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    loss_function = nn.BCEWithLogitsLoss()
    for _ in range(NONPRIVATE_EPOCHS):
        _train_epoch(model, optimizer, loader, loss_function)
    model.eval()
    seconds = time.perf_counter() - started
    probabilities = predict_proba(model, split.test_features).numpy()
    return {"seed": seed, **score(probabilities, split.test_labels), "train_seconds": seconds}


def run_baselines(split: EncodedSplit) -> dict[str, dict[str, Any]]:
    """Logistic regression and histogram gradient boosting (library defaults) on the same encoded rows."""
    models = {
        "logistic_regression": LogisticRegression(max_iter=2000),
        # Defaults, except a fixed seed: above 10,000 rows early stopping holds out a random validation share.
        "hist_gradient_boosting": HistGradientBoostingClassifier(random_state=0),
    }
    results: dict[str, dict[str, Any]] = {}
    for name, model in models.items():
        started = time.perf_counter()
        model.fit(split.train_features, split.train_labels)
        seconds = time.perf_counter() - started
        probabilities = model.predict_proba(split.test_features)[:, 1]
        results[name] = {
            "model": repr(model),
            **score(probabilities, split.test_labels),
            "fit_seconds": seconds,
        }
    return results


def time_epochs(split: EncodedSplit, settings: Settings, noise_multiplier: float) -> dict[str, Any]:
    """Seconds per epoch of DP-SGD against plain SGD, same MLP, batch size, optimizer and data.

    The DP epoch goes through Opacus directly with a fixed noise multiplier (no search for the noise), with
    Poisson sampling and ghost clipping as train_private uses; the plain one through shuffled fixed-size
    batches. The two alternate, epoch by epoch, so drift in the shared machine's load hits both alike.
    """
    privacy = settings.privacy
    hidden_units = list(settings.model.hidden_units)
    data = _tensors(split.train_features, split.train_labels)
    loss_function = nn.BCEWithLogitsLoss()
    torch.manual_seed(0)

    plain_model = build_mlp(split.train_features.shape[1], hidden_units)
    plain_optimizer = _plain_optimizer(plain_model, privacy.optimizer, privacy.learning_rate)
    plain_loader = DataLoader(
        data, batch_size=privacy.batch_size, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    dp_model = build_mlp(split.train_features.shape[1], hidden_units)
    with warnings.catch_warnings():
        # The same benign Opacus warnings train_private keeps off the console.
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        warnings.filterwarnings("ignore", message="Full backward hook")
        engine = PrivacyEngine(accountant=privacy.accountant)
        # Ghost clipping, as train_private uses.
        private_model, private_optimizer, private_loss, private_loader = engine.make_private(
            module=dp_model,
            optimizer=_plain_optimizer(dp_model, privacy.optimizer, privacy.learning_rate),
            data_loader=DataLoader(data, batch_size=privacy.batch_size),
            criterion=nn.BCEWithLogitsLoss(),
            noise_multiplier=noise_multiplier,
            max_grad_norm=privacy.max_grad_norm,
            poisson_sampling=True,
            grad_sample_mode="ghost",
        )
        variants: dict[str, Callable[[], None]] = {
            "dp": lambda: _train_epoch(private_model, private_optimizer, private_loader, private_loss),
            "nonprivate": lambda: _train_epoch(plain_model, plain_optimizer, plain_loader, loss_function),
        }
        seconds: dict[str, list[float]] = {name: [] for name in variants}
        for epoch in variants.values():
            epoch()  # warm-up, untimed: first-call allocations and Opacus hook setup
        for _ in range(TIMED_EPOCHS):
            for name, epoch in variants.items():
                started = time.perf_counter()
                epoch()
                seconds[name].append(time.perf_counter() - started)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    return {
        "rows": len(data),
        "batch_size": privacy.batch_size,
        "optimizer": f"{privacy.optimizer} lr {privacy.learning_rate}",
        "noise_multiplier": noise_multiplier,
        "max_grad_norm": privacy.max_grad_norm,
        "timed_epochs": TIMED_EPOCHS,
        "dp_seconds": seconds["dp"],
        "nonprivate_seconds": seconds["nonprivate"],
        "dp_median_seconds": medians["dp"],
        "nonprivate_median_seconds": medians["nonprivate"],
        "ratio_dp_over_nonprivate": medians["dp"] / medians["nonprivate"],
    }


def describe(values: list[float]) -> dict[str, float | None]:
    """Mean, sample standard deviation (None for one value), min and max."""
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else None,
        "min": min(values),
        "max": max(values),
    }


def aggregate(runs: list[dict[str, Any]], figures: Sequence[str]) -> dict[str, Any]:
    """`describe` of each figure over `runs` (the seeds of one setting)."""
    return {"runs": len(runs), **{figure: describe([run[figure] for run in runs]) for figure in figures}}


def timing_noise_multiplier(dp_runs: list[dict[str, Any]]) -> tuple[float, float]:
    """The noise multiplier train_private chose at the target epsilon nearest TIMING_EPSILON, and that epsilon."""
    nearest = min(
        {run["target_epsilon"] for run in dp_runs}, key=lambda eps: abs(math.log(eps / TIMING_EPSILON))
    )
    multipliers = [run["noise_multiplier"] for run in dp_runs if run["target_epsilon"] == nearest]
    return statistics.median(multipliers), nearest


def run_benchmark(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """Every measurement, in the order: DP grid (seed-major, so drift spreads over epsilons), non-private,
    baselines, epoch timing."""
    torch.set_num_threads(1)  # train_private sets this too; set first so every variant runs alike
    split = load_encoded_split(settings)
    hidden_units = list(settings.model.hidden_units)

    dp_runs: list[dict[str, Any]] = []
    total = len(args.seeds) * len(args.epsilons)
    for seed in args.seeds:
        for target_epsilon in args.epsilons:
            print(f"[{len(dp_runs) + 1}/{total}] DP epsilon {target_epsilon:g}, seed {seed}", file=sys.stderr)
            dp_runs.append(run_private(split, settings, target_epsilon, seed))
    print("non-private MLP ...", file=sys.stderr)
    nonprivate_runs = [run_nonprivate(split, hidden_units, seed) for seed in args.seeds]
    print("baselines ...", file=sys.stderr)
    baselines = run_baselines(split)
    print("epoch timing ...", file=sys.stderr)
    noise_multiplier, noise_from_epsilon = timing_noise_multiplier(dp_runs)
    epoch_timing = time_epochs(split, settings, noise_multiplier)
    epoch_timing["noise_multiplier_from_target_epsilon"] = noise_from_epsilon

    return {
        "data": {
            "train_rows": len(split.train_labels),
            "test_rows": len(split.test_labels),
            "encoded_width": split.train_features.shape[1],
            "test_positive_share": float(split.test_labels.mean()),
        },
        "dp": {
            "settings": {
                **settings.privacy.model_dump(mode="json", exclude={"target_epsilon"}),
                "hidden_units": hidden_units,
                "seeds": args.seeds,
                "target_epsilons": args.epsilons,
            },
            "by_epsilon": {
                f"{eps:g}": aggregate([run for run in dp_runs if run["target_epsilon"] == eps], FIGURES)
                for eps in args.epsilons
            },
            "runs": dp_runs,
        },
        "nonprivate": {
            "settings": {
                "optimizer": NONPRIVATE_OPTIMIZER,
                "learning_rate": NONPRIVATE_LEARNING_RATE,
                "batch_size": NONPRIVATE_BATCH_SIZE,
                "epochs": NONPRIVATE_EPOCHS,
                "hidden_units": hidden_units,
                "train_rows": "all train rows (no calibration share, no Platt scaling)",
            },
            "aggregate": aggregate(nonprivate_runs, ("accuracy", "roc_auc", "ece", "train_seconds")),
            "runs": nonprivate_runs,
        },
        "baselines": baselines,
        "epoch_timing": epoch_timing,
    }


def plot(results: dict[str, Any], path: Path) -> None:
    """Test accuracy and ROC AUC against target epsilon (log x; mean, min-max bars over seeds), with the
    non-private MLP and the scikit-learn baselines as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_epsilon = results["dp"]["by_epsilon"]
    epsilons = [float(eps) for eps in by_epsilon]
    delta = results["dp"]["settings"]["delta"]
    references = [
        ("non-private MLP (mean)", results["nonprivate"]["aggregate"], "tab:green", "-"),
        ("logistic regression", results["baselines"]["logistic_regression"], "tab:gray", "--"),
        ("gradient boosting", results["baselines"]["hist_gradient_boosting"], "tab:purple", ":"),
    ]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
    for axis, metric, label in zip(
        axes, ("accuracy", "roc_auc"), ("test accuracy", "test ROC AUC"), strict=True
    ):
        means = [entry[metric]["mean"] for entry in by_epsilon.values()]
        below = [entry[metric]["mean"] - entry[metric]["min"] for entry in by_epsilon.values()]
        above = [entry[metric]["max"] - entry[metric]["mean"] for entry in by_epsilon.values()]
        axis.errorbar(
            epsilons,
            means,
            yerr=[below, above],
            marker="o",
            capsize=4,
            color="tab:blue",
            label="DP-SGD MLP (mean, min-max over seeds)",
        )
        for name, figures, color, style in references:
            value = figures[metric]["mean"] if isinstance(figures[metric], dict) else figures[metric]
            axis.axhline(value, color=color, linestyle=style, label=name)
        axis.set_xscale("log")
        axis.set_xticks(epsilons, [f"{eps:g}" for eps in epsilons])
        axis.minorticks_off()
        axis.set_xlabel(f"target epsilon (delta {delta:g}), log scale".replace("e-0", "e-"))
        axis.set_ylabel(label)
        axis.grid(True, alpha=0.3)
    # One legend under both panels, so it never hides the DP curve; each panel's lines carry its own value.
    handles, _ = axes[0].get_legend_handles_labels()
    figure.legend(
        handles,
        [handle.get_label() for handle in handles],
        loc="outside lower center",
        ncol=len(handles),
        fontsize=9,
    )
    seeds = len(results["dp"]["settings"]["seeds"])
    figure.suptitle(f"Privacy vs utility on UCI Adult (test set, {seeds} seeds per epsilon)")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def mlflow_metrics(results: dict[str, Any]) -> dict[str, float]:
    """The aggregate figures worth charting across benchmark runs, as flat MLflow metric names."""
    metrics: dict[str, float] = {}
    for eps, entry in results["dp"]["by_epsilon"].items():
        metrics[f"dp_accuracy_mean_eps_{eps}"] = entry["accuracy"]["mean"]
        metrics[f"dp_roc_auc_mean_eps_{eps}"] = entry["roc_auc"]["mean"]
    metrics["nonprivate_accuracy_mean"] = results["nonprivate"]["aggregate"]["accuracy"]["mean"]
    for name, baseline in results["baselines"].items():
        metrics[f"{name}_accuracy"] = baseline["accuracy"]
    metrics["epoch_ratio_dp_over_nonprivate"] = results["epoch_timing"]["ratio_dp_over_nonprivate"]
    return metrics


def save(results: dict[str, Any], output: Path, log_mlflow: bool) -> Path:
    """Write the JSON and the plot beside it; with `log_mlflow`, inside an MLflow run that gets both as
    artifacts (its id is recorded in the JSON). Returns the plot's path."""
    image = output.with_suffix(".png")
    output.parent.mkdir(parents=True, exist_ok=True)

    def write() -> None:
        output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        plot(results, image)

    if not log_mlflow:
        write()
        return image
    import mlflow  # only when asked: importing MLflow costs seconds

    from guardflow.io.registry import configure_tracking
    from guardflow.settings import guardflow_home

    home = guardflow_home()
    experiment_id = configure_tracking(home, experiment=MLFLOW_EXPERIMENT)
    with mlflow.start_run(run_name="privacy_utility") as run:
        results["mlflow"] = {
            "experiment": MLFLOW_EXPERIMENT,
            "experiment_id": experiment_id,
            "run_id": run.info.run_id,
            "guardflow_home": str(home),
        }
        write()
        mlflow.log_params(
            {
                "seeds": ",".join(map(str, results["dp"]["settings"]["seeds"])),
                "target_epsilons": ",".join(
                    f"{eps:g}" for eps in results["dp"]["settings"]["target_epsilons"]
                ),
                "delta": results["dp"]["settings"]["delta"],
                "git_commit": results["machine"]["commit"],
            }
        )
        mlflow.log_metrics(mlflow_metrics(results))
        mlflow.log_artifact(str(output))
        mlflow.log_artifact(str(image))
    return image


def format_table(results: dict[str, Any]) -> str:
    """Mean ± std (min-max) per epsilon, then the references and the epoch timing."""

    def spread(entry: dict[str, float | None], digits: int) -> str:
        std = "-" if entry["std"] is None else f"{entry['std']:.{digits}f}"
        return f"{entry['mean']:.{digits}f}±{std}"

    lines = [
        f"{'model':<24} {'accuracy':>15} {'acc min-max':>13} {'ROC AUC':>15} {'ECE':>15} {'spent eps':>9} "
        f"{'train s':>7}"
    ]
    for eps, entry in results["dp"]["by_epsilon"].items():
        lines.append(
            f"{'DP eps ' + eps:<24} {spread(entry['accuracy'], 4):>15} "
            f"{entry['accuracy']['min']:.4f}-{entry['accuracy']['max']:.4f} {spread(entry['roc_auc'], 4):>15} "
            f"{spread(entry['ece'], 4):>15} {entry['epsilon']['mean']:>9.3f} {entry['train_seconds']['mean']:>7.1f}"
        )
    nonprivate = results["nonprivate"]["aggregate"]
    lines.append(
        f"{'non-private MLP':<24} {spread(nonprivate['accuracy'], 4):>15} "
        f"{nonprivate['accuracy']['min']:.4f}-{nonprivate['accuracy']['max']:.4f} "
        f"{spread(nonprivate['roc_auc'], 4):>15} {spread(nonprivate['ece'], 4):>15} {'-':>9} "
        f"{nonprivate['train_seconds']['mean']:>7.1f}"
    )
    for name, baseline in results["baselines"].items():
        lines.append(
            f"{name:<24} {baseline['accuracy']:>15.4f} {'':>13} {baseline['roc_auc']:>15.4f} "
            f"{baseline['ece']:>15.4f} {'-':>9} {baseline['fit_seconds']:>7.1f}"
        )
    timing = results["epoch_timing"]
    lines.append(
        f"seconds per epoch (median of {timing['timed_epochs']}, batch {timing['batch_size']}, 1 thread): "
        f"DP {timing['dp_median_seconds']:.3f}, non-private {timing['nonprivate_median_seconds']:.3f}, "
        f"ratio {timing['ratio_dp_over_nonprivate']:.1f}x"
    )
    lines.append(f"total {results['total_seconds']:.0f}s")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, save the JSON and the plot (and log them to MLflow when asked), print the table."""
    args = parse_args(argv)
    settings = load_settings(args.config)
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    load_before = os.getloadavg()
    measured = run_benchmark(args, settings)
    results = {
        "benchmark": "privacy_utility",
        "timestamp_utc": started_at.isoformat(timespec="seconds"),
        "config": str(args.config.resolve()),
        "machine": {
            **machine_info(),
            "opacus": package_version("opacus"),
            "scikit-learn": package_version("scikit-learn"),
            "torch_threads": torch.get_num_threads(),
            "load_average_before": [round(load, 2) for load in load_before],
            "load_average_after": [round(load, 2) for load in os.getloadavg()],
        },
        "total_seconds": time.perf_counter() - started,
        **measured,
    }
    image = save(results, args.output, args.log_mlflow)
    print(format_table(results))
    print(f"saved {args.output} and {image}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
