"""The raw ``sqlite3`` baseline the benchmarks hold ``sessionstore`` against.

:class:`RawStore` is what a careful hand-written ``sqlite3`` layer does for
its caller, nothing left out and nothing added:

* one persistent connection, opened with the store's own settings (autocommit
  driver, ``foreign_keys=ON``, ``busy_timeout``, ``synchronous=NORMAL``,
  ``cache_size=-16384``, ``temp_store=MEMORY``, WAL), on a file that
  :meth:`SessionStore.open` created, so the schema, indexes, triggers and FTS
  index are the store's own;
* exactly the SQL the store runs: the text is rendered from the library's
  prepared statements (``Prepared.render``), and the positional parameters
  are written out by hand in the order that SQL expects (checked once, at
  construction, against the rendered order);
* one transaction per append: ``BEGIN IMMEDIATE``, the ``INSERT … SELECT …
  RETURNING``, ``COMMIT`` (``ROLLBACK`` on error);
* keyset pages read ``limit + 1`` rows, to know whether another page follows,
  and hand back the key of the last row;
* rows returned to the caller as dicts (``sqlite3.Row`` → ``dict``, what the
  legacy ``SessionManager`` returned) or, in the ``"tuple"`` variant, as the
  bare tuples the driver produced (the cheapest thing a layer can return).

The legacy schema (for the bytes-on-disk comparison) is loaded here too, from
the Alembic revision that reproduces it.
"""

from __future__ import annotations

import importlib.util
import json
import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.dialects import sqlite as sqlite_dialect

from sessionstore import StoreConfig
from sessionstore import message_sql as _messages
from sessionstore import sessions as _sessions
from sessionstore.engine import WAL_AUTOCHECKPOINT_PAGES
from sessionstore.prepared import Prepared

__all__ = ["LEGACY_REVISION", "RawStore", "legacy_schema", "store_pragmas", "utc_text"]

ROOT = Path(__file__).resolve().parent.parent
LEGACY_REVISION = ROOT / "alembic" / "versions" / "0001_legacy_baseline.py"

_DIALECT = sqlite_dialect.dialect()

Rows = Literal["dict", "tuple"]


def _sql(prepared: Prepared, expected_order: tuple[str, ...]) -> str:
    """The SQL text the store runs, after checking the parameter order we hand-write."""
    sql, order, _defaults = prepared.render(_DIALECT)
    if order != expected_order:
        raise AssertionError(
            f"the library's SQL changed its parameters: {order} != {expected_order}; "
            "update the hand-written argument tuples in benchmarks/baseline.py"
        )
    return sql


# The rendered SQL and, next to it, the order its parameters take. Literal
# values the statement holds (``last_seq + 1``, ``status = 'active'``, the
# ``OFFSET 0`` that ``.limit()`` adds) are passed as the constants below.
APPEND_SQL = _sql(
    _messages.APPEND,
    ("last_seq_1", "role", "content", "ts", "tokens", "duration", "meta", "cid", "kind",
     "payload", "exact", "sid", "status_1"),
)  # fmt: skip
RECENT_SQL = _sql(_messages.RECENT.plain, ("sid", "limit", "param_1"))
HISTORY_SQL = _sql(_messages.HISTORY.plain, ("sid", "after", "limit", "param_1"))
MESSAGE_GET_SQL = _sql(_messages.GET, ("mid",))
SESSION_GET_SQL = _sql(_sessions._GET, ("session_id",))
LIST_FIRST_SQL = _sql(_sessions._list_statement(False, False, False), ("limit", "param_1"))
LIST_AFTER_SQL = _sql(
    _sessions._list_statement(False, False, True),
    ("after_activity", "after_id", "limit", "param_1"),
)
LIST_MODEL_STATUS_SQL = _sql(
    _sessions._list_statement(True, True, False), ("model_id", "status", "limit", "param_1")
)


def store_pragmas(config: StoreConfig | None = None) -> tuple[str, ...]:
    """The pragmas the store's engine sets on every new connection (see ``engine.py``)."""
    config = config or StoreConfig()
    busy_ms = int(config.busy_timeout.total_seconds() * 1000)
    return (
        "PRAGMA foreign_keys = ON",
        f"PRAGMA busy_timeout = {busy_ms}",
        f"PRAGMA synchronous = {config.synchronous}",
        f"PRAGMA cache_size = -{config.cache_size_kib}",
        "PRAGMA temp_store = MEMORY",
        f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}",
    )


def utc_text(value: datetime) -> str:
    """A timestamp in the text form the schema stores (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC)."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


class RawStore:
    """A hand-written ``sqlite3`` layer over a file the store created: the baseline."""

    def __init__(
        self, path: str | Path, *, rows: Rows = "dict", config: StoreConfig | None = None
    ) -> None:
        config = config or StoreConfig()
        self.conn = sqlite3.connect(
            str(path),
            timeout=config.busy_timeout.total_seconds(),
            isolation_level=None,
            check_same_thread=False,
        )
        for pragma in store_pragmas(config):
            self.conn.execute(pragma)
        mode = self.conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise RuntimeError(f"the baseline could not switch {path} to WAL ({mode})")
        self.as_dict = rows == "dict"
        if self.as_dict:
            self.conn.row_factory = sqlite3.Row

    def close(self) -> None:
        self.conn.close()

    # --- writes -------------------------------------------------------------------

    def append(
        self,
        session_id: str,
        role: str,
        content: str,
        *,
        tokens: int | None = None,
        duration: float | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Any:
        """One message at the end of the session, in its own ``BEGIN IMMEDIATE`` transaction."""
        ts = utc_text(datetime.now(UTC))
        meta = None if metadata is None else json.dumps(dict(metadata), ensure_ascii=False)
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                APPEND_SQL,
                (
                    1,
                    role,
                    content,
                    ts,
                    tokens,
                    duration,
                    meta,
                    None,
                    "message",
                    None,
                    None,
                    session_id,
                    "active",
                ),
            ).fetchone()
            if row is None:
                raise LookupError(f"no active session {session_id!r}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if not self.as_dict:
            return row
        return {
            "message_id": row[0],
            "session_id": session_id,
            "sequence_number": row[1],
            "role": role,
            "content": content,
            "timestamp": ts,
            "tokens_used": tokens,
            "duration_seconds": duration,
            "metadata": meta,
        }

    # --- reads --------------------------------------------------------------------

    def _rows(self, rows: list[Any]) -> list[Any]:
        return [dict(row) for row in rows] if self.as_dict else rows

    def recent(self, session_id: str, n: int = 50) -> list[Any]:
        """The last ``n`` messages, oldest first."""
        rows = self.conn.execute(RECENT_SQL, (session_id, n, 0)).fetchall()
        rows.reverse()
        return self._rows(rows)

    def history(
        self, session_id: str, *, limit: int = 50, after: int = 0
    ) -> tuple[list[Any], int | None]:
        """One keyset page after sequence ``after``, and the key of the next page (or None)."""
        rows = self.conn.execute(HISTORY_SQL, (session_id, after, limit + 1, 0)).fetchall()
        # The session's reads leave out its id: the sequence number is column 1.
        next_after = rows[limit - 1][1] if len(rows) > limit else None
        return self._rows(rows[:limit]), next_after

    def get_message(self, message_id: int) -> Any:
        row = self.conn.execute(MESSAGE_GET_SQL, (message_id,)).fetchone()
        if row is None:
            raise LookupError(f"no message {message_id}")
        return dict(row) if self.as_dict else row

    def get_session(self, session_id: str) -> Any:
        row = self.conn.execute(SESSION_GET_SQL, (session_id,)).fetchone()
        if row is None:
            raise LookupError(f"no session {session_id!r}")
        return dict(row) if self.as_dict else row

    def list_sessions(
        self, *, limit: int = 20, after: tuple[str, str] | None = None
    ) -> tuple[list[Any], tuple[str, str] | None]:
        """Newest activity first; ``after`` is the (last_activity, session_id) key of a page."""
        if after is None:
            rows = self.conn.execute(LIST_FIRST_SQL, (limit + 1, 0)).fetchall()
        else:
            rows = self.conn.execute(LIST_AFTER_SQL, (*after, limit + 1, 0)).fetchall()
        next_key = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_key = (last[7], last[0])
        return self._rows(rows[:limit]), next_key

    def list_sessions_filtered(
        self, *, model_id: str, status: str, limit: int = 20
    ) -> tuple[list[Any], tuple[str, str] | None]:
        """Page 1 of one model's sessions in one status."""
        rows = self.conn.execute(LIST_MODEL_STATUS_SQL, (model_id, status, limit + 1, 0)).fetchall()
        next_key = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_key = (last[7], last[0])
        return self._rows(rows[:limit]), next_key


def legacy_schema() -> tuple[str, ...]:
    """The legacy DDL (tables, indexes, standalone FTS table, triggers, views), as it was."""
    spec = importlib.util.spec_from_file_location("_legacy_baseline", LEGACY_REVISION)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {LEGACY_REVISION}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(module.LEGACY_SCHEMA)
