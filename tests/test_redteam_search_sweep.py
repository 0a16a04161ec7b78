"""Hostile checks of the recent-order walk, the ranking admission, exports and the sweep.

* Words the FTS5 tokenizer indexes but a letters-and-digits pattern does not see
  (characters of Unicode's private use areas, word characters to ``unicode61``)
  count as words: advanced mode's word limit and ranking admission are counted on
  the text, and a word they miss is ranked unbounded.
* A search's statements and an export's keyset batches read one state of the
  database on PostgreSQL too (a session deleted, a message appended by another
  connection in between), and a caller's transaction keeps its isolation.
* Legacy values a file may hold: a message count that is no number (the walk's
  cost, the sweep's batches), a payload of ``1e999`` or ``NaN`` (its snapshot must
  restore after the purge).
* The batched sweep killed before each statement leaves every session active
  without a snapshot or archived with one equal to its export; appends racing it
  lose nothing acknowledged and never land in an archived session.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import zlib
from contextlib import closing
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from sessionstore import (
    InvalidSearchQuery,
    SessionArchived,
    SessionStore,
    export,
    files,
    search_recent,
    sweeps,
)
from sessionstore import search as search_module
from sessionstore.search_text import MAX_ADVANCED_TERMS, check_advanced, ranked_words

from .conftest import FakeClock
from .test_redteam_items import CRASHED, crash_before_statement

HOUR = timedelta(hours=1)

#: Private use characters (category Co): FTS5's unicode61 indexes each as a word.
PRIVATE = [chr(0xE100 + i) for i in range(MAX_ADVANCED_TERMS + 4)] + ["\U000f0041"]


def test_private_use_words_are_counted_as_the_index_sees_them() -> None:
    query = " OR ".join(PRIVATE)
    assert ranked_words(query, "sqlite") == len(PRIVATE)
    assert ranked_words(f'"{PRIVATE[0]} {PRIVATE[1]}" {PRIVATE[2]}', "sqlite") == 3
    with pytest.raises(InvalidSearchQuery, match="words"):
        check_advanced(query, "sqlite")
    # A prefix of one such character expands to every word starting with it.
    with pytest.raises(InvalidSearchQuery, match="too short"):
        check_advanced(f"{PRIVATE[0]}*", "sqlite")


def test_private_use_words_cannot_slip_past_the_word_limit(sqlite_url: str) -> None:
    with SessionStore.open(sqlite_url) as store:
        sid = store.sessions.create("m").session_id
        store.messages.append(sid, "user", " ".join(PRIVATE) + " plain")
        before = store.export(sid)
        query = " OR ".join(PRIVATE)
        for search in (store.search.sessions, store.search.messages):
            with pytest.raises(InvalidSearchQuery):
                search(query, mode="advanced")
        # Within the limit, such words are found as words.
        found = store.search.sessions(f"{PRIVATE[0]} OR {PRIVATE[1]}", mode="advanced")
        assert [hit.session.session_id for hit in found.items] == [sid]
        assert store.export(sid) == before


# --- one state of the database per search and per export, on PostgreSQL too ----------


def test_the_walk_reads_one_state_of_the_database(
    backend_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session deleted (and one written) by another connection between the walk's
    statements: the page is the one before the write, never a raw ``KeyError``."""
    monkeypatch.setattr(search_recent, "_MIN_COUNT", 0)
    monkeypatch.setattr(search_recent, "_COUNT_FACTOR", 0)
    with SessionStore.open(backend_url) as store, SessionStore.open(backend_url) as other:
        ids = []
        for n in range(4):
            sid = store.sessions.create("m").session_id
            store.messages.append(sid, "user", f"packet {n}")
            ids.append(sid)
        before = [
            (h.session.session_id, h.message_id, h.rank)
            for h in store.search.sessions("packet", limit=10, order="recent").items
        ]
        assert [sid for sid, _, _ in before] == ids[::-1]
        name = "fetch_raw" if store.dialect == "sqlite" else "fetch_postgres"
        fetch = getattr(search_module, name)
        written: list[bool] = []

        matching = {search_recent._SQLITE_MATCHING, search_recent._PG_MATCHING}

        def write_between(*args: Any) -> Any:
            rows = fetch(*args)
            if not written and args[-2] in matching:  # the walk found its matches
                other.sessions.delete(ids[-1])  # the newest, matched a moment ago
                late = other.sessions.create("m").session_id
                other.messages.append(late, "user", "packet late")
                written.append(True)
            return rows

        monkeypatch.setattr(search_module, name, write_between)
        page = store.search.sessions("packet", limit=10, order="recent")
        assert written
        assert [(h.session.session_id, h.message_id, h.rank) for h in page.items] == before


def test_an_export_reads_one_state_of_the_session(
    backend_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Messages appended by another connection while an export streams its keyset
    batches are not in it: its messages are the ones its head counts."""
    monkeypatch.setattr(export, "_BATCH", 2)
    with SessionStore.open(backend_url) as store, SessionStore.open(backend_url) as other:
        sid = store.sessions.create("m").session_id
        for n in range(5):
            store.messages.append(sid, "user", f"m{n}")
        before = store.export(sid)
        line = export.message_line
        written: list[bool] = []

        def append_between(row: Any) -> str:
            if not written:
                other.messages.append(sid, "user", "late")
                written.append(True)
            return line(row)

        monkeypatch.setattr(export, "message_line", append_between)
        got = store.export(sid)
        assert written
        assert got == before
        document = json.loads(got)
        assert len(document["messages"]) == document["session"]["message_count"] == 5


@pytest.mark.postgres
def test_a_callers_transaction_keeps_its_isolation(postgres_url: str) -> None:
    """A search or an export first in ``store.transaction()`` leaves the caller's
    (writing) transaction at the server's default isolation."""
    with SessionStore.open(postgres_url) as store:
        sid = store.sessions.create("m").session_id
        store.messages.append(sid, "user", "packet")
        with store.transaction() as tx:
            tx.search.sessions("packet", order="recent")
            conn = tx.search._runner._conn  # type: ignore[attr-defined]
            level = conn.exec_driver_sql("SHOW transaction_isolation").scalar()
            assert level == "read committed"
            tx.messages.append(sid, "user", "more")
        assert store.sessions.get(sid).message_count == 2


# --- the batched sweep killed before each statement -----------------------------------

FIXED = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _sweep_fixture(path: Path) -> dict[str, str]:
    """Seven sessions due (one over the patched message bound, swept alone), the
    exports taken before any sweep."""
    with SessionStore.open(f"sqlite:///{path}", clock=lambda: FIXED) as store:
        for s in range(7):
            sid = store.sessions.create("m", session_id=f"s{s}", metadata={"k": "v"}).session_id
            n = 14 if s == 3 else 3
            store.messages.append_many(
                sid, [{"role": "user", "content": f"{s}.{i} \x00 \U0001f600"} for i in range(n)]
            )
            store.state.update(sid, {"f": 1e-7, "big": 2**70, "z": -0.0})
        return {sid: store.export(sid) for sid in (f"s{s}" for s in range(7))}


def _sweep(url: str) -> None:
    with SessionStore.open(url, clock=lambda: FIXED) as store:
        files.step("op:start")
        store.lifecycle.sweep(now=FIXED + timedelta(days=400))


def _each_session_whole(path: Path, exported: dict[str, str]) -> int:
    """Each session active without a snapshot, or archived with one equal to its export;
    how many are archived."""
    archived = 0
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        for sid, text in exported.items():
            (status,) = conn.execute(
                "SELECT status FROM sessions WHERE session_id = ?", (sid,)
            ).fetchone()
            snaps = conn.execute(
                "SELECT payload FROM session_snapshots WHERE session_id = ?", (sid,)
            ).fetchall()
            events = conn.execute(
                "SELECT count(*) FROM lifecycle_events WHERE session_id = ? AND action = 'archive'",
                (sid,),
            ).fetchone()[0]
            if status == "active":
                assert (snaps, events) == ([], 0), sid
            else:
                assert status == "archived" and len(snaps) == 1 and events == 1, sid
                assert zlib.decompress(snaps[0][0]).decode("utf-8") == text, sid
                archived += 1
    return archived


@pytest.mark.slow
def test_a_batched_sweep_killed_before_each_statement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sweeps, "BATCH_SESSIONS", 2)
    monkeypatch.setattr(sweeps, "BATCH_MESSAGES", 10)
    pristine = tmp_path / "pristine.db"
    exported = _sweep_fixture(pristine)
    partial_states = 0
    for k in range(1, 200):
        trial = tmp_path / f"k{k}.db"
        shutil.copyfile(pristine, trial)
        code = crash_before_statement(k, partial(_sweep, f"sqlite:///{trial}"), None)
        archived = _each_session_whole(trial, exported)
        partial_states += 0 < archived < len(exported)
        _sweep(f"sqlite:///{trial}")  # a re-run finishes the sweep
        assert _each_session_whole(trial, exported) == len(exported)
        trial.unlink()
        if code == 0:
            break
        assert code == CRASHED, k
    else:
        raise AssertionError("the sweep never completed")
    assert partial_states > 0  # the kills fell between batches too


def test_appends_racing_a_batched_sweep(backend_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Appends from another thread while batches are swept: every acknowledged message is
    kept, in its session's snapshot when the session was archived after it; none lands in
    a session once archived."""
    monkeypatch.setattr(sweeps, "BATCH_SESSIONS", 3)
    with SessionStore.open(backend_url) as store, SessionStore.open(backend_url) as other:
        ids = [store.sessions.create("m").session_id for _ in range(24)]
        for sid in ids:
            store.messages.append(sid, "user", "first")
        acknowledged: dict[str, list[int]] = {sid: [] for sid in ids}
        stop = threading.Event()
        failures: list[BaseException] = []

        def append() -> None:
            n = 0
            while not stop.is_set():
                sid = ids[n % len(ids)]
                n += 1
                try:
                    message = other.messages.append(sid, "user", f"late {n}")
                except SessionArchived:
                    continue
                except BaseException as exc:  # reported below
                    failures.append(exc)
                    return
                acknowledged[sid].append(message.message_id)

        thread = threading.Thread(target=append)
        thread.start()
        try:
            report = store.lifecycle.sweep(now=datetime.now(UTC) + timedelta(days=400))
        finally:
            stop.set()
            thread.join()
        assert not failures
        assert len(report.archived) == len(ids)
        with store.engine.connect() as conn:
            for sid in ids:
                payloads = conn.execute(
                    text("SELECT payload FROM session_snapshots WHERE session_id = :s"), {"s": sid}
                ).all()
                assert len(payloads) == 1
                document = json.loads(zlib.decompress(bytes(payloads[0][0])))
                in_snapshot = {m["message_id"] for m in document["messages"]}
                stored = set(
                    conn.execute(
                        text("SELECT message_id FROM messages WHERE session_id = :s"), {"s": sid}
                    ).scalars()
                )
                assert stored == in_snapshot  # nothing landed after the snapshot
                assert set(acknowledged[sid]) <= stored
                assert document["session"]["message_count"] == len(stored)


def test_a_legacy_non_finite_payload_survives_archive_purge_restore(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A legacy payload the JSON rules for new input refuse (``1e999``, ``NaN``) is
    exported as the store reads it; its snapshot restores to an equal export (the purge
    deleted the messages: a snapshot that cannot be restored loses them)."""
    path = tmp_path / "legacy.db"
    with SessionStore.open(f"sqlite:///{path}", clock=clock, idle_timeout=HOUR) as store:
        sid = store.sessions.create("m").session_id
        for n in range(3):
            store.messages.append(sid, "user", f"m{n}", payload={"n": n})
    with closing(sqlite3.connect(path)) as raw, raw:
        raw.execute("UPDATE messages SET payload = '1e999' WHERE sequence_number = 1")
        raw.execute("UPDATE messages SET payload = '[NaN, -Infinity]' WHERE sequence_number = 2")
    with SessionStore.open(f"sqlite:///{path}", clock=clock, idle_timeout=HOUR) as store:
        exported = store.export(sid)
        report = store.lifecycle.sweep(clock.now + 3 * 24 * HOUR)
        assert [item.session_id for item in report.archived] == [sid]
        store.lifecycle.purge(timedelta(0))
        snapshot = store.lifecycle.snapshots(sid)[0].snapshot_id
        store.lifecycle.restore(snapshot)
        assert store.export(sid) == exported


@pytest.mark.parametrize("legacy", ["'many'", "9e999", "2.5"])
def test_the_walk_reads_a_legacy_message_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, legacy: str
) -> None:
    """A session's message count as a legacy file may hold it (text, an infinite real, a
    fraction): the walk's page is the exact statement's, never a raw error."""
    monkeypatch.setattr(search_recent, "_MIN_COUNT", 0)
    monkeypatch.setattr(search_recent, "_COUNT_FACTOR", 0)
    path = tmp_path / "legacy.db"
    with SessionStore.open(f"sqlite:///{path}") as store:
        ids = []
        for n in range(3):
            ids.append(store.sessions.create("m").session_id)
            store.messages.append(ids[-1], "user", f"packet {n}")
    with closing(sqlite3.connect(path)) as raw, raw:
        raw.execute(f"UPDATE sessions SET message_count = {legacy} WHERE session_id = ?", (ids[1],))
    with SessionStore.open(f"sqlite:///{path}") as store:
        walked = store.search.sessions("packet", order="recent", limit=1)
        monkeypatch.setattr(search_module, "recent_walk", lambda *args, **kwargs: None)
        exact = store.search.sessions("packet", order="recent", limit=1)
        assert walked == exact
        assert [h.session.session_id for h in walked.items] == [ids[2]]


@pytest.mark.parametrize("legacy", ["'many'", "9e999"])
def test_a_sweep_takes_a_legacy_message_count(
    tmp_path: Path, clock: FakeClock, legacy: str
) -> None:
    """A due session whose stored message count is no number is archived (streamed
    alone), its snapshot the export's text, and the sessions beside it too."""
    path = tmp_path / "legacy.db"
    with SessionStore.open(f"sqlite:///{path}", clock=clock, idle_timeout=HOUR) as store:
        ids = []
        for n in range(4):
            ids.append(store.sessions.create("m").session_id)
            store.messages.append(ids[-1], "user", f"packet {n}")
    with closing(sqlite3.connect(path)) as raw, raw:
        raw.execute(f"UPDATE sessions SET message_count = {legacy} WHERE session_id = ?", (ids[1],))
    with SessionStore.open(f"sqlite:///{path}", clock=clock, idle_timeout=HOUR) as store:
        exported = {sid: store.export(sid) for sid in ids}
        report = store.lifecycle.sweep(clock.now + 3 * 24 * HOUR)
        assert sorted(item.session_id for item in report.archived) == sorted(ids)
    with closing(sqlite3.connect(path)) as raw:
        for sid in ids:
            (payload,) = raw.execute(
                "SELECT payload FROM session_snapshots WHERE session_id = ?", (sid,)
            ).fetchone()
            assert zlib.decompress(payload).decode("utf-8") == exported[sid]
