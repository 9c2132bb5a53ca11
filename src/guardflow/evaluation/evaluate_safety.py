"""Offline safety evaluation on held-out rows: utility, calibration, fairness per sensitive group, robustness to
perturbed inputs and counterfactual flips of sensitive attributes, each rate with a bootstrap interval."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, roc_auc_score

from guardflow.privacy.audit_membership import MembershipAudit
from guardflow.settings import CategoricalFeature, DatasetSettings, NumericFeature

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Typed rows -> probability of the positive class, one per row.
Predict = Callable[[pd.DataFrame], np.ndarray]

BOOTSTRAP_RESAMPLES = 200
CALIBRATION_BINS = 15
# Strengths of the robustness perturbations: noise std as a share of each numeric feature's public range, and
# the probability that a categorical value is swapped for another category of its public list.
NOISE_STRENGTHS = (0.05, 0.10)
SWAP_STRENGTHS = (0.05, 0.10)


@dataclass(frozen=True)
class Interval:
    """A 95% percentile bootstrap interval."""

    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    @property
    def width(self) -> float:
        return self.high - self.low


@dataclass(frozen=True)
class GroupFairness:
    """Per-group accuracy, positive-prediction rate, TPR and FPR for one sensitive attribute.

    `intervals` holds bootstrap intervals keyed `accuracy:<group>`, `tpr:<group>`, `fpr:<group>`,
    `dp_difference` and `eo_difference`.
    """

    attribute: str
    accuracy: dict[str, float]
    positive_rate: dict[str, float]
    rows: dict[str, int]
    true_positive_rate: dict[str, float] = field(default_factory=dict)
    false_positive_rate: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, Interval] = field(default_factory=dict)

    @property
    def demographic_parity_difference(self) -> float:
        """Largest gap in positive-prediction rate between any two groups."""
        rates = list(self.positive_rate.values())
        return float(max(rates) - min(rates)) if rates else 0.0

    @property
    def equalized_odds_difference(self) -> float:
        """The larger of the largest TPR gap and the largest FPR gap between groups (groups without positives,
        or without negatives, have no such rate and are left out of that gap)."""
        return _equalized_odds(
            list(self.true_positive_rate.values()), list(self.false_positive_rate.values())
        )


@dataclass(frozen=True)
class Reliability:
    """The reliability diagram's data: per equal-width bin, mean predicted probability, observed rate, rows."""

    mean_probability: tuple[float, ...]
    observed_rate: tuple[float, ...]
    rows: tuple[int, ...]


@dataclass(frozen=True)
class Perturbation:
    """Accuracy when the held-out rows are perturbed in one stated way."""

    name: str
    kind: str  # "numeric_noise" or "category_swap"
    strength: float
    accuracy: float


@dataclass(frozen=True)
class Robustness:
    """Accuracy on clean rows and under each perturbation."""

    baseline_accuracy: float
    perturbations: tuple[Perturbation, ...]
    seed: int


@dataclass(frozen=True)
class Evaluation:
    """Every figure the gate can judge a candidate by."""

    rows: int
    accuracy: float
    roc_auc: float
    ece: float
    fairness: tuple[GroupFairness, ...]
    membership: MembershipAudit
    intervals: dict[str, Interval] = field(default_factory=dict)
    reliability: Reliability | None = None
    robustness: Robustness | None = None
    counterfactual_flip_rate: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """Flat name -> value view, for MLflow metrics and the summary."""
        flat = {
            "accuracy": self.accuracy,
            "roc_auc": self.roc_auc,
            "ece": self.ece,
            "mia_auc": self.membership.auc,
            "mia_tpr_at_1pct_fpr": self.membership.tpr_at_1pct_fpr,
            "mia_tpr_at_01pct_fpr": self.membership.tpr_at_01pct_fpr,
            "mia_epsilon_lower_bound": self.membership.epsilon_lower_bound,
        }
        for name, interval in self.intervals.items():
            flat[f"{name}_ci_low"] = interval.low
            flat[f"{name}_ci_high"] = interval.high
        for group in self.fairness:
            flat[f"dp_difference_{group.attribute}"] = group.demographic_parity_difference
            if group.true_positive_rate:
                flat[f"eo_difference_{group.attribute}"] = group.equalized_odds_difference
            for name, value in group.accuracy.items():
                flat[f"accuracy_{group.attribute}_{name}"] = value
            for name, value in group.true_positive_rate.items():
                flat[f"tpr_{group.attribute}_{name}"] = value
            for name, value in group.false_positive_rate.items():
                flat[f"fpr_{group.attribute}_{name}"] = value
        if self.robustness is not None:
            for perturbation in self.robustness.perturbations:
                flat[f"robust_accuracy_{perturbation.name}"] = perturbation.accuracy
        for attribute, rate in self.counterfactual_flip_rate.items():
            flat[f"counterfactual_flip_rate_{attribute}"] = rate
        return flat


def _equalized_odds(tpr: list[float], fpr: list[float]) -> float:
    gaps = [
        max(rates) - min(rates) for rates in ([x for x in tpr if x == x], [x for x in fpr if x == x]) if rates
    ]
    return float(max(gaps)) if gaps else 0.0


def _calibration_bins(probabilities: np.ndarray, bins: int) -> np.ndarray:
    edges = np.linspace(0.0, 1.0, bins + 1)
    return np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS
) -> float:
    """Mean gap between predicted probability and observed frequency, over equal-width bins, weighted by size."""
    bin_of_row = _calibration_bins(probabilities, bins)
    predicted = np.bincount(bin_of_row, weights=probabilities, minlength=bins)
    observed = np.bincount(bin_of_row, weights=labels.astype("float64"), minlength=bins)
    # sum over bins of (rows in bin / rows) * |mean prediction - mean label| = sum |sums| / rows
    return float(np.abs(predicted - observed).sum() / len(probabilities))


def reliability_diagram(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS
) -> Reliability:
    """Mean prediction and observed positive rate per equal-width bin (empty bins give NaN)."""
    bin_of_row = _calibration_bins(probabilities, bins)
    rows = np.bincount(bin_of_row, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(bin_of_row, weights=probabilities, minlength=bins) / rows
        observed = np.bincount(bin_of_row, weights=labels.astype("float64"), minlength=bins) / rows
    return Reliability(tuple(map(float, mean)), tuple(map(float, observed)), tuple(map(int, rows)))


def _group_names(groups: pd.Series) -> np.ndarray:
    return groups.fillna("(missing)").astype(str).to_numpy()


def group_fairness(
    attribute: str, groups: pd.Series, predictions: np.ndarray, labels: np.ndarray
) -> GroupFairness:
    """Accuracy, positive rate, TPR and FPR per value of one sensitive attribute (missing values form their own
    group). A group without positive (negative) labels has TPR (FPR) NaN."""
    names = _group_names(groups)
    accuracy: dict[str, float] = {}
    positive_rate: dict[str, float] = {}
    rows: dict[str, int] = {}
    tpr: dict[str, float] = {}
    fpr: dict[str, float] = {}
    for name in sorted(set(names)):
        members = names == name
        accuracy[name] = float((predictions[members] == labels[members]).mean())
        positive_rate[name] = float(predictions[members].mean())
        rows[name] = int(members.sum())
        positives, negatives = members & (labels == 1), members & (labels == 0)
        tpr[name] = float(predictions[positives].mean()) if positives.any() else float("nan")
        fpr[name] = float(predictions[negatives].mean()) if negatives.any() else float("nan")
    return GroupFairness(
        attribute=attribute,
        accuracy=accuracy,
        positive_rate=positive_rate,
        rows=rows,
        true_positive_rate=tpr,
        false_positive_rate=fpr,
    )


# --- bootstrap ---


def _resample_counts(rows: int, resamples: int, seed: int) -> np.ndarray:
    """How often each row is drawn in each resample: a (resamples, rows) matrix of counts summing to `rows`."""
    generator = np.random.default_rng(seed)
    drawn = generator.integers(0, rows, size=(resamples, rows))
    drawn += (np.arange(resamples) * rows)[:, None]
    return np.bincount(drawn.ravel(), minlength=resamples * rows).reshape(resamples, rows).astype("float64")


def _interval(samples: np.ndarray) -> Interval:
    if np.isnan(samples).all():
        return Interval(float("nan"), float("nan"))
    low, high = np.nanpercentile(samples, [2.5, 97.5])
    return Interval(float(low), float(high))


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


def _weighted_auc(counts: np.ndarray, probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """ROC AUC of each resample (row weights = counts), ties counted half: the Mann-Whitney statistic."""
    order = np.argsort(probabilities, kind="stable")
    sorted_scores = probabilities[order]
    positive = labels[order] == 1
    weights = counts[:, order]
    negative_weight = np.cumsum(weights * ~positive, axis=1)
    # first and last position of each position's tie group
    starts = np.searchsorted(sorted_scores, sorted_scores, side="left")
    ends = np.searchsorted(sorted_scores, sorted_scores, side="right") - 1
    padded = np.concatenate([np.zeros((len(counts), 1)), negative_weight], axis=1)
    below = padded[:, starts]
    tied = padded[:, ends + 1] - below
    wins = (weights[:, positive] * (below[:, positive] + 0.5 * tied[:, positive])).sum(axis=1)
    pairs = weights[:, positive].sum(axis=1) * weights[:, ~positive].sum(axis=1)
    return _ratio(wins, pairs)


def _bootstrap_fairness(
    group: GroupFairness,
    names: np.ndarray,
    counts: np.ndarray,
    correct: np.ndarray,
    predictions: np.ndarray,
    labels: np.ndarray,
) -> GroupFairness:
    intervals: dict[str, Interval] = {}
    positive_rates, tprs, fprs = [], [], []
    for name in group.accuracy:
        members = (names == name).astype("float64")
        rows = counts @ members
        positives, negatives = members * (labels == 1), members * (labels == 0)
        intervals[f"accuracy:{name}"] = _interval(_ratio(counts @ (members * correct), rows))
        positive_rates.append(_ratio(counts @ (members * predictions), rows))
        tprs.append(_ratio(counts @ (positives * predictions), counts @ positives))
        fprs.append(_ratio(counts @ (negatives * predictions), counts @ negatives))
        intervals[f"tpr:{name}"] = _interval(tprs[-1])
        intervals[f"fpr:{name}"] = _interval(fprs[-1])
    stacked = np.stack(positive_rates)
    intervals["dp_difference"] = _interval(np.nanmax(stacked, axis=0) - np.nanmin(stacked, axis=0))
    tpr_matrix, fpr_matrix = np.stack(tprs), np.stack(fprs)
    with np.errstate(invalid="ignore"):
        tpr_gap = np.nanmax(tpr_matrix, axis=0) - np.nanmin(tpr_matrix, axis=0)
        fpr_gap = np.nanmax(fpr_matrix, axis=0) - np.nanmin(fpr_matrix, axis=0)
    intervals["eo_difference"] = _interval(np.fmax(tpr_gap, fpr_gap))
    return replace(group, intervals=intervals)


def champion_figures(
    probabilities: np.ndarray, labels: np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    """Accuracy, ROC AUC and ECE of any model's probabilities on the held-out rows (no intervals)."""
    probabilities = np.asarray(probabilities, dtype="float64")
    return {
        "accuracy": float(accuracy_score(labels, (probabilities >= threshold).astype("int64"))),
        "roc_auc": float(roc_auc_score(labels, probabilities)),
        "ece": expected_calibration_error(probabilities, labels),
    }


def evaluate_safety(
    probabilities: np.ndarray,
    labels: np.ndarray,
    sensitive: pd.DataFrame,
    membership: MembershipAudit,
    threshold: float = 0.5,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> Evaluation:
    """Score held-out predictions; `sensitive` holds the sensitive attribute columns of the same rows.

    Every rate gets a 95% percentile interval from `resamples` bootstrap resamples of the rows (0 turns them
    off). The ECE interval leans high for well-calibrated models: resampling adds its own binning noise.
    """
    probabilities = np.asarray(probabilities, dtype="float64")
    labels = np.asarray(labels)
    predictions = (probabilities >= threshold).astype("int64")
    fairness = [
        group_fairness(attribute, sensitive[attribute], predictions, labels)
        for attribute in sensitive.columns
    ]
    intervals: dict[str, Interval] = {}
    if resamples > 0:
        rows = len(labels)
        counts = _resample_counts(rows, resamples, seed)
        correct = (predictions == labels).astype("float64")
        intervals["accuracy"] = _interval(counts @ correct / rows)
        intervals["roc_auc"] = _interval(_weighted_auc(counts, probabilities, labels))
        one_hot_bins = np.eye(CALIBRATION_BINS)[_calibration_bins(probabilities, CALIBRATION_BINS)]
        gaps = counts @ (one_hot_bins * (probabilities - labels)[:, None])
        intervals["ece"] = _interval(np.abs(gaps).sum(axis=1) / rows)
        fairness = [
            _bootstrap_fairness(
                group, _group_names(sensitive[group.attribute]), counts, correct, predictions, labels
            )
            for group in fairness
        ]
    figures = champion_figures(probabilities, labels, threshold)
    return Evaluation(
        rows=len(labels),
        accuracy=figures["accuracy"],
        roc_auc=figures["roc_auc"],
        ece=figures["ece"],
        fairness=tuple(fairness),
        membership=membership,
        intervals=intervals,
        reliability=reliability_diagram(probabilities, labels),
    )


# --- behaviour of the model on changed inputs ---


def _accuracy(predict: Predict, frame: pd.DataFrame, labels: np.ndarray, threshold: float) -> float:
    return float(((np.asarray(predict(frame)) >= threshold).astype("int64") == labels).mean())


def _with_numeric_noise(
    frame: pd.DataFrame, dataset: DatasetSettings, strength: float, generator: np.random.Generator
) -> pd.DataFrame:
    """Gaussian noise with std `strength` x the public range on every numeric feature, clipped to the bounds."""
    noisy = frame.copy()
    for name, feature in dataset.features.items():
        if isinstance(feature, NumericFeature) and name in noisy:
            values = noisy[name].to_numpy(dtype="float64")
            noise = generator.normal(0.0, strength * (feature.max - feature.min), size=len(values))
            noisy[name] = np.clip(values + noise, feature.min, feature.max)  # missing values stay missing
    return noisy


def _with_category_swaps(
    frame: pd.DataFrame, dataset: DatasetSettings, strength: float, generator: np.random.Generator
) -> pd.DataFrame:
    """Each categorical value, with probability `strength`, replaced by a uniformly drawn other category of its
    public list (a missing or unlisted value by any listed category)."""
    swapped = frame.copy()
    for name, feature in dataset.features.items():
        if not isinstance(feature, CategoricalFeature) or name not in swapped:
            continue
        categories = np.asarray(feature.categories, dtype=object)
        count = len(categories)
        if count < 2:
            continue
        codes = pd.Index(feature.categories).get_indexer(swapped[name])
        chosen = generator.uniform(size=len(codes)) < strength
        shift = generator.integers(1, count, size=len(codes))  # never 0: always another category
        replacement = np.where(codes >= 0, (codes + shift) % count, generator.integers(0, count, len(codes)))
        values = swapped[name].to_numpy(dtype=object).copy()
        values[chosen] = categories[replacement[chosen]]
        swapped[name] = values
    return swapped


def robustness(
    predict: Predict,
    frame: pd.DataFrame,
    labels: np.ndarray,
    dataset: DatasetSettings,
    seed: int = 0,
    threshold: float = 0.5,
) -> Robustness:
    """Accuracy under numeric noise (std 5% and 10% of each public range) and category swaps (5% and 10%)."""
    generator = np.random.default_rng(seed)
    kinds = (
        ("numeric_noise", NOISE_STRENGTHS, _with_numeric_noise),
        ("category_swap", SWAP_STRENGTHS, _with_category_swaps),
    )
    perturbations = [
        Perturbation(
            f"{kind}_{round(strength * 100)}pct",
            kind,
            strength,
            _accuracy(predict, perturb(frame, dataset, strength, generator), labels, threshold),
        )
        for kind, strengths, perturb in kinds
        for strength in strengths
    ]
    return Robustness(_accuracy(predict, frame, labels, threshold), tuple(perturbations), seed)


def counterfactual_flip_rate(
    predict: Predict, frame: pd.DataFrame, dataset: DatasetSettings, attribute: str, threshold: float = 0.5
) -> float:
    """Share of rows whose predicted class changes when only `attribute` is set to some other listed category."""
    feature = dataset.features[attribute]
    if not isinstance(feature, CategoricalFeature):
        raise ValueError(f"counterfactuals need a categorical attribute, `{attribute}` is numeric")
    original = np.asarray(predict(frame)) >= threshold
    flipped = np.zeros(len(frame), dtype=bool)
    for category in feature.categories:
        changed = frame.assign(**{attribute: category})
        flipped |= (np.asarray(predict(changed)) >= threshold) != original
    return float(flipped.mean()) if len(frame) else 0.0


def check_behaviour(
    evaluation: Evaluation,
    predict: Predict,
    frame: pd.DataFrame,
    labels: np.ndarray,
    dataset: DatasetSettings,
    seed: int = 0,
) -> Evaluation:
    """The evaluation with robustness and counterfactual flip rates (per sensitive attribute) filled in."""
    return replace(
        evaluation,
        robustness=robustness(predict, frame, labels, dataset, seed),
        counterfactual_flip_rate={
            attribute: counterfactual_flip_rate(predict, frame, dataset, attribute)
            for attribute in dataset.sensitive
            if isinstance(dataset.features[attribute], CategoricalFeature)
        },
    )


# --- plots ---


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
