"""Recent-order search pages, found by walking the sessions newest first.

The exact statement (``search_sql.sessions_sql(order="recent")``) ranks every
matching message and keeps each session's best before it can sort sessions
by activity: seconds for a word in a third of a million messages, for a page
of twenty. :func:`recent_walk` gets the same page another way. It reads the
sessions that pass the filters (and the cursor) in page order, newest
activity first, ``k`` at a time on ``ix_sessions_last_activity_session_id``
(or the owner's, model's or archived index), and asks the text index which
of them match: a message of theirs (found inside the range of their message
ids, the index's own order) or else their title. Page order is that very
walk's order, so the first ``limit + 1`` matching sessions it meets are the
first ``limit + 1`` rows of the exact statement; when the walk runs out of
sessions first, every remaining one has been looked at. Either way the page
is exact, and only then is anything ranked: each page session's matching
messages (its best by ``(rank, message_id)``, as the window picks it), or
its title when no message matches. A rank is the engine's own, per row (FTS5's
``bm25`` and PostgreSQL's ``ts_rank`` read the same global statistics
whatever rows a statement keeps), so it is the exact statement's rank.

The walk costs about one message index entry per message of the sessions
it reads, the exact statement one ranking step per word of the query per
match (``bm25`` and ``ts_rank`` score each word in each matching message).
So the walk runs only while the newest messages match densely enough:
before it starts, and whenever it has read more, the ranking steps among
the newest messages (matches times words) are counted, up to twice the
messages it has read (and at least :data:`_MIN_COUNT`), looking no further
back than sixteen messages per step it needs (``LIMIT`` and an id range
bound the count's own cost). Short of
that (a rare word, words only old sessions hold, common words rarely found
together), the walk hands over and :mod:`sessionstore.search` runs the exact
statement, which is then the cheaper.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from .search_run import Fetch
from .search_sql import _PG_QUERY, ORDERS, SESSION_SELECT, WIDTH, OwnerShape, session_filters
from .session_sql import SESSION_COLUMNS

__all__ = ["recent_walk", "walk_sql"]

# The first round reads this many sessions per row asked for; each further round
# eight times as many.
_WALK_PER_ROW = 4
_WALK_GROWTH = 8
#: The walk runs only when ranking the matches would take at least this many steps
#: (matches times words): with fewer, the exact statement ranks them all within tens
#: of milliseconds.
_MIN_COUNT = 5_000
#: ... and at least this many times as many as the walk reads messages ...
_COUNT_FACTOR = 2
#: ... among the newest messages, this many per step counted (one in sixteen at least).
_SPAN_PER_MATCH = 16

_NAMES = [column.name for column in SESSION_COLUMNS]
_ACTIVITY = _NAMES.index("last_activity")
_MESSAGES = _NAMES.index("message_count")


def walk_sql(
    dialect: str,
    *,
    model: bool,
    status: bool,
    since: bool,
    after: bool,
    owner: OwnerShape,
    resume: bool,
) -> str:
    """The next ``:k`` sessions in page order that pass the filters (``resume``: after
    the walk's last one)."""
    keyset = ORDERS["recent"][1] if after else None
    filters = session_filters(model=model, status=status, since=since, keyset=keyset, owner=owner)
    where = ["1 = 1", *filters]
    if resume:
        where.append("(s.last_activity, s.session_id) < (:walk_a, :walk_b)")
    return (
        f"SELECT {SESSION_SELECT} FROM sessions s WHERE {' AND '.join(where)}"
        f" ORDER BY {ORDERS['recent'][0]} LIMIT :k"
    )


# Matches among the newest :span messages (by id), counted up to :cap. Within a span, so
# that words each common but rarely together cost a count of that span, not of all.
_COUNT = {
    "sqlite": (
        "SELECT count(*) FROM (SELECT rowid FROM messages_fts WHERE messages_fts MATCH :query"
        " AND rowid > (SELECT max(message_id) FROM messages) - :span LIMIT :cap)"
    ),
    "postgresql": _PG_QUERY
    + (
        "SELECT count(*) FROM (SELECT 1 FROM messages m, q WHERE m.search_vector @@ q.tsq"
        " AND m.message_id > (SELECT max(message_id) FROM messages) - :span LIMIT :cap) c"
    ),
}
# The sessions' message ids (SQLite; the covering unique index on session_id).
_MESSAGE_IDS = (
    "SELECT m.session_id, m.message_id FROM messages m"
    " WHERE m.session_id IN (SELECT value FROM json_each(:ids))"
)
# Which of the ids match: FTS5 reads its doclist between :lo and :hi only, in rowid
# order; ``+rowid`` keeps SQLite from looking each id up on its own (one search of the
# index per id).
_SQLITE_MATCHING = (
    "SELECT rowid FROM messages_fts WHERE messages_fts MATCH :query"
    " AND rowid BETWEEN :lo AND :hi AND +rowid IN (SELECT value FROM json_each(:ids))"
)
# The same, ranked as the exact statement ranks them (``search_sql._MESSAGE_HITS``).
_SQLITE_RANKS = (
    "SELECT rowid, bm25(messages_fts) FROM messages_fts WHERE messages_fts MATCH :query"
    " AND rowid BETWEEN :lo AND :hi AND +rowid IN (SELECT value FROM json_each(:ids))"
)
_PG_MATCHING = _PG_QUERY + (
    "SELECT m.session_id, m.message_id FROM messages m, q"
    " WHERE m.session_id = ANY(:ids) AND m.search_vector @@ q.tsq"
)
_PG_RANKS = _PG_QUERY + (
    "SELECT m.message_id, CAST(-ts_rank(m.search_vector, q.tsq) AS double precision)"
    " FROM messages m, q WHERE m.message_id = ANY(:ids)"
)
# The sessions whose titles match, ranked as ``search_sql._TITLE_RANKED`` ranks them.
_TITLES = {
    "sqlite": (
        "SELECT s.session_id, t.rank"
        " FROM (SELECT rowid AS search_key, bm25(session_titles_fts) * :title_weight AS rank"
        " FROM session_titles_fts WHERE session_titles_fts MATCH :query"
        " AND +rowid IN (SELECT o.search_key FROM sessions o"
        " WHERE o.session_id IN (SELECT value FROM json_each(:ids)))) t"
        " JOIN sessions s ON s.search_key = t.search_key"
    ),
    "postgresql": _PG_QUERY
    + (
        "SELECT s.session_id,"
        " CAST(-ts_rank(s.title_vector, q.tsq) AS double precision) * :title_weight"
        " FROM sessions s, q WHERE s.session_id = ANY(:ids) AND s.title_vector @@ q.tsq"
    ),
}
_PLACES = {
    "sqlite": (
        "SELECT m.message_id, m.sequence_number, m.role FROM messages m"
        " WHERE m.message_id IN (SELECT value FROM json_each(:ids))"
    ),
    "postgresql": (
        "SELECT m.message_id, m.sequence_number, m.role FROM messages m"
        " WHERE m.message_id = ANY(:ids)"
    ),
}


def _ids(values: Sequence[Any], dialect: str) -> Any:
    """A list of ids as a parameter: JSON for ``json_each`` on SQLite, an array on PostgreSQL."""
    return json.dumps(list(values)) if dialect == "sqlite" else list(values)


def _matching_messages(
    fetch: Fetch, dialect: str, query: str, session_ids: Sequence[str]
) -> dict[str, list[int]]:
    """Each session's matching message ids (sessions without any left out)."""
    found: dict[str, list[int]] = {}
    if dialect == "postgresql":
        rows = fetch(_PG_MATCHING, {"query": query, "ids": list(session_ids)})
        for session_id, message_id in rows:
            found.setdefault(session_id, []).append(message_id)
        return found
    owners: dict[int, str] = {
        message_id: session_id
        for session_id, message_id in fetch(_MESSAGE_IDS, {"ids": _ids(session_ids, dialect)})
    }
    if not owners:
        return found
    params = {
        "query": query,
        "lo": min(owners),
        "hi": max(owners),
        "ids": _ids(list(owners), dialect),
    }
    for (message_id,) in fetch(_SQLITE_MATCHING, params):
        found.setdefault(owners[message_id], []).append(message_id)
    return found


def _ranks(fetch: Fetch, dialect: str, query: str, message_ids: list[int]) -> dict[int, float]:
    if not message_ids:
        return {}
    if dialect == "postgresql":
        rows = fetch(_PG_RANKS, {"query": query, "ids": message_ids})
    else:
        params = {
            "query": query,
            "lo": min(message_ids),
            "hi": max(message_ids),
            "ids": _ids(message_ids, dialect),
        }
        rows = fetch(_SQLITE_RANKS, params)
    return {message_id: float(rank) for message_id, rank in rows}


def _message_count(stored: Any) -> int:
    """A session's stored message count, as the walk's cost: a legacy value that is no
    finite number (text, an infinite real) counts as none (the page never depends on it)."""
    if stored.__class__ is int:
        return int(stored)
    if isinstance(stored, float) and math.isfinite(stored):
        return int(stored)
    return 0


def _count(fetch: Fetch, dialect: str, query: str, cap: int, words: int) -> int:
    """What ranking the newest messages' matches would cost (matches times the query's
    ranked ``words``), counted up to ``cap``, among the newest ``_SPAN_PER_MATCH * cap``."""
    words = max(words, 1)
    params = {"query": query, "cap": -(-cap // words), "span": _SPAN_PER_MATCH * cap}
    return words * int(fetch(_COUNT[dialect], params)[0][0])


def recent_walk(
    fetch: Fetch,
    dialect: str,
    statements: tuple[str, str],
    params: dict[str, Any],
    limit: int,
    words: int = 1,
) -> list[tuple[Any, ...]] | None:
    """The exact statement's first ``limit + 1`` rows, or None when the walk would cost
    more than that statement (then run it).

    ``statements``: :func:`walk_sql` without and with ``resume``; ``params`` those of
    the exact statement; ``words``: how many words the query ranks in each match.
    Rows are the exact statement's: the session's columns, then the best message's
    id, sequence number and role (``None`` for a title), the rank.
    """
    query: str = params["query"]
    k = _WALK_PER_ROW * (limit + 1)
    walk_params = dict(params)
    sql = statements[0]
    # Counted first, before any session is read: a rare word costs one short statement
    # more than the exact one (which also parses the query before anything is shown).
    counted = max(_MIN_COUNT, 1)
    if _count(fetch, dialect, query, counted, words) < counted:
        return None
    read = 0
    # Matching sessions in page order: their row, and their matching message ids (none:
    # the title matches).
    found: list[tuple[tuple[Any, ...], list[int]]] = []
    titles: dict[str, float] = {}
    while True:
        sessions = [tuple(row) for row in fetch(sql, {**walk_params, "k": k})]
        read += sum(_message_count(row[_MESSAGES]) for row in sessions)
        if read > counted:
            cap = max(_MIN_COUNT, _COUNT_FACTOR * read, 1)
            if _count(fetch, dialect, query, cap, words) < cap:
                return None
            counted = cap
        ids = [row[0] for row in sessions]
        messages = _matching_messages(fetch, dialect, query, ids) if ids else {}
        rest = [sid for sid in ids if sid not in messages]
        if rest:
            rows = fetch(
                _TITLES[dialect],
                {
                    "query": query,
                    "title_weight": params["title_weight"],
                    "ids": _ids(rest, dialect),
                },
            )
            titles.update((session_id, rank) for session_id, rank in rows)
        for row in sessions:
            if row[0] in messages or row[0] in titles:
                found.append((row, messages.get(row[0], [])))
        if len(found) > limit or len(sessions) < k:
            break
        last = sessions[-1]
        walk_params["walk_a"], walk_params["walk_b"] = last[_ACTIVITY], last[0]
        sql = statements[1]
        k *= _WALK_GROWTH
    return _rows(fetch, dialect, query, found[: limit + 1], titles)


def _rows(
    fetch: Fetch,
    dialect: str,
    query: str,
    found: list[tuple[tuple[Any, ...], list[int]]],
    titles: dict[str, float],
) -> list[tuple[Any, ...]]:
    """The page's rows: each session by its best message (by rank, then id), else its title."""
    ranks = _ranks(fetch, dialect, query, [mid for _, mids in found for mid in mids])
    best = {row[0]: min((ranks[mid], mid) for mid in mids) for row, mids in found if mids}
    places: dict[int, tuple[Any, Any]] = {}
    if best:
        chosen = [mid for _, mid in best.values()]
        # (Every statement gets the query: PostgreSQL checks an advanced one before each.)
        rows = fetch(_PLACES[dialect], {"query": query, "ids": _ids(chosen, dialect)})
        places = {mid: (seq, role) for mid, seq, role in rows}
    page = []
    for row, _mids in found:
        if row[0] in best:
            rank, mid = best[row[0]]
            page.append((*row[:WIDTH], mid, *places[mid], rank))
        else:
            page.append((*row[:WIDTH], None, None, None, titles[row[0]]))
    return page
