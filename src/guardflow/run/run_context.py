"""What one flow run carries from stage to stage: settings, run folder, lineage, and the stage bracket.

Every stage runs inside `RunContext.stage(...)`, which emits an OpenLineage START before it and a COMPLETE
(or FAIL, with the error message) after it, with the stage's input and output datasets, as a child run of
the flow's own lineage run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from openlineage.client.facet_v2 import RunFacet

from guardflow.io import run_marker
from guardflow.io.lineage import LineageDataset, LineageEmitter, new_run_id
from guardflow.run.summary import ColumnFigures, RerunFigures, RunHeader
from guardflow.settings import Settings, settings_hash

logger = logging.getLogger(__name__)


@dataclass
class StageOutputs:
    """Filled in by a stage while it runs: the datasets it wrote and its own run facets, for its COMPLETE event."""

    datasets: list[LineageDataset] = field(default_factory=list)
    run_facets: dict[str, RunFacet] = field(default_factory=dict)
    inputs: list[LineageDataset] | None = None  # the inputs again, with what the stage learned about them


@dataclass
class RunContext:
    """One flow run: its settings, folder, lineage emitter and the lineage run id of the flow itself."""

    flow_name: str
    settings: Settings
    config_path: Path
    run_dir: Path
    home: Path
    lineage: LineageEmitter
    run_id: str = field(default_factory=new_run_id)
    started: float = field(default_factory=time.perf_counter)
    columns: ColumnFigures | None = None  # set by the PII guard, written to summary.json
    # Kept in the run folder while the run is open (see `guardflow.io.run_marker`); None until `begin`.
    marker: run_marker.RunMarker | None = None
    rerun: RerunFigures | None = None  # the keys a training is matched on, tagged on the version it registers

    @property
    def job_prefix(self) -> str:
        return f"{self.flow_name}.{self.settings.dataset.id}"

    @property
    def flow_job(self) -> str:
        return self.job_prefix

    @contextmanager
    def stage(self, name: str, inputs: list[LineageDataset]) -> Iterator[StageOutputs]:
        """Bracket one stage with lineage events; failures are recorded, then re-raised unchanged."""
        job = f"{self.job_prefix}.{name}"
        run_id = new_run_id()
        parent = (self.flow_job, self.run_id)
        outputs = StageOutputs()
        # The marker names the stage run before its START goes out: a crash leaves no START it cannot close.
        self._mark_stage(name, run_id, job)
        self.lineage.start(job, run_id, inputs=inputs, parent=parent)
        started = time.perf_counter()
        try:
            yield outputs
        except BaseException as error:
            self.lineage.fail(job, run_id, str(error) or type(error).__name__, inputs=inputs, parent=parent)
            self._mark_stage(name, run_id, None)
            raise
        self.lineage.complete(
            job,
            run_id,
            inputs=outputs.inputs if outputs.inputs is not None else inputs,
            outputs=outputs.datasets,
            parent=parent,
            run_facets=outputs.run_facets,
        )
        self._mark_stage(name, run_id, None)
        logger.debug("stage %s took %.1fs", name, time.perf_counter() - started)

    def rows_dataset(self, name: str, row_count: int) -> LineageDataset:
        """Rows that live only in memory between two stages (accepted rows, training rows) as a lineage dataset.

        They are named under the run folder in a namespace of their own, so no one mistakes them for files.
        """
        return LineageDataset(
            namespace=f"{self.settings.lineage.namespace}-rows",
            name=f"{self.run_dir}/{name}",
            row_count=row_count,
        )

    def begin(
        self,
        inputs: list[LineageDataset],
        run_facets: dict[str, RunFacet] | None = None,
        orchestrator_run_id: str | None = None,
    ) -> None:
        """The flow's own START event (stage events point at it as their parent), after the run marker is written.

        `orchestrator_run_id`: the Prefect flow run, which the next run marks crashed if this process dies."""
        self.marker = run_marker.new_marker(
            flow=self.flow_name,
            dataset=self.settings.dataset.id,
            model_name=self.settings.registry.model_name,
            config=str(self.config_path),
            config_sha256=settings_hash(self.settings),
            run_dir=str(self.run_dir),
            lineage_namespace=self.settings.lineage.namespace,
            lineage_url=self.settings.lineage.url,
            flow_job=self.flow_job,
            lineage_run_id=self.run_id,
            orchestrator_run_id=orchestrator_run_id,
        )
        run_marker.write_marker(self.home, self.marker)
        self.lineage.start(self.flow_job, self.run_id, inputs=inputs, run_facets=run_facets)

    def finish(self, inputs: list[LineageDataset], outputs: list[LineageDataset]) -> None:
        self.lineage.complete(self.flow_job, self.run_id, inputs=inputs, outputs=outputs)
        self._mark_closed()

    def abort(self, error: BaseException) -> None:
        self.lineage.fail(self.flow_job, self.run_id, str(error) or type(error).__name__)
        self._mark_closed()

    def close_marker(self) -> None:
        """summary.json is written: the run needs no repair, its marker goes."""
        if self.marker is not None:
            run_marker.remove_marker(self.home, self.marker)

    def _mark_stage(self, name: str, run_id: str, job: str | None) -> None:
        """Record that a stage run started (`job` given) or ended (`job` None)."""
        if self.marker is None:
            return
        with run_marker.marker_lock:
            if job is not None:
                self.marker.open_stages[run_id] = job
                self.marker.last_stage = name
            else:
                self.marker.open_stages.pop(run_id, None)
            run_marker.write_marker(self.home, self.marker)

    def _mark_closed(self) -> None:
        if self.marker is not None:
            self.marker.flow_closed = True
            run_marker.write_marker(self.home, self.marker)

    def record_minimisation(
        self,
        kept: list[str],
        undeclared: tuple[str, ...],
        dropped: tuple[str, ...],
        hashed: tuple[str, ...],
        masked_lines: int,
    ) -> None:
        """Remember what the guard let through and dropped (names only); several inputs add up."""
        before = self.columns or ColumnFigures(
            kept=[], undeclared_dropped=[], pii_dropped=[], pii_hashed=[], malformed_lines_masked=0
        )

        def union(old: list[str], new: list[str] | tuple[str, ...]) -> list[str]:
            return list(dict.fromkeys([*old, *new]))

        self.columns = ColumnFigures(
            kept=union(before.kept, kept),
            undeclared_dropped=union(before.undeclared_dropped, undeclared),
            pii_dropped=union(before.pii_dropped, dropped),
            pii_hashed=union(before.pii_hashed, hashed),
            malformed_lines_masked=before.malformed_lines_masked + masked_lines,
        )

    def header(self) -> RunHeader:
        return RunHeader(
            flow=self.flow_name,
            config=str(self.config_path),
            config_sha256=settings_hash(self.settings),
            run_dir=str(self.run_dir),
        )

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def open_run(flow_name: str, settings: Settings, config_path: Path, run_dir: Path, home: Path) -> RunContext:
    """A run context whose lineage goes to `<home>/lineage/events.jsonl` unless an HTTP endpoint is set."""
    emitter = LineageEmitter(
        namespace=settings.lineage.namespace,
        log_path=home / "lineage" / "events.jsonl",
        url=settings.lineage.url,
        spool_dir=home / "lineage" / "spool",
    )
    return RunContext(
        flow_name=flow_name,
        settings=settings,
        config_path=config_path,
        run_dir=run_dir,
        home=home,
        lineage=emitter,
    )
