"""Champion and challenger: who serves, how a version gets there, and the way back.

A candidate that passes the gate becomes `challenger`; it becomes `champion` at once, or, when the policy
requires approval, once a named person approves it. `promote` and `rollback` move `champion` by hand, with a
reason. MLflow keeps each alias on exactly one version; every move is appended to the champion history (in the
tracking store, experiment `guardflow-registry-history`), which is also what `rollback` follows.
"""

from __future__ import annotations

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from guardflow.errors import RegistryError
from guardflow.io.history import HISTORY_EXPERIMENT, HISTORY_PREFIX, ChampionMove, champion_history
from guardflow.io.records import append_record
from guardflow.io.registry import CHAMPION_ALIAS, aliases

CHALLENGER_ALIAS = "challenger"
GATE_TAG = "guardflow.gate"


def _gate_verdict(client: MlflowClient, name: str, version: str) -> str:
    try:
        return client.get_model_version(name, version).tags.get(GATE_TAG, "unknown")
    except MlflowException:
        raise RegistryError(f"model {name!r} has no version {version}") from None


def _move_champion(
    client: MlflowClient, name: str, version: str, action: str, reason: str, by: str
) -> ChampionMove:
    previous = aliases(name).get(CHAMPION_ALIAS, "")
    if previous == version:
        raise RegistryError(f"version {version} of {name!r} is already the champion")
    client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
    if aliases(name).get(CHALLENGER_ALIAS) == version:
        client.delete_registered_model_alias(name, CHALLENGER_ALIAS)
    fields = {
        "model": name,
        "action": action,
        "version": version,
        "previous": previous,
        "reason": reason,
        "by": by,
    }
    append_record(HISTORY_EXPERIMENT, HISTORY_PREFIX, f"{name}-{action}-v{version}", fields)
    return champion_history(name)[-1]


def accept_candidate(name: str, version: str, approval_required: bool) -> str:
    """After the gate passed: `challenger`, then `champion` unless a person must approve. Returns the alias."""
    client = MlflowClient()
    client.set_registered_model_alias(name, CHALLENGER_ALIAS, version)
    if approval_required:
        return CHALLENGER_ALIAS
    _move_champion(client, name, version, "gate", "passed the gate", "guardflow")
    return CHAMPION_ALIAS


def promote(name: str, version: str, reason: str, by: str) -> ChampionMove:
    """Make a version champion by hand. A version the gate rejected cannot be promoted."""
    client = MlflowClient()
    verdict = _gate_verdict(client, name, version)
    if verdict != "passed":
        raise RegistryError(
            f"version {version} of {name!r} did not pass the gate (gate: {verdict}); not promoted"
        )
    return _move_champion(client, name, version, "promote", reason, by)


def approve(name: str, version: str, by: str) -> ChampionMove:
    """A person approves the waiting challenger: it becomes champion."""
    client = MlflowClient()
    if aliases(name).get(CHALLENGER_ALIAS) != version:
        raise RegistryError(f"version {version} of {name!r} is not the challenger awaiting approval")
    return _move_champion(client, name, version, "approve", f"approved by {by}", by)


def rollback(name: str, reason: str, by: str) -> ChampionMove:
    """Move `champion` back to the version that held it before the current one."""
    client = MlflowClient()
    current = aliases(name).get(CHAMPION_ALIAS)
    if current is None:
        raise RegistryError(f"{name!r} has no champion to roll back")
    # The move that made the current champion by decision (a rollback onto it does not count), so that
    # rolling back twice goes two champions back rather than undoing the first rollback.
    moves = [
        move
        for move in champion_history(name)
        if move.version == current and move.previous and move.action != "rollback"
    ]
    if not moves:
        raise RegistryError(f"version {current} of {name!r} has no previous champion to roll back to")
    return _move_champion(client, name, moves[-1].previous, "rollback", reason, by)
