"""The gate's policy in a config: the lines a candidate must pass, their margins, and the differential check."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from guardflow.strict_model import StrictModel


class DifferentialSettings(StrictModel):
    """How the differential check judges a slice whose predictions moved from the champion's (README, gate).

    A slice fails when all three hold: its Bonferroni-adjusted p-value is below `alpha`, its move is at least
    `min_slice_score` robust standard deviations from the moves of slices of similar size, and its move
    (mean candidate minus champion probability inside, minus outside) exceeds `max_slice_move`.
    """

    # 50 rows: 0.15% of Adult's training rows; a backdoor that plants fewer rows than this teaches a DP model
    # too little to matter, and smaller slices of two sound DP models already differ by 0.1 and more.
    min_slice_size: Annotated[int, Field(ge=5)] = 50
    # Unsigned moves (the test rows). Measured on Adult (9 sound DP candidates, other seeds, against a clean
    # champion): among slices scoring >= 15 the largest move was 0.167; 10 learned backdoors moved a slice by
    # 0.245-0.50 on the training rows.
    max_slice_move: Annotated[float, Field(gt=0, le=1)] = 0.20
    # DP noise gives heavy tails: sound candidates reach scores of 7.8-16.1 (with triples); learned backdoors
    # 21-37. Far above any normal-tail Bonferroni cut (about 5), which `alpha` applies as well.
    min_slice_score: Annotated[float, Field(gt=0)] = 18.0
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.01
    # On the training rows, moves are taken towards each row's training label: the most a slice may gain in fit
    # to those labels over the champion. Measured on Adult: sound candidates 0.06 at most (scores <= 11.4, and
    # mostly the other way); backdoors 0.15-0.31 at scores 29-75, including ones the unsigned check misses.
    max_label_fit_gain: Annotated[float, Field(gt=0, le=1)] = 0.10
    # Triples of values are tested only below this many pairs that stand out most (a trigger of three common
    # values shows, diluted, in its pairs); 0 tests single values and pairs only.
    triple_beam: Annotated[int, Field(ge=0)] = 20


class GateSettings(StrictModel):
    """Absolute thresholds a candidate must meet to be promoted.

    The defaults are a starting point for a new dataset, not a policy: set accuracy against your majority-class
    rate (a model that always answers the majority class reaches it).
    """

    min_accuracy: Annotated[float, Field(ge=0, le=1)] = 0.7
    min_roc_auc: Annotated[float, Field(ge=0, le=1)] = 0.75
    max_ece: Annotated[float, Field(ge=0, le=1)] = 0.1
    max_mia_auc: Annotated[float, Field(ge=0, le=1)] = 0.6
    max_demographic_parity_difference: Annotated[float, Field(ge=0, le=1)] = 0.25
    # The most privacy a model may spend and still ship (None: no ceiling beyond the training target).
    max_epsilon: Annotated[float, Field(gt=0)] | None = None
    # No-regression margins against the champion, per metric (accuracy, roc_auc: may drop by at most this;
    # ece: may rise by at most this), judged on the favourable end of the candidate's 95% interval.
    max_regression: dict[Literal["accuracy", "roc_auc", "ece"], Annotated[float, Field(ge=0, le=1)]] = {
        "accuracy": 0.01,
        "roc_auc": 0.01,
    }
    # Equalized odds: the larger of the TPR and FPR gaps between groups, judged like parity on the favourable
    # (low) end of its 95% interval. None: no such line.
    max_equalized_odds_difference: Annotated[float, Field(ge=0, le=1)] | None = 0.25
    # A group's rate measured on fewer rows than this (rows for selection rate, positives for TPR, negatives
    # for FPR) is too noisy to judge: its 95% interval is then wider than +-0.14, and the max-min gap over tiny
    # groups is biased upwards (10 people gave a parity gap of 0.83). Its lines are WAIVED and it is left out
    # of the gaps; the card and the summary list it.
    min_group_size: Annotated[int, Field(ge=1)] = 50
    # Per-group no-regression against the champion on the same rows, for every sensitive attribute and group:
    # how far a group's rate may get worse, judged on the favourable end of the paired 95% bootstrap interval
    # of candidate - champion. Worse is a drop in TPR or selection rate (fewer of the group's people get the
    # positive outcome) and a rise in FPR. Seed-to-seed changes of sound DP candidates on Adult stay within
    # about 0.05 on the favourable end.
    max_group_regression: dict[
        Literal["tpr", "fpr", "selection_rate"], Annotated[float, Field(ge=0, le=1)]
    ] = {
        "tpr": 0.05,
        "fpr": 0.05,
        "selection_rate": 0.05,
    }
    # The differential check against the champion (on the candidate's training rows and on the test rows).
    differential: DifferentialSettings = DifferentialSettings()
    # Lines that do not count, by name, each with the reason (recorded with the decision).
    waivers: dict[str, Annotated[str, Field(min_length=1)]] = {}


# Five cron fields (minute hour day month weekday) or a macro such as @hourly; Prefect checks the rest.
