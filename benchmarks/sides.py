"""The three sides of the user workloads (``workloads.py``): ours, the raw layer, the floor.

* ``ours``: ``SessionStore.open(url)`` with default settings, called through
  the public API as the README shows; one store shared by every thread;
  sessions without a model id, like the floor's and the peers'.
* ``raw``: :class:`baseline.RawStore` on a file the store created: the
  store's schema, triggers and SQL on one bare connection per thread,
  rows as dicts.
* ``floor``: :class:`floor.FloorStore`, the minimal hand-written layer; one
  connection per thread, rows as ``sqlite3.Row``.

Each module import is deferred to the side's own process, so that its peak
RSS counts only what that side loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SIDES"]

_ALL = frozenset({"append_p50", "recent_p50", "history_p50", "bulk", "list_p50",
                  "threads_own", "processes"})  # fmt: skip


class OursClient:
    def __init__(self, path: Path) -> None:
        from sessionstore import SessionStore

        self.store = SessionStore.open(f"sqlite:///{path}")
        self._cursors: dict[tuple[str, int], str | None] = {}

    def create(self, session_id: str) -> str:
        # No model id, as the floor and the peers store none: a session with one
        # is also in the per-model listing index, which each append then rewrites.
        return self.store.sessions.create().session_id

    def append(self, session_id: str, role: str, content: str) -> Any:
        return self.store.messages.append(session_id, role, content)

    def seed(self, session_id: str, rows: list[tuple[str, str, int]]) -> None:
        self.store.messages.append_many(
            session_id, [{"role": r, "content": c, "tokens": t} for r, c, t in rows]
        )

    def recent(self, session_id: str, n: int) -> Any:
        return self.store.messages.recent(session_id, n)

    def history_after(self, session_id: str, after: int, limit: int) -> Any:
        key = (session_id, after)
        if key not in self._cursors:
            cursor = None
            for _ in range(after // 1000):
                cursor = self.store.messages.history(
                    session_id, limit=1000, cursor=cursor
                ).next_cursor
            self._cursors[key] = cursor
        return self.store.messages.history(session_id, limit=limit, cursor=self._cursors[key])

    def list(self, limit: int) -> Any:
        return self.store.sessions.list(limit=limit).items

    def close(self) -> None:
        self.store.close()


class RawClient:
    def __init__(self, path: Path) -> None:
        from baseline import RawStore

        from sessionstore import SessionStore

        if not path.exists():
            SessionStore.open(f"sqlite:///{path}").close()
        self.raw = RawStore(path, rows="dict")

    def create(self, session_id: str) -> str:
        from datetime import UTC, datetime

        from baseline import utc_text

        now = utc_text(datetime.now(UTC))
        self.raw.conn.execute("BEGIN IMMEDIATE")
        self.raw.conn.execute(
            "INSERT INTO sessions (session_id, model_id, status, created_at, updated_at,"
            " last_activity) VALUES (?, NULL, 'active', ?, ?, ?)"
            " ON CONFLICT DO NOTHING RETURNING session_id",
            (session_id, now, now, now),
        ).fetchone()
        self.raw.conn.execute("COMMIT")
        return session_id

    def append(self, session_id: str, role: str, content: str) -> Any:
        return self.raw.append(session_id, role, content)

    def seed(self, session_id: str, rows: list[tuple[str, str, int]]) -> None:
        from datetime import UTC, datetime

        from baseline import utc_text

        conn = self.raw.conn
        now = utc_text(datetime.now(UTC))
        conn.execute("BEGIN IMMEDIATE")
        (last,) = conn.execute(
            "SELECT last_seq FROM sessions WHERE session_id = ?", (session_id,)
        ).fetchone()
        conn.executemany(
            "INSERT INTO messages (session_id, sequence_number, role, content, timestamp,"
            " tokens_used) VALUES (?, ?, ?, ?, ?, ?)",
            [(session_id, last + i + 1, r, c, now, t) for i, (r, c, t) in enumerate(rows)],
        )
        conn.execute("COMMIT")

    def recent(self, session_id: str, n: int) -> Any:
        return self.raw.recent(session_id, n)

    def history_after(self, session_id: str, after: int, limit: int) -> Any:
        return self.raw.history(session_id, limit=limit, after=after)

    def list(self, limit: int) -> Any:
        return self.raw.list_sessions(limit=limit)[0]

    def close(self) -> None:
        self.raw.close()


class FloorClient:
    def __init__(self, path: Path) -> None:
        from floor import FloorStore

        self.floor = FloorStore(path)

    def create(self, session_id: str) -> str:
        return self.floor.create_session(session_id)

    def append(self, session_id: str, role: str, content: str) -> Any:
        return self.floor.append(session_id, role, content)

    def seed(self, session_id: str, rows: list[tuple[str, str, int]]) -> None:
        self.floor.append_many(session_id, [(r, c, t) for r, c, t in rows])

    def recent(self, session_id: str, n: int) -> Any:
        return self.floor.recent(session_id, n)

    def history_after(self, session_id: str, after: int, limit: int) -> Any:
        return self.floor.history(session_id, limit=limit, after=after)

    def list(self, limit: int) -> Any:
        return self.floor.list_sessions(limit=limit)[0]

    def close(self) -> None:
        self.floor.close()


@dataclass(frozen=True)
class _Side:
    name: str
    client: type
    shared_across_threads: bool
    supports: frozenset[str] = _ALL

    def open(self, path: Path) -> Any:
        return self.client(path)


SIDES = {
    "ours": _Side("ours", OursClient, shared_across_threads=True),
    "raw": _Side("raw", RawClient, shared_across_threads=False),
    "floor": _Side("floor", FloorClient, shared_across_threads=False),
}
