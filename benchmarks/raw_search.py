"""The raw ``sqlite3`` side of the search benchmarks: the library's own search SQL, nothing more.

:class:`RawSearch` holds one persistent ``sqlite3`` connection with the
store's pragmas, and runs the very SQL text :mod:`sessionstore.search` runs
on SQLite (built by its own ``sessions_sql``, ``_top_ranked``,
``search_recent.recent_walk``, ``messages_sql`` and snippet SQL, whose rows'
heads it turns into snippets with the library's own ``page_snippets``), in a
read transaction, with the same parameters and the same keyset. What the
store adds on top (validation, records, cursors, its pool, the search time
limit) is what the benchmarks measure.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sessionstore import search as _search
from sessionstore import search_recent, search_sql
from sessionstore.search_run import page_snippets
from sessionstore.search_text import fts5_plain

__all__ = ["RawSearch"]

_W = search_sql.WIDTH
_ACTIVITY = 7  # last_activity among the session's columns


class RawSearch:
    """A hand-written ``sqlite3`` search over the store's file: the same SQL, nothing more."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        for pragma in (
            "PRAGMA foreign_keys = ON",
            "PRAGMA busy_timeout = 10000",
            "PRAGMA synchronous = NORMAL",
            "PRAGMA cache_size = -16384",
            "PRAGMA temp_store = MEMORY",
        ):
            self.conn.execute(pragma)
        shape = {"model": False, "status": False, "since": False}
        self.sessions_sql = {
            (order, after): search_sql.sessions_sql("sqlite", order, **shape, after=after)
            for order in ("relevance", "recent")
            for after in (False, True)
        }
        # By recency, the same walk over the newest sessions (``search_recent``), the
        # exact statement only when the walk hands over.
        self.walk_sql = {
            after: tuple(
                search_recent.walk_sql(
                    "sqlite", **shape, after=after, owner=search_sql.NO_OWNER, resume=resume
                )
                for resume in (False, True)
            )
            for after in (False, True)
        }
        # The same two-step work as the store: the best messages first, widened until
        # the page is exact (``_top_ranked``), the full window only as a fallback.
        self.top_sql = {
            after: search_sql.sessions_sql("sqlite", "relevance", **shape, after=after, top=True)
            for after in (False, True)
        }
        self.messages_sql = search_sql.messages_sql("sqlite", session=False, after=False)

    def close(self) -> None:
        self.conn.close()

    def _fetch(self, sql: str, values: dict[str, Any]) -> list[Any]:
        return self.conn.execute(sql, values).fetchall()

    def _snippets(self, which: str, query: str, ids: list[Any]) -> dict[Any, str]:
        """The page's snippets: the library's statement, cut to words as the library does."""
        return page_snippets(
            self._fetch, getattr(search_sql, which)["sqlite"], query, ids, "sqlite"
        )

    def sessions(
        self,
        query: str,
        *,
        limit: int = 20,
        after: tuple[Any, str] | None = None,
        order: str = "relevance",
    ) -> tuple[list[tuple[Any, ...]], tuple[Any, str] | None]:
        """One page of (session row, message id, rank, snippet), and the key of the next
        (rank or stored ``last_activity``, then session id)."""
        fts_query = fts5_plain(query)
        params: dict[str, Any] = {
            "query": fts_query, "title_weight": _search.TITLE_WEIGHT, "limit": limit + 1,
        }  # fmt: skip
        if after is not None:
            params["after_a"], params["after_b"] = after
        conn = self.conn
        conn.execute("BEGIN")
        try:
            assert fts_query is not None
            rows: Any
            if order == "recent":
                rows = search_recent.recent_walk(
                    self._fetch, "sqlite", self.walk_sql[after is not None], params, limit
                )
            else:
                rows = _search._top_ranked(
                    self._fetch, self.top_sql[after is not None], params, limit, fts_query, "sqlite"
                )
            if rows is None:
                rows = self._fetch(self.sessions_sql[order, after is not None], params)
            page = rows[:limit]
            snippets = self._snippets(
                "SNIPPETS", fts_query, [r[_W] for r in page if r[_W] is not None]
            )
            titles = self._snippets(
                "TITLE_SNIPPETS", fts_query, [r[0] for r in page if r[_W] is None]
            )
        finally:
            conn.execute("COMMIT")
        hits = [
            (
                row[:_W],
                row[_W],
                row[_W + 3],
                snippets.get(row[_W], "")
                if row[_W] is not None
                else titles.get(row[0], row[3] or ""),
            )
            for row in page
        ]
        last = page[-1] if page else None
        next_key = None
        if last is not None and len(rows) > limit:
            next_key = (last[_W + 3] if order == "relevance" else last[_ACTIVITY], last[0])
        return hits, next_key

    def messages(
        self, query: str, *, limit: int = 20
    ) -> tuple[list[tuple[Any, ...]], tuple[float, int] | None]:
        """One page of (message row, snippet), best first, and the key of the next."""
        fts_query = fts5_plain(query)
        assert fts_query is not None
        conn = self.conn
        conn.execute("BEGIN")
        try:
            rows = conn.execute(
                self.messages_sql, {"query": fts_query, "limit": limit + 1, "session_id": None}
            ).fetchall()
            page = rows[:limit]
            snippets = self._snippets("SNIPPETS", fts_query, [r[0] for r in page])
        finally:
            conn.execute("COMMIT")
        hits = [(row, snippets.get(row[0], "")) for row in page]
        next_key = (page[-1][10], page[-1][0]) if len(rows) > limit else None
        return hits, next_key

    def plan(self, query: str) -> list[str]:
        """``EXPLAIN QUERY PLAN`` of the sessions query, as indented lines."""
        rows = self.conn.execute(
            "EXPLAIN QUERY PLAN " + self.sessions_sql["relevance", False],
            {"query": fts5_plain(query), "title_weight": _search.TITLE_WEIGHT,
             "limit": 21},
        ).fetchall()  # fmt: skip
        depth: dict[int, int] = {0: -1}
        lines = []
        for node, parent, _unused, detail in rows:
            depth[node] = depth.get(parent, -1) + 1
            lines.append("  " * depth[node] + str(detail))
        return lines
