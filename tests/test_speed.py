"""The hot path's shortcuts give exactly what the slow path gave.

* Records built by position (``prepared.record_builder``) are the frozen,
  typed, comparable dataclasses ``cls(...)`` builds.
* Stored timestamp text is parsed once and kept in a bounded table; text the
  store never writes is still read or refused as before, never kept.
* ``sessions.create`` without a chosen id or metadata takes one prepared
  INSERT: the session stored is the one returned, on both backends.
* Revision 0007: an append rewrites only the session indexes its session is
  in (WAL frames mapped to their b-trees with ``dbstat``), and the lists and
  the purge still search an ordered index.
* SQLite connections checkpoint every ``WAL_AUTOCHECKPOINT_PAGES`` (1,000) pages.
* The sweep archives in bounded batches (``sessionstore.sweeps``): each
  swept session gets the snapshot, status and audit line ``archive`` gives.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import struct
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sessionstore import SessionStore, sweeps
from sessionstore import prepared as prepared_module
from sessionstore.engine import WAL_AUTOCHECKPOINT_PAGES
from sessionstore.errors import DatabaseCorruptError
from sessionstore.prepared import from_db_time, record_builder
from sessionstore.records import MessageRecord, SessionRecord

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_records_built_by_position_are_the_dataclass_itself() -> None:
    build = record_builder(MessageRecord)
    fields = (7, "s", 3, "user", "hi", NOW, 5, 0.5, '{"a":1}', "c-1", "message", None)
    built, made = build(*fields), MessageRecord(*fields)
    assert type(built) is MessageRecord
    assert built == made and hash(built) == hash(made) and repr(built) == repr(made)
    assert dataclasses.asdict(built) == dataclasses.asdict(made)
    assert built.metadata == {"a": 1}
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.content = "changed"  # type: ignore[misc]
    with pytest.raises(TypeError):
        build(*fields[:-1])  # every field by position: none is left to a default
    session = record_builder(SessionRecord)(
        "s", None, None, None, "active", NOW, NOW, NOW, 0, 0, 0.0, 0,
        None, None, None, None, None, None, None, False,
    )  # fmt: skip
    assert session == SessionRecord("s", None, None, None, "active", NOW, NOW, NOW, 0, 0, 0.0, 0)


def test_stored_times_are_parsed_once_in_a_bounded_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prepared_module, "_PARSED", {})
    monkeypatch.setattr(prepared_module, "_PARSED_LIMIT", 10)
    first = from_db_time("2026-11-29 12:00:00.000001")
    assert first == NOW + timedelta(microseconds=1) and first.tzinfo is UTC
    assert from_db_time("2026-11-29 12:00:00.000001") is first
    for second in range(25):
        from_db_time(f"2026-11-29 12:00:{second:02d}.000000")
    assert 0 < len(prepared_module._PARSED) <= 10
    # Text the store never writes: read as before (an offset), or refused; never kept.
    assert from_db_time("2026-11-29T13:00:00+01:00") == NOW
    with pytest.raises(DatabaseCorruptError):
        from_db_time("not a time")
    assert "not a time" not in prepared_module._PARSED


def test_create_stores_the_session_it_returns(backend_url: str) -> None:
    with SessionStore.open(backend_url, clock=lambda: NOW) as store:
        made = store.sessions.create(
            "gpt-4o", model_name="GPT", title="t", idle_timeout=timedelta(hours=1),
            app="app", user_id="u", never_expires=True,
        )  # fmt: skip
        assert store.sessions.get(made.session_id) == made
        bare = store.sessions.create()
        assert store.sessions.get(bare.session_id) == bare
        assert bare.model_id is None and bare.created_at == NOW
        listed = store.sessions.list(limit=5).items
        assert {s.session_id for s in listed} == {made.session_id, bare.session_id}


# --- revision 0007 --------------------------------------------------------------------


def _wal_pages(path: Path) -> list[int]:
    data = Path(f"{path}-wal").read_bytes()
    page_size = struct.unpack(">I", data[8:12])[0]
    return [
        struct.unpack(">I", data[offset : offset + 4])[0]
        for offset in range(32, len(data) - 24 - page_size + 1, 24 + page_size)
    ]


def _btrees_written(path: Path, store: SessionStore, append: Any) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        append()
        owner = dict(conn.execute("SELECT pageno, name FROM dbstat"))
    finally:
        conn.close()
    return {owner[page] for page in _wal_pages(path) if page in owner}


SESSION_INDEXES = {
    "ix_sessions_model_id_last_activity",
    "ix_sessions_app_user_id_last_activity",
    "ix_sessions_archived_last_activity",
    "ix_sessions_archived_model_id_last_activity",
    "ix_sessions_archived_archived_at",
}


def test_an_append_rewrites_only_the_session_indexes_its_session_is_in(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SessionStore.open(f"sqlite:///{path}") as store:
        probe = sqlite3.connect(":memory:")
        if (
            probe.execute("SELECT 1 FROM pragma_module_list WHERE name = 'dbstat'").fetchone()
            is None
        ):
            pytest.skip("this SQLite has no dbstat")
        probe.close()
        bare = store.sessions.create().session_id
        modelled = store.sessions.create("gpt-4o").session_id
        owned = store.sessions.create(app="app", user_id="u").session_id
        for sid in (bare, modelled, owned):
            store.messages.append(sid, "user", "first")
        archived = store.sessions.create("gpt-4o").session_id
        store.lifecycle.archive(archived)

        written = _btrees_written(path, store, lambda: store.messages.append(bare, "user", "x"))
        assert "ix_sessions_last_activity_session_id" in written
        assert not written & SESSION_INDEXES, written
        written = _btrees_written(path, store, lambda: store.messages.append(modelled, "user", "x"))
        assert written & SESSION_INDEXES == {"ix_sessions_model_id_last_activity"}
        written = _btrees_written(path, store, lambda: store.messages.append(owned, "user", "x"))
        assert written & SESSION_INDEXES == {"ix_sessions_app_user_id_last_activity"}
        with store.engine.connect() as conn:
            indexes = set(conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'sessions'"
            ).scalars())  # fmt: skip
        assert indexes >= SESSION_INDEXES
        assert not {"ix_sessions_status_last_activity", "ix_sessions_model_id_status_last_activity",
                    "ix_sessions_status_archived_at"} & indexes  # fmt: skip

        # The archived session is in its partial indexes; the lists find it there.
        assert [s.session_id for s in store.sessions.list(status="archived")] == [archived]
        assert [
            s.session_id for s in store.sessions.list(model_id="gpt-4o", status="archived")
        ] == [archived]
        active = {s.session_id for s in store.sessions.list(status="active")}
        assert active == {bare, modelled, owned}


def test_the_purge_walks_archived_sessions_by_archive_time(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    SessionStore.open(f"sqlite:///{path}").close()
    conn = sqlite3.connect(path)
    try:
        plan = [
            row[3]
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT session_id FROM sessions"
                " WHERE status = 'archived' AND archived_at <= ? ORDER BY archived_at, session_id",
                ("2026-01-01",),
            )
        ]
    finally:
        conn.close()
    assert plan == ["SEARCH sessions USING INDEX ix_sessions_archived_archived_at (archived_at<?)"]


def test_sqlite_connections_checkpoint_every_thousand_pages(tmp_path: Path) -> None:
    with SessionStore.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        with store.engine.connect() as conn:
            pages = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
        assert pages == WAL_AUTOCHECKPOINT_PAGES == 1000


# --- the sweep's batches ---------------------------------------------------------------


def test_sweep_batches_are_bounded_by_sessions_and_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sweeps, "BATCH_SESSIONS", 3)
    monkeypatch.setattr(sweeps, "BATCH_MESSAGES", 100)
    counts = [10, 10, 10, 10, 90, 20, 500, 1, 1]
    found = sweeps.batches(counts)
    assert [list(r) for r in found] == [[0, 1, 2], [3, 4], [5], [6], [7, 8]]
    assert sweeps.batches([]) == []


def _snapshot_text(store: SessionStore, session_id: str) -> dict[str, Any]:
    with store.engine.connect() as conn:
        payload = conn.exec_driver_sql(
            "SELECT payload FROM session_snapshots WHERE session_id = ?", (session_id,)
        ).scalar_one()
    document: dict[str, Any] = json.loads(zlib.decompress(payload))
    return document


def test_a_swept_session_has_the_snapshot_and_history_an_archive_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sweeps, "BATCH_SESSIONS", 2)  # several batches
    clock = [NOW]
    url = f"sqlite:///{tmp_path / 's.db'}"
    with SessionStore.open(url, clock=lambda: clock[0], idle_timeout=timedelta(hours=1)) as store:
        ids = []
        for i in range(5):
            sid = store.sessions.create("gpt-4o", metadata={"k": f"v{i}"}).session_id
            store.messages.append(sid, "user", f"hello {i}\x00 with NUL", tokens=3)
            store.messages.append(sid, "assistant", "answer", metadata={"m": i}, kind="reasoning",
                                  payload={"type": "reasoning", "n": i})  # fmt: skip
            store.state.update(sid, {"step": i})
            ids.append(sid)
        manual = ids.pop()
        later = NOW + timedelta(hours=2)
        store.lifecycle.archive(manual, reason="idle timeout", now=later)
        seen: list[tuple[int, int]] = []
        report = store.lifecycle.sweep(
            later, progress=lambda done, total: seen.append((done, total))
        )
        assert sorted(item.session_id for item in report.archived) == sorted(ids)
        assert report.skipped == 0
        assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
        expected = _snapshot_text(store, manual)
        for sid in ids:
            document = _snapshot_text(store, sid)
            # The same document as archive() stores, but for the session's own values.
            assert document.keys() == expected.keys()
            assert document["session"]["session_id"] == sid
            assert document["messages"][0]["content"].endswith("with NUL")
            assert document["state"] == {"step": ids.index(sid)}
            session = store.sessions.get(sid)
            assert session.status == "archived" and session.archived_at == later
            [event] = store.lifecycle.history(sid)
            assert (event.action, event.reason) == ("archive", "idle timeout")
            assert event.snapshot_id == store.lifecycle.snapshots(sid)[0].snapshot_id
        # A swept session comes back whole.
        store.lifecycle.restore(store.lifecycle.snapshots(ids[0])[0].snapshot_id, now=later)
        again = store.messages.recent(ids[0], 10)
        assert again[0].content == "hello 0\x00 with NUL" and again[1].payload["n"] == 0


# --- PostgreSQL connections kept between calls ------------------------------------------


@pytest.mark.postgres
def test_postgresql_keeps_connections_and_pings_those_idle_too_long(postgres_url: str) -> None:
    import psycopg

    with SessionStore.open(postgres_url) as store:
        sid = store.sessions.create().session_id
        store.sessions.get(sid)
        assert store.pool_status().kept == 1  # kept between calls, not checked in
        kept = store._runner.cache._idle[-1][0]
        pid = kept.dbapi_connection.info.backend_pid
        # The server drops that connection while it waits for its next call.
        dsn = postgres_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        # Idle longer than the trusted span: back through the pool, whose ping finds
        # it dead and connects anew; the call succeeds.
        store._runner.cache._max_idle = 0.0
        assert store.sessions.get(sid).session_id == sid
