"""A restore never destroys an acknowledged message; an id never hands out a number twice.

Every test runs on a real SQLite file and on a real PostgreSQL database.

* Restoring a snapshot over its own id is allowed only from the id's newest
  snapshot, and only while the session is purged (or deleted with nothing
  acknowledged after the snapshot) or archived holding exactly what the
  snapshot holds; otherwise :class:`SessionActive` or
  :class:`SnapshotSuperseded`, and nothing changes.
* ``restore(snapshot_id, session_id="new")`` restores a copy under a free id:
  new message ids, the same sequence numbers and content; a taken id is
  :class:`SessionExists`, a retired one :class:`SessionIdRetired`.
* ``create`` and ``import_session`` refuse a retired id (a purged session's
  snapshots still hold it).
* A storm of threads (appends, archive, reactivate, restore, purge on one id)
  never acknowledges one ``(session, seq)`` twice with different content and
  never loses an acknowledged message.
"""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from sessionstore import (
    ConflictError,
    InvalidStateError,
    MessageRecord,
    NewMessage,
    SessionActive,
    SessionArchived,
    SessionExists,
    SessionIdRetired,
    SessionNotFound,
    SessionStore,
    SnapshotSuperseded,
    snapshots,
)
from sessionstore.cli import main

from .reliability.conftest import logical_dump


def url_of(store: SessionStore) -> str:
    return store.engine.url.render_as_string(hide_password=False)


def contents(store: SessionStore, sid: str) -> list[tuple[int, str]]:
    """Every message of the session, page after page."""
    found: list[tuple[int, str]] = []
    cursor: str | None = None
    while True:
        page = store.messages.history(sid, limit=1000, cursor=cursor)
        found.extend((m.sequence_number, m.content) for m in page.items)
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def test_an_older_snapshot_never_comes_back_over_newer_messages(store: SessionStore) -> None:
    """The reported sequence: archive, reactivate, append "two", archive, restore(first)."""
    sid = store.sessions.create("m", session_id="chat").session_id
    store.messages.append(sid, "user", "one")
    first = store.lifecycle.archive(sid)
    store.lifecycle.reactivate(sid)
    two = store.messages.append(sid, "user", "two")
    assert two.sequence_number == 2
    second = store.lifecycle.archive(sid)
    before = logical_dump(url_of(store))

    with pytest.raises(SnapshotSuperseded) as caught:
        store.lifecycle.restore(first.snapshot_id)
    assert isinstance(caught.value, ConflictError)
    assert f"restore({first.snapshot_id}, session_id=" in str(caught.value)
    assert logical_dump(url_of(store)) == before
    store.lifecycle.purge(timedelta(0))
    with pytest.raises(SnapshotSuperseded):  # purged now: still not the newest
        store.lifecycle.restore(first.snapshot_id)
    store.lifecycle.restore(second.snapshot_id)
    assert contents(store, sid) == [(1, "one"), (2, "two")]
    assert store.messages.append(sid, "user", "three").sequence_number == 3
    # The old snapshot is still good as a copy under a new id.
    copy = store.lifecycle.restore(first.snapshot_id, session_id="chat-as-it-was")
    assert copy.session_id == "chat-as-it-was"
    assert contents(store, copy.session_id) == [(1, "one")]
    store.lifecycle.prune_snapshots(keep=1)
    assert contents(store, sid) == [(1, "one"), (2, "two"), (3, "three")]


def test_superseded_or_active_restore_changes_nothing(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    store.messages.append(sid, "user", "one")
    snap = store.lifecycle.archive(sid)
    store.lifecycle.reactivate(sid)
    store.messages.append(sid, "user", "newer than the snapshot")
    url = url_of(store)
    before = logical_dump(url)
    with pytest.raises(SessionActive) as active:
        store.lifecycle.restore(snap.snapshot_id)
    # It points to the option that exists, and that option works.
    assert f"store.lifecycle.restore({snap.snapshot_id}, session_id=" in str(active.value)
    assert logical_dump(url) == before

    # Archived again: the archive took a newer snapshot, so the old one is superseded.
    store.lifecycle.archive(sid)
    before = logical_dump(url)
    with pytest.raises(SnapshotSuperseded):
        store.lifecycle.restore(snap.snapshot_id)
    assert logical_dump(url) == before
    copy = store.lifecycle.restore(snap.snapshot_id, session_id="copy")
    assert [m.content for m in store.messages.history("copy")] == ["one"]
    assert copy.status == "active"


def test_archived_session_changed_after_its_snapshot_is_superseded(store: SessionStore) -> None:
    """An archived session holding more than its newest snapshot is never overwritten."""
    sid = store.sessions.create("m").session_id
    store.messages.append(sid, "user", "one")
    snap = store.lifecycle.archive(sid)
    with store.engine.begin() as conn:  # a message that reached the archived row by hand
        conn.exec_driver_sql(
            "INSERT INTO messages (session_id, sequence_number, role, content)"
            " VALUES (%s, 2, 'user', 'by hand')"
            if store.dialect == "postgresql"
            else "INSERT INTO messages (session_id, sequence_number, role, content)"
            " VALUES (?, 2, 'user', 'by hand')",
            (sid,),
        )
    before = logical_dump(url_of(store))
    with pytest.raises(SnapshotSuperseded):
        store.lifecycle.restore(snap.snapshot_id)
    assert logical_dump(url_of(store)) == before


def test_restore_while_archived_and_unchanged_gives_it_back(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    store.messages.append(sid, "user", "one")
    snap = store.lifecycle.archive(sid)
    restored = store.lifecycle.restore(snap.snapshot_id)
    assert restored.status == "active" and restored.last_seq == 1
    assert store.messages.append(sid, "user", "two").sequence_number == 2


def test_a_retired_id_is_refused_by_create_and_import(store: SessionStore) -> None:
    sid = store.sessions.create("m", session_id="retiring").session_id
    store.messages.append(sid, "user", "one")
    exported = store.export(sid) or ""
    snap = store.lifecycle.archive(sid)
    store.lifecycle.purge(timedelta(0))
    url = url_of(store)
    before = logical_dump(url)
    for call in (
        lambda: store.sessions.create("m", session_id="retiring"),
        lambda: store.import_session(exported),
        lambda: store.import_session(exported, session_id="retiring"),
    ):
        with pytest.raises(SessionIdRetired) as caught:
            call()
        assert isinstance(caught.value, SessionExists)
        assert f"store.lifecycle.restore({snap.snapshot_id})" in str(caught.value)
    assert logical_dump(url) == before
    # A free id still works, and the retired one comes back through its snapshot.
    assert store.import_session(exported, session_id="fresh").session_id == "fresh"
    store.lifecycle.restore(snap.snapshot_id)
    assert store.messages.append(sid, "user", "two").sequence_number == 2


def test_copy_under_a_taken_id_is_session_exists(store: SessionStore) -> None:
    a = store.sessions.create("m").session_id
    b = store.sessions.create("m").session_id
    store.messages.append(a, "user", "one")
    snap = store.lifecycle.archive(a)
    before = logical_dump(url_of(store))
    with pytest.raises(SessionExists) as caught:
        store.lifecycle.restore(snap.snapshot_id, session_id=b)
    assert not isinstance(caught.value, SessionIdRetired)
    assert logical_dump(url_of(store)) == before
    copy = store.lifecycle.restore(snap.snapshot_id, session_id="c")
    original = store.messages.history(a).items
    copied = store.messages.history("c").items
    assert [(m.sequence_number, m.content) for m in copied] == [
        (m.sequence_number, m.content) for m in original
    ]
    assert {m.message_id for m in copied}.isdisjoint(m.message_id for m in original)
    trail = store.lifecycle.history("c")
    assert [(e.action, e.snapshot_id, e.details) for e in trail] == [
        ("restore", snap.snapshot_id, {"copy_of": a})
    ]
    assert copy.last_seq == 1


def test_delete_after_a_snapshot_keeps_the_numbers_it_handed_out(store: SessionStore) -> None:
    """sessions.delete of a session with snapshots: no older snapshot takes its id back."""
    sid = store.sessions.create("m").session_id
    store.messages.append(sid, "user", "one")
    snap = store.lifecycle.archive(sid)
    store.lifecycle.reactivate(sid)
    store.messages.append(sid, "user", "two")
    store.sessions.delete(sid)
    [event] = [e for e in store.lifecycle.history(sid) if e.action == "purge"]
    assert (event.reason, event.snapshot_id, event.details) == (
        "delete",
        snap.snapshot_id,
        {"messages": 2, "last_seq": 2},
    )
    with pytest.raises(SnapshotSuperseded):
        store.lifecycle.restore(snap.snapshot_id)
    with pytest.raises(SessionIdRetired):
        store.sessions.create("m", session_id=sid)
    store.lifecycle.restore(snap.snapshot_id, session_id="what-was-left")

    # Deleted with nothing after its newest snapshot: the snapshot takes the id back.
    other = store.sessions.create("m").session_id
    store.messages.append(other, "user", "kept")
    last = store.lifecycle.archive(other)
    store.sessions.delete(other)
    store.lifecycle.restore(last.snapshot_id)
    assert contents(store, other) == [(1, "kept")]


# --- a storm on one id ----------------------------------------------------------------------

APPENDERS = 2
LIFECYCLE_THREADS = 2
ROUNDS = 40


def test_storm_on_one_id_never_reissues_a_sequence_number(backend_url: str) -> None:
    """Appends racing archive, reactivate, restore (any snapshot) and purge on one id."""
    stores = [SessionStore.open(backend_url) for _ in range(APPENDERS + LIFECYCLE_THREADS)]
    try:
        sid = stores[0].sessions.create("m", session_id="storm").session_id
        acked: dict[int, str] = {}
        conflicts: list[tuple[int, str, str]] = []
        unexpected: list[BaseException] = []
        outcomes: dict[str, int] = {}
        lock = threading.Lock()
        stop = threading.Event()

        def append(store: SessionStore, worker: int) -> None:
            for i in range(1_000_000):
                if stop.is_set():
                    return
                content = f"worker {worker} message {i}"
                try:
                    record: MessageRecord = store.messages.append(sid, "user", content)
                except (SessionArchived, SessionNotFound):
                    time.sleep(0.001)
                    continue
                except BaseException as exc:
                    unexpected.append(exc)
                    return
                with lock:
                    seen = acked.setdefault(record.sequence_number, content)
                    if seen != content:
                        conflicts.append((record.sequence_number, seen, content))

        def churn(store: SessionStore, seed: int) -> None:
            rnd = random.Random(seed)
            life = store.lifecycle
            for _ in range(ROUNDS):
                op = rnd.choice(("archive", "reactivate", "restore", "restore", "purge"))
                try:
                    if op == "archive":
                        life.archive(sid)
                    elif op == "reactivate":
                        life.reactivate(sid)
                    elif op == "restore":
                        taken = life.snapshots(sid)
                        if taken:
                            life.restore(rnd.choice(taken).snapshot_id)
                    else:
                        life.purge(timedelta(0))
                    result = op
                except (ConflictError, InvalidStateError, SessionNotFound) as exc:
                    result = f"{op}: {type(exc).__name__}"
                except BaseException as exc:
                    unexpected.append(exc)
                    return
                with lock:
                    outcomes[result] = outcomes.get(result, 0) + 1
                time.sleep(rnd.uniform(0, 0.004))

        threads = [threading.Thread(target=append, args=(stores[w], w)) for w in range(APPENDERS)]
        churners = [
            threading.Thread(target=churn, args=(stores[APPENDERS + k], k))
            for k in range(LIFECYCLE_THREADS)
        ]
        for thread in threads + churners:
            thread.start()
        for thread in churners:
            thread.join(120)
        stop.set()
        for thread in threads:
            thread.join(60)
        assert not any(t.is_alive() for t in threads + churners), "a thread hung"

        assert unexpected == []
        assert conflicts == []
        main = stores[0]
        if not main.sessions.exists(sid):  # purged last: its newest snapshot holds it all
            main.lifecycle.restore(main.lifecycle.snapshots(sid)[0].snapshot_id)
        stored = dict(contents(main, sid))
        lost = {seq: text for seq, text in acked.items() if stored.get(seq) != text}
        print(f"\n{main.dialect}: {len(acked)} appends acknowledged, outcomes "
              f"{json.dumps(outcomes, sort_keys=True)}")  # fmt: skip
        assert lost == {}
        assert len(acked) > 0 and outcomes.get("restore", 0) > 0
    finally:
        for opened in stores:
            opened.close()


def test_restore_snapshot_command_restores_a_copy_with_as(sqlite_url: str) -> None:
    with SessionStore.open(sqlite_url) as store:
        sid = store.sessions.create("m").session_id
        store.messages.append(sid, "user", "one")
        old = store.lifecycle.archive(sid).snapshot_id
        store.lifecycle.reactivate(sid)
        store.messages.append(sid, "user", "two")
    runner = CliRunner()
    refused = runner.invoke(main, ["restore-snapshot", str(old), "--db", sqlite_url])
    assert refused.exit_code == 2
    assert "is active" in refused.stderr and "session_id=" in refused.stderr
    copied = runner.invoke(main, ["restore-snapshot", str(old), "--as", "c", "--db", sqlite_url])
    assert (copied.exit_code, copied.stdout.strip()) == (0, "restored c (1 messages)")
    again = runner.invoke(main, ["restore-snapshot", str(old), "--as", "c", "--db", sqlite_url])
    assert again.exit_code == 2 and "already exists" in again.stderr
    with SessionStore.open(sqlite_url) as store:
        assert contents(store, "c") == [(1, "one")]
        assert contents(store, sid) == [(1, "one"), (2, "two")]


@pytest.mark.postgres
def test_an_append_that_waited_for_a_restore_lands_in_the_restored_session(
    postgres_url: str,
) -> None:
    """PostgreSQL: a writer queued on the row a restore replaces finds the new row."""
    with SessionStore.open(postgres_url) as store:
        sid = store.sessions.create("m").session_id
        store.messages.append(sid, "user", "one")
        snap = store.lifecycle.archive(sid)
        results: list[object] = []
        with store.engine.connect() as conn:
            transaction = conn.begin()
            snapshots.restore(conn, snap.snapshot_id, None, datetime.now(UTC))

            def append() -> None:
                try:
                    results.append(store.messages.append_many(sid, [NewMessage("user", "two")]))
                except BaseException as exc:
                    results.append(exc)

            thread = threading.Thread(target=append)
            thread.start()
            waiting = 0
            while waiting == 0 and thread.is_alive():  # until it waits on the row lock
                with store.engine.connect() as probe:
                    waiting = probe.exec_driver_sql(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE wait_event_type = 'Lock' AND query LIKE '%%FOR UPDATE%%'"
                    ).scalar_one()
            transaction.commit()
            thread.join(30)
        assert waiting == 1
        [outcome] = results
        assert isinstance(outcome, list), outcome
        assert [(m.sequence_number, m.content) for m in outcome] == [(2, "two")]
        assert contents(store, sid) == [(1, "one"), (2, "two")]


def test_the_legacy_cleanup_retires_ids_like_delete(tmp_path: Path) -> None:
    """compat's cleanup deleted rows without recording the last sequence number, so an
    older snapshot could be restored over the id and hand its numbers out again."""
    from sessionstore.compat import SessionManager

    path = tmp_path / "compat.db"
    with SessionStore.open(f"sqlite:///{path}") as store:
        sid = store.sessions.create("m").session_id
        store.messages.append(sid, "user", "one")
        first = store.lifecycle.archive(sid)
        store.lifecycle.reactivate(sid)
        assert store.messages.append(sid, "user", "two").sequence_number == 2
    with SessionManager(str(path)) as manager:
        assert manager.cleanup_old_sessions(days=-1) == 1
    with SessionStore.open(f"sqlite:///{path}") as store:
        with pytest.raises(SnapshotSuperseded):
            store.lifecycle.restore(first.snapshot_id)
        assert [e.action for e in store.lifecycle.history(sid)][-1] == "purge"
        copy = store.lifecycle.restore(first.snapshot_id, session_id="copy")
        assert copy.last_seq == 1


def test_an_archived_session_is_read_only(store: SessionStore) -> None:
    """Title, metadata and timeouts written after the snapshot were lost by purge/restore."""
    sid = store.sessions.create("m", title="before").session_id
    store.sessions.set_metadata(sid, "ticket", "T-1")
    store.messages.append(sid, "user", "hello")
    snap = store.lifecycle.archive(sid)
    before = store.sessions.get(sid)
    for write in (
        lambda: store.sessions.rename(sid, "after"),
        lambda: store.sessions.set_metadata(sid, "ticket", "T-42"),
        lambda: store.sessions.delete_metadata(sid, "ticket"),
        lambda: store.lifecycle.set_timeouts(sid, idle_timeout=timedelta(minutes=5)),
        lambda: store.messages.append(sid, "user", "late"),
    ):
        with pytest.raises(SessionArchived):
            write()
    assert store.sessions.get(sid) == before
    assert store.sessions.metadata(sid) == {"ticket": "T-1"}
    store.lifecycle.purge(timedelta(0))
    restored = store.lifecycle.restore(snap.snapshot_id)
    assert restored.title == "before"
    assert store.sessions.metadata(sid) == {"ticket": "T-1"}
    assert restored.status == "active"  # as snapshotted, so writable again
    assert store.sessions.rename(sid, "after").title == "after"
