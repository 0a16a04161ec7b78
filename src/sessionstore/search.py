"""Full-text search: one best hit per session, safe on any text, bounded in cost.

The index is the database's own: FTS5 (external content over ``messages``
and, since revision 0003, over session titles) on SQLite; stored
``tsvector`` columns under GIN on PostgreSQL. Both stem English (``router``
finds ``routers``) and fold case; FTS5 also folds diacritics.

``sessions()`` ranks every matching message (and title), then keeps each
session's best one with ``ROW_NUMBER() OVER (PARTITION BY session_id ORDER
BY rank)`` — never ``DISTINCT`` over a join, which is how the legacy layer
returned duplicates and hid real matches. Pages are keyset pages on
``(rank, session_id)`` (or ``(last_activity, session_id)`` for
``order="recent"``). The statements are in :mod:`sessionstore.search_sql`.
The same pages are first sought more cheaply: by relevance among the best
messages only (:func:`_top_ranked`), newest first by walking the newest
sessions (:mod:`sessionstore.search_recent`); either one hands over to the
full statement when it cannot tell its page exact, or would cost more. On
SQLite one search's statements read one snapshot of the file; on PostgreSQL
one ``REPEATABLE READ`` snapshot (``transactions.one_snapshot``).

What a caller's text may cost is bounded before anything runs (words,
prefixes, ``NEAR`` groups, nesting, bytes: :mod:`sessionstore.search_text`);
an advanced query is admitted by the cost of ranking it, its matches counted
first (``search_run.admit``);
snippets are cut for the page's rows only, each from a bounded head of its
row (``search_sql.SNIPPET_SCAN`` characters), so their cost is fixed per row;
and each search runs under a time limit (:data:`TIME_LIMIT`: a progress
handler on the SQLite connection, ``statement_timeout`` on PostgreSQL), past
which it stops with :class:`SearchTimeout`.

Ranks are comparable within one query: lower is better on both backends
(FTS5's ``bm25``; PostgreSQL's ``ts_rank`` negated). A session's hit is its
best-ranked matching message; a session whose title matches but none of
whose messages do is represented by its title (``message_id`` is ``None``),
ranked by the title's own rank.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Connection

from .errors import InvalidInput
from .messages import MESSAGE_WIDTH, message_from_db
from .owners import Owner, check_owner, narrow, owner_params
from .prepared import to_db_time
from .records import MessageRecord, Page, SessionRecord
from .search_recent import recent_walk, walk_sql
from .search_run import (
    TIME_LIMIT,
    Fetch,
    admit,
    fetch_postgres,
    fetch_raw,
    page_snippets,
    postgres_time_limit,
    sqlite_snapshot,
    sqlite_time_limit,
)
from .search_sql import (
    MARK_END,
    MARK_START,
    ORDERS,
    SNIPPETS,
    TITLE_SNIPPETS,
    WIDTH,
    Order,
    match_count_sql,
    messages_sql,
    sessions_sql,
)
from .search_text import Mode, check_advanced, clean, fts5_plain, ranked_words, tsquery_plain
from .sessions import check_status, session_from_db
from .transactions import Raw, Runner, one_snapshot
from .validation import (
    aware_utc,
    check_id,
    check_limit,
    decode_cursor,
    encode_cursor,
)

__all__ = [
    "MARK_END",
    "MARK_START",
    "TIME_LIMIT",
    "MessageHit",
    "Mode",
    "Order",
    "SearchHit",
    "SearchRepository",
]

T = TypeVar("T")

TITLE_WEIGHT = 1.0


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A matching session, represented by its best-ranked message (or its title)."""

    session: SessionRecord
    #: The best message; ``None`` when the session's title is the best match.
    message_id: int | None
    sequence_number: int | None
    role: str | None
    #: The matching text, terms marked with :data:`MARK_START` / :data:`MARK_END`.
    snippet: str
    rank: float

    @property
    def in_title(self) -> bool:
        return self.message_id is None


@dataclass(frozen=True, slots=True)
class MessageHit:
    message: MessageRecord
    snippet: str
    rank: float


# The first ``top`` round ranks this many messages per row asked for; each
# further round eight times as many.
_TOP_PER_ROW = 16
_TOP_GROWTH = 8


def _choice(name: str, value: object, allowed: Sequence[str]) -> Any:
    """``value`` if it is one of ``allowed`` (strings), else :class:`InvalidInput`."""
    if not isinstance(value, str) or value not in allowed:
        shown = repr(value)[:60] if isinstance(value, str) else type(value).__name__
        raise InvalidInput(f"{name} must be {' or '.join(repr(a) for a in allowed)}, not {shown}")
    return value


class SearchRepository:
    """``store.search``: sessions and messages by the words in them."""

    def __init__(self, runner: Runner, *, owner: Owner | None = None) -> None:
        self._runner = runner
        self._owner = owner

    def _scope(self, app: object, user_id: object) -> tuple[str | None, str | None] | None:
        """The owner filter: the caller's, within the view's scope (``None``: no match)."""
        if self._owner is None:
            return check_owner(app, user_id)
        return narrow(
            self._owner,
            None if app is None else check_id("app", app),
            None if user_id is None else check_id("user_id", user_id),
        )

    def _query(self, query: object, mode: Mode) -> str | None:
        """The engine's query for ``query``, within the bounds of :mod:`.search_text`."""
        cleaned = clean(query)
        if mode == "advanced":
            return check_advanced(cleaned, self._runner.dialect)
        if self._runner.dialect == "postgresql":
            return tsquery_plain(cleaned)
        return fts5_plain(cleaned)

    def sessions(
        self,
        query: str,
        *,
        limit: int = 20,
        cursor: str | None = None,
        model_id: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        order: Order = "relevance",
        mode: Mode = "plain",
        app: str | None = None,
        user_id: str | None = None,
    ) -> Page[SearchHit]:
        """Each matching session once, by its best message, best first (or newest first).

        ``app`` / ``user_id`` search one owner's sessions only (a scoped view: its own).
        """
        limit = check_limit(limit)
        order = _choice("order", order, tuple(ORDERS))
        mode = _choice("mode", mode, ("plain", "advanced"))
        if model_id is not None:
            model_id = check_id("model_id", model_id)
        status = check_status(status)
        if since is not None:
            since = aware_utc("since", since)
        scope = self._scope(app, user_id)
        kind = f"search-{order}"
        fts_query = self._query(query, mode)
        # A cursor pages only the query that made it: same terms, filters and order.
        bound: tuple[Any, ...] = (mode, fts_query, model_id, status, since)
        if scope is None or scope[0] is not None:
            bound = (*bound, *(scope or ("", "")))
        after = None
        if cursor is not None:
            key_type = float if order == "relevance" else datetime
            after = decode_cursor(cursor, kind, bound, key_type, str)
        if fts_query is None or scope is None:
            return Page((), None)
        dialect = self._runner.dialect
        shape: dict[str, Any] = {
            "model": model_id is not None,
            "status": status is not None,
            "since": since is not None,
            "after": after is not None,
            "owner": (scope[0] is not None, scope[1] is not None),
        }
        sql = sessions_sql(dialect, order, **shape)
        # By relevance, the page is first sought among the best messages only; by
        # recency, among the newest sessions only.
        top_sql = sessions_sql(dialect, order, **shape, top=True) if order == "relevance" else None
        walk = None
        if order == "recent":
            walk_shape = {key: shape[key] for key in ("model", "status", "since", "after", "owner")}
            walk = (
                walk_sql(dialect, **walk_shape, resume=False),
                walk_sql(dialect, **walk_shape, resume=True),
            )
        params: dict[str, Any] = {
            "query": fts_query,
            "title_weight": TITLE_WEIGHT,
            "limit": limit + 1,
            "model_id": model_id,
            "status": status,
            "since": None if since is None else to_db_time(since, dialect),
            **owner_params(*scope),
        }
        if after is not None:
            params["after_a"] = after[0]
            if order == "recent":
                params["after_a"] = to_db_time(after[0], dialect)
            params["after_b"] = after[1]

        words = ranked_words(fts_query, dialect)
        count_sql = match_count_sql(dialect, shape["owner"])
        count_params = {"query": fts_query, **owner_params(*scope)}

        def work(fetch: Fetch) -> Page[SearchHit]:
            if mode == "advanced":
                admit(fetch, count_sql, count_params, words)
            rows = None
            if top_sql is not None:
                rows = _top_ranked(fetch, top_sql, params, limit, fts_query, dialect)
            elif walk is not None:
                rows = recent_walk(fetch, dialect, walk, params, limit, words)
            if rows is None:
                rows = fetch(sql, params)
            page = rows[:limit]
            w = WIDTH  # the session's columns, then message id, sequence, role, rank
            message_ids = [row[w] for row in page if row[w] is not None]
            title_ids = [row[0] for row in page if row[w] is None]
            snippets = page_snippets(fetch, SNIPPETS[dialect], fts_query, message_ids, dialect)
            titles = page_snippets(fetch, TITLE_SNIPPETS[dialect], fts_query, title_ids, dialect)
            hits = tuple(
                SearchHit(
                    session=session_from_db(row[:w]),
                    message_id=row[w],
                    sequence_number=row[w + 1],
                    role=row[w + 2],
                    snippet=(
                        snippets.get(row[w], "")
                        if row[w] is not None
                        else titles.get(row[0], row[3] or "")
                    ),
                    rank=float(row[w + 3]),
                )
                for row in page
            )
            next_cursor = None
            if len(rows) > limit:
                last = hits[-1]
                key: Any = last.rank if order == "relevance" else last.session.last_activity
                next_cursor = encode_cursor(kind, bound, key, last.session.session_id)
            return Page(hits, next_cursor)

        return self._execute(work, mode)

    def messages(
        self,
        query: str,
        *,
        session_id: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
        mode: Mode = "plain",
        app: str | None = None,
        user_id: str | None = None,
    ) -> Page[MessageHit]:
        """Every matching message, best first, optionally within one session or owner.

        A ``session_id`` outside a scoped view's owner has no hits, as a missing one.
        """
        limit = check_limit(limit)
        mode = _choice("mode", mode, ("plain", "advanced"))
        if session_id is not None:
            session_id = check_id("session_id", session_id)
        scope = self._scope(app, user_id)
        fts_query = self._query(query, mode)
        bound: tuple[Any, ...] = (mode, fts_query, session_id)
        if scope is None or scope[0] is not None:
            bound = (*bound, *(scope or ("", "")))
        after = None
        if cursor is not None:
            after = decode_cursor(cursor, "search-messages", bound, float, int)
        if fts_query is None or scope is None:
            return Page((), None)
        dialect = self._runner.dialect
        sql = messages_sql(
            dialect,
            session=session_id is not None,
            after=after is not None,
            owner=(scope[0] is not None, scope[1] is not None),
        )
        params: dict[str, Any] = {"query": fts_query, "limit": limit + 1, "session_id": session_id}
        params.update(owner_params(*scope))
        if after is not None:
            params["after_a"], params["after_b"] = after

        words = ranked_words(fts_query, dialect)
        count_sql = match_count_sql(dialect, (scope[0] is not None, scope[1] is not None))
        count_params = {"query": fts_query, **owner_params(*scope)}

        def work(fetch: Fetch) -> Page[MessageHit]:
            if mode == "advanced":
                admit(fetch, count_sql, count_params, words)
            rows = fetch(sql, params)
            page = rows[:limit]
            ids = [row[0] for row in page]
            snippets = page_snippets(fetch, SNIPPETS[dialect], fts_query, ids, dialect)
            hits = tuple(
                MessageHit(
                    message_from_db(row[:MESSAGE_WIDTH]),
                    snippets.get(row[0], ""),
                    float(row[MESSAGE_WIDTH]),
                )
                for row in page
            )
            next_cursor = None
            if len(rows) > limit:
                last = hits[-1]
                next_cursor = encode_cursor(
                    "search-messages", bound, last.rank, last.message.message_id
                )
            return Page(hits, next_cursor)

        return self._execute(work, mode)

    def _execute(self, work: Callable[[Fetch], T], mode: Mode) -> T:
        """SQLite: on the hot path's driver connection. PostgreSQL: through SQLAlchemy,
        inside a savepoint, so a rejected query leaves a caller's transaction usable.
        Either way under :data:`TIME_LIMIT`."""
        if self._runner.dialect == "sqlite":

            def on_raw(raw: Raw) -> T:
                with sqlite_snapshot(raw.dbapi), sqlite_time_limit(raw.dbapi) as expired:
                    return work(partial(fetch_raw, raw, mode, expired))

            return self._runner.fast_read(on_raw)

        def on_conn(conn: Connection) -> T:
            one_snapshot(conn)  # a walk's statements, its snippets: one state
            with postgres_time_limit(conn):
                return work(partial(fetch_postgres, conn, mode))

        return self._runner.read(on_conn)


def _top_ranked(
    fetch: Fetch, sql: str, params: dict[str, Any], limit: int, query: str, dialect: str
) -> Sequence[Any] | None:
    """The page from the best-ranked messages only, or None where it cannot be told exact.

    Ranking every match and then keeping each session's best costs a sort of all
    of them: seconds for a word in a third of a million messages. Yet read in rank
    order, the messages reach each session first through its best one. So a page
    built from the ``k`` best messages alone is the true page when its last row
    ranks strictly before the ``k``-th message (nothing outside them can come
    earlier), or when fewer than ``k`` messages match at all. Otherwise ``k``
    grows.
    """
    k = _TOP_PER_ROW * (limit + 1)
    w = WIDTH + 4  # the page's columns end here; the windows' figures follow
    while True:
        rows = fetch(sql, {**params, "k": k})
        if not rows:
            return None  # all filtered out, or nothing matched: ask the exact query
        ranked, kth = int(rows[0][w]), rows[0][w + 1]
        if ranked < k or (len(rows) > limit and kth is not None and rows[limit][w - 1] < kth):
            break
        k *= _TOP_GROWTH
    return [row[:w] for row in rows]
