"""Reserve this run's privacy budget in the ledger, atomically, before any training happens."""

from guardflow.data.table import Table
from guardflow.io import registry
from guardflow.io.ledger import open_ledger
from guardflow.io.validate_file import FileContractResult
from guardflow.privacy.privacy_budget import SourceBudget
from guardflow.run.run_context import RunContext
from tasks.stage_log import stage_log
from tasks.stage_task import stage_task


@stage_task("reserve-privacy-budget")
def reserve_budget(
    context: RunContext, train: Table | FileContractResult, sources: list[str] | None
) -> list[SourceBudget]:
    """Refuse the run (BudgetError, exit 2) if any source file lacks room for the target epsilon; else charge it,
    in one transaction, so two runs can never both take the last of a budget."""
    settings = context.settings
    dataset_id = settings.dataset.id
    if sources is None and isinstance(train, FileContractResult):
        # A folder: each file is a source of its own, charged in the ledger as a single file would be.
        sources = [checksum.sha256 for checksum in train.partitioned.sources]
        purpose = "train"
    else:
        purpose = "train" if sources is None else "retrain"
    charged = sources or [train.sha256]
    epsilon = settings.privacy.target_epsilon
    with context.stage("reserve_budget", inputs=[]):
        registry.track_dataset(context.home, dataset_id)
        after = open_ledger(context.home).reserve(
            dataset_id,
            charged,
            epsilon,
            settings.privacy.delta,
            settings.privacy.lifetime_epsilon,
            purpose=purpose,
            run_dir=str(context.run_dir),
        )
    most = max(after, key=lambda budget: budget.spent)
    stage_log.info(
        "budget    epsilon %.3f reserved; data sha256 %s... has spent %.3f of %.3f",
        epsilon, most.source_sha256[:12], most.spent, most.lifetime,
    )  # fmt: skip
    return after
