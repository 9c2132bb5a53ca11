"""Lineage delivery over HTTP: events spool while the endpoint is down and arrive once, in order, when it returns.

The tests talk to a real HTTP receiver on loopback (stdlib `http.server` in a thread) that they stop, restart
and shut down themselves; nothing leaves the machine.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from guardflow.io.lineage import LineageEmitter, file_dataset, flush_spool, new_run_id
from tests.lineage_validation import event_problems
from tests.net import LineageReceiver, free_port

NAMESPACE = "guardflow-test"
FLOW_JOB = "train_pipeline"
TASK_JOB = "train_pipeline.validate_contract"


class FakeClock:
    """A monotonic clock the test moves by hand, so the pause after a failure needs no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def isolated_openlineage_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OPENLINEAGE_* variable of the developer's changes where events go or how they are sent."""
    for key in ("OPENLINEAGE_URL", "OPENLINEAGE_ENDPOINT", "OPENLINEAGE_API_KEY", "OPENLINEAGE_DISABLED"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def receiver() -> Iterator[LineageReceiver]:
    """A receiver on a free loopback port, up at the start of the test and stopped at its end, whatever happens."""
    server = LineageReceiver(port=free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _key(event: dict[str, Any]) -> tuple[str, str, str]:
    return event["run"]["runId"], event["eventType"], event["job"]["name"]


def _spooled_files(spool_dir: Path) -> list[str]:
    return sorted(path.name for path in spool_dir.glob("*")) if spool_dir.exists() else []


def _emit_events(emitter: LineageEmitter, count: int, data_dir: Path) -> list[tuple[str, str, str]]:
    """`count` task runs' events in the order START, COMPLETE, START, ...; returns their (runId, type, job)."""
    batch = file_dataset(data_dir / "batch.csv", columns=[("age", "int")], row_count=120)
    emitted = []
    run_id = new_run_id()
    for index in range(count):
        if index % 2 == 0:
            run_id = new_run_id()
            emitter.start(TASK_JOB, run_id, inputs=[batch])
            emitted.append((run_id, "START", TASK_JOB))
        else:
            emitter.complete(TASK_JOB, run_id, inputs=[batch], outputs=[batch])
            emitted.append((run_id, "COMPLETE", TASK_JOB))
    return emitted


def test_events_spooled_while_the_endpoint_is_down_arrive_once_and_in_order(
    receiver: LineageReceiver, tmp_path: Path
) -> None:
    # given an emitter with a spool, sending to a receiver that is up
    spool_dir = tmp_path / "spool"
    clock = FakeClock()
    emitter = LineageEmitter(
        NAMESPACE, tmp_path / "lineage.jsonl", url=receiver.url, spool_dir=spool_dir, clock=clock
    )
    flow_run = new_run_id()
    emitter.start(FLOW_JOB, flow_run)
    emitted = [(flow_run, "START", FLOW_JOB), *_emit_events(emitter, 2, tmp_path)]
    assert len(receiver.accepted) == 3, (
        f"an up receiver should get each event at once: {len(receiver.accepted)}"
    )

    # when the receiver goes down and the run goes on emitting
    receiver.stop()
    emitted += _emit_events(emitter, 4, tmp_path)

    # then nothing raised, nothing arrived, and the four events wait in the spool, whole and in order
    assert len(receiver.deliveries) == 3, f"a down receiver cannot get events: {len(receiver.deliveries)}"
    assert emitter.events_spooled == 4, f"four events should be spooled, got {emitter.events_spooled}"
    assert emitter.events_failed == 0, f"a spooled event is not a failed one, got {emitter.events_failed}"
    waiting = [path for path in _spooled_files(spool_dir) if path.endswith(".json")]
    assert len(waiting) == 4, f"the spool should hold four event files: {_spooled_files(spool_dir)}"
    assert not [name for name in _spooled_files(spool_dir) if name.endswith(".tmp")], (
        "no temp file may remain"
    )
    assert "4 waiting" in emitter.describe(), f"describe() should count waiting events: {emitter.describe()}"

    # when the receiver comes back after the pause, and the run emits its last event
    receiver.start()
    clock.advance(31)
    emitter.complete(FLOW_JOB, flow_run)
    emitted.append((flow_run, "COMPLETE", FLOW_JOB))
    delivered_by_flush = emitter.flush()

    # then every event arrived exactly once, in emission order, valid, and the spool is empty
    arrived = [_key(event) for event in receiver.accepted]
    assert arrived == emitted, f"events should arrive once each, in order:\n{arrived}\n!=\n{emitted}"
    assert len(receiver.deliveries) == len(emitted), (
        f"no event should be sent twice: {len(receiver.deliveries)}"
    )
    assert delivered_by_flush == 0, (
        f"the last emit should have drained the spool, flush sent {delivered_by_flush}"
    )
    assert _spooled_files(spool_dir) == [".lock"], f"the spool should be empty: {_spooled_files(spool_dir)}"
    assert emitter.events_emitted == len(emitted), (
        f"all events should count as emitted: {emitter.events_emitted}"
    )
    times = [event["eventTime"] for event in receiver.accepted]
    assert times == sorted(times), f"event times should rise in arrival order: {times}"
    content_types = {delivery.content_type for delivery in receiver.deliveries}
    assert content_types == {"application/json"}, f"events should be sent as JSON: {content_types}"
    for index, event in enumerate(receiver.accepted):
        assert event_problems(event) == [], (
            f"delivered event {index} breaks the spec: {event_problems(event)}"
        )


def test_after_a_failure_events_only_spool_until_the_pause_ends_but_flush_tries_at_once(
    receiver: LineageReceiver, tmp_path: Path
) -> None:
    # given an emitter whose first event failed because the receiver was down
    spool_dir = tmp_path / "spool"
    clock = FakeClock()
    emitter = LineageEmitter(
        NAMESPACE, tmp_path / "lineage.jsonl", url=receiver.url, spool_dir=spool_dir, clock=clock
    )
    receiver.stop()
    emitted = _emit_events(emitter, 1, tmp_path)

    # when the receiver is back within the pause and the run emits again
    receiver.start()
    clock.advance(5)
    emitted += _emit_events(emitter, 1, tmp_path)

    # then the endpoint was not tried again: the event joined the spool behind the first
    assert receiver.deliveries == [], (
        f"no attempt should be made during the pause: {len(receiver.deliveries)}"
    )
    assert emitter.events_spooled == 2, f"both events should be spooled, got {emitter.events_spooled}"

    # when the run flushes, still within the pause, and then emits once more
    flushed = emitter.flush()
    emitted += _emit_events(emitter, 1, tmp_path)

    # then flush delivered both at once, in order, and the next event went straight through
    assert flushed == 2, f"flush should deliver the two spooled events despite the pause, sent {flushed}"
    arrived = [_key(event) for event in receiver.accepted]
    assert arrived == emitted, f"events out of order or missing:\n{arrived}\n!=\n{emitted}"
    assert emitter.events_spooled == 2, (
        f"the event after the flush should not spool: {emitter.events_spooled}"
    )
    assert emitter.events_waiting == 0, f"nothing should wait after delivery: {emitter.events_waiting}"


def test_flush_spool_delivers_what_a_dead_run_left_behind(receiver: LineageReceiver, tmp_path: Path) -> None:
    # given a run that spooled its events while the receiver was down, then ended without delivering them
    spool_dir = tmp_path / "spool"
    receiver.stop()
    emitter = LineageEmitter(NAMESPACE, tmp_path / "lineage.jsonl", url=receiver.url, spool_dir=spool_dir)
    emitted = _emit_events(emitter, 3, tmp_path)
    assert emitter.events_waiting == 3, f"three events should wait in the spool: {emitter.events_waiting}"
    del emitter

    # when the receiver is back and another process flushes the spool without an emitter
    receiver.start()
    delivered, remaining = flush_spool(spool_dir, receiver.url)

    # then all three arrived once, in order, and valid, and nothing waits
    assert (delivered, remaining) == (3, 0), f"flush_spool should deliver all 3, got {(delivered, remaining)}"
    arrived = [_key(event) for event in receiver.accepted]
    assert arrived == emitted, f"events out of order or missing:\n{arrived}\n!=\n{emitted}"
    assert _spooled_files(spool_dir) == [".lock"], f"the spool should be empty: {_spooled_files(spool_dir)}"
    for index, event in enumerate(receiver.accepted):
        assert event_problems(event) == [], (
            f"delivered event {index} breaks the spec: {event_problems(event)}"
        )


def test_a_flush_that_fails_midway_keeps_the_rest_and_a_later_flush_sends_them_once(
    receiver: LineageReceiver, tmp_path: Path
) -> None:
    # given five spooled events, and a receiver that acknowledges two, then answers 500
    spool_dir = tmp_path / "spool"
    receiver.stop()
    emitter = LineageEmitter(NAMESPACE, tmp_path / "lineage.jsonl", url=receiver.url, spool_dir=spool_dir)
    emitted = _emit_events(emitter, 5, tmp_path)
    receiver.answer = lambda index: (200, 0.0) if index < 2 else (500, 0.0)
    receiver.start()

    # when a flush runs into the 500
    first = flush_spool(spool_dir, receiver.url)

    # then two went out, the failed one and those after it still wait, and nothing more was attempted
    assert first == (2, 3), f"the first flush should deliver 2 and keep 3, got {first}"
    assert len(receiver.deliveries) == 3, (
        f"a flush should stop at its first failure: {len(receiver.deliveries)}"
    )
    assert emitter.events_waiting == 3, f"three events should still wait: {emitter.events_waiting}"

    # when the receiver recovers and the spool is flushed again
    receiver.answer = lambda index: (200, 0.0)
    second = flush_spool(spool_dir, receiver.url)

    # then the other three arrived, and each of the five was acknowledged exactly once, in order
    assert second == (3, 0), f"the second flush should deliver the last 3, got {second}"
    arrived = [_key(event) for event in receiver.accepted]
    assert arrived == emitted, f"each event should be acknowledged once, in order:\n{arrived}\n!=\n{emitted}"


def test_an_event_the_receiver_refuses_is_set_aside_and_does_not_block_the_rest(
    receiver: LineageReceiver, tmp_path: Path
) -> None:
    # given three spooled events, and a receiver that answers 400 to the second
    spool_dir = tmp_path / "spool"
    receiver.stop()
    emitter = LineageEmitter(NAMESPACE, tmp_path / "lineage.jsonl", url=receiver.url, spool_dir=spool_dir)
    emitted = _emit_events(emitter, 3, tmp_path)
    receiver.answer = lambda index: (400, 0.0) if index == 1 else (200, 0.0)
    receiver.start()

    # when the spool is flushed
    delivered, remaining = flush_spool(spool_dir, receiver.url)

    # then the first and third arrived, the second waits in rejected/ for a human, and nothing blocks
    assert (delivered, remaining) == (2, 0), f"two delivered and none waiting, got {(delivered, remaining)}"
    arrived = [_key(event) for event in receiver.accepted]
    assert arrived == [emitted[0], emitted[2]], f"the refused event should be skipped: {arrived}"
    rejected = sorted((spool_dir / "rejected").glob("*.json"))
    assert len(rejected) == 1, f"the refused event should be kept in rejected/: {rejected}"
    assert _key(json.loads(rejected[0].read_text())) == emitted[1], "rejected/ should hold the refused event"


def test_a_slow_endpoint_costs_one_timeout_and_dedupes_by_event_identity(
    receiver: LineageReceiver, tmp_path: Path
) -> None:
    # given a receiver that takes longer than the emitter's timeout to answer its first request
    spool_dir = tmp_path / "spool"
    receiver.answer = lambda index: (200, 0.7 if index == 0 else 0.0)
    emitter = LineageEmitter(
        NAMESPACE, tmp_path / "lineage.jsonl", url=receiver.url, spool_dir=spool_dir, timeout=0.3
    )

    # when the run emits two events (the second during the pause the timeout started), then flushes
    emitted = _emit_events(emitter, 2, tmp_path)
    spooled = emitter.events_spooled
    emitter.flush()

    # then both events were spooled, not raised, and the receiver holds each of them; the first one twice,
    # because the receiver stored it before the emitter gave up on the answer (the documented at-least-once edge)
    assert spooled == 2, f"a timed-out event and the one after it should spool, got {spooled}"
    arrived = [_key(event) for event in receiver.accepted]
    identities = list(
        dict.fromkeys(
            (event["run"]["runId"], event["eventType"], event["eventTime"]) for event in receiver.accepted
        )
    )
    assert [identity[:2] for identity in identities] == [key[:2] for key in emitted], (
        f"deduped by (runId, eventType, eventTime), each event should arrive once, in order: {arrived}"
    )
    assert emitter.events_waiting == 0, f"nothing should wait after the flush: {emitter.events_waiting}"


def test_flush_spool_leaves_a_spool_another_process_is_delivering(
    receiver: LineageReceiver, tmp_path: Path
) -> None:
    # given two spooled events, and another process holding the spool's lock while it delivers
    spool_dir = tmp_path / "spool"
    receiver.stop()
    emitter = LineageEmitter(NAMESPACE, tmp_path / "lineage.jsonl", url=receiver.url, spool_dir=spool_dir)
    _emit_events(emitter, 2, tmp_path)
    receiver.start()

    # when a flush starts while the lock is held, and another once it is released
    with (spool_dir / ".lock").open("a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        while_locked = flush_spool(spool_dir, receiver.url)
        fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    after = flush_spool(spool_dir, receiver.url)

    # then the first flush sent nothing (no event goes out twice), and the second sent both
    assert while_locked == (0, 2), f"a flush must not race another deliverer, got {while_locked}"
    assert after == (2, 0), f"once the lock is free the flush should deliver both, got {after}"
    assert len(receiver.deliveries) == 2, f"each event should be sent once: {len(receiver.deliveries)}"


def test_spool_is_unused_with_the_file_transport_and_a_missing_spool_is_empty(tmp_path: Path) -> None:
    # given an emitter with a spool folder but no URL
    spool_dir = tmp_path / "spool"
    log_path = tmp_path / "lineage.jsonl"
    emitter = LineageEmitter(NAMESPACE, log_path, spool_dir=spool_dir)

    # when it emits, flushes, and the missing spool is flushed too
    _emit_events(emitter, 2, tmp_path)
    flushed = emitter.flush()
    from_missing = flush_spool(spool_dir, "http://127.0.0.1:9")

    # then events went to the file, the spool folder never appeared, and nothing was sent
    assert len(log_path.read_text().splitlines()) == 2, "the file transport should hold both events"
    assert not spool_dir.exists(), "the file transport must not create the spool folder"
    assert flushed == 0, f"a file emitter has nothing to flush, got {flushed}"
    assert from_missing == (0, 0), f"a missing spool is an empty one, got {from_missing}"
