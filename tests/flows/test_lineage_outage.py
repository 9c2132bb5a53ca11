"""A lineage endpoint that goes down in the middle of a safety-train run: the run goes on, events wait in the
spool, and every event arrives exactly once, in order, once the endpoint is back."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.safety_train import safety_train
from guardflow.settings import guardflow_home
from tests.conftest import WIRING_POISONING, write_adult_config
from tests.flows.conftest import LENIENT_GATE
from tests.lineage_validation import event_problems
from tests.net import LineageReceiver, free_port

EVENTS_BEFORE_OUTAGE = 4
OUTAGE_SECONDS = 3.0
# The answer to the last event before the outage is held back this long (under the client's 2 s read
# timeout), so the receiver is already down when the client sends the next one.
HOLD_LAST_ANSWER_SECONDS = 1.0


@pytest.fixture
def flaky_receiver() -> Iterator[LineageReceiver]:
    """A receiver that stops itself after a few events and comes back a few seconds later."""
    receiver = LineageReceiver(port=free_port())
    restarted = threading.Event()
    receiver.outages = []  # type: ignore[attr-defined]

    def outage() -> None:
        receiver.stop()
        with receiver.lock:
            receiver.outages.append(len(receiver.deliveries))  # type: ignore[attr-defined]
        threading.Timer(OUTAGE_SECONDS, lambda: (receiver.start(), restarted.set())).start()

    def answer(index: int) -> tuple[int, float]:
        if index == EVENTS_BEFORE_OUTAGE - 1:
            threading.Timer(0.0, outage).start()
            return 200, HOLD_LAST_ANSWER_SECONDS
        return 200, 0.0

    receiver.answer = answer
    receiver.start()
    try:
        yield receiver
    finally:
        restarted.wait(timeout=OUTAGE_SECONDS + 10)
        receiver.stop()


def test_every_event_arrives_once_and_in_order_across_an_outage(
    tmp_path: Path, adult_slice: Path, flaky_receiver: LineageReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given lineage sent over HTTP to a receiver that goes down after 4 events
    monkeypatch.delenv("OPENLINEAGE_URL", raising=False)
    config = write_adult_config(
        tmp_path,
        poisoning=WIRING_POISONING,
        registry={"model_name": "adult-outage"},
        lineage={"url": flaky_receiver.url},
        gate=LENIENT_GATE,
    )
    # when a whole safety-train run happens
    summary = safety_train(str(config), str(tmp_path / "run"), str(adult_slice))
    # then the endpoint really was down mid-run (it went down after 4 events and the run sent more)
    assert flaky_receiver.outages == [EVENTS_BEFORE_OUTAGE], "the receiver must have stopped once, mid-run"  # type: ignore[attr-defined]
    # and the run finished, and every event it emitted arrived exactly once, in emission order
    assert summary.status == "promoted", f"the outage must not change the run's outcome: {summary.error}"
    assert summary.lineage is not None
    own = [
        body for body in flaky_receiver.accepted
        if body["run"]["runId"] == summary.lineage.run_id
        or body["run"].get("facets", {}).get("parent", {}).get("run", {}).get("runId") == summary.lineage.run_id
    ]  # fmt: skip
    keys = [(body["run"]["runId"], body["eventType"]) for body in own]
    assert len(keys) == len(set(keys)), "no event may arrive twice"
    assert len(own) == summary.lineage.events, (
        f"all {summary.lineage.events} events must arrive, got {len(own)}"
    )
    assert own[0]["eventType"] == "START" and own[0]["job"]["name"] == "safety-train.adult", (
        "the flow START first"
    )
    assert own[-1]["eventType"] == "COMPLETE" and own[-1]["job"]["name"] == "safety-train.adult", (
        "its end last"
    )
    times = [body["eventTime"] for body in own]
    assert times == sorted(times), "events arrive in the order they were emitted"
    assert all(not event_problems(body) for body in own), "every delivered event follows the spec"
    spool = guardflow_home() / "lineage" / "spool"
    assert not [path for path in spool.glob("*.json")], "nothing is left in the spool"
