"""The floor: the few lines of ``sqlite3`` a user would write for themselves.

Where :class:`baseline.RawStore` runs the store's own schema and SQL without
the library around it, :class:`FloorStore` is what someone who never heard
of ``sessionstore`` would hand-write, with the same durability:

* stdlib ``sqlite3``, one connection, driver autocommit, WAL,
  ``synchronous=NORMAL``, ``busy_timeout``, ``foreign_keys=ON``;
* a minimal schema: ``sessions`` (one index, on ``(last_activity, id)``, for
  the newest-first list) and ``messages`` (unique ``(session_id, seq)``),
  an external-content FTS5 index on the message text kept by one
  ``AFTER INSERT`` trigger; no counts, totals, statuses or audit;
* an append is ``BEGIN IMMEDIATE``, one ``UPDATE … RETURNING`` that takes the
  next sequence number and bumps the activity time, one ``INSERT``,
  ``COMMIT``; it returns the new ``(id, seq)``;
* reads return the driver's ``sqlite3.Row`` objects, as fetched.

Nothing is validated, nothing is parsed: no record, no timezone, no cursor.
It is the cheapest correct layer, and so the floor every figure is held to.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["FLOOR_SCHEMA", "FloorStore", "copy_store_into_floor"]

FLOOR_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS sessions (
        id TEXT PRIMARY KEY,
        model_id TEXT,
        title TEXT,
        status TEXT NOT NULL DEFAULT 'active',
        created_at TEXT NOT NULL,
        last_activity TEXT NOT NULL,
        last_seq INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS sessions_by_activity ON sessions (last_activity, id)",
    """CREATE TABLE IF NOT EXISTS messages (
        id INTEGER PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        created_at TEXT NOT NULL,
        tokens INTEGER,
        UNIQUE (session_id, seq)
    )""",
    "CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5("
    "content, content='messages', content_rowid='id')",
    """CREATE TRIGGER IF NOT EXISTS messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
    END""",
)

_APPEND_SEQ = (
    "UPDATE sessions SET last_seq = last_seq + 1, last_activity = ? WHERE id = ? RETURNING last_seq"
)
_APPEND_ROW = (
    "INSERT INTO messages (session_id, seq, role, content, created_at, tokens)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_COLUMNS = "id, session_id, seq, role, content, created_at, tokens"
_RECENT = f"SELECT {_COLUMNS} FROM messages WHERE session_id = ? ORDER BY seq DESC LIMIT ?"
_HISTORY = f"SELECT {_COLUMNS} FROM messages WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?"
_SESSION_COLUMNS = "id, model_id, title, status, created_at, last_activity, last_seq"
_LIST_FIRST = (
    f"SELECT {_SESSION_COLUMNS} FROM sessions ORDER BY last_activity DESC, id DESC LIMIT ?"
)
_LIST_AFTER = (
    f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE (last_activity, id) < (?, ?)"
    " ORDER BY last_activity DESC, id DESC LIMIT ?"
)
_LIST_FILTERED = (
    f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE model_id = ? AND status = ?"
    " ORDER BY last_activity DESC, id DESC LIMIT ?"
)
_SEARCH_RECENT = (
    f"SELECT {_COLUMNS} FROM messages WHERE id IN ("
    " SELECT rowid FROM messages_fts WHERE messages_fts MATCH ? ORDER BY rowid DESC LIMIT ?)"
    " ORDER BY id DESC"
)


def now_text() -> str:
    """The current UTC time as sortable text (what a user would store)."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def connect(path: str | Path, *, busy_ms: int = 10_000) -> sqlite3.Connection:
    """A connection as a careful user opens one: WAL, NORMAL, a busy timeout, Row objects."""
    conn = sqlite3.connect(
        str(path), timeout=busy_ms / 1000, isolation_level=None, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.row_factory = sqlite3.Row
    return conn


class FloorStore:
    """The hand-written layer; one connection (open one per thread, as a user would)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.conn = connect(path)
        for statement in FLOOR_SCHEMA:
            self.conn.execute(statement)

    def close(self) -> None:
        self.conn.close()

    # --- writes -------------------------------------------------------------------

    def create_session(self, session_id: str, model_id: str | None = None) -> str:
        ts = now_text()
        self.conn.execute(
            "INSERT INTO sessions (id, model_id, created_at, last_activity) VALUES (?, ?, ?, ?)",
            (session_id, model_id, ts, ts),
        )
        return session_id

    def append(
        self, session_id: str, role: str, content: str, *, tokens: int | None = None
    ) -> tuple[int, int]:
        """One message, one transaction; returns ``(id, seq)``."""
        ts = now_text()
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(_APPEND_SEQ, (ts, session_id)).fetchone()
            if row is None:
                raise LookupError(f"no session {session_id!r}")
            seq = row[0]
            cursor = conn.execute(_APPEND_ROW, (session_id, seq, role, content, ts, tokens))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return cursor.lastrowid or 0, seq

    def append_many(self, session_id: str, items: list[tuple[str, str, int | None]]) -> None:
        """Seeding: many messages in one transaction by ``executemany``."""
        ts = now_text()
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            (last,) = conn.execute(
                "UPDATE sessions SET last_seq = last_seq + ?, last_activity = ? WHERE id = ?"
                " RETURNING last_seq",
                (len(items), ts, session_id),
            ).fetchone()
            first = last - len(items) + 1
            conn.executemany(
                _APPEND_ROW,
                [
                    (session_id, first + i, role, content, ts, tokens)
                    for i, (role, content, tokens) in enumerate(items)
                ],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # --- reads --------------------------------------------------------------------

    def recent(self, session_id: str, n: int = 50) -> list[Any]:
        rows = self.conn.execute(_RECENT, (session_id, n)).fetchall()
        rows.reverse()
        return rows

    def history(
        self, session_id: str, *, limit: int = 50, after: int = 0
    ) -> tuple[list[Any], int | None]:
        rows = self.conn.execute(_HISTORY, (session_id, after, limit + 1)).fetchall()
        next_after = rows[limit - 1][2] if len(rows) > limit else None
        return rows[:limit], next_after

    def get_message(self, message_id: int) -> Any:
        return self.conn.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE id = ?", (message_id,)
        ).fetchone()

    def get_session(self, session_id: str) -> Any:
        return self.conn.execute(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,)
        ).fetchone()

    def list_sessions(
        self, *, limit: int = 20, after: tuple[str, str] | None = None
    ) -> tuple[list[Any], tuple[str, str] | None]:
        if after is None:
            rows = self.conn.execute(_LIST_FIRST, (limit + 1,)).fetchall()
        else:
            rows = self.conn.execute(_LIST_AFTER, (*after, limit + 1)).fetchall()
        next_key = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_key = (last[5], last[0])
        return rows[:limit], next_key

    def list_sessions_filtered(
        self, *, model_id: str, status: str, limit: int = 20
    ) -> tuple[list[Any], tuple[str, str] | None]:
        rows = self.conn.execute(_LIST_FILTERED, (model_id, status, limit + 1)).fetchall()
        next_key = (rows[limit - 1][5], rows[limit - 1][0]) if len(rows) > limit else None
        return rows[:limit], next_key

    def search_recent(self, query: str, limit: int = 20) -> list[Any]:
        """Messages matching an FTS5 query, newest first (the rowid order of the index)."""
        return self.conn.execute(_SEARCH_RECENT, (query, limit)).fetchall()


def copy_store_into_floor(store_path: str | Path, floor_path: str | Path) -> None:
    """The same sessions and messages as a store's file, in the floor's schema.

    Used for the same-data comparison of the read benchmarks: the rows are
    copied (ids, sequence numbers, times), and the FTS5 index is rebuilt once.
    """
    floor = FloorStore(floor_path)
    conn = floor.conn
    try:
        conn.execute("ATTACH DATABASE ? AS src", (str(store_path),))
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO sessions (id, model_id, title, status, created_at, last_activity,"
            " last_seq) SELECT session_id, model_id, title, status, created_at, last_activity,"
            " last_seq FROM src.sessions"
        )
        conn.execute("DROP TRIGGER messages_fts_insert")
        conn.execute(
            "INSERT INTO messages (id, session_id, seq, role, content, created_at, tokens)"
            " SELECT message_id, session_id, sequence_number, role, content, timestamp,"
            " tokens_used FROM src.messages ORDER BY message_id"
        )
        conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')")
        conn.execute(FLOOR_SCHEMA[-1])
        conn.execute("COMMIT")
        conn.execute("DETACH DATABASE src")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        floor.close()
