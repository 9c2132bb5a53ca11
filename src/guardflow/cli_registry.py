"""The registry commands of `guardflow`: promote, approve and roll back the champion, and its history."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from guardflow.errors import EXIT_OK
from guardflow.runtime import prepare_environment
from guardflow.settings import guardflow_home, load_settings

if TYPE_CHECKING:
    from guardflow.io.history import ChampionMove


def _open_registry(args: argparse.Namespace) -> str:
    """Validate the config, point MLflow at the embedded store, and return the registered model's name."""
    settings = load_settings(args.config)
    # Quiet, offline defaults; before MLflow is imported.
    prepare_environment(guardflow_home())
    from guardflow.io import registry

    registry.track_dataset(guardflow_home(), settings.dataset.id)
    return settings.registry.model_name


def _print_move(move: ChampionMove) -> None:
    previous = f"version {move.previous}" if move.previous else "no champion"
    print(
        f"{move.model}: champion is now version {move.version} (was {previous}); {move.action} by {move.by}: "
        f"{move.reason}"
    )


def promote(args: argparse.Namespace) -> int:
    from guardflow.io import promotion

    _print_move(promotion.promote(_open_registry(args), str(args.version), args.reason, args.by))
    return EXIT_OK


def approve(args: argparse.Namespace) -> int:
    from guardflow.io import promotion

    _print_move(promotion.approve(_open_registry(args), str(args.version), args.by))
    return EXIT_OK


def rollback(args: argparse.Namespace) -> int:
    from guardflow.io import promotion

    _print_move(promotion.rollback(_open_registry(args), args.reason, args.by))
    return EXIT_OK


def history(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    from guardflow.io.history import champion_history
    from guardflow.io.records import tracking_uri

    name = settings.registry.model_name
    moves = champion_history(name, store=tracking_uri(guardflow_home()))
    print(f"champion history of {name}: {len(moves)} moves")
    for move in moves:
        when, previous = move.recorded_at[:19], move.previous or "-"
        print(f"  {when}  {move.action:<8} {previous:>4} -> {move.version:<4} by {move.by}: {move.reason}")
    return EXIT_OK
