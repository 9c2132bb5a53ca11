"""The champion history: every change of champion, with who and why, read without importing MLflow.

Written by `guardflow.io.promotion` (one record per move, in the tracking store's experiment
`guardflow-registry-history`); read here, so `guardflow history` prints it in a fraction of a second.
"""

from __future__ import annotations

from dataclasses import dataclass

from guardflow.io.records import read_records

HISTORY_EXPERIMENT = "guardflow-registry-history"
HISTORY_PREFIX = "guardflow.history."


@dataclass(frozen=True)
class ChampionMove:
    """One change of champion: from which version to which, why, and by whom."""

    model: str
    action: str
    version: str
    previous: str
    reason: str
    by: str
    recorded_at: str


def champion_history(name: str, store: str | None = None) -> list[ChampionMove]:
    """Every champion move of a model, oldest first; `store` as in `records.read_records`."""
    return [
        ChampionMove(
            model=record["model"],
            action=record["action"],
            version=record["version"],
            previous=record.get("previous", ""),
            reason=record.get("reason", ""),
            by=record.get("by", ""),
            recorded_at=record["recorded_at"],
        )
        for record in read_records(HISTORY_EXPERIMENT, HISTORY_PREFIX, {"model": name}, store)
    ]
