"""The lifecycle scheduler: its lease, two sweepers in two processes, the background thread.

What is proved here:

* two processes sweeping one SQLite file at the same time (each its own
  store, the same fixed ``now``) archive every one of 200 expired sessions
  exactly once: one ``archive`` event and one snapshot per session — both
  when they call ``lifecycle.sweep`` directly (the per-session re-check under
  the lock is what keeps them apart) and when they call
  ``Scheduler.run_once`` (the lease lets only one of them work);
* the lease: a second scheduler's ``run_once`` returns ``None`` while the
  first holds it, and takes over once it has expired (never before), with
  ``now``/``ttl`` passed explicitly to ``acquire_lease``; releasing it hands
  it over at once;
* ``start_scheduler(every=50 ms)`` archives due sessions in a background
  thread, again on later turns, purges with ``purge_after``, and
  ``store.close()`` stops it and gives the lease back; ``stop()`` does too.

Time never passes by sleeping: stores get a fixed or fake clock. The tests
only wait (polling, with a deadline) for the background thread or the
child processes to have done their work.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from sessionstore import SessionStore
from sessionstore.scheduler import LEASE, Scheduler

from .conftest import FakeClock

SESSIONS = 200
IDLE = timedelta(minutes=10)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Poll ``condition`` until it holds or ``seconds`` pass (for background work only)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def lifecycle_counts(store: SessionStore) -> tuple[dict[str, int], dict[str, int]]:
    """Per session: how many 'archive' events, and how many snapshots."""
    with store.engine.connect() as conn:
        events = dict(
            conn.execute(
                text(
                    "SELECT session_id, COUNT(*) FROM lifecycle_events"
                    " WHERE action = 'archive' GROUP BY session_id"
                )
            ).all()
        )
        snapshots = dict(
            conn.execute(
                text("SELECT session_id, COUNT(*) FROM session_snapshots GROUP BY session_id")
            ).all()
        )
    return events, snapshots


# --- two processes -----------------------------------------------------------------------


class FixedClock:
    """A clock stopped at one instant (picklable: child processes build their own)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def sweeper_process(
    url: str, mode: str, start: Any, results: Any, seconds: float, index: int
) -> None:
    """A child: sweep (or run a scheduler turn) in a loop, then report what it did."""
    archived = runs = skipped_turns = 0
    errors: list[str] = []
    with SessionStore.open(url, clock=FixedClock(NOW), idle_timeout=IDLE) as store:
        scheduler = Scheduler(store.lifecycle, every=timedelta(minutes=1), purge_after=None)
        start.wait(60)  # a barrier: both children begin together, stores open
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if mode == "sweep":
                    report = store.lifecycle.sweep(NOW)
                else:
                    found = scheduler.run_once()
                    if found is None:
                        skipped_turns += 1
                        continue
                    report = found
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                break
            runs += 1
            archived += len(report.archived)
    results.put(
        {
            "index": index,
            "archived": archived,
            "runs": runs,
            "skipped_turns": skipped_turns,
            "errors": errors,
        }
    )


def seed_expired(url: str, count: int) -> list[str]:
    clock = FakeClock(NOW - timedelta(days=1))
    with SessionStore.open(url, clock=clock, idle_timeout=IDLE) as store:
        ids = []
        for i in range(count):
            sid = store.sessions.create("gpt-4o", session_id=f"s{i:04d}").session_id
            store.messages.append(sid, "user", f"hello {i}")
            ids.append(sid)
        assert len(store.lifecycle.expiring(timedelta(0), now=NOW)) == count
    return ids


@pytest.mark.reliability
@pytest.mark.parametrize("mode", ["sweep", "scheduler"])
def test_two_processes_archive_each_session_exactly_once(tmp_path: Path, mode: str) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    ids = seed_expired(url, SESSIONS)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    results = ctx.Queue()
    processes = [
        ctx.Process(target=sweeper_process, args=(url, mode, start, results, 1.5, i))
        for i in range(2)
    ]
    for process in processes:
        process.start()
    try:
        reports = []
        for _ in processes:
            reports.append(results.get(timeout=60))
    except queue.Empty:
        pytest.fail("a sweeper process did not report back")
    finally:
        for process in processes:
            process.join(30)
            if process.is_alive():
                process.kill()
    assert [p.exitcode for p in processes] == [0, 0]
    reports.sort(key=lambda r: r["index"])
    assert [r["errors"] for r in reports] == [[], []]
    assert sum(r["archived"] for r in reports) == SESSIONS

    with SessionStore.open(url) as store:
        events, snapshots = lifecycle_counts(store)
        assert events == dict.fromkeys(ids, 1)  # exactly one archive event per session
        assert snapshots == dict.fromkeys(ids, 1)  # and exactly one snapshot
        assert store.sessions.count(status="archived") == SESSIONS
        assert store.sessions.count(status="active") == 0
    if mode == "sweep":
        assert all(r["runs"] > 0 for r in reports)  # both really swept, at the same time
    else:
        # The lease: one process held it for the whole run, the other only ever skipped.
        working = [r for r in reports if r["runs"] > 0]
        idle = [r for r in reports if r["runs"] == 0]
        assert len(working) == 1 and len(idle) == 1
        assert idle[0]["skipped_turns"] > 0
        assert working[0]["archived"] == SESSIONS


# --- the lease ---------------------------------------------------------------------------


def test_lease_makes_a_second_scheduler_skip_until_it_expires(
    backend_url: str, clock: FakeClock
) -> None:
    with (
        SessionStore.open(backend_url, clock=clock) as one,
        SessionStore.open(backend_url, clock=clock) as two,
    ):
        first = Scheduler(one.lifecycle, every=timedelta(seconds=30), purge_after=None)
        second = Scheduler(two.lifecycle, every=timedelta(seconds=30), purge_after=None)
        assert first.holder != second.holder
        ttl = first.lease_ttl
        assert ttl == timedelta(seconds=90)

        assert first.run_once() is not None
        t0 = clock.now
        assert second.run_once() is None
        assert (second.runs, second.last_sweep) == (0, None)
        clock.advance(seconds=60)
        assert first.run_once() is not None  # the holder renews: expires at t0 + 60 s + ttl
        clock.now = t0 + timedelta(seconds=60) + ttl - timedelta(milliseconds=1)
        assert second.run_once() is None
        clock.now = t0 + timedelta(seconds=60) + ttl
        report = second.run_once()
        assert report is not None and report.now == clock.now  # taken over once expired
        assert second.runs == 1 and second.last_sweep == report
        assert first.run_once() is None  # and now the first one skips
        assert first.runs == 2

        # Stopping hands the lease back at once (no need to wait for it to expire).
        second.stop()
        assert first.run_once() is not None


def test_acquire_lease_with_explicit_now_and_ttl(backend_url: str) -> None:
    with SessionStore.open(backend_url) as store:
        lifecycle = store.lifecycle
        minute = timedelta(minutes=1)
        ms = timedelta(milliseconds=1)
        assert lifecycle.acquire_lease("job", "a", minute, now=NOW)
        assert not lifecycle.acquire_lease("job", "b", minute, now=NOW)
        assert lifecycle.acquire_lease("other-job", "b", minute, now=NOW)  # leases are per name
        assert not lifecycle.acquire_lease("job", "b", minute, now=NOW + minute - ms)
        assert lifecycle.acquire_lease("job", "a", minute, now=NOW + minute - ms)  # renewed
        assert not lifecycle.acquire_lease("job", "b", minute, now=NOW + minute)
        assert lifecycle.acquire_lease("job", "b", minute, now=NOW + 2 * minute - ms)  # expired
        assert not lifecycle.acquire_lease("job", "a", minute, now=NOW + 2 * minute - ms)
        lifecycle.release_lease("job", "a")  # not the holder: nothing happens
        assert not lifecycle.acquire_lease("job", "a", minute, now=NOW + 2 * minute - ms)
        lifecycle.release_lease("job", "b")
        assert lifecycle.acquire_lease("job", "a", minute, now=NOW + 2 * minute - ms)


# --- the background thread -----------------------------------------------------------------


def test_background_scheduler_archives_purges_and_stops_with_the_store(
    backend_url: str, clock: FakeClock
) -> None:
    store = SessionStore.open(backend_url, clock=clock, idle_timeout=IDLE, hard_timeout=None)
    try:
        t0 = clock.now
        due = [store.sessions.create("gpt-4o").session_id for _ in range(5)]
        old = store.sessions.create("gpt-4o").session_id
        store.lifecycle.archive(old, now=t0 - timedelta(days=3))
        clock.advance(minutes=10)
        scheduler = store.lifecycle.start_scheduler(
            timedelta(milliseconds=50), purge_after=timedelta(days=2)
        )
        assert scheduler.running
        assert wait_for(lambda: scheduler.last_purge is not None)
        assert {s.session_id for s in store.sessions.list(status="archived").items} == set(due)
        assert not store.sessions.exists(old)  # purged: archived three days ago
        assert scheduler.last_error is None
        assert store.lifecycle.history(old)[-1].action == "purge"

        # A later turn picks up what became due since.
        late = store.sessions.create("gpt-4o").session_id
        runs = scheduler.runs
        assert wait_for(lambda: scheduler.runs >= runs + 2)
        assert store.sessions.get(late).status == "active"
        clock.advance(minutes=10)
        assert wait_for(lambda: store.sessions.get(late).status == "archived")
        # The turn's report is published after its sweep committed: wait for it too.
        assert wait_for(
            lambda: scheduler.last_sweep is not None and scheduler.last_sweep.now == clock.now
        )
        assert all(r == "idle timeout" for r in (e.reason for e in store.lifecycle.history(late)))
    finally:
        store.close()
    assert not scheduler.running  # close() stopped it ...
    with SessionStore.open(backend_url, clock=clock) as other:
        # ... and gave the lease back: another holder takes it at once.
        assert other.lifecycle.acquire_lease(LEASE, "someone-else", timedelta(minutes=1))


def test_stop_releases_the_lease(backend_url: str, clock: FakeClock) -> None:
    with (
        SessionStore.open(backend_url, clock=clock) as store,
        SessionStore.open(backend_url, clock=clock) as other,
    ):
        scheduler = store.lifecycle.start_scheduler(timedelta(hours=1))
        assert wait_for(lambda: scheduler.runs >= 1)
        assert not other.lifecycle.acquire_lease(LEASE, "other", timedelta(minutes=1))
        scheduler.stop()
        assert not scheduler.running
        assert other.lifecycle.acquire_lease(LEASE, "other", timedelta(minutes=1))
        # The stopped scheduler's turn now skips: the lease is someone else's.
        assert scheduler.run_once() is None


def test_scheduler_rejects_a_bad_interval(backend_url: str) -> None:
    from sessionstore import InvalidInput

    with SessionStore.open(backend_url) as store:
        for bad in (timedelta(0), timedelta(seconds=-1), 5):
            with pytest.raises(InvalidInput):
                store.lifecycle.start_scheduler(bad)  # type: ignore[arg-type]


def test_scheduler_survives_a_session_with_a_huge_timeout(
    sqlite_url: str, clock: FakeClock
) -> None:
    with SessionStore.open(sqlite_url, clock=clock, idle_timeout=IDLE) as store:
        from sessionstore import InvalidInput

        with suppress(InvalidInput):  # refused up front: as good as surviving it
            store.sessions.create("gpt-4o", idle_timeout=timedelta(days=5_000_000))
        scheduler = store.lifecycle.start_scheduler(timedelta(milliseconds=50))
        wait_for(
            lambda: scheduler.runs >= 1 or scheduler.last_error is not None or not scheduler.running
        )
        assert scheduler.running
        assert scheduler.runs >= 1 or scheduler.last_error is not None
