"""Apply the PII guard right after loading: nothing downstream (contract, scan, quarantine, training, MLflow,
lineage, reports) ever sees a raw value of a column with a PII policy."""

from dataclasses import replace
from functools import partial

from guardflow.data.table import Table
from guardflow.drift.detect_drift import Reference
from guardflow.io.lineage import file_dataset
from guardflow.io.pii_key import read_pii_key
from guardflow.lineage.facets import pii_facet
from guardflow.pii.guard_pii import guard_pii, keep_declared, mask_malformed
from guardflow.run.run_context import RunContext
from tasks.stage_log import stage_log
from tasks.stage_task import stage_task


# holds_raw_rows: the input holds raw personal data, and no setting may make Prefect write it to storage.
@stage_task("guard-pii", holds_raw_rows=True)
def guard_data(context: RunContext, table: Table, split: str = "train") -> Table:
    """The table with PII columns dropped or hashed and stray identifiers redacted; stops the run (PiiError)
    when a column looks like personal data and has no policy, or is blocked."""
    source = file_dataset(table.path, row_count=table.row_count, sha256=table.sha256)
    with context.stage(f"guard_pii_{split}", inputs=[source]) as stage:
        result = guard_pii(table.rows, context.settings.pii, key=partial(read_pii_key, context.home))
        findings = [(finding.column, finding.kinds, finding.all_shares) for finding in result.findings]
        stage.run_facets.update(
            pii_facet(len(table.rows.columns), findings, result.dropped, result.hashed, result.redacted)
        )
        # Data minimisation: only declared columns go on; a malformed line's text only when the config opts in.
        rows, undeclared = keep_declared(result.rows, context.settings)
        malformed = table.malformed
        if len(malformed) and not context.settings.pii.keep_malformed_text:
            malformed = mask_malformed(malformed, read_pii_key(context.home))
        context.record_minimisation(
            kept=[str(name) for name in rows.columns],
            undeclared=undeclared,
            dropped=result.dropped,
            hashed=result.hashed,
            masked_lines=0 if context.settings.pii.keep_malformed_text else len(malformed),
        )
    stage_log.info(
        "pii       %d columns checked, %d look personal; dropped %s, hashed %s; %d stray values redacted; "
        "%d undeclared columns dropped",
        len(table.rows.columns),
        len(result.findings),
        list(result.dropped) or "none",
        list(result.hashed) or "none",
        sum(result.redacted.values()),
        len(undeclared),
    )
    return replace(table, rows=rows, malformed=malformed)


@stage_task("guard-pii-reference", holds_raw_rows=True)
def guard_reference(context: RunContext, reference: Reference) -> Reference:
    """The champion's reference data through the same guard, before a drift report shows any of it."""
    return replace(reference, table=guard_data.fn(context, reference.table, "reference"))
