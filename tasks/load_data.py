"""Load a data file with its checksum checked."""

from pathlib import Path

from guardflow.data.table import Table
from guardflow.io.datasets import read_split, read_table
from guardflow.io.lineage import file_dataset
from guardflow.io.sources import Source, open_source
from guardflow.run.run_context import RunContext
from tasks.stage_log import stage_log
from tasks.stage_task import stage_task


# holds_raw_rows: raw rows (personal data included) are never written to Prefect result storage.
@stage_task("load-data", holds_raw_rows=True)
def load_data(context: RunContext, split: str = "train", path: str | None = None) -> Table:
    """Read the configured split (checksum enforced) or, when `path` is given, that file (checksum recorded)."""
    dataset = context.settings.dataset
    source = Path(path) if path else getattr(dataset, split).path
    with context.stage(f"load_{split}", inputs=[file_dataset(source)]) as stage:
        table = read_split(dataset, split) if path is None else read_table(source, dataset)
        columns = [(name, "string") for name in table.rows.columns]
        stage.inputs = [file_dataset(source, columns=columns, row_count=table.row_count, sha256=table.sha256)]
    stage_log.info(
        "load      %s: %s rows, sha256 %s...", table.path.name, f"{table.row_count:,}", table.sha256[:12]
    )
    return table


def training_source(context: RunContext, path: str | None) -> Source:
    """The training source (`path`, else the configured train file), its files listed, not checksummed: it takes
    the partitioned path when `io/cluster.uses_cluster` says so (a folder, a large file, a named cluster)."""
    settings = context.settings
    return open_source(Path(path) if path else settings.dataset.train.path, settings.dataset, checksums=False)
