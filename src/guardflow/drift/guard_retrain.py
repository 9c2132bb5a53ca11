"""The storm guard of drift retrains: at most one in flight per dataset, and none inside the cooldown window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

Action = Literal["started", "cooldown", "in_flight"]

# A retrain that has not finished after this long is taken for crashed: it no longer blocks new ones.
STALE_AFTER = timedelta(hours=6)


@dataclass(frozen=True)
class RetrainDecision:
    """What a drift trigger does: start a retrain, or be recorded and not acted on (with the reason)."""

    action: Action
    reason: str

    @property
    def acted_on(self) -> bool:
        return self.action == "started"


def decide_retrain(
    now: datetime, last_start: datetime | None, in_flight: bool, cooldown: timedelta
) -> RetrainDecision:
    """Start unless a retrain of the dataset is still running or started less than `cooldown` ago."""
    if in_flight and last_start is not None and now - last_start < STALE_AFTER:
        return RetrainDecision("in_flight", f"a retrain started at {last_start} is still running")
    if last_start is not None and now - last_start < cooldown:
        until = last_start + cooldown
        reason = (
            f"inside the cooldown of the retrain started at {last_start:%H:%M:%S} (until {until:%H:%M:%S})"
        )
        return RetrainDecision("cooldown", reason)
    return RetrainDecision("started", "no retrain in flight and the cooldown has passed")
