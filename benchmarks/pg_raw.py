"""PostgreSQL: the raw ``psycopg`` layer doing the store's statements, and the writer processes.

:class:`PgRaw` is :class:`baseline.RawStore` for PostgreSQL: one ``psycopg``
connection (autocommit off, as psycopg opens it), the SQL text rendered from
the library's own prepared statements for the ``postgresql`` dialect, the
same parameters, one transaction per append (the ``INSERT … SELECT … FOR
UPDATE … RETURNING`` and ``COMMIT``), rows returned as psycopg's tuples.

``python benchmarks/pg_raw.py SIDE URL SESSION_IDS COUNT THREADS GO`` is one
writer process: ``THREADS`` threads each append ``COUNT`` messages to its
own session (``SESSION_IDS``, comma-separated), through the store (``ours``:
one store per process, shared by its threads) or raw (one connection per
thread), starting when the file ``GO`` appears; it prints its error count.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects import postgresql

from sessionstore import message_sql
from sessionstore import sessions as _sessions
from sessionstore.prepared import Prepared

__all__ = ["PgRaw"]

_DIALECT = postgresql.psycopg.dialect()  # type: ignore[attr-defined]
MESSAGE = ("The quick brown fox jumps over the lazy dog near the riverbank. " * 4)[:200]


def _sql(prepared: Prepared) -> tuple[str, dict[str, Any]]:
    sql, order, defaults = prepared.render(_DIALECT)
    assert order is None  # psycopg takes named parameters
    return sql, defaults


APPEND_SQL, APPEND_DEFAULTS = _sql(message_sql.APPEND)
RECENT_SQL, RECENT_DEFAULTS = _sql(message_sql.RECENT.plain)
HISTORY_SQL, HISTORY_DEFAULTS = _sql(message_sql.HISTORY.plain)
LIST_SQL, LIST_DEFAULTS = _sql(_sessions._list_statement(False, False, False))


def dsn(url: str) -> str:
    """A libpq DSN from the store's SQLAlchemy URL."""
    return url.replace("postgresql+psycopg://", "postgresql://")


class PgRaw:
    """The store's PostgreSQL statements on one bare psycopg connection."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(dsn(url))

    def close(self) -> None:
        self.conn.close()

    def append(self, session_id: str, role: str, content: str) -> Any:
        params = {
            **APPEND_DEFAULTS,
            "sid": session_id, "role": role, "content": content,
            "ts": datetime.now(UTC).replace(tzinfo=None), "tokens": None, "duration": None,
            "meta": None, "cid": None, "kind": "message", "payload": None, "exact": None,
        }  # fmt: skip
        try:
            row = self.conn.execute(APPEND_SQL, params).fetchone()
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        if row is None:
            raise LookupError(f"no active session {session_id!r}")
        return row

    def _read(self, sql: str, params: dict[str, Any]) -> list[Any]:
        rows = self.conn.execute(sql, params).fetchall()
        self.conn.commit()
        return rows

    def recent(self, session_id: str, n: int = 50) -> list[Any]:
        rows = self._read(RECENT_SQL, {**RECENT_DEFAULTS, "sid": session_id, "limit": n})
        rows.reverse()
        return rows

    def history(self, session_id: str, *, limit: int = 50, after: int = 0) -> list[Any]:
        params = {**HISTORY_DEFAULTS, "sid": session_id, "after": after, "limit": limit + 1}
        return self._read(HISTORY_SQL, params)[:limit]

    def list_sessions(self, limit: int = 20) -> list[Any]:
        return self._read(LIST_SQL, {**LIST_DEFAULTS, "limit": limit + 1})[:limit]


def _writer(side: str, url: str, session_ids: list[str], count: int, go: str) -> None:
    errors: list[str] = []
    barrier = threading.Barrier(len(session_ids) + 1)
    store = None
    if side == "ours":
        from sessionstore import SessionStore

        store = SessionStore.open(url, upgrade=False, pool_size=len(session_ids))

    def work(session_id: str) -> None:
        raw = PgRaw(url) if store is None else None
        barrier.wait()
        while not os.path.exists(go):
            time.sleep(0.001)
        for _ in range(count):
            try:
                if store is not None:
                    store.messages.append(session_id, "user", MESSAGE)
                else:
                    assert raw is not None
                    raw.append(session_id, "user", MESSAGE)
            except Exception as exc:  # counted: the figure is the error count
                errors.append(repr(exc)[:200])
        if raw is not None:
            raw.close()

    threads = [threading.Thread(target=work, args=(sid,)) for sid in session_ids]
    for thread in threads:
        thread.start()
    barrier.wait()  # every thread connected
    open(f"{go}.ready-{os.getpid()}", "w").close()
    for thread in threads:
        thread.join()
    if store is not None:
        store.close()
    print(json.dumps({"errors": len(errors), "sample": errors[:3]}))


if __name__ == "__main__":
    side, url, ids, count, go = sys.argv[1:6]
    _writer(side, url, ids.split(","), int(count), go)
