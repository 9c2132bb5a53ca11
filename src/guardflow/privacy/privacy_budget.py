"""The privacy-budget rule: a dataset's people may not lose more than its lifetime epsilon, summed over every
model ever trained on them (basic composition: conservative, and true for any mix of mechanisms).

A training run's data may come from several source files (a drift retrain uses the reference data plus a new
batch); the run is charged to each source, and every source must have room for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from guardflow.errors import BudgetError


@dataclass(frozen=True)
class Spend:
    """One training run's charge against one source file of a dataset."""

    dataset_id: str
    source_sha256: str
    epsilon: float
    delta: float
    purpose: str
    recorded_at: str
    run_dir: str
    # reserved, training or spent count against the budget; released (no training happened) does not.
    state: str = "spent"

    @property
    def counts(self) -> bool:
        return self.state != "released"


@dataclass(frozen=True)
class SourceBudget:
    """What one source file has spent and what it has left."""

    dataset_id: str
    source_sha256: str
    spent: float
    lifetime: float
    runs: int

    @property
    def remaining(self) -> float:
        return max(self.lifetime - self.spent, 0.0)


def summarize_budget(
    dataset_id: str, source_sha256: str, spends: list[Spend], lifetime: float
) -> SourceBudget:
    mine = [
        spend
        for spend in spends
        if spend.dataset_id == dataset_id and spend.source_sha256 == source_sha256 and spend.counts
    ]
    return SourceBudget(
        dataset_id=dataset_id,
        source_sha256=source_sha256,
        spent=sum(spend.epsilon for spend in mine),
        lifetime=lifetime,
        runs=len(mine),
    )


def check_budget(budgets: list[SourceBudget], epsilon: float) -> None:
    """Refuse a run of `epsilon` that would take any source past its lifetime budget (one line, exit 2)."""
    for budget in budgets:
        if budget.spent + epsilon > budget.lifetime + 1e-9:
            raise BudgetError(
                f"privacy budget exhausted for dataset {budget.dataset_id} "
                f"(data sha256 {budget.source_sha256[:12]}...): "
                f"spent {budget.spent:.3f} of {budget.lifetime:.3f} in {budget.runs} runs; "
                f"this run needs {epsilon:.3f}"
            )
