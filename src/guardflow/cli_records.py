"""The `guardflow` commands that read records: the privacy budget, and lineage (flush the spool, show the graph)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from guardflow.errors import EXIT_OK, ConfigError, DataError
from guardflow.runtime import prepare_environment
from guardflow.settings import guardflow_home, load_settings

if TYPE_CHECKING:
    from guardflow.privacy.privacy_budget import Spend


def budget(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    from guardflow.privacy.privacy_budget import summarize_budget

    spends = _recorded_spends(settings.dataset.id)
    lifetime = settings.privacy.lifetime_epsilon
    sources = list(dict.fromkeys([settings.dataset.train.sha256, *(spend.source_sha256 for spend in spends)]))
    print(f"privacy budget of dataset {settings.dataset.id}: lifetime epsilon {lifetime:g} per source file")
    print(f"{'data sha256':<16} {'runs':>4} {'spent':>8} {'remaining':>9}")
    for source in sources:
        budget = summarize_budget(settings.dataset.id, source, spends, lifetime)
        print(f"{source[:12] + '...':<16} {budget.runs:>4} {budget.spent:>8.3f} {budget.remaining:>9.3f}")
    if args.verbose:
        for spend in spends:
            print(
                f"  {spend.recorded_at}  {spend.purpose:<8} eps {spend.epsilon:.3f}  {spend.source_sha256[:12]}...  "
                f"{spend.state:<8}  {spend.run_dir}"
            )
    return EXIT_OK


def _recorded_spends(dataset_id: str) -> list[Spend]:
    """Every charge of a dataset in the ledger, read without importing MLflow (seconds) when it can be.

    MLflow is opened only to import the ledger an earlier version kept as MLflow runs, once per store; a
    home with no store yet has no charges, and this read-only command does not create one.
    """
    from guardflow.io.ledger import Ledger, ledger_url, open_ledger

    home = guardflow_home()
    url = ledger_url(home)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return []
    ledger = Ledger(url)
    if ledger.legacy_imported():
        return ledger.spends(dataset_id)
    # Quiet, offline defaults; before MLflow is imported.
    prepare_environment(home)
    from guardflow.io import registry

    registry.track_dataset(home, dataset_id)
    return open_ledger(home).spends(dataset_id)


def lineage_flush(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    from guardflow.io.lineage import DEFAULT_ENDPOINT, flush_spool

    url = settings.lineage.url or os.environ.get("OPENLINEAGE_URL")
    if not url:
        raise ConfigError("lineage flush needs an endpoint: set lineage.url in the config or OPENLINEAGE_URL")
    endpoint = os.environ.get("OPENLINEAGE_ENDPOINT", DEFAULT_ENDPOINT)
    delivered, remaining = flush_spool(guardflow_home() / "lineage" / "spool", url, endpoint)
    print(f"lineage: {delivered} spooled events delivered to {url}, {remaining} still waiting")
    if remaining:
        raise DataError(f"lineage endpoint {url} did not take {remaining} spooled events; try again later")
    return EXIT_OK


def lineage_show(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    from guardflow.lineage import view as lineage_view

    graph = lineage_view.build_graph(lineage_view.load_events(guardflow_home() / "lineage" / "events.jsonl"))
    if args.model_version is not None:
        graph = lineage_view.trace_model_version(graph, settings.registry.model_name, args.model_version)
    elif args.dataset is not None:
        graph = lineage_view.trace_dataset(graph, args.dataset)
    print(lineage_view.render_text(graph))
    if args.html is not None:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(lineage_view.render_html(graph, title=graph.title), encoding="utf-8")
        print(f"lineage page written to {args.html}")
    return EXIT_OK
