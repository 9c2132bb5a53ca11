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
from guardflow.io.registry import (
    CHAMPION_ALIAS,
    REGISTRATION_TAG,
    RUN_DIR_TAG,
    aliases,
    set_alias,
    versions_tagged,
)

CHALLENGER_ALIAS = "challenger"
GATE_TAG = "guardflow.gate"
PREVIOUS_CHAMPION_TAG = "guardflow.previous_champion"


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
    set_alias(name, CHAMPION_ALIAS, version)
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
    set_alias(name, CHALLENGER_ALIAS, version)
    if approval_required:
        return CHALLENGER_ALIAS
    # Written before the alias moves: if the run dies in between, its repair knows whom to give `champion` back.
    client.set_model_version_tag(name, version, PREVIOUS_CHAMPION_TAG, aliases(name).get(CHAMPION_ALIAS, ""))
    _move_champion(client, name, version, "gate", "passed the gate", "guardflow")
    return CHAMPION_ALIAS


def promote(name: str, version: str, reason: str, by: str) -> ChampionMove:
    """Make a version champion by hand. A version the gate rejected, or whose run crashed, cannot be promoted."""
    client = MlflowClient()
    if client.get_model_version(name, version).tags.get(REGISTRATION_TAG) == "crashed":
        raise RegistryError(
            f"version {version} of {name!r} was registered by a run that crashed; not promoted"
        )
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
    # The move that made the current champion by decision (a rollback or a crash repair onto it does not count),
    # so that rolling back twice goes two champions back rather than undoing the first rollback.
    moves = [
        move
        for move in champion_history(name)
        if move.version == current and move.previous and move.action not in ("rollback", "recover")
    ]
    if not moves:
        raise RegistryError(f"version {current} of {name!r} has no previous champion to roll back to")
    return _move_champion(client, name, moves[-1].previous, "rollback", reason, by)


def withdraw_crashed(name: str, run_dir: str) -> list[str]:
    """Tag `crashed` the versions a crashed run left half-registered (not `complete`) and take their aliases away.

    A champion alias it had already reached goes back to the champion before it (recorded in the history), or
    is removed when there was none. Returns the versions withdrawn."""
    client = MlflowClient()
    withdrawn: list[str] = []
    for found in versions_tagged(name, RUN_DIR_TAG, run_dir):
        version = str(found.version)
        if found.tags.get(REGISTRATION_TAG) == "complete":
            continue
        client.set_model_version_tag(name, version, REGISTRATION_TAG, "crashed")
        current = aliases(name)
        if current.get(CHALLENGER_ALIAS) == version:
            client.delete_registered_model_alias(name, CHALLENGER_ALIAS)
        if current.get(CHAMPION_ALIAS) == version:
            _restore_champion(client, name, version, found.tags.get(PREVIOUS_CHAMPION_TAG))
        withdrawn.append(version)
    return withdrawn


def _restore_champion(client: MlflowClient, name: str, crashed: str, previous: str | None) -> None:
    """Give `champion` back to the version before `crashed` (its tag, else the history), or remove it."""
    if previous is None:
        moves = [
            move for move in champion_history(name) if move.version == crashed and move.action != "rollback"
        ]
        previous = moves[-1].previous if moves else ""
    if not previous:
        client.delete_registered_model_alias(name, CHAMPION_ALIAS)
        return
    set_alias(name, CHAMPION_ALIAS, previous)
    fields = {
        "model": name,
        "action": "recover",
        "version": previous,
        "previous": crashed,
        "reason": f"version {crashed} was registered by a run that crashed",
        "by": "guardflow",
    }
    append_record(HISTORY_EXPERIMENT, HISTORY_PREFIX, f"{name}-recover-v{previous}", fields)
