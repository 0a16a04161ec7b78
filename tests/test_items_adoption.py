"""Revision 0006 on a legacy file, on a fresh database, and on its way down.

* The damaged legacy fixture (``tests/legacy.py``) adopted to head keeps every
  message byte for byte; old rows read back as kind ``message`` without a
  payload or an exact copy; the legacy views still answer; the file passes
  ``PRAGMA integrity_check``.
* The loosened constraints (any role of 1 to 64 characters, a NULL
  ``model_id``) hold in the tables' SQL on SQLite, fresh and adopted, and in
  the catalog on PostgreSQL; the new ones (role length, an owner's
  ``user_id`` needs an ``app``) refuse what they should.
* ``downgrade -1`` from 0006 is refused, changing nothing, while any row or
  snapshot uses what 0006 added; once nothing does, it runs and the legacy
  role CHECK and ``NOT NULL`` come back.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from sessionstore import MigrationError, NewMessage, SessionStore
from sessionstore.downgrades import downgrade
from sessionstore.migrations import head_revision

from .conftest import FakeClock
from .legacy import LegacyFacts, copy_legacy, shared_legacy_db

ITEMS_REVISION = "0006_items_owners_state"
BELOW = "0005_unusable_ids"


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> LegacyFacts:
    return shared_legacy_db(tmp_path_factory.getbasetemp() / "legacy-master")


@pytest.fixture(scope="module")
def adopted(legacy: LegacyFacts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    facts = copy_legacy(legacy, tmp_path_factory.mktemp("items-adopted") / "legacy.db")
    with SessionStore.open(f"sqlite:///{facts.path}"):
        pass
    yield facts.path


def table_sql(path: Path, table: str) -> str:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        row = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    return str(row[0])


def test_adopted_legacy_messages_are_kept_and_read_as_plain_messages(
    adopted: Path, legacy: LegacyFacts
) -> None:
    with contextlib.closing(sqlite3.connect(adopted)) as conn:
        rows = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT message_id, role, CAST(content AS BLOB), kind, payload, exact_content"
                " FROM messages"
            )
        }
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        # The legacy views still answer, on the rebuilt schema.
        assert conn.execute("SELECT COUNT(*) FROM recent_sessions").fetchone()[0] > 0
        assert conn.execute("SELECT COUNT(*) FROM session_stats").fetchone()[0] > 0
    assert set(rows) == set(legacy.messages)
    for message_id, message in legacy.messages.items():
        assert rows[message_id] == (
            message.role, message.content.encode("utf-8"), "message", None, None,
        )  # fmt: skip
    with SessionStore.open(f"sqlite:///{adopted}") as store:
        sid = min(legacy.live_session_ids)
        records = list(store.messages.iterate(sid))
        assert [(r.message_id, r.content) for r in records] == [
            (m.message_id, m.content) for m in legacy.messages_of(sid)
        ]
        assert {(r.kind, r.payload, r.payload_json) for r in records} <= {("message", None, None)}


def test_the_loosened_constraints_are_in_the_tables_sql(adopted: Path, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.db"
    with SessionStore.open(f"sqlite:///{fresh}"):
        pass
    for path in (adopted, fresh):
        messages, sessions = table_sql(path, "messages"), table_sql(path, "sessions")
        assert "CHECK (length(role) BETWEEN 1 AND 64)" in messages
        assert "role IN" not in messages
        assert "model_id TEXT," in sessions and "model_id TEXT NOT NULL" not in sessions


@pytest.mark.parametrize("kind", ["fresh", "adopted"])
def test_new_roles_and_modelless_sessions_on_sqlite(
    kind: str, adopted: Path, legacy: LegacyFacts, tmp_path: Path
) -> None:
    path = tmp_path / "fresh.db" if kind == "fresh" else tmp_path / "adopted.db"
    if kind == "adopted":
        path.write_bytes(adopted.read_bytes())
    with SessionStore.open(f"sqlite:///{path}") as store:
        sid = store.sessions.create().session_id
        record = store.messages.append(
            sid, "developer", "Be terse.", kind="message", payload={"role": "developer"}
        )
        assert store.messages.get(record.message_id).role == "developer"
        assert store.health.check().ok
    with contextlib.closing(sqlite3.connect(path)) as conn:
        # The table's own CHECKs still refuse what no role or owner may be.
        for statement in (
            f"INSERT INTO messages (session_id, sequence_number, role, content)"
            f" VALUES ('{sid}', 99, '', 'x')",
            f"INSERT INTO messages (session_id, sequence_number, role, content)"
            f" VALUES ('{sid}', 99, '{'r' * 65}', 'x')",
            "INSERT INTO sessions (session_id, model_id, user_id) VALUES ('s-x', 'm', 'u')",
        ):
            with pytest.raises(sqlite3.IntegrityError):
                conn.execute(statement)
        first = conn.execute(
            "SELECT first_prompt FROM recent_sessions WHERE session_id = ?", (sid,)
        ).fetchone()
        assert first == (None,)  # a developer message is not the user's first prompt


def test_postgresql_catalog_holds_the_loosened_constraints(postgres_url: str) -> None:
    with SessionStore.open(postgres_url) as store, store.engine.connect() as conn:
        check = conn.execute(
            sa.text(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE conname = 'ck_messages_role'"
            )
        ).scalar()
        nullable = conn.execute(
            sa.text(
                "SELECT is_nullable FROM information_schema.columns"
                " WHERE table_name = 'sessions' AND column_name = 'model_id'"
            )
        ).scalar()
        conn.rollback()
    assert "length(role)" in str(check) and nullable == "YES"


# --- the way down -----------------------------------------------------------------------------


@contextlib.contextmanager
def engine_for(url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        yield engine
    finally:
        engine.dispose()


def revision_of(url: str) -> str:
    with engine_for(url) as engine, engine.connect() as conn:
        return str(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar())


USES: dict[str, Any] = {
    "kind": lambda s, sid: s.messages.append(sid, "assistant", "f()", kind="function_call"),
    "payload": lambda s, sid: s.messages.append(sid, "user", "x", payload={"a": 1}),
    "NUL": lambda s, sid: s.messages.append(sid, "user", "a\x00b"),
    "role": lambda s, sid: s.messages.append(sid, "developer", "x"),
    "model id": lambda s, sid: s.sessions.create(),
    "session state": lambda s, sid: s.state.update(sid, {"k": 1}),
}


@pytest.mark.parametrize("use", sorted(USES))
def test_the_downgrade_is_refused_while_anything_uses_the_additions(
    backend_url: str, use: str
) -> None:
    with SessionStore.open(backend_url) as store:
        sid = store.sessions.create("m").session_id
        store.messages.append(sid, "user", "plain")
        made = USES[use](store, sid)
    with (
        engine_for(backend_url) as engine,
        pytest.raises(MigrationError, match=f"undoing {ITEMS_REVISION} would destroy"),
    ):
        downgrade(engine, BELOW)
    assert revision_of(backend_url) == head_revision()
    # Take the use away and the downgrade runs.
    with SessionStore.open(backend_url) as store:
        if use == "model id":
            store.sessions.delete(made.session_id)
        elif use == "session state":
            store.state.update(sid, {}, remove=["k"])
        else:
            store.messages.delete(made.message_id)
    with engine_for(backend_url) as engine:
        report = downgrade(engine, BELOW)
    assert report.undone[-1] == ITEMS_REVISION


def test_a_snapshot_holding_items_blocks_the_downgrade(backend_url: str) -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    with SessionStore.open(backend_url, clock=clock) as store:
        sid = store.sessions.create("m").session_id
        store.messages.append(sid, "assistant", "f()", kind="function_call", payload={"a": 1})
        store.lifecycle.archive(sid)
        clock.advance(days=1)
        store.lifecycle.purge(older_than=timedelta(0))
    with (
        engine_for(backend_url) as engine,
        pytest.raises(MigrationError, match="snapshots holding items"),
    ):
        downgrade(engine, BELOW)
    assert revision_of(backend_url) == head_revision()


def test_down_and_up_again_puts_the_legacy_constraints_back(sqlite_url: str) -> None:
    with SessionStore.open(sqlite_url) as store:
        sid = store.sessions.create("m").session_id
        store.messages.append_many(sid, [NewMessage("user", "one"), NewMessage("tool", "two")])
    with engine_for(sqlite_url) as engine:
        downgrade(engine, BELOW)
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    assert "role IN ('user', 'assistant', 'system', 'tool')" in table_sql(path, "messages")
    assert "model_id TEXT NOT NULL" in table_sql(path, "sessions")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(
                "INSERT INTO messages (session_id, sequence_number, role, content)"
                " VALUES (?, 9, 'developer', 'x')",
                (sid,),
            )
    with SessionStore.open(sqlite_url) as store:
        assert [m.content for m in store.messages.iterate(sid)] == ["one", "two"]
        assert store.messages.append(sid, "developer", "back").sequence_number == 3
        assert store.health.check().ok


def test_a_table_whose_sql_is_not_the_expected_one_is_refused_whole(sqlite_url: str) -> None:
    """The schema edit is one exact replacement, found once, or nothing changes at all."""
    with SessionStore.open(sqlite_url):
        pass
    with engine_for(sqlite_url) as engine:
        downgrade(engine, BELOW)
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    with contextlib.closing(sqlite3.connect(path)) as conn:
        (version,) = conn.execute("PRAGMA schema_version").fetchone()
        conn.execute("PRAGMA writable_schema = ON")
        sql = table_sql(path, "messages").replace("'tool'", "'tool', 'other'")
        conn.execute("UPDATE sqlite_master SET sql = ? WHERE name = 'messages'", (sql,))
        conn.execute(f"PRAGMA schema_version = {version + 1}")
        conn.commit()
    with pytest.raises(MigrationError, match="not once; nothing was changed"):
        SessionStore.open(sqlite_url)
    assert revision_of(sqlite_url) == BELOW
    assert table_sql(path, "messages") == sql
    with contextlib.closing(sqlite3.connect(path)) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(messages)")}
    assert "kind" not in columns
