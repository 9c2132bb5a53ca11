"""The durable state of the scheduled flows: batches claimed exactly once, and the retrain storm guard."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from guardflow.drift.guard_retrain import STALE_AFTER, decide_retrain
from guardflow.io import server_state

SHA_A, SHA_B = "a" * 64, "b" * 64
HOUR = timedelta(hours=1)
NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


def test_a_batch_is_claimed_once_and_never_again_once_finished(tmp_path: Path) -> None:
    # given an empty state file
    state = tmp_path / "state.db"
    # when a run claims a batch, finishes it, and later runs meet the same content again
    first = server_state.claim_batch(state, "adult", SHA_A, tmp_path / "a.csv", "run-1")
    assert first is not None and first.attempts == 1, f"a new batch is claimed: {first}"
    server_state.finish_batch(state, first, "no_drift", "/runs/1")
    again = server_state.claim_batch(state, "adult", SHA_A, tmp_path / "copy-of-a.csv", "run-2")
    # then the finished batch is not taken again, whatever its file is called
    assert again is None, "a finished batch must never be taken twice"
    records = server_state.batch_records(state, "adult")
    assert [(row["sha256"], row["outcome"]) for row in records] == [(SHA_A, "no_drift")], f"{records}"


def test_a_claimed_but_unfinished_batch_is_taken_again_by_the_next_run(tmp_path: Path) -> None:
    # given a batch claimed by a run that crashed before finishing it
    state = tmp_path / "state.db"
    assert server_state.claim_batch(state, "adult", SHA_A, tmp_path / "a.csv", "crashed-run") is not None
    # when the next run looks at the inbox
    retry = server_state.claim_batch(state, "adult", SHA_A, tmp_path / "a.csv", "next-run")
    # then it takes the batch again, as a second attempt
    assert retry is not None and retry.attempts == 2, f"the unfinished batch must be retried: {retry}"
    assert server_state.batch_records(state, "adult")[0]["owner"] == "next-run", "the claim changed hands"


def test_the_same_content_counts_per_dataset(tmp_path: Path) -> None:
    # given a batch finished for one dataset
    state = tmp_path / "state.db"
    claim = server_state.claim_batch(state, "adult", SHA_A, tmp_path / "a.csv", "run-1")
    assert claim is not None
    server_state.finish_batch(state, claim, "no_drift", "/runs/1")
    # when the same content arrives for another dataset / then that one claims it
    assert server_state.claim_batch(state, "other", SHA_A, tmp_path / "a.csv", "run-2") is not None, (
        "claims are per dataset"
    )


def test_concurrent_claims_of_one_new_batch_give_it_to_exactly_one_run(tmp_path: Path) -> None:
    # given eight runs that see the same new file at once
    state = tmp_path / "state.db"
    server_state.batch_records(state, "adult")
    won: list[str] = []

    def claim(owner: str) -> None:
        claimed = server_state.claim_batch(state, "adult", SHA_B, tmp_path / "b.csv", owner)
        if claimed is not None and claimed.attempts == 1:
            won.append(owner)

    threads = [threading.Thread(target=claim, args=(f"run-{number}",)) for number in range(8)]
    # when they all claim it
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then exactly one of them inserted the claim (the others saw it taken)
    assert len(won) == 1, f"exactly one first claim, got {won}"


def test_the_guard_starts_a_retrain_only_outside_cooldown_and_with_none_in_flight() -> None:
    # given the decisions for: no retrain ever, one in flight, one finished inside and one outside the cooldown
    fresh = decide_retrain(NOW, None, False, HOUR)
    running = decide_retrain(NOW, NOW - timedelta(minutes=5), True, timedelta(0))
    recent = decide_retrain(NOW, NOW - timedelta(minutes=30), False, HOUR)
    old = decide_retrain(NOW, NOW - 2 * HOUR, False, HOUR)
    stale = decide_retrain(NOW, NOW - STALE_AFTER - HOUR, True, HOUR)
    # then only the first, the last-but-one and a crashed (stale) retrain let a new one start
    assert fresh.acted_on and old.acted_on and stale.acted_on, (fresh, old, stale)
    assert (running.action, recent.action) == ("in_flight", "cooldown"), (running, recent)
    assert "cooldown" in recent.reason, recent.reason


def test_triggers_are_recorded_and_the_second_inside_the_cooldown_is_not_acted_on(tmp_path: Path) -> None:
    # given a state file and a cooldown of an hour
    state = tmp_path / "state.db"
    # when two triggers arrive, the first retrain finishes, and a third arrives (all inside the hour)
    first_id, first = server_state.enter_retrain(state, "adult", SHA_A, "run-1", HOUR)
    _, second = server_state.enter_retrain(state, "adult", SHA_B, "run-2", HOUR)
    server_state.finish_retrain(state, first_id, "promoted")
    third_id, third = server_state.enter_retrain(state, "adult", SHA_B, "run-3", HOUR)
    server_state.finish_retrain(state, third_id, third.action)
    # then only the first started; the others are recorded with why they were not acted on
    assert (first.action, second.action, third.action) == ("started", "in_flight", "cooldown"), (
        first,
        second,
        third,
    )
    records = server_state.retrain_records(state, "adult")
    assert [row["decision"] for row in records] == ["started", "in_flight", "cooldown"], records
    assert records[0]["outcome"] == "promoted" and records[2]["outcome"] == "cooldown", records


def test_a_zero_cooldown_still_allows_one_retrain_at_a_time(tmp_path: Path) -> None:
    # given no cooldown at all
    state = tmp_path / "state.db"
    # when a second trigger arrives while the first retrain runs, and a third after it finished
    first_id, first = server_state.enter_retrain(state, "adult", SHA_A, "run-1", timedelta(0))
    _, second = server_state.enter_retrain(state, "adult", SHA_B, "run-2", timedelta(0))
    server_state.finish_retrain(state, first_id, "promoted")
    _, third = server_state.enter_retrain(state, "adult", SHA_B, "run-3", timedelta(0))
    # then the second waits its turn (not acted on) and the third starts
    assert [first.action, second.action, third.action] == ["started", "in_flight", "started"]
