"""Screen a drifted batch against the trusted data before it joins a retrain, and decide who must approve it.

A batch that drifted is new data the champion has not seen; it is also the easiest way into production for
poisoned rows (anyone who can write to the inbox writes the next champion's training data). Before the batch is
merged with the champion's training data, its rows are compared with that data (the poisoning scan's trusted
reference: label rates per value and per pair of values, with multiple-testing control): rows carrying a label
shifted inside a slice become suspects, quarantined with the slice named, and never trained or judged on. The
batch is another population than the reference (it drifted), so a slice's expected label rate is what a model
trained on the reference predicts for the batch's own rows in it: a genuine covariate or subpopulation shift
moves who arrives, not the label that goes with given features; a poisoned slice moves the label.

`drift.retrain_approval` then says whether the retrain may promote itself: `auto` (always), `required` (never: it
waits as challenger for `guardflow approve`), or `on_suspicious` (it waits when the batch had suspects, a slice
whose label rate moved, a label rate more than `drift.max_label_prior_shift` away from what the batch's features
predict, or a label drift carried by new or newly frequent values that only a narrow slice of the batch holds).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from guardflow.data.table import label_vector
from guardflow.poisoning.trusted_reference import (
    MODEL_EXPECTATION,
    ShiftedSlice,
    ValueShift,
    compare_reference,
)
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
    expected_label_rate: float  # the positive label's rate the reference model predicts for the batch's rows
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
    expected_rate, batch_rate = label_rates
    if abs(batch_rate - expected_rate) > drift.max_label_prior_shift:
        reasons.append(
            f"label prior moved to {batch_rate:.3f} where the batch's features predict {expected_rate:.3f} "
            f"(more than drift.max_label_prior_shift {drift.max_label_prior_shift:g})"
        )
    holding = sum(shift.rows for shift in value_shifts)
    if label_column in drifted_columns and value_shifts and holding < drift.narrow_slice_share * screen_rows:
        reasons.append(
            f"the label drifted while the new or newly frequent values hold {holding:,} of the batch's "
            f"{screen_rows:,} rows (under {drift.narrow_slice_share:.0%}): "
            + _list([shift.describe() for shift in value_shifts])
        )
    return reasons


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
    # A drifted batch is another population than the reference: each slice is judged against what the reference
    # model predicts for the batch's own rows in it, not against the slice's rate among the reference's people.
    # Within the tolerated label shift, every row's expectation first follows the batch's own prior.
    comparison = compare_reference(
        batch,
        reference,
        dataset,
        poisoning,
        prior_rows=MODEL_EXPECTATION,
        label_shift_tolerance=drift.max_label_prior_shift,
    )
    rates = (comparison.model_rate, float(label_vector(batch, dataset).mean()))
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
            rates,
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
        expected_label_rate=round(rates[0], 4),
        batch_label_rate=round(rates[1], 4),
        hold_reasons=tuple(hold),
        seconds=comparison.seconds,
    )
