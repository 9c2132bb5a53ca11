"""The `guardflow` command: `main(argv) -> int`, with one exit code per kind of outcome.

0 done (promoted, scanned, or no drift / retrain done); 3 candidate rejected by the gate; 2 bad input or
configuration (one line on stderr, no traceback); 1 internal failure.
"""

from __future__ import annotations

import argparse
import atexit
import faulthandler
import getpass
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from guardflow import cli_records, cli_registry, cli_servers
from guardflow.errors import (
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_REJECTED,
    ConfigError,
    GuardflowError,
)
from guardflow.runtime import freeze_loaded_objects
from guardflow.settings import guardflow_home, load_settings, settings_json_schema

if TYPE_CHECKING:
    from guardflow.run.summary import RunSummary


def _exit_code(status: str) -> int:
    return EXIT_REJECTED if status in ("rejected", "drift_rejected") else EXIT_OK


def _train(args: argparse.Namespace) -> int:
    from guardflow.settings import require_reviewed

    require_reviewed(load_settings(args.config), args.config)
    cli_servers.require_shared_ledger()
    return _run_data_flow(args, "flows.safety_train:safety_train", needs_test_split=True, force=args.force)


def _validate(args: argparse.Namespace) -> int:
    return _run_data_flow(args, "flows.data_contract:data_contract", chunked=args.chunked)


def _scan(args: argparse.Namespace) -> int:
    return _run_data_flow(args, "flows.poisoning_scan:poisoning_scan")


def _run_data_flow(
    args: argparse.Namespace, flow: str, needs_test_split: bool = False, **options: object
) -> int:
    """Run `flow` ("module:function") over one data file (the configured training file, or --data).

    The config and files are checked first, and the flow's module is imported only after `cli_servers.prepare`:
    importing it imports Prefect, which must see the quiet, offline environment.
    """
    settings = load_settings(args.config)  # fail fast, before any server starts
    test_files = [settings.dataset.test.path] if needs_test_split else []
    cli_servers.check_files(args.data or settings.dataset.train.path, *test_files, settings.contract.suite)
    cli_servers.prepare()
    api_ready = cli_servers.start_prefect_api(flow.split(":")[1].replace("_", "-"), settings.dataset.id)
    import importlib

    from guardflow.run.format_summary import format_summary

    module_name, function_name = flow.split(":")
    run: Callable[..., RunSummary] = getattr(importlib.import_module(module_name), function_name)
    api_ready()
    freeze_loaded_objects()
    summary = run(
        config_path=str(args.config),
        run_dir=str(args.run_dir) if args.run_dir else None,
        data_path=str(args.data) if args.data else None,
        **options,
    )
    print(format_summary(summary))
    return _exit_code(summary.status)


def _drift(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    cli_servers.check_files(args.batch, settings.dataset.train.path, settings.contract.suite)
    cli_servers.require_shared_ledger()
    cli_servers.prepare()
    api_ready = cli_servers.start_prefect_api("drift-check", settings.dataset.id)
    from flows.drift_check import drift_check
    from guardflow.run.format_summary import format_summary

    api_ready()
    freeze_loaded_objects()
    summary = drift_check(
        config_path=str(args.config),
        batch_path=str(args.batch),
        run_dir=str(args.run_dir) if args.run_dir else None,
    )
    print(format_summary(summary))
    return _exit_code(summary.status)


def _recover(_: argparse.Namespace) -> int:
    cli_servers.prepare()
    from tasks.recover_runs import recover_runs

    repaired = recover_runs(guardflow_home(), recovered_by="guardflow recover")
    print(f"recovered {len(repaired)} crashed runs under {guardflow_home()}")
    return EXIT_OK


def _contract_draft(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    from guardflow.run.onboarding import draft_suite, write_new_file

    if args.out.exists() and not args.force:
        raise ConfigError(f"{args.out} exists; pass --force to overwrite it (a reviewed suite would be lost)")
    outcome = draft_suite(settings, args.data, args.name or args.out.stem)
    drafted = outcome.drafted
    write_new_file(args.out, drafted.to_json(), force=True)
    for warning in outcome.warnings:
        print(f"guardflow: warning: {warning}", file=sys.stderr)
    print(
        f"drafted {drafted.expectation_count} expectations from {outcome.source['rows']} rows of "
        f"{outcome.source['file']} into {args.out}; review it before use ({len(drafted.notes)} notes for the "
        f"reviewer); undeclared columns left out: {list(outcome.undeclared) or 'none'}"
    )
    for note in drafted.notes:
        print(f"  - {note}")
    return EXIT_OK


def _init(args: argparse.Namespace) -> int:
    from guardflow.run.onboarding import init_config

    drafted = init_config(
        args.data, args.label, args.sensitive, args.out, args.test, args.encoding, force=args.force
    )
    print(f"wrote {args.out} for review (dataset.reviewed: false):")
    for note in drafted.notes:
        print(f"  - {note}")
    print(
        f"next: guardflow contract draft --config {args.out} --out {args.out.with_suffix('.contract.json')}"
    )
    return EXIT_OK


def _config_schema(_: argparse.Namespace) -> int:
    print(settings_json_schema())
    return EXIT_OK


def _add_data_flow_arguments(command: argparse.ArgumentParser, data_help: str) -> None:
    """--config, --data and --run-dir: what every flow over one data file takes (see `_run_data_flow`)."""
    command.add_argument("--config", type=Path, required=True, help="dataset and policy YAML")
    command.add_argument("--data", type=Path, help=data_help)
    command.add_argument(
        "--run-dir", type=Path, help="run folder (default: a new one under $GUARDFLOW_HOME/runs)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="guardflow", description="A batch MLOps pipeline that will not ship an unsafe model."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal failures")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train", help="run the safety-train flow: validate, scan, train with DP, gate"
    )
    _add_data_flow_arguments(train, data_help="train on this file instead of the configured one")
    train.add_argument(
        "--force",
        action="store_true",
        help="train even when a registered version has the same data, config and code",
    )
    train.set_defaults(handler=_train)

    validate = commands.add_parser(
        "validate",
        help="run the data contract alone: quarantine bad rows, stop bad batches, write the record",
    )
    _add_data_flow_arguments(validate, data_help="check this file instead of the configured training file")
    validate.add_argument(
        "--chunked",
        action="store_true",
        help="validate in chunks, in bounded memory (files too large to hold)",
    )
    validate.set_defaults(handler=_validate)

    scan = commands.add_parser(
        "scan", help="run the poisoning-scan flow alone: validate, scan, quarantine flagged rows"
    )
    _add_data_flow_arguments(scan, data_help="scan this file instead of the configured one")
    scan.set_defaults(handler=_scan)

    drift = commands.add_parser(
        "drift", help="run the drift-check flow on a new batch; retrain when it drifted"
    )
    drift.add_argument("--config", type=Path, required=True, help="dataset and policy YAML")
    drift.add_argument("--batch", type=Path, required=True, help="the new batch (same format as the data)")
    drift.add_argument(
        "--run-dir", type=Path, help="run folder (default: a new one under $GUARDFLOW_HOME/runs)"
    )
    drift.set_defaults(handler=_drift)

    deploy = commands.add_parser(
        "deploy", help="register safety-train, drift-check and drift-retrain deployments on a Prefect server"
    )
    deploy.add_argument(
        "--config", type=Path, required=True, action="append", help="dataset and policy YAML (repeatable)"
    )
    deploy.set_defaults(handler=cli_servers.deploy)

    worker = commands.add_parser("worker", help="run a Prefect process worker for the deployments")
    which = worker.add_mutually_exclusive_group()
    which.add_argument(
        "--pool", help="the work pool (default: the config's deploy.work_pool, else guardflow)"
    )
    which.add_argument("--config", type=Path, help="take the work pool from this config")
    worker.add_argument("--limit", type=int, help="at most this many flow runs at once on this machine")
    worker.set_defaults(handler=cli_servers.worker)

    serve = commands.add_parser(
        "serve", help="start the Prefect server (beyond loopback only with PREFECT_SERVER_API_AUTH_STRING)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=4200, help="port (default: 4200)")
    serve.set_defaults(handler=cli_servers.serve)

    ui = commands.add_parser(
        "ui", help="start the MLflow tracking server and UI (beyond loopback only with basic auth)"
    )
    ui.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    ui.add_argument("--port", type=int, default=5000, help="port (default: 5000)")
    ui.add_argument(
        "--backend-store-uri",
        help="runs and registry (default: the home's SQLite; postgresql://... for a team)",
    )
    ui.add_argument("--artifacts-destination", help="where served artifacts live (default: under the home)")
    ui.add_argument("--workers", type=int, default=2, help="server processes (default: 2)")
    ui.set_defaults(handler=cli_servers.ui)

    budget = commands.add_parser("budget", help="print the privacy-budget ledger of the configured dataset")
    budget.add_argument("--config", type=Path, required=True, help="dataset and policy YAML")
    budget.add_argument("--verbose", action="store_true", help="list every recorded spend")
    budget.set_defaults(handler=cli_records.budget)

    recover = commands.add_parser(
        "recover", help="repair the runs of this home whose process died (every flow also does it on start)"
    )
    recover.set_defaults(handler=_recover)

    lineage = commands.add_parser("lineage", help="OpenLineage events: deliver the spool, show the graph")
    lineage_commands = lineage.add_subparsers(dest="lineage_command", required=True, metavar="ACTION")
    flush = lineage_commands.add_parser("flush", help="deliver events spooled while the endpoint was down")
    flush.add_argument("--config", type=Path, required=True, help="dataset and policy YAML")
    flush.set_defaults(handler=cli_records.lineage_flush)
    show = lineage_commands.add_parser("show", help="draw the lineage graph in the terminal, and as HTML")
    show.add_argument("--config", type=Path, required=True, help="dataset and policy YAML (names the model)")
    focus = show.add_mutually_exclusive_group()
    focus.add_argument("--model-version", help="trace this registered model version back to its data")
    focus.add_argument("--dataset", type=Path, help="trace this data file forward to the models it fed")
    show.add_argument("--html", type=Path, help="also write a self-contained HTML page with the picture")
    show.set_defaults(handler=cli_records.lineage_show)

    promote = commands.add_parser("promote", help="make a version that passed the gate the champion")
    promote.add_argument("--config", type=Path, required=True, help="dataset and policy YAML")
    promote.add_argument("--version", type=int, required=True, help="the registered model version")
    promote.add_argument("--reason", required=True, help="why, recorded in the champion history")
    promote.add_argument("--by", default=getpass.getuser(), help="who (default: the current user)")
    promote.set_defaults(handler=cli_registry.promote)

    approve = commands.add_parser(
        "approve", help="approve the challenger awaiting approval: it becomes champion"
    )
    approve.add_argument("--config", type=Path, required=True, help="dataset and policy YAML")
    approve.add_argument("--version", type=int, required=True, help="the challenger's version")
    approve.add_argument("--by", required=True, help="who approves, recorded in the champion history")
    approve.set_defaults(handler=cli_registry.approve)

    rollback = commands.add_parser("rollback", help="move the champion back to the previous champion")
    rollback.add_argument("--config", type=Path, required=True, help="dataset and policy YAML")
    rollback.add_argument("--reason", required=True, help="why, recorded in the champion history")
    rollback.add_argument("--by", default=getpass.getuser(), help="who (default: the current user)")
    rollback.set_defaults(handler=cli_registry.rollback)

    history = commands.add_parser("history", help="print every change of champion, with reasons")
    history.add_argument("--config", type=Path, required=True, help="dataset and policy YAML")
    history.set_defaults(handler=cli_registry.history)

    contract = commands.add_parser("contract", help="data contracts: draft a suite from reference data")
    contract_commands = contract.add_subparsers(dest="contract_command", required=True, metavar="ACTION")
    draft = contract_commands.add_parser(
        "draft", help="draft a GX suite from reference data and the config's public bounds, for review"
    )
    draft.add_argument("--config", type=Path, required=True, help="dataset and policy YAML")
    draft.add_argument("--data", type=Path, help="reference data (default: the configured training file)")
    draft.add_argument("--out", type=Path, required=True, help="where to write the suite (JSON)")
    draft.add_argument("--name", help="the suite's name (default: the file name without .json)")
    draft.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    draft.set_defaults(handler=_contract_draft)

    init = commands.add_parser("init", help="draft a config for a new dataset, to review before training")
    init.add_argument(
        "--data", type=Path, required=True, help="the training file: CSV with a header, or Parquet"
    )
    init.add_argument("--label", required=True, help="the label column (two classes)")
    init.add_argument("--sensitive", nargs="*", default=[], help="sensitive attributes (fairness checks)")
    init.add_argument("--test", type=Path, help="a held-out file to judge models on (default: --data)")
    init.add_argument("--encoding", default="utf-8", help="the CSV's text encoding (e.g. latin-1, cp1252)")
    init.add_argument("--out", type=Path, required=True, help="where to write the config (YAML)")
    init.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    init.set_defaults(handler=_init)

    schema = commands.add_parser("config-schema", help="print the JSON schema of the configuration file")
    schema.set_defaults(handler=_config_schema)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler, `timeout`, `kill`), raised as an interrupt: the run stops as on Ctrl-C, its flow run
    and lineage closed and Prefect's ephemeral server stopped, instead of the process vanishing and leaving the
    server running."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code; never lets a traceback reach a user by accident."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except GuardflowError as error:
        print(f"guardflow: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Terminated:
        print("guardflow: terminated (SIGTERM)", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("guardflow: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            traceback.print_exc()
        print(f"guardflow: internal error: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_INTERNAL


def entrypoint() -> None:
    """Console-script entry point.

    Exits as the interpreter would, minus its last step: other threads are joined, the exit handlers run
    (Prefect's and MLflow's included) and the streams are flushed, and then the process ends without tearing
    down every module's objects one by one, which took 3-4 s after a run on Adult.
    """
    signal.signal(signal.SIGTERM, _terminate)
    # `kill -USR1 PID` prints every thread's stack to stderr: where a run that does not stop is waiting.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    code = main()
    threading._shutdown()  # type: ignore[attr-defined]  # what Py_FinalizeEx does first
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)
