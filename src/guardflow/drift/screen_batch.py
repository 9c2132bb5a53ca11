"""Screen a drifted batch against the trusted data before it joins a retrain, and decide who must approve it.

A batch that drifted is new data the champion has not seen; it is also the easiest way into production for
poisoned rows (anyone who can write to the inbox writes the next champion's training data). Before the batch is
merged with the champion's training data, its rows are compared with that data (the poisoning scan's trusted
reference: label rates per value and per pair of values, with multiple-testing control): rows carrying a label
shifted inside a narrow slice become suspects, quarantined with the slice named, and never trained or judged on.

`drift.retrain_approval` then says whether the retrain may promote itself: `auto` (always), `required` (never: it
waits as challenger for `guardflow approve`), or `on_suspicious` (it waits when the batch had suspects, a slice
whose label rate moved, a label prior that moved more than `drift.max_label_prior_shift`, or a label drift
carried by values that only a narrow slice of the batch holds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from guardflow.data.table import label_vector
from guardflow.poisoning.trusted_reference import ShiftedSlice, ValueShift, compare_reference
from guardflow.settings import DatasetSettings, DriftSettings, PoisoningSettings

# How many slices a hold reason names before it says "and N more".
_NAMED_SLICES = 3


@dataclass(frozen=True)
class BatchScreen:
    """The batch against the trusted data: its suspect rows (index of the batch) with their reasons, what moved,
    and why a retrain on it must wait for a person (empty when it need not)."""

    rows: int
    suspects: pd.Series  # bool per batch row
    reasons: pd.Series  # the slice that made a row a suspect; "" for the others
    slices: tuple[ShiftedSlice, ...]
    value_shifts: tuple[ValueShift, ...]
    reference_label_rate: float
    batch_label_rate: float
    hold_reasons: tuple[str, ...]
    seconds: float

    @property
    def suspect_count(self) -> int:
        return int(self.suspects.sum())

    @property
    def suspicious(self) -> bool:
        return bool(self.hold_reasons)

    def suspect_rows(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The suspect rows of `rows` (the batch as read, same index) with their reasons, for the quarantine."""
        flagged = self.suspects[self.suspects].index
        quarantined = rows.loc[flagged].copy()
        quarantined["reasons"] = [[f"label shifted in {reason}"] for reason in self.reasons.loc[flagged]]
        return quarantined


def _list(items: list[str]) -> str:
    named = "; ".join(items[:_NAMED_SLICES])
    return named + (f"; and {len(items) - _NAMED_SLICES} more" if len(items) > _NAMED_SLICES else "")


def _hold_reasons(
    screen_rows: int,
    suspects: int,
    slices: tuple[ShiftedSlice, ...],
    value_shifts: tuple[ValueShift, ...],
    label_rates: tuple[float, float],
    drifted_columns: tuple[str, ...],
    label_column: str,
    drift: DriftSettings,
) -> list[str]:
    """Why the batch is suspicious, one line per kind of evidence (see the module docstring)."""
    reasons = []
    if suspects:
        reasons.append(
            f"{suspects} batch rows quarantined as suspects (a label shifted inside a slice): "
            + _list([found.describe() for found in slices if found.flagged_rows])
        )
    unflagged = [found.describe() for found in slices if not found.flagged_rows]
    if unflagged:
        reasons.append(f"label rate moved in a slice: {_list(unflagged)}")
    reference_rate, batch_rate = label_rates
    if abs(batch_rate - reference_rate) > drift.max_label_prior_shift:
        reasons.append(
            f"label prior moved from {reference_rate:.3f} to {batch_rate:.3f} "
            f"(more than drift.max_label_prior_shift {drift.max_label_prior_shift:g})"
        )
    narrow = [shift for shift in value_shifts if shift.current_share < drift.narrow_slice_share]
    if label_column in drifted_columns and narrow and len(narrow) == len(value_shifts):
        reasons.append(
            f"the label drifted while the only new or newly frequent values hold under "
            f"{drift.narrow_slice_share:.0%} of the batch's {screen_rows:,} rows: "
            + _list([shift.describe() for shift in narrow])
        )
    return reasons


def match_label_prior(
    reference: pd.DataFrame, rate: float, dataset: DatasetSettings, seed: int = 0
) -> pd.DataFrame:
    """The reference rows with one class subsampled (seeded) so that the positive label's share is `rate`.

    A genuine label-prior shift changes how many people of each class arrive, not what people of a class look
    like (P(x | y) stays): subsampling a class of the reference moves its prior the same way, so every slice's
    expected label rate follows the batch's prior and only shifts beyond it stand out."""
    labels = label_vector(reference, dataset).to_numpy()
    positives, negatives = int(labels.sum()), int(len(labels) - labels.sum())
    if not 0 < rate < 1 or positives == 0 or negatives == 0:
        return reference
    keep = np.ones(len(reference), dtype=bool)
    rng = np.random.default_rng(seed)
    if positives / len(labels) > rate:  # too many positives: keep rate/(1-rate) of them per negative
        drop = positives - round(rate / (1 - rate) * negatives)
        keep[rng.choice(np.flatnonzero(labels == 1), max(drop, 0), replace=False)] = False
    else:
        drop = negatives - round((1 - rate) / rate * positives)
        keep[rng.choice(np.flatnonzero(labels == 0), max(drop, 0), replace=False)] = False
    return reference[keep]


def screen_batch(
    batch: pd.DataFrame,
    reference: pd.DataFrame,
    dataset: DatasetSettings,
    poisoning: PoisoningSettings,
    drift: DriftSettings,
    drifted_columns: tuple[str, ...] = (),
) -> BatchScreen:
    """Compare the batch's accepted rows (typed, labelled) with the champion's training rows (typed, labelled).

    `drifted_columns` are the columns the drift check found drifted (the label among them or not). A batch
    without rows (every row quarantined by the contract) cannot be screened: the caller never retrains on it."""
    rates = (
        float(label_vector(reference, dataset).mean()) if len(reference) else float("nan"),
        float(label_vector(batch, dataset).mean()) if len(batch) else float("nan"),
    )
    # Within the tolerated prior shift, slices are judged against a reference moved to the batch's prior; a
    # larger shift is itself a reason to wait, and the slices are then judged against the reference as it is.
    trusted = reference
    if abs(rates[1] - rates[0]) <= drift.max_label_prior_shift:
        trusted = match_label_prior(reference, rates[1], dataset, poisoning.seed)
    comparison = compare_reference(batch, trusted, dataset, poisoning)
    suspects = comparison.flags.astype(bool)
    hold: list[str] = []
    if drift.retrain_approval == "required":
        hold.append("drift.retrain_approval is 'required': every drift retrain waits for a person")
    elif drift.retrain_approval == "on_suspicious":
        hold = _hold_reasons(
            len(batch),
            int(suspects.sum()),
            comparison.slices,
            comparison.value_shifts,
            (rates[0], rates[1]) if not np.isnan(rates[1]) else (rates[0], rates[0]),
            drifted_columns,
            dataset.label.column,
            drift,
        )
    return BatchScreen(
        rows=len(batch),
        suspects=suspects,
        reasons=comparison.reasons,
        slices=comparison.slices,
        value_shifts=comparison.value_shifts,
        reference_label_rate=round(rates[0], 4),
        batch_label_rate=round(rates[1], 4),
        hold_reasons=tuple(hold),
        seconds=comparison.seconds,
    )
