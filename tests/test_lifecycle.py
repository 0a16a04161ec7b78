"""Session lifecycle contract: timeouts, sweep, archive, reactivate, purge, restore, history.

Every test takes ``backend_url`` and so runs on a real SQLite file and on a
real PostgreSQL database. Time never passes by sleeping: the store gets the
``FakeClock`` and each operation an explicit ``now``.

What is proved here:

* a session times out exactly at its deadline (``t - 1 ms`` not due, ``t``
  and ``t + 1 ms`` due), for idle and hard timeouts, whether the timeout
  comes from the store's defaults, from ``sessions.create`` or from
  ``lifecycle.set_timeouts``; ``None`` turns a default off, and resetting an
  override to ``None`` goes back to the default; an append pushes the idle
  deadline; when both deadlines are past the earlier one is the reason;
  ``expiring(within=...)`` lists exactly the sessions due by the horizon;
* ``sweep`` archives exactly the due sessions, one snapshot each, reports
  them, calls ``progress``, re-checks each session under its lock (a session
  that became active again, or was archived meanwhile, is skipped), and a
  second sweep does nothing; ``dry_run`` reports the same sessions and leaves
  every table byte-for-byte as it was;
* ``archive`` stores the complete session (the export JSON, compressed) and
  marks it archived; archiving twice is a typed error; appending afterwards
  raises ``SessionArchived`` naming ``reactivate``; ``reactivate`` restores
  appends with the messages intact and restarts the idle timer;
* snapshot -> purge -> restore gives back the session field for field (the
  export JSON before archiving equals the one after restoring, message ids
  included); restore also works while still archived; restoring over an
  active session is a ``ConflictError`` that changes nothing; snapshots
  survive the purge; purge honours its boundary, reports messages and bytes
  freed and deletes messages, metadata and search entries; ``prune_snapshots``
  keeps the newest; every action is in ``history()``;
* appends racing an archive: every acknowledged append is in the archived
  session and in its snapshot, and the only error an appender sees is
  ``SessionArchived``.
"""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import text

from sessionstore import (
    ConflictError,
    InvalidInput,
    InvalidStateError,
    MessageRecord,
    NotFoundError,
    SessionActive,
    SessionArchived,
    SessionNotFound,
    SessionStore,
    SnapshotNotFound,
    sweeps,
)
from sessionstore.lifecycle import LifecycleRecord

from .conftest import FakeClock

MS = timedelta(milliseconds=1)
TEN_MIN = timedelta(minutes=10)
ROLES = ("system", "user", "assistant", "tool")


# --- helpers --------------------------------------------------------------------------


@contextmanager
def opened(url: str, clock: FakeClock, **options: Any) -> Iterator[SessionStore]:
    with SessionStore.open(url, clock=clock, **options) as store:
        yield store


def due_at(store: SessionStore, when: datetime) -> dict[str, tuple[str, datetime]]:
    """What ``expiring(within=0)`` says is due at ``when``: id -> (reason, deadline)."""
    return {
        e.session.session_id: (e.reason, e.deadline)
        for e in store.lifecycle.expiring(timedelta(0), now=when)
    }


def dry_run_ids(store: SessionStore, when: datetime) -> set[str]:
    return {item.session_id for item in store.lifecycle.sweep(when, dry_run=True).archived}


def all_messages(store: SessionStore, session_id: str) -> list[MessageRecord]:
    messages: list[MessageRecord] = []
    cursor: str | None = None
    while True:
        page = store.messages.history(session_id, limit=1000, cursor=cursor)
        messages.extend(page.items)
        if page.next_cursor is None:
            return messages
        cursor = page.next_cursor


def table_names(store: SessionStore) -> list[str]:
    with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            sql = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        else:
            sql = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
        return [row[0] for row in conn.exec_driver_sql(sql)]


def dump(store: SessionStore) -> dict[str, list[str]]:
    """A logical dump of every table (FTS and bookkeeping tables included), rows sorted."""
    out: dict[str, list[str]] = {}
    with store.engine.connect() as conn:
        for name in table_names(store):
            rows = conn.exec_driver_sql(f'SELECT * FROM "{name}"').all()
            out[name] = sorted(repr(tuple(row)) for row in rows)
    return out


def snapshot_payload(store: SessionStore, snapshot_id: int) -> bytes:
    """The snapshot's stored (compressed) bytes, read straight from the table."""
    with store.engine.connect() as conn:
        payload = conn.execute(
            text("SELECT payload FROM session_snapshots WHERE snapshot_id = :id"),
            {"id": snapshot_id},
        ).scalar_one()
    return bytes(payload)


def snapshot_document(store: SessionStore, snapshot_id: int) -> dict[str, Any]:
    """The snapshot's payload, decompressed and parsed."""
    return dict(json.loads(zlib.decompress(snapshot_payload(store, snapshot_id)).decode("utf-8")))


def count_rows(store: SessionStore, table: str, session_id: str | None = None) -> int:
    sql = f"SELECT COUNT(*) FROM {table}"
    params: dict[str, Any] = {}
    if session_id is not None:
        sql += " WHERE session_id = :sid"
        params["sid"] = session_id
    with store.engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


def exported(store: SessionStore, session_id: str) -> dict[str, Any]:
    return dict(json.loads(store.export(session_id) or ""))


def rich_session(store: SessionStore, clock: FakeClock, messages: int = 40) -> str:
    """A session using every field: metadata (with a null), overrides, all roles, gaps."""
    session = store.sessions.create(
        "gpt-4o",
        model_name="GPT-4o",
        title="Lifecycle round trip",
        metadata={"team": "core", "ticket": "LC-7", "empty": None},
        idle_timeout=timedelta(minutes=30),
        hard_timeout=timedelta(hours=48),
    )
    sid = session.session_id
    for i in range(messages):
        clock.advance(seconds=1.25)
        store.messages.append(
            sid, ROLES[i % 4], f"message {i}: ünïcode 🎉 \"quoted\"\nzebrafish{i} " + "lorem " * i,
            tokens=i * 3 if i % 5 else None, duration=i / 7 if i % 4 else None,
            metadata={"i": i, "nested": {"ok": True}} if i % 2 else None,
            client_msg_id=f"client-{i}" if i % 3 == 0 else None,
        )  # fmt: skip
    # A gap in the sequence numbers (last_seq stays ahead of the last message) and an edit.
    history = all_messages(store, sid)
    store.messages.delete(history[5].message_id)
    store.messages.delete(history[-1].message_id)
    store.messages.edit(history[7].message_id, "edited content, zebrafish7")
    store.sessions.rename(sid, "Lifecycle round trip (renamed)")
    return sid


# --- timeouts -------------------------------------------------------------------------


def boundary_case(
    store: SessionStore, clock: FakeClock, kind: str, source: str
) -> tuple[datetime, dict[str, tuple[str, datetime]]]:
    """A session whose ``kind`` timeout (10 min) comes from ``source``: its deadline, what is due.

    The store must have been opened with :func:`boundary_defaults`.
    """
    other = "hard" if kind == "idle" else "idle"
    t0 = clock.now
    override = {f"{kind}_timeout": TEN_MIN} if source == "set at create" else {}
    target = store.sessions.create("gpt-4o", **override).session_id
    # On the store's default: 10 min too when that is the source, else 7 days.
    control = store.sessions.create("gpt-4o").session_id
    if source == "set later":
        record = store.lifecycle.set_timeouts(target, **{f"{kind}_timeout": TEN_MIN})
        assert getattr(record, f"{kind}_timeout") == TEN_MIN
        assert getattr(record, f"{other}_timeout") is None
    expected_override = None if source == "store default" else TEN_MIN
    assert getattr(store.sessions.get(target), f"{kind}_timeout") == expected_override
    assert getattr(store.sessions.get(control), f"{kind}_timeout") is None
    # Activity after creation: moves the idle deadline, not the hard one.
    clock.advance(minutes=3)
    store.messages.append(target, "user", "still here")
    store.messages.append(control, "user", "still here")
    deadline = t0 + TEN_MIN + (timedelta(minutes=3) if kind == "idle" else timedelta(0))
    expected = {target: (kind, deadline)}
    if source == "store default":
        expected[control] = (kind, deadline)
    return deadline, expected


def boundary_defaults(kind: str, source: str) -> dict[str, timedelta | None]:
    other = "hard" if kind == "idle" else "idle"
    return {
        f"{kind}_timeout": TEN_MIN if source == "store default" else timedelta(days=7),
        f"{other}_timeout": None,
    }


KINDS = pytest.mark.parametrize("kind", ["idle", "hard"])
SOURCES = pytest.mark.parametrize("source", ["store default", "set at create", "set later"])


@KINDS
@SOURCES
def test_timeout_is_due_exactly_at_the_deadline(
    backend_url: str, clock: FakeClock, kind: str, source: str
) -> None:
    """t - 1 ms: not due; t: due; t + 1 ms: due — for each kind of timeout and each source."""
    with opened(backend_url, clock, **boundary_defaults(kind, source)) as store:
        deadline, expected = boundary_case(store, clock, kind, source)
        assert due_at(store, deadline - MS) == {}
        assert dry_run_ids(store, deadline - MS) == set()
        assert due_at(store, deadline) == expected
        assert due_at(store, deadline + MS) == expected
        assert dry_run_ids(store, deadline) == set(expected)
        assert dry_run_ids(store, deadline + MS) == set(expected)
        # The horizon: due within 1 ms of t - 1 ms, not within 1 ms of t - 2 ms.
        soon = store.lifecycle.expiring(MS, now=deadline - MS)
        assert {e.session.session_id: (e.reason, e.deadline) for e in soon} == expected
        assert store.lifecycle.expiring(MS, now=deadline - 2 * MS) == []


@KINDS
@SOURCES
def test_sweep_archives_exactly_at_the_deadline(
    backend_url: str, clock: FakeClock, kind: str, source: str
) -> None:
    with opened(backend_url, clock, **boundary_defaults(kind, source)) as store:
        deadline, expected = boundary_case(store, clock, kind, source)
        assert store.lifecycle.sweep(deadline - MS).archived == ()
        assert {s.status for s in store.sessions.list().items} == {"active"}
        report = store.lifecycle.sweep(deadline)
        assert {(i.session_id, i.reason, i.deadline) for i in report.archived} == {
            (sid, reason, when) for sid, (reason, when) in expected.items()
        }
        archived = {s.session_id for s in store.sessions.list(status="archived").items}
        assert archived == set(expected)
        assert store.lifecycle.sweep(deadline + MS).archived == ()


def test_none_turns_a_default_off(backend_url: str, clock: FakeClock) -> None:
    t0 = clock.now
    far = t0 + timedelta(days=3650)
    with opened(backend_url, clock, idle_timeout=None, hard_timeout=None) as store:
        never = store.sessions.create("gpt-4o").session_id
        assert due_at(store, far) == {}
        assert store.lifecycle.sweep(far).archived == ()
        assert store.sessions.get(never).status == "active"
        store.sessions.delete(never)
    # Idle off, hard on: ten idle days are nothing, the hard deadline still counts.
    with opened(backend_url, clock, idle_timeout=None, hard_timeout=timedelta(hours=1)) as store:
        hard_only = store.sessions.create("gpt-4o").session_id
        assert due_at(store, t0 + timedelta(hours=1) - MS) == {}
        assert due_at(store, t0 + timedelta(hours=1)) == {
            hard_only: ("hard", t0 + timedelta(hours=1))
        }
        store.sessions.delete(hard_only)
    # Hard off, idle on: a session kept busy is never archived, however old.
    with opened(backend_url, clock, idle_timeout=timedelta(hours=1), hard_timeout=None) as store:
        busy = store.sessions.create("gpt-4o").session_id
        for _ in range(30):
            clock.advance(minutes=59)
            store.messages.append(busy, "user", "ping")
        assert due_at(store, clock.now + timedelta(hours=1) - MS) == {}
        assert due_at(store, clock.now + timedelta(hours=1)) == {
            busy: ("idle", clock.now + timedelta(hours=1))
        }


def test_override_lengthens_and_none_goes_back_to_default(
    backend_url: str, clock: FakeClock
) -> None:
    with opened(backend_url, clock, idle_timeout=TEN_MIN, hard_timeout=None) as store:
        t0 = clock.now
        longer = store.sessions.create("gpt-4o", idle_timeout=timedelta(hours=1)).session_id
        default = store.sessions.create("gpt-4o").session_id
        assert due_at(store, t0 + TEN_MIN) == {default: ("idle", t0 + TEN_MIN)}
        assert due_at(store, t0 + timedelta(hours=1)) == {
            default: ("idle", t0 + TEN_MIN),
            longer: ("idle", t0 + timedelta(hours=1)),
        }
        # Back to the default: due at ten minutes again.
        record = store.lifecycle.set_timeouts(longer, idle_timeout=None)
        assert record.idle_timeout is None
        assert due_at(store, t0 + TEN_MIN)[longer] == ("idle", t0 + TEN_MIN)
        # Leaving an argument out keeps that override.
        store.lifecycle.set_timeouts(longer, hard_timeout=timedelta(minutes=5))
        store.lifecycle.set_timeouts(longer, idle_timeout=timedelta(hours=2))
        after = store.sessions.get(longer)
        assert (after.idle_timeout, after.hard_timeout) == (
            timedelta(hours=2),
            timedelta(minutes=5),
        )
        assert due_at(store, t0 + timedelta(minutes=5))[longer] == (
            "hard",
            t0 + timedelta(minutes=5),
        )
        with pytest.raises(SessionNotFound):
            store.lifecycle.set_timeouts("no-such-session", idle_timeout=TEN_MIN)
        for bad in (timedelta(0), timedelta(seconds=-1), 600):
            with pytest.raises(InvalidInput):
                store.lifecycle.set_timeouts(default, idle_timeout=bad)  # type: ignore[arg-type]
            with pytest.raises(InvalidInput):
                store.sessions.create("gpt-4o", hard_timeout=bad)  # type: ignore[arg-type]


def test_activity_pushes_the_idle_deadline(backend_url: str, clock: FakeClock) -> None:
    with opened(backend_url, clock, idle_timeout=TEN_MIN, hard_timeout=None) as store:
        t0 = clock.now
        sid = store.sessions.create("gpt-4o").session_id
        clock.advance(minutes=9)
        store.messages.append(sid, "user", "one more thing")
        assert due_at(store, t0 + TEN_MIN) == {}
        assert due_at(store, t0 + timedelta(minutes=19) - MS) == {}
        assert due_at(store, t0 + timedelta(minutes=19)) == {
            sid: ("idle", t0 + timedelta(minutes=19))
        }
        # A batch counts as activity too.
        clock.advance(minutes=9)
        store.messages.append_many(sid, [{"role": "user", "content": "a"}])
        assert due_at(store, t0 + timedelta(minutes=28) - MS) == {}
        assert sid in due_at(store, t0 + timedelta(minutes=28))


def seed_deadlines(store: SessionStore, clock: FakeClock) -> dict[str, str]:
    """Sessions with known deadlines around ``clock.now`` (idle 1 h, hard 24 h defaults)."""
    now = clock.now
    ids: dict[str, str] = {}

    def create(name: str, when: datetime, touched: datetime | None = None) -> None:
        clock.now = when
        ids[name] = store.sessions.create("gpt-4o", title=name).session_id
        if touched is not None:
            clock.now = touched
            store.messages.append(ids[name], "user", "activity")

    # idle since -29 h and created -30 h: idle deadline -28 h, hard -6 h: the earlier wins.
    create("both", now - timedelta(hours=30), now - timedelta(hours=29))
    # busy (idle deadline +50 min) but created -25 h: hard deadline -1 h.
    create("old", now - timedelta(hours=25), now - timedelta(minutes=10))
    # idle since -150 min: idle deadline -90 min.
    create("idle", now - timedelta(hours=3), now - timedelta(minutes=150))
    create("soon", now - timedelta(minutes=50))  # idle deadline +10 min
    create("fresh", now)  # idle deadline +1 h
    clock.now = now
    return ids


DUE_NOW = [
    ("both", "idle", -timedelta(hours=28)),
    ("idle", "idle", -timedelta(minutes=90)),
    ("old", "hard", -timedelta(hours=1)),
]


def test_expiring_lists_reason_and_deadline_earliest_first(
    backend_url: str, clock: FakeClock
) -> None:
    hour = timedelta(hours=1)
    with opened(backend_url, clock, idle_timeout=hour, hard_timeout=timedelta(hours=24)) as store:
        ids = seed_deadlines(store, clock)
        now = clock.now

        def listed(within: timedelta) -> list[tuple[str, str, datetime]]:
            return [
                (e.session.title or "", e.reason, e.deadline)
                for e in store.lifecycle.expiring(within, now=now)
            ]

        assert listed(timedelta(0)) == [(name, why, now + at) for name, why, at in DUE_NOW]
        first = store.lifecycle.expiring(timedelta(0), now=now)[0]
        assert first.session == store.sessions.get(ids["both"])
        assert listed(TEN_MIN) == [
            *((name, why, now + at) for name, why, at in DUE_NOW),
            ("soon", "idle", now + TEN_MIN),
        ]
        assert [name for name, _, _ in listed(TEN_MIN - MS)] == ["both", "idle", "old"]
        assert "fresh" not in [name for name, _, _ in listed(hour - MS)]
        assert listed(hour)[-1] == ("fresh", "idle", now + hour)
        assert dry_run_ids(store, now) == {ids["both"], ids["idle"], ids["old"]}
        with pytest.raises(InvalidInput):
            store.lifecycle.expiring(timedelta(seconds=-1), now=now)
        with pytest.raises(InvalidInput):
            store.lifecycle.expiring(TEN_MIN, now=now.replace(tzinfo=None))


def test_sweep_agrees_with_expiring_and_skips_archived(backend_url: str, clock: FakeClock) -> None:
    hour = timedelta(hours=1)
    with opened(backend_url, clock, idle_timeout=hour, hard_timeout=timedelta(hours=24)) as s:
        ids = seed_deadlines(s, clock)
        now = clock.now
        clock.now = now - timedelta(hours=5)
        gone = s.sessions.create("gpt-4o").session_id
        clock.now = now
        s.lifecycle.archive(gone, now=now - timedelta(hours=4))
        assert gone not in {e.session.session_id for e in s.lifecycle.expiring(hour, now=now)}
        report = s.lifecycle.sweep(now)
        assert [(i.session_id, i.reason, i.deadline) for i in report.archived] == [
            (ids[name], why, now + at) for name, why, at in DUE_NOW
        ]
        assert [e.reason for e in s.lifecycle.history(ids["old"])] == ["hard timeout"]
        assert [e.reason for e in s.lifecycle.history(ids["both"])] == ["idle timeout"]
        assert s.lifecycle.history(gone)[0].reason == "manual"
        assert len(s.lifecycle.snapshots(gone)) == 1


def test_a_deadline_in_another_timezone_is_the_same_instant(
    backend_url: str, clock: FakeClock
) -> None:
    tokyo = timezone(timedelta(hours=9))
    with opened(backend_url, clock, idle_timeout=TEN_MIN, hard_timeout=None) as store:
        sid = store.sessions.create("gpt-4o").session_id
        deadline = (clock.now + TEN_MIN).astimezone(tokyo)
        assert due_at(store, deadline - MS) == {}
        assert due_at(store, deadline) == {sid: ("idle", deadline)}
        assert dry_run_ids(store, deadline - MS) == set()
        assert dry_run_ids(store, deadline) == {sid}


def test_one_huge_timeout_does_not_stop_the_sweep(backend_url: str, clock: FakeClock) -> None:
    with opened(backend_url, clock, idle_timeout=TEN_MIN, hard_timeout=None) as store:
        ordinary = store.sessions.create("gpt-4o").session_id
        with suppress(InvalidInput):  # refusing the value up front is as good
            store.sessions.create("gpt-4o", idle_timeout=timedelta(days=5_000_000))
        assert set(due_at(store, clock.now + TEN_MIN)) == {ordinary}
        assert dry_run_ids(store, clock.now + TEN_MIN) == {ordinary}


def test_out_of_range_spans_are_invalid_input(backend_url: str, clock: FakeClock) -> None:
    with opened(backend_url, clock) as store:
        with pytest.raises(InvalidInput):
            store.lifecycle.purge(timedelta(days=999_999_999))
        with pytest.raises(InvalidInput):
            store.lifecycle.expiring(timedelta(days=999_999_999))


# --- sweep ----------------------------------------------------------------------------


def test_sweep_archives_exactly_the_due_sessions(backend_url: str, clock: FakeClock) -> None:
    with opened(backend_url, clock, idle_timeout=TEN_MIN, hard_timeout=None) as store:
        t0 = clock.now
        due = []
        for i in range(3):
            sid = store.sessions.create("gpt-4o", session_id=f"due-{i}").session_id
            store.messages.append(sid, "user", f"hello {i}")
            due.append(sid)
        clock.advance(minutes=5)
        fresh = [store.sessions.create("gpt-4o").session_id for _ in range(2)]
        now = t0 + TEN_MIN
        calls: list[tuple[int, int]] = []
        dry = store.lifecycle.sweep(now, dry_run=True)

        report = store.lifecycle.sweep(
            now, progress=lambda done, total: calls.append((done, total))
        )

        assert report.now == now and report.dry_run is False and report.skipped == 0
        assert sorted(i.session_id for i in report.archived) == due
        assert {(i.reason, i.deadline) for i in report.archived} == {("idle", t0 + TEN_MIN)}
        assert calls == [(1, 3), (2, 3), (3, 3)]
        assert [(i.session_id, i.reason, i.deadline) for i in report.archived] == [
            (i.session_id, i.reason, i.deadline) for i in dry.archived
        ]
        snapshot_ids = [i.snapshot_id for i in report.archived]
        assert None not in snapshot_ids and len(set(snapshot_ids)) == 3
        for item in report.archived:
            session = store.sessions.get(item.session_id)
            assert (session.status, session.archived_at) == ("archived", now)
            [snap] = store.lifecycle.snapshots(item.session_id)
            assert snap.snapshot_id == item.snapshot_id
            assert (snap.reason, snap.created_at, snap.message_count) == ("idle timeout", now, 1)
            [event] = store.lifecycle.history(item.session_id)
            assert isinstance(event, LifecycleRecord)
            assert (event.session_id, event.action, event.reason) == (
                item.session_id,
                "archive",
                "idle timeout",
            )
            assert (event.snapshot_id, event.occurred_at, event.details) == (
                item.snapshot_id,
                now,
                {},
            )
        for sid in fresh:
            assert store.sessions.get(sid).status == "active"
            assert store.lifecycle.snapshots(sid) == []

        again = store.lifecycle.sweep(now)
        assert (again.archived, again.skipped) == ((), 0)
        assert count_rows(store, "session_snapshots") == 3
        assert count_rows(store, "lifecycle_events") == 3

        later = store.lifecycle.sweep(now + timedelta(minutes=5))
        assert sorted(i.session_id for i in later.archived) == sorted(fresh)


def test_sweep_rechecks_each_session_under_its_lock(
    backend_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sessions found due but active again (or archived by someone else) at their turn: skipped."""
    # One session per transaction, so that the progress callback runs between them.
    monkeypatch.setattr(sweeps, "BATCH_SESSIONS", 1)
    with opened(backend_url, clock, idle_timeout=TEN_MIN, hard_timeout=None) as store:
        t0 = clock.now
        first = store.sessions.create("gpt-4o").session_id
        clock.advance(minutes=1)
        revived = store.sessions.create("gpt-4o").session_id
        clock.advance(minutes=1)
        taken = store.sessions.create("gpt-4o").session_id
        now = t0 + timedelta(minutes=12)
        clock.now = now

        def meanwhile(done: int, total: int) -> None:
            if done == 1:  # after the first archive, before the others' turn
                store.messages.append(revived, "user", "I am back")
                store.lifecycle.archive(taken, reason="someone else", now=now)

        report = store.lifecycle.sweep(now, progress=meanwhile)
        assert [i.session_id for i in report.archived] == [first]
        assert report.skipped == 2
        assert store.sessions.get(revived).status == "active"
        assert store.lifecycle.snapshots(revived) == []
        assert [s.reason for s in store.lifecycle.snapshots(taken)] == ["someone else"]
        assert [e.action for e in store.lifecycle.history(taken)] == ["archive"]


def test_dry_run_changes_nothing_and_reports_the_same(backend_url: str, clock: FakeClock) -> None:
    with opened(backend_url, clock, idle_timeout=TEN_MIN, hard_timeout=timedelta(hours=2)) as store:
        t0 = clock.now
        idle = store.sessions.create("gpt-4o").session_id  # idle at +10 min (and hard at +2 h)
        store.messages.append(idle, "assistant", "zebrafish answer", tokens=3)
        hard = store.sessions.create("gpt-4o", metadata={"k": "v"}).session_id
        for i in range(14):  # kept busy until +126 min: hard at +2 h
            clock.advance(minutes=9)
            store.messages.append(hard, "user", f"busy {i}")
        fresh = store.sessions.create("gpt-4o").session_id
        now = t0 + timedelta(minutes=130)
        clock.now = now
        before = dump(store)

        dry = store.lifecycle.sweep(now, dry_run=True, progress=lambda d, t: None)

        assert dump(store) == before
        assert dry.dry_run is True and dry.now == now
        assert all(item.snapshot_id is None for item in dry.archived)
        assert [(i.session_id, i.reason, i.deadline) for i in dry.archived] == [
            (idle, "idle", t0 + TEN_MIN),
            (hard, "hard", t0 + timedelta(hours=2)),
        ]
        assert [(i.session_id, i.reason, i.deadline) for i in dry.archived] == [
            (e.session.session_id, e.reason, e.deadline)
            for e in store.lifecycle.expiring(timedelta(0), now=now)
        ]
        assert fresh not in {i.session_id for i in dry.archived}


# --- archive and reactivate -----------------------------------------------------------


def test_archive_snapshots_the_whole_session_compressed(backend_url: str, clock: FakeClock) -> None:
    with opened(backend_url, clock) as store:
        sid = rich_session(store, clock)
        for i in range(30):
            store.messages.append(
                sid, "assistant", "The same compressible paragraph. " * 40 + str(i)
            )
        before = exported(store, sid)
        count = store.sessions.get(sid).message_count
        now = clock.advance(minutes=1)

        info = store.lifecycle.archive(sid, now=now)

        assert (info.session_id, info.reason, info.created_at) == (sid, "manual", now)
        assert info.message_count == count == len(before["messages"])
        assert 0 < info.stored_bytes < info.raw_bytes / 3
        assert store.lifecycle.snapshots(sid) == [info]
        payload = snapshot_payload(store, info.snapshot_id)
        assert len(payload) == info.stored_bytes
        assert len(zlib.decompress(payload)) == info.raw_bytes
        document = snapshot_document(store, info.snapshot_id)
        assert document == before  # the row, metadata and every message, as exported
        session = store.sessions.get(sid)
        assert (session.status, session.archived_at) == ("archived", now)
        # Nothing but the status and archived_at changed.
        after = exported(store, sid)
        assert after["session"] | {"status": "active", "archived_at": None} == before["session"]
        assert after["messages"] == before["messages"]
        assert after["metadata"] == before["metadata"]

        with pytest.raises(InvalidStateError, match="already archived"):
            store.lifecycle.archive(sid, now=now)
        with pytest.raises(SessionNotFound):
            store.lifecycle.archive("no-such-session")
        assert len(store.lifecycle.snapshots(sid)) == 1


def test_appending_to_an_archived_session_says_reactivate(
    backend_url: str, clock: FakeClock
) -> None:
    with opened(backend_url, clock) as store:
        sid = store.sessions.create("gpt-4o").session_id
        store.messages.append(sid, "user", "hi", client_msg_id="c-1")
        store.lifecycle.archive(sid)
        count = store.sessions.get(sid).message_count
        attempts = (
            lambda: store.messages.append(sid, "user", "late"),
            lambda: store.messages.append(sid, "user", "late", client_msg_id="c-2"),
            lambda: store.messages.append_many(sid, [{"role": "user", "content": "late"}]),
        )
        for attempt in attempts:
            with pytest.raises(SessionArchived, match=r"reactivate") as caught:
                attempt()
            assert isinstance(caught.value, InvalidStateError)
            assert caught.value.session_id == sid
        assert store.sessions.get(sid).message_count == count


def test_reactivate_keeps_messages_and_restarts_the_idle_timer(
    backend_url: str, clock: FakeClock
) -> None:
    with opened(backend_url, clock, idle_timeout=TEN_MIN, hard_timeout=None) as store:
        sid = rich_session(store, clock, messages=12)
        store.lifecycle.set_timeouts(sid, idle_timeout=None, hard_timeout=None)
        messages = all_messages(store, sid)
        archived_at = clock.now + TEN_MIN
        assert [i.session_id for i in store.lifecycle.sweep(archived_at).archived] == [sid]
        with pytest.raises(SessionNotFound):
            store.lifecycle.reactivate("no-such-session")

        back_at = archived_at + timedelta(days=3)
        clock.now = back_at
        session = store.lifecycle.reactivate(sid, now=back_at)

        assert (session.status, session.archived_at, session.last_activity) == (
            "active",
            None,
            back_at,
        )
        assert store.sessions.get(sid) == session
        assert all_messages(store, sid) == messages
        assert due_at(store, back_at + TEN_MIN - MS) == {}
        assert due_at(store, back_at + TEN_MIN) == {sid: ("idle", back_at + TEN_MIN)}
        appended = store.messages.append(sid, "user", "after reactivation")
        assert appended.sequence_number == session.last_seq + 1
        with pytest.raises(InvalidStateError, match="not archived"):
            store.lifecycle.reactivate(sid)
        assert [(e.action, e.occurred_at) for e in store.lifecycle.history(sid)] == [
            ("archive", archived_at),
            ("reactivate", back_at),
        ]


# --- snapshots, purge, restore --------------------------------------------------------


def test_snapshot_purge_restore_gives_the_session_back_exactly(
    backend_url: str, clock: FakeClock
) -> None:
    with opened(backend_url, clock) as store:
        sid = rich_session(store, clock, messages=60)
        neighbour = rich_session(store, clock, messages=10)
        before_doc = exported(store, sid)
        before_record = store.sessions.get(sid)
        before_messages = all_messages(store, sid)
        assert store.search.messages("zebrafish7", session_id=sid).items

        archived_at = clock.advance(minutes=5)
        snap = store.lifecycle.archive(sid, reason="done", now=archived_at)
        purge_at = archived_at + timedelta(days=30)
        progress: list[tuple[int, int]] = []
        report = store.lifecycle.purge(
            timedelta(days=30), now=purge_at, progress=lambda d, t: progress.append((d, t))
        )

        assert (report.now, report.cutoff) == (purge_at, archived_at)
        assert [(p.session_id, p.snapshot_id, p.messages) for p in report.purged] == [
            (sid, snap.snapshot_id, before_record.message_count)
        ]
        assert report.bytes_freed > 0
        assert progress == [(1, 1)]
        with pytest.raises(SessionNotFound):
            store.sessions.get(sid)
        for table in ("messages", "session_metadata"):
            assert count_rows(store, table, sid) == 0
        assert not store.search.messages("zebrafish7", session_id=sid).items
        # Snapshots are not cascaded; the neighbour is untouched.
        assert store.lifecycle.snapshots(sid) == [snap]
        assert store.sessions.get(neighbour).status == "active"

        restored = store.lifecycle.restore(snap.snapshot_id, now=purge_at + MS)

        assert restored == before_record  # every SessionRecord field
        assert store.sessions.get(sid) == before_record
        assert exported(store, sid) == before_doc  # session, metadata, every message field
        assert all_messages(store, sid) == before_messages  # message ids too
        assert store.search.messages("zebrafish7", session_id=sid).items
        assert [(e.action, e.reason, e.snapshot_id, e.occurred_at) for e in
                store.lifecycle.history(sid)] == [
            ("archive", "done", snap.snapshot_id, archived_at),
            ("purge", None, snap.snapshot_id, purge_at),
            ("restore", None, snap.snapshot_id, purge_at + MS),
        ]  # fmt: skip
        assert store.lifecycle.history(sid)[1].details == {
            "messages": before_record.message_count,
            "last_seq": before_record.last_seq,
        }
        # The restored session goes on where it left off, without reusing an id.
        clock.now = purge_at + timedelta(seconds=1)
        new = store.messages.append(sid, "user", "after the restore")
        assert new.sequence_number == before_record.last_seq + 1
        assert new.message_id not in {m.message_id for m in before_messages}
        other = store.messages.append(neighbour, "user", "elsewhere")
        assert other.message_id not in {m.message_id for m in before_messages}


def test_restore_while_still_archived(backend_url: str, clock: FakeClock) -> None:
    with opened(backend_url, clock) as store:
        sid = rich_session(store, clock, messages=10)
        before_doc = exported(store, sid)
        before_record = store.sessions.get(sid)
        snap = store.lifecycle.archive(sid)
        restored = store.lifecycle.restore(snap.snapshot_id)
        assert restored == before_record
        assert exported(store, sid) == before_doc
        assert [e.action for e in store.lifecycle.history(sid)] == ["archive", "restore"]
        store.messages.append(sid, "user", "and on it goes")


def test_restore_over_an_active_session_is_a_conflict(backend_url: str, clock: FakeClock) -> None:
    with opened(backend_url, clock) as store:
        sid = rich_session(store, clock, messages=10)
        snap = store.lifecycle.archive(sid)
        store.lifecycle.reactivate(sid)
        store.messages.append(sid, "user", "newer than the snapshot")
        before = dump(store)
        with pytest.raises(SessionActive) as caught:
            store.lifecycle.restore(snap.snapshot_id)
        assert isinstance(caught.value, ConflictError)
        assert caught.value.session_id == sid
        assert dump(store) == before


def test_restore_unknown_or_invalid_snapshot(backend_url: str, clock: FakeClock) -> None:
    with opened(backend_url, clock) as store:
        with pytest.raises(SnapshotNotFound) as caught:
            store.lifecycle.restore(424242)
        assert isinstance(caught.value, NotFoundError)
        for bad in (0, -1, True, "1", 1.0):
            with pytest.raises(InvalidInput):
                store.lifecycle.restore(bad)  # type: ignore[arg-type]
        assert store.lifecycle.snapshots("never-existed") == []
        assert store.lifecycle.history("never-existed") == []


def test_purge_boundary_and_what_it_leaves(backend_url: str, clock: FakeClock) -> None:
    """Purged at archived_at + older_than (as timeouts are due at their deadline), not before."""
    with opened(backend_url, clock) as store:
        archived = store.sessions.create("gpt-4o").session_id
        store.messages.append(archived, "user", "bye")
        ancient_but_active = store.sessions.create("gpt-4o").session_id
        archived_at = clock.now + timedelta(hours=1)
        store.lifecycle.archive(archived, now=archived_at)
        keep = timedelta(days=30)

        early = store.lifecycle.purge(keep, now=archived_at + keep - MS)
        assert (early.purged, early.cutoff) == ((), archived_at - MS)
        assert store.sessions.get(archived).status == "archived"

        on_time = store.lifecycle.purge(keep, now=archived_at + keep)
        assert [p.session_id for p in on_time.purged] == [archived]
        assert not store.sessions.exists(archived)
        later = store.lifecycle.purge(timedelta(0), now=archived_at + timedelta(days=3650))
        assert later.purged == ()
        assert store.sessions.get(ancient_but_active).status == "active"
        with pytest.raises(InvalidInput):
            store.lifecycle.purge(timedelta(days=-1))


def test_prune_snapshots_keeps_the_newest(backend_url: str, clock: FakeClock) -> None:
    with opened(backend_url, clock) as store:
        a = store.sessions.create("gpt-4o").session_id
        b = store.sessions.create("gpt-4o").session_id
        taken: dict[str, list[int]] = {a: [], b: []}
        for round_ in range(3):
            for sid in (a, b):
                store.messages.append(sid, "user", f"round {round_}")
                taken[sid].append(store.lifecycle.archive(sid, reason=f"r{round_}").snapshot_id)
                store.lifecycle.reactivate(sid)
        listed = store.lifecycle.snapshots(a)
        assert [s.snapshot_id for s in listed] == taken[a][::-1]  # newest first
        assert [s.message_count for s in listed] == [3, 2, 1]

        assert store.lifecycle.prune_snapshots(keep=2, session_id=a) == 1
        assert [s.snapshot_id for s in store.lifecycle.snapshots(a)] == taken[a][:0:-1]
        assert len(store.lifecycle.snapshots(b)) == 3
        assert store.lifecycle.prune_snapshots(keep=1) == 3
        assert [s.snapshot_id for s in store.lifecycle.snapshots(a)] == [taken[a][-1]]
        assert [s.snapshot_id for s in store.lifecycle.snapshots(b)] == [taken[b][-1]]
        assert store.lifecycle.prune_snapshots(keep=1) == 0
        pruned = [
            (e.reason, e.snapshot_id)
            for e in store.lifecycle.history(a)
            if e.action == "prune_snapshot"
        ]
        assert pruned == [("keep 2", taken[a][0]), ("keep 1", taken[a][1])]
        for bad in (0, -1, True, 1.5):
            with pytest.raises(InvalidInput):
                store.lifecycle.prune_snapshots(keep=bad)  # type: ignore[arg-type]
        # The one kept still restores the latest state.
        store.lifecycle.archive(a)
        store.lifecycle.purge(timedelta(0))
        newest = store.lifecycle.snapshots(a)[0].snapshot_id
        store.lifecycle.restore(newest)
        assert store.sessions.get(a).message_count == 3


def test_history_records_every_action_in_order(backend_url: str, clock: FakeClock) -> None:
    with opened(backend_url, clock, idle_timeout=TEN_MIN, hard_timeout=None) as store:
        sid = store.sessions.create("gpt-4o").session_id
        store.messages.append(sid, "user", "hello")
        t1 = clock.advance(minutes=1)
        first = store.lifecycle.archive(sid, reason="user closed it", now=t1)
        t2 = clock.advance(minutes=1)
        store.lifecycle.reactivate(sid, now=t2)
        t3 = t2 + TEN_MIN
        [swept] = store.lifecycle.sweep(t3).archived
        t4 = t3 + timedelta(days=1)
        store.lifecycle.purge(timedelta(hours=1), now=t4)
        t5 = t4 + timedelta(hours=1)
        store.lifecycle.restore(swept.snapshot_id, now=t5)
        store.lifecycle.prune_snapshots(keep=1, now=t5 + MS)

        trail = store.lifecycle.history(sid)
        assert [(e.action, e.reason, e.snapshot_id, e.occurred_at) for e in trail] == [
            ("archive", "user closed it", first.snapshot_id, t1),
            ("reactivate", None, None, t2),
            ("archive", "idle timeout", swept.snapshot_id, t3),
            ("purge", None, swept.snapshot_id, t4),
            ("restore", None, swept.snapshot_id, t5),
            ("prune_snapshot", "keep 1", first.snapshot_id, t5 + MS),
        ]
        assert [e.event_id for e in trail] == sorted(e.event_id for e in trail)
        assert all(e.session_id == sid for e in trail)
        # A snapshot holds the session as it was just before its archive: active.
        assert store.sessions.get(sid).status == "active"


# --- appends racing an archive --------------------------------------------------------

WRITERS = 4


def race_once(writers: SessionStore, archiver: SessionStore, threshold: int) -> None:
    """WRITERS threads append until refused; another thread archives after ``threshold`` acks."""
    sid = writers.sessions.create("gpt-4o").session_id
    acked: list[MessageRecord] = []
    refused: list[int] = []
    unexpected: list[BaseException] = []
    snapshot: list[int] = []
    lock = threading.Lock()
    enough = threading.Event()
    failed = threading.Event()  # the archive failed: stop appending, report it

    def append_until_refused(worker: int) -> None:
        for i in range(100_000):
            if failed.is_set():
                return
            try:
                record = writers.messages.append(
                    sid, "user", f"worker {worker} message {i}",
                    tokens=1, client_msg_id=f"w{worker}-{i}" if worker % 2 else None,
                )  # fmt: skip
            except SessionArchived:
                with lock:
                    refused.append(worker)
                return
            except BaseException as exc:
                with lock:
                    unexpected.append(exc)
                return
            with lock:
                acked.append(record)
                if len(acked) >= threshold:
                    enough.set()

    def archive() -> None:
        try:
            enough.wait(30)
            snapshot.append(archiver.lifecycle.archive(sid).snapshot_id)
        except BaseException as exc:
            with lock:
                unexpected.append(exc)
            failed.set()

    threads = [threading.Thread(target=append_until_refused, args=(w,)) for w in range(WRITERS)]
    threads.append(threading.Thread(target=archive))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive(), "a thread hung"

    assert unexpected == []
    assert sorted(refused) == list(range(WRITERS))  # every writer was stopped, and cleanly
    assert len(acked) >= threshold
    live = all_messages(archiver, sid)
    by_id = {m.message_id: m for m in live}
    for record in acked:  # acknowledged => stored, exactly as acknowledged
        assert by_id.get(record.message_id) == record
    assert len(live) == len(acked)  # and nothing stored that was not acknowledged
    assert [m.sequence_number for m in live] == list(range(1, len(live) + 1))
    assert archiver.sessions.get(sid).status == "archived"
    document = snapshot_document(archiver, snapshot[0])
    assert [m["message_id"] for m in document["messages"]] == list(by_id)
    assert document["session"]["message_count"] == len(live)
    # And back through purge and restore: the very same messages.
    archiver.lifecycle.purge(timedelta(0))
    assert not archiver.sessions.exists(sid)
    archiver.lifecycle.restore(snapshot[0])
    assert all_messages(archiver, sid) == live


def test_appends_racing_an_archive_lose_nothing(backend_url: str) -> None:
    """Acknowledged appends are all in the archive and its snapshot; else SessionArchived."""
    with (
        SessionStore.open(backend_url, pool_size=WRITERS + 1) as writers,
        SessionStore.open(backend_url) as archiver,
    ):
        for threshold in (1, 40, 120):
            race_once(writers, archiver, threshold)
