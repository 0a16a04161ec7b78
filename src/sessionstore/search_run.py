"""Running the search statements: engine errors, the time limit, snippets.

:mod:`sessionstore.search` decides what to run; this module runs one
statement at a time for it (a :data:`Fetch`), on SQLite's driver connection
or through SQLAlchemy on PostgreSQL, and turns what the engine says into the
package's errors: a query the engine cannot parse is
:class:`InvalidSearchQuery`, a search stopped at its time limit
:class:`SearchTimeout`. The time limit is a progress handler on the SQLite
connection for the duration of one search, and ``statement_timeout`` on
PostgreSQL, set inside a savepoint and put back before it is released.

Snippets on SQLite are cut here from the window the statement returns
(see ``search_sql.SNIPPETS``): whole words, ``…`` where text was left out,
the caller's markers.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from .errors import InvalidSearchQuery, SearchTimeout
from .prepared import Prepared
from .search_sql import HIGHLIGHT_END, HIGHLIGHT_START, MARK_END, MARK_START, SNIPPET_WIDTH
from .search_text import Mode
from .transactions import Raw

__all__ = [
    "TIME_LIMIT",
    "Fetch",
    "fetch_postgres",
    "fetch_raw",
    "finish_snippet",
    "page_snippets",
    "postgres_time_limit",
    "snippet_params",
    "sqlite_time_limit",
]

#: The longest a search may run, in seconds (per statement on PostgreSQL).
TIME_LIMIT = 10.0

Fetch = Callable[[str, dict[str, Any]], Sequence[Any]]
_PREPARED: dict[str, Prepared] = {}
# How many SQLite virtual-machine steps pass between two looks at the clock.
_PROGRESS_STEPS = 10_000


@contextmanager
def sqlite_time_limit(dbapi: sqlite3.Connection) -> Iterator[Callable[[], bool]]:
    """Interrupt the connection's statements once :data:`TIME_LIMIT` has passed; yields
    whether it has."""
    deadline = time.monotonic() + TIME_LIMIT
    expired = False

    def check() -> int:
        nonlocal expired
        expired = expired or time.monotonic() > deadline
        return 1 if expired else 0

    dbapi.set_progress_handler(check, _PROGRESS_STEPS)
    try:
        yield lambda: expired
    finally:
        dbapi.set_progress_handler(None, 0)


@contextmanager
def postgres_time_limit(conn: Connection) -> Iterator[None]:
    """``statement_timeout`` at :data:`TIME_LIMIT` for the block, inside a savepoint, and
    put back before the savepoint is released: it never outlives the search in a
    caller's transaction (and a failed block rolls it back with the savepoint)."""
    with conn.begin_nested():
        limit = f"{max(1, int(TIME_LIMIT * 1000))}ms"
        previous = conn.execute(_PG_SET_TIMEOUT, {"value": limit}).scalar_one()
        yield
        conn.execute(_PG_SET_TIMEOUT, {"value": previous})


def _timed_out() -> SearchTimeout:
    return SearchTimeout(
        f"the search ran past its limit of {TIME_LIMIT:g} s and was stopped; "
        "search for fewer or rarer words, or narrow it with model_id, status or since"
    )


def fetch_raw(
    raw: Raw, mode: Mode, expired: Callable[[], bool], sql: str, params: dict[str, Any]
) -> Sequence[Any]:
    prepared = _PREPARED.get(sql)
    if prepared is None:
        prepared = _PREPARED[sql] = Prepared(text(sql))
    try:
        return raw.all(prepared, params)
    except sqlite3.Error as exc:
        if expired():
            raise _timed_out() from None
        # SQLite says SQLITE_ERROR (not BUSY, FULL, IOERR…) for a MATCH it cannot
        # parse; plain mode only ever sends quoted strings, so there it is a fault.
        if mode == "advanced" and getattr(exc, "sqlite_errorname", None) == "SQLITE_ERROR":
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else "rejected"
            raise InvalidSearchQuery(f"the search query is not valid syntax: {detail}") from None
        raise


def fetch_postgres(conn: Connection, mode: Mode, sql: str, params: dict[str, Any]) -> Sequence[Any]:
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
                    if getattr(exc.orig, "sqlstate", None) == _PG_CANCELED:
                        raise _timed_out() from None
                    raise InvalidSearchQuery(
                        f"the search query is not valid syntax: {_first_line(exc)}"
                    ) from None
            return conn.execute(text(sql), params).all()
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == _PG_CANCELED:
            raise _timed_out() from None
        reason = _syntax_error(exc)
        if reason is None:
            raise
        raise InvalidSearchQuery(
            f"the search query is not valid {'' if mode == 'advanced' else 'plain '}syntax: "
            f"{reason}"
        ) from None


_PG_CHECK = text("SELECT to_tsquery('sessionstore_search', :query)")
# Returns the setting in force before, and sets the new one for this transaction.
_PG_SET_TIMEOUT = text(
    "SELECT current_setting('statement_timeout'), set_config('statement_timeout', :value, true)"
)
_PG_CANCELED = "57014"  # query_canceled: statement_timeout


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


def snippet_params() -> dict[str, str]:
    """The markers the snippet statements take (besides ``query`` and ``ids``)."""
    return {"start": HIGHLIGHT_START, "end": HIGHLIGHT_END}


_SPACE = re.compile(r"\s")


def finish_snippet(start: int, window: str | None) -> str:
    """A snippet from the window the SQLite statement cut (see ``search_sql.SNIPPETS``):
    whole words only, ``…`` where text was left out, the caller's markers."""
    window = window or ""
    cut_end = len(window) > SNIPPET_WIDTH
    if cut_end:
        window = window[:SNIPPET_WIDTH]
        spaces = [m.start() for m in _SPACE.finditer(window)]
        if spaces and spaces[-1] > window.find(HIGHLIGHT_END):
            window = window[: spaces[-1]]  # not through a word, nor before the first term ends
    if start > 1:
        space = _SPACE.search(window)
        if space is not None and space.start() < max(window.find(HIGHLIGHT_START), 0):
            window = window[space.end() :]  # the first word is likely cut through
    if window.count(HIGHLIGHT_START) > window.count(HIGHLIGHT_END):
        window += HIGHLIGHT_END
    window = window.strip()
    snippet = window.replace(HIGHLIGHT_START, MARK_START).replace(HIGHLIGHT_END, MARK_END)
    return ("…" if start > 1 else "") + snippet + ("…" if cut_end else "")


def page_snippets(
    fetch: Fetch, sql: str, query: str, ids: Sequence[Any], dialect: str
) -> dict[Any, str]:
    """Snippets for the page's rows only: one statement, the same text for any page."""
    if not ids:
        return {}
    params: dict[str, Any] = {
        "query": query,
        # SQLite takes the ids as a JSON array (json_each), PostgreSQL as an array.
        "ids": json.dumps(list(ids)) if dialect == "sqlite" else list(ids),
        **snippet_params(),
    }
    rows = fetch(sql, params)
    if dialect != "sqlite":
        return {row[0]: row[2] or "" for row in rows}
    return {row[0]: finish_snippet(int(row[1]), row[2]) for row in rows}
