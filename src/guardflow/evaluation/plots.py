"""The evaluation's plots: reliability diagram, rates per group with intervals, accuracy under perturbations."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from guardflow.evaluation.fairness import GroupFairness
from guardflow.evaluation.robustness import Perturbation

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from guardflow.evaluation.evaluate_safety import Evaluation


def save_plots(evaluation: Evaluation, folder: Path) -> list[Path]:
    """Write calibration.png, groups.png and (when measured) robustness.png into `folder`; return their paths."""
    # Imported here: only the stage that draws pays for matplotlib. Figure without pyplot draws with Agg and
    # touches no global backend state.
    from matplotlib.figure import Figure

    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    if evaluation.reliability is not None:
        figure = Figure(figsize=(5.5, 5.5), layout="constrained")
        axes = figure.subplots()
        reliability = evaluation.reliability
        kept = [index for index, rows in enumerate(reliability.rows) if rows > 0]
        axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
        axes.plot(
            [reliability.mean_probability[i] for i in kept],
            [reliability.observed_rate[i] for i in kept],
            marker="o",
            label="model",
        )
        ece = evaluation.intervals.get("ece")
        band = f" [{ece.low:.3f}, {ece.high:.3f}]" if ece else ""
        axes.set(
            xlim=(0, 1),
            ylim=(0, 1),
            xlabel="mean predicted probability (per bin)",
            ylabel="observed positive rate",
            title=f"Reliability diagram, ECE {evaluation.ece:.3f}{band}",
        )
        axes.legend(loc="upper left")
        written.append(_save(figure, folder / "calibration.png"))

    if evaluation.fairness:
        figure = Figure(figsize=(6 * len(evaluation.fairness), 4.5), layout="constrained")
        for axes, group in zip(
            np.atleast_1d(figure.subplots(1, len(evaluation.fairness))), evaluation.fairness, strict=True
        ):
            _group_bars(axes, group)
        written.append(_save(figure, folder / "groups.png"))

    if evaluation.robustness is not None:
        figure = Figure(figsize=(7, 4.5), layout="constrained")
        axes = figure.subplots()
        names = ["clean", *(_describe(perturbation) for perturbation in evaluation.robustness.perturbations)]
        values = [
            evaluation.robustness.baseline_accuracy,
            *(p.accuracy for p in evaluation.robustness.perturbations),
        ]
        bars = axes.bar(names, values, color=["tab:green"] + ["tab:orange"] * (len(names) - 1))
        axes.bar_label(bars, fmt="%.3f")
        axes.set(ylim=(0, 1), ylabel="accuracy", title="Accuracy under perturbed inputs")
        axes.tick_params(axis="x", labelrotation=20)
        written.append(_save(figure, folder / "robustness.png"))
    return written


def _group_bars(axes: Axes, group: GroupFairness) -> None:
    names = list(group.accuracy)
    series = {
        "accuracy": ("accuracy", group.accuracy),
        "TPR": ("tpr", group.true_positive_rate),
        "FPR": ("fpr", group.false_positive_rate),
    }
    width = 0.27
    positions = np.arange(len(names))
    for offset, (label, (key, values)) in enumerate(series.items()):
        heights = np.array([values.get(name, np.nan) for name in names])
        errors = np.array(
            [
                [
                    heights[i] - group.intervals[f"{key}:{n}"].low,
                    group.intervals[f"{key}:{n}"].high - heights[i],
                ]
                if f"{key}:{n}" in group.intervals
                else [0.0, 0.0]
                for i, n in enumerate(names)
            ]
        ).T
        axes.bar(
            positions + (offset - 1) * width,
            np.nan_to_num(heights),
            width,
            yerr=np.nan_to_num(errors),
            capsize=2,
            label=label,
        )
    axes.set_xticks(positions, names, rotation=20, ha="right")
    axes.set(
        ylim=(0, 1.15),
        ylabel="rate (95% bootstrap interval)",
        title=f"{group.attribute}: DP diff {group.demographic_parity_difference:.3f}, "
        f"EO diff {group.equalized_odds_difference:.3f}",
    )
    axes.legend(loc="upper center", ncols=3)


def _describe(perturbation: Perturbation) -> str:
    """A short label stating the perturbation's strength."""
    if perturbation.kind == "numeric_noise":
        return f"noise, std {perturbation.strength:.0%}\nof range"
    return f"category swap,\np = {perturbation.strength:.0%}"


def _save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=110)
    return path
