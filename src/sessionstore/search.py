"""Full-text search: one best hit per session, safe on any text.

The index is the database's own: FTS5 (external content over ``messages``
and, since revision 0003, over session titles) on SQLite; stored
``tsvector`` columns under GIN on PostgreSQL. Both stem English (``router``
finds ``routers``) and fold case; FTS5 also folds diacritics.

``sessions()`` ranks every matching message (and title), then keeps each
session's best one with ``ROW_NUMBER() OVER (PARTITION BY session_id ORDER
BY rank)`` — never ``DISTINCT`` over a join, which is how the legacy layer
returned duplicates and hid real matches. Pages are keyset pages on
``(rank, session_id)`` (or ``(last_activity, session_id)`` for
``order="recent"``). Snippets are computed for the page's rows only.

Query text is never syntax unless asked for. In the default ``plain`` mode
each whitespace-separated word is quoted as a string of the engine's query
language (``multi-agent``, ``don't``, ``C++``, ``"unbalanced``, ``(x``,
``AND``, ``col:x`` are words, not operators); a trailing ``*`` keeps its
meaning as a prefix search. ``mode="advanced"`` passes the engine's own
syntax through (FTS5 phrases, ``NEAR``, ``AND``/``OR``/``NOT`` on SQLite;
``to_tsquery`` on PostgreSQL) and turns its syntax errors into
:class:`InvalidSearchQuery`. The text only ever reaches SQL as a bound
parameter.

Ranks are comparable within one query: lower is better on both backends
(FTS5's ``bm25``; PostgreSQL's ``ts_rank`` negated). A session's hit is its
best-ranked matching message; a session whose title matches but none of
whose messages do is represented by its title (``message_id`` is ``None``),
ranked by the title's own rank.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Literal, TypeVar

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from .errors import InvalidInput, InvalidSearchQuery
from .messages import message_from_db
from .prepared import Prepared, to_db_time
from .records import MessageRecord, Page, SessionRecord
from .sessions import SESSION_COLUMNS, check_status, session_from_db
from .transactions import Raw, Runner
from .validation import (
    aware_utc,
    check_id,
    check_limit,
    check_text,
    decode_cursor,
    encode_cursor,
)

__all__ = ["MARK_END", "MARK_START", "MessageHit", "SearchHit", "SearchRepository"]

T = TypeVar("T")
Mode = Literal["plain", "advanced"]
Order = Literal["relevance", "recent"]

#: What surrounds a matched term in a snippet.
MARK_START = "«"
MARK_END = "»"
TITLE_WEIGHT = 1.0
_SNIPPET_TOKENS = 16
_MAX_QUERY = 1024


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


# --- turning text into a query ------------------------------------------------------

_LEXEME = re.compile(r"\w+")


def _clean(query: object) -> str:
    if isinstance(query, str):
        query = query.replace("\x00", " ")  # a separator, like any other non-word character
    query = check_text("query", query, max_bytes=_MAX_QUERY)
    if not query.strip():
        raise InvalidInput("the search query is empty")
    return query


def fts5_plain(query: str) -> str | None:
    """Each word an FTS5 string (quotes doubled), ``*`` kept as a prefix mark."""
    terms = []
    for chunk in query.split():
        prefix = chunk.endswith("*")
        word = chunk.rstrip("*")
        if not any(ch.isalnum() for ch in word):
            continue  # nothing the tokenizer would index: punctuation, emoji
        terms.append('"' + word.replace('"', '""') + '"' + ("*" if prefix else ""))
    return " ".join(terms) or None


def tsquery_plain(query: str) -> str | None:
    """Each word a ``to_tsquery`` phrase of quoted lexemes, joined with ``&``."""
    terms = []
    for chunk in query.split():
        prefix = chunk.endswith("*")
        lexemes = _LEXEME.findall(chunk)
        if not lexemes:
            continue
        quoted = [f"'{lexeme}'" for lexeme in lexemes]
        if prefix:
            quoted[-1] += ":*"
        terms.append(quoted[0] if len(quoted) == 1 else "(" + " <-> ".join(quoted) + ")")
    return " & ".join(terms) or None


# --- SQL -------------------------------------------------------------------------------

_SESSION_COLUMNS = ", ".join(f"s.{column.name}" for column in SESSION_COLUMNS)
_WIDTH = len(SESSION_COLUMNS)
_MESSAGE_COLUMNS = (
    "m.message_id, m.session_id, m.sequence_number, m.role, m.content, m.timestamp,"
    " m.tokens_used, m.duration_seconds, m.metadata, m.client_msg_id"
)

# Title matches, (session_id, rank): a session whose title matches is found even
# when none of its messages is.
_TITLE_RANKED = {
    "sqlite": """
        SELECT s.session_id AS session_id, t.rank AS rank
        FROM (SELECT rowid AS search_key, bm25(session_titles_fts) * :title_weight AS rank
              FROM session_titles_fts WHERE session_titles_fts MATCH :query) t
        JOIN sessions s ON s.search_key = t.search_key
    """,
    # ts_rank is a 4-byte real; as double precision its text form round-trips
    # exactly, so a rank carried in a cursor compares equal to itself.
    "postgresql": """
        SELECT s.session_id AS session_id,
               CAST(-ts_rank(s.title_vector, q.tsq) AS double precision) * :title_weight AS rank
        FROM sessions s, q WHERE s.title_vector @@ q.tsq
    """,
}
_PG_QUERY = "WITH q AS (SELECT to_tsquery('sessionstore_search', :query) AS tsq) "

_ORDERS = {
    "relevance": ("b.rank, s.session_id", "(b.rank, s.session_id) > (:after_a, :after_b)"),
    "recent": (
        "s.last_activity DESC, s.session_id DESC",
        "(s.last_activity, s.session_id) < (:after_a, :after_b)",
    ),
}


def _sessions_sql(
    dialect: str,
    order: Order,
    *,
    model: bool,
    status: bool,
    since: bool,
    after: bool,
    top: bool = False,
) -> str:
    """One page of sessions; with ``top``, only the ``:k`` best messages count.

    ``top`` also returns, on every row, how many messages were ranked and the
    rank of the last of them, which :func:`_top_ranked` uses to tell whether the
    page is exact or ``:k`` must grow.
    """
    order_by, keyset = _ORDERS[order]
    where = ["b.pick = 1"]
    if model:
        where.append("s.model_id = :model_id")
    if status:
        where.append("s.status = :status")
    if since:
        where.append("s.last_activity >= :since")
    if after:
        where.append(keyset)
    prefix = _PG_QUERY + ", " if dialect == "postgresql" else "WITH "
    messages_limit = " ORDER BY rank, message_id LIMIT :k" if top else ""
    extra = ""
    if top:
        extra = ", (SELECT COUNT(*) FROM ranked), (SELECT MAX(rank) FROM ranked)"
    titled = "titles t"
    if top:
        # Titles are few and cheap: all of them are ranked, and only sessions none of
        # whose messages match keep theirs (the others are represented by a message,
        # inside the window of best messages or beyond it).
        titled = f"titles t WHERE NOT EXISTS ({_MESSAGE_MATCH[dialect]})"
    return (
        f"{prefix}ranked AS MATERIALIZED ({_MESSAGE_HITS[dialect]}{messages_limit}),"
        f" titles AS MATERIALIZED ({_TITLE_RANKED[dialect]}),"
        f" titled AS (SELECT t.session_id, t.rank FROM {titled}),"
        " hits AS (SELECT m.session_id AS session_id, r.message_id AS message_id, r.rank AS rank"
        " FROM ranked r JOIN messages m ON m.message_id = r.message_id"
        " UNION ALL SELECT session_id, NULL, rank FROM titled),"
        " best AS (SELECT session_id, message_id, rank,"
        # A matching message represents its session; the title only when none does.
        " ROW_NUMBER() OVER (PARTITION BY session_id"
        " ORDER BY CASE WHEN message_id IS NULL THEN 1 ELSE 0 END, rank, message_id) AS pick"
        " FROM hits)"
        f" SELECT {_SESSION_COLUMNS}, b.message_id, m.sequence_number, m.role, b.rank{extra}"
        " FROM best b JOIN sessions s ON s.session_id = b.session_id"
        " LEFT JOIN messages m ON m.message_id = b.message_id"
        f" WHERE {' AND '.join(where)} ORDER BY {order_by} LIMIT :limit"
    )


_MESSAGE_HITS = {
    "sqlite": """
        SELECT rowid AS message_id, bm25(messages_fts) AS rank
        FROM messages_fts WHERE messages_fts MATCH :query
    """,
    "postgresql": """
        SELECT m.message_id AS message_id,
               CAST(-ts_rank(m.search_vector, q.tsq) AS double precision) AS rank
        FROM messages m, q WHERE m.search_vector @@ q.tsq
    """,
}


def _messages_sql(dialect: str, *, session: bool, after: bool) -> str:
    where = ["1 = 1"]
    if session:
        where.append("m.session_id = :session_id")
    if after:
        where.append("(r.rank, m.message_id) > (:after_a, :after_b)")
    prefix = _PG_QUERY if dialect == "postgresql" else ""
    return (
        f"{prefix}SELECT {_MESSAGE_COLUMNS}, r.rank"
        f" FROM ({_MESSAGE_HITS[dialect]}) r JOIN messages m ON m.message_id = r.message_id"
        f" WHERE {' AND '.join(where)} ORDER BY r.rank, m.message_id LIMIT :limit"
    )


_SNIPPETS = {
    "sqlite": (
        "SELECT rowid, snippet(messages_fts, 0, :start, :end, '…', :tokens)"
        " FROM messages_fts WHERE messages_fts MATCH :query"
        " AND rowid IN (SELECT value FROM json_each(:ids))"
    ),
    "postgresql": (
        "SELECT m.message_id, ts_headline('sessionstore_search', m.content,"
        " to_tsquery('sessionstore_search', :query),"
        " 'StartSel=" + MARK_START + ", StopSel=" + MARK_END + ", MaxWords=30, MinWords=12,"
        " MaxFragments=1') FROM messages m WHERE m.message_id = ANY(:ids)"
    ),
}
_TITLE_SNIPPETS = {
    "sqlite": (
        "SELECT s.session_id, highlight(session_titles_fts, 0, :start, :end)"
        " FROM session_titles_fts JOIN sessions s ON s.search_key = session_titles_fts.rowid"
        " WHERE session_titles_fts MATCH :query"
        " AND s.session_id IN (SELECT value FROM json_each(:ids))"
    ),
    "postgresql": (
        "SELECT s.session_id, ts_headline('sessionstore_search', s.title,"
        " to_tsquery('sessionstore_search', :query),"
        " 'StartSel=" + MARK_START + ", StopSel=" + MARK_END + ", HighlightAll=true')"
        " FROM sessions s WHERE s.session_id = ANY(:ids)"
    ),
}


# Does session ``t.session_id`` have a matching message? (A title-only hit must not.)
# On SQLite the IN list is computed once per statement, not once per session.
_MESSAGE_MATCH = {
    "sqlite": (
        "SELECT 1 FROM messages m WHERE m.session_id = t.session_id AND m.message_id IN"
        " (SELECT rowid FROM messages_fts WHERE messages_fts MATCH :query)"
    ),
    "postgresql": (
        "SELECT 1 FROM messages m, q WHERE m.session_id = t.session_id AND m.search_vector @@ q.tsq"
    ),
}
# The first ``top`` round ranks this many messages per row asked for; each
# further round eight times as many.
_TOP_PER_ROW = 16
_TOP_GROWTH = 8


class SearchRepository:
    """``store.search``: sessions and messages by the words in them."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    def _query(self, query: object, mode: Mode) -> str | None:
        cleaned = _clean(query)
        if mode == "advanced":
            return cleaned
        if mode != "plain":
            raise InvalidInput(f"mode must be 'plain' or 'advanced', not {mode!r}")
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
    ) -> Page[SearchHit]:
        """Each matching session once, by its best message, best first (or newest first)."""
        limit = check_limit(limit)
        if order not in _ORDERS:
            raise InvalidInput(f"order must be 'relevance' or 'recent', not {order!r}")
        if model_id is not None:
            model_id = check_id("model_id", model_id)
        status = check_status(status)
        if since is not None:
            since = aware_utc("since", since)
        kind = f"search-{order}"
        after = None
        if cursor is not None:
            after = decode_cursor(cursor, kind, float if order == "relevance" else datetime, str)
        fts_query = self._query(query, mode)
        if fts_query is None:
            return Page((), None)
        dialect = self._runner.dialect
        shape = {
            "model": model_id is not None,
            "status": status is not None,
            "since": since is not None,
            "after": after is not None,
        }
        sql = _sessions_sql(dialect, order, **shape)
        # By relevance, the page is first sought among the best messages only.
        top_sql = _sessions_sql(dialect, order, **shape, top=True) if order == "relevance" else None
        params: dict[str, Any] = {
            "query": fts_query,
            "title_weight": TITLE_WEIGHT,
            "limit": limit + 1,
            "model_id": model_id,
            "status": status,
            "since": None if since is None else to_db_time(since, dialect),
        }
        if after is not None:
            params["after_a"] = after[0]
            if order == "recent":
                params["after_a"] = to_db_time(after[0], dialect)
            params["after_b"] = after[1]

        def work(fetch: Fetch) -> Page[SearchHit]:
            rows = None
            if top_sql is not None:
                rows = _top_ranked(fetch, top_sql, params, limit, fts_query, dialect)
            if rows is None:
                rows = fetch(sql, params)
            page = rows[:limit]
            w = _WIDTH  # the session's columns, then message id, sequence, role, rank
            message_ids = [row[w] for row in page if row[w] is not None]
            title_ids = [row[0] for row in page if row[w] is None]
            snippets = _snippets(fetch, _SNIPPETS[dialect], fts_query, message_ids, dialect)
            titles = _snippets(fetch, _TITLE_SNIPPETS[dialect], fts_query, title_ids, dialect)
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
                next_cursor = encode_cursor(kind, key, last.session.session_id)
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
    ) -> Page[MessageHit]:
        """Every matching message, best first, optionally within one session."""
        limit = check_limit(limit)
        if session_id is not None:
            session_id = check_id("session_id", session_id)
        after = None
        if cursor is not None:
            after = decode_cursor(cursor, "search-messages", float, int)
        fts_query = self._query(query, mode)
        if fts_query is None:
            return Page((), None)
        dialect = self._runner.dialect
        sql = _messages_sql(dialect, session=session_id is not None, after=after is not None)
        params: dict[str, Any] = {"query": fts_query, "limit": limit + 1, "session_id": session_id}
        if after is not None:
            params["after_a"], params["after_b"] = after

        def work(fetch: Fetch) -> Page[MessageHit]:
            rows = fetch(sql, params)
            page = rows[:limit]
            ids = [row[0] for row in page]
            snippets = _snippets(fetch, _SNIPPETS[dialect], fts_query, ids, dialect)
            hits = tuple(
                MessageHit(message_from_db(row[:10]), snippets.get(row[0], ""), float(row[10]))
                for row in page
            )
            next_cursor = None
            if len(rows) > limit:
                last = hits[-1]
                next_cursor = encode_cursor("search-messages", last.rank, last.message.message_id)
            return Page(hits, next_cursor)

        return self._execute(work, mode)

    def _execute(self, work: Callable[[Fetch], T], mode: Mode) -> T:
        """SQLite: on the hot path's driver connection. PostgreSQL: through SQLAlchemy,
        inside a savepoint, so a rejected query leaves a caller's transaction usable."""
        if self._runner.dialect == "sqlite":
            return self._runner.fast_read(lambda raw: work(partial(_fetch_raw, raw, mode)))
        return self._runner.read(lambda conn: work(partial(_fetch_postgres, conn, mode)))


Fetch = Callable[[str, dict[str, Any]], Sequence[Any]]
_PREPARED: dict[str, Prepared] = {}


def _fetch_raw(raw: Raw, mode: Mode, sql: str, params: dict[str, Any]) -> Sequence[Any]:
    prepared = _PREPARED.get(sql)
    if prepared is None:
        prepared = _PREPARED[sql] = Prepared(text(sql))
    try:
        return raw.all(prepared, params)
    except sqlite3.Error as exc:
        # SQLite says SQLITE_ERROR (not BUSY, FULL, IOERR…) for a MATCH it cannot
        # parse; plain mode only ever sends quoted strings, so there it is a fault.
        if mode == "advanced" and getattr(exc, "sqlite_errorname", None) == "SQLITE_ERROR":
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else "rejected"
            raise InvalidSearchQuery(f"the search query is not valid syntax: {detail}") from None
        raise


def _fetch_postgres(
    conn: Connection, mode: Mode, sql: str, params: dict[str, Any]
) -> Sequence[Any]:
    # A failed statement poisons the transaction around it; the savepoint keeps
    # a caller's transaction usable after a bad advanced query.
    guard = conn.begin_nested()
    try:
        with guard:
            if mode == "advanced":
                # Parse the query on its own first: whatever goes wrong there (syntax,
                # a distance out of range, a query too deep) is the query's fault.
                try:
                    conn.execute(_PG_CHECK, params)
                except DBAPIError as exc:
                    raise InvalidSearchQuery(
                        f"the search query is not valid syntax: {_first_line(exc)}"
                    ) from None
            return conn.execute(text(sql), params).all()
    except DBAPIError as exc:
        reason = _syntax_error(exc)
        if reason is None:
            raise
        raise InvalidSearchQuery(
            f"the search query is not valid {'' if mode == 'advanced' else 'plain '}syntax: "
            f"{reason}"
        ) from None


_PG_CHECK = text("SELECT to_tsquery('sessionstore_search', :query)")


def _first_line(exc: DBAPIError) -> str:
    text_ = str(exc.orig).strip()
    return text_.splitlines()[0] if text_ else type(exc.orig).__name__


def _syntax_error(exc: DBAPIError) -> str | None:
    """The reason, when the database rejected the query text itself."""
    orig = exc.orig
    message = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    # PostgreSQL: syntax_error, a data exception (e.g. a NEAR distance out of
    # range) or a program limit (a query too deeply nested) — all the query's fault.
    sqlstate = getattr(orig, "sqlstate", None) or ""
    if sqlstate == "42601" or sqlstate.startswith(("22", "54")):
        return message
    return None


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
    w = _WIDTH + 4  # the page's columns end here; the windows' figures follow
    while True:
        rows = fetch(sql, {**params, "k": k})
        if not rows:
            return None  # all filtered out, or nothing matched: ask the exact query
        ranked, kth = int(rows[0][w]), rows[0][w + 1]
        if ranked < k or (len(rows) > limit and kth is not None and rows[limit][w - 1] < kth):
            break
        k *= _TOP_GROWTH
    return [row[:w] for row in rows]


def _snippets(
    fetch: Fetch, sql: str, query: str, ids: Sequence[Any], dialect: str
) -> dict[Any, str]:
    """Snippets for the page's rows only: one statement, the same text for any page."""
    if not ids:
        return {}
    params = {
        "query": query,
        # SQLite takes the ids as a JSON array (json_each), PostgreSQL as an array.
        "ids": json.dumps(list(ids)) if dialect == "sqlite" else list(ids),
        "start": MARK_START,
        "end": MARK_END,
        "tokens": _SNIPPET_TOKENS,
    }
    return {row[0]: row[1] or "" for row in fetch(sql, params)}
