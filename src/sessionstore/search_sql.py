"""The SQL text of full-text search, for SQLite (FTS5) and PostgreSQL (tsvector).

Only statements live here; :mod:`sessionstore.search` runs them. Every value
(the query, filters, keyset, ids, markers) reaches them as a bound parameter;
the only numbers written into the text are this module's own constants.

``sessions_sql`` ranks every matching message (and title), then keeps each
session's best one with ``ROW_NUMBER() OVER (PARTITION BY session_id ORDER BY
rank)``; with ``top`` only the ``:k`` best messages are ranked (see
``search._top_ranked``). Snippets are made for the page's rows only, from at
most :data:`SNIPPET_SCAN` characters at the head of each (``search_run`` on
SQLite, ``ts_headline`` on PostgreSQL), so their cost is bounded per row,
whatever its length or number of matches (FTS5's ``snippet()`` scores every
match against every other, ``highlight()`` re-copies its output at every match).
"""

from __future__ import annotations

from typing import Literal

from .search_text import Mode
from .sessions import SESSION_COLUMNS

__all__ = [
    "MARK_END",
    "MARK_START",
    "MESSAGE_TOTAL",
    "NO_OWNER",
    "ORDERS",
    "SNIPPETS",
    "SNIPPET_BEFORE",
    "SNIPPET_SCAN",
    "SNIPPET_WIDTH",
    "TITLE_SNIPPETS",
    "WIDTH",
    "Mode",
    "Order",
    "OwnerShape",
    "match_count_sql",
    "messages_sql",
    "session_filters",
    "sessions_sql",
]

Order = Literal["relevance", "recent"]

#: What surrounds a matched term in a snippet.
MARK_START = "«"
MARK_END = "»"
#: SQLite snippets mark terms with these (characters of Unicode's private use area,
#: which no text is expected to hold) while they are cut to words; the caller sees
#: :data:`MARK_START` / :data:`MARK_END`.
HIGHLIGHT_START = "\ue000"
HIGHLIGHT_END = "\ue001"
#: A snippet: this many characters of the text at most, starting at most
#: :data:`SNIPPET_BEFORE` characters before the first marked term.
SNIPPET_WIDTH = 160
SNIPPET_BEFORE = 40
#: A snippet looks for its first match in this many characters at the head of the text
#: at most (past them, the snippet is the head of the text): the work per row is
#: bounded by this, not by the row's length or its number of matches.
SNIPPET_SCAN = 262_144


SESSION_SELECT = ", ".join(f"s.{column.name}" for column in SESSION_COLUMNS)
WIDTH = len(SESSION_COLUMNS)
MESSAGE_SELECT = (
    "m.message_id, m.session_id, m.sequence_number, m.role, m.content, m.timestamp,"
    " m.tokens_used, m.duration_seconds, m.metadata, m.client_msg_id, m.kind, m.payload,"
    " m.exact_content"
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

#: Which owner columns a search is filtered on: (app, user_id).
OwnerShape = tuple[bool, bool]
NO_OWNER: OwnerShape = (False, False)


def _owner_where(alias: str, owner: OwnerShape) -> str:
    """`` AND s.app = :owner_app [AND s.user_id = :owner_user]`` for an owner filter."""
    text = f" AND {alias}.app = :owner_app" if owner[0] else ""
    return text + (f" AND {alias}.user_id = :owner_user" if owner[1] else "")


def session_filters(
    *, model: bool, status: bool, since: bool, keyset: str | None, owner: OwnerShape
) -> list[str]:
    """The conditions on the session ``s`` that a search's filters and cursor set."""
    where = []
    if model:
        where.append("s.model_id = :model_id")
    if status:
        where.append("s.status = :status")
    if since:
        where.append("s.last_activity >= :since")
    if keyset is not None:
        where.append(keyset)
    if owner[0]:
        where.append("s.app = :owner_app")
    if owner[1]:
        where.append("s.user_id = :owner_user")
    return where


def _owned_sessions(owner: OwnerShape) -> str:
    """The owner's session ids (on ``ix_sessions_app_user_id_last_activity``)."""
    return f"SELECT o.session_id FROM sessions o WHERE 1 = 1{_owner_where('o', owner)}"


def _message_hits(dialect: str, owner: OwnerShape) -> str:
    """The matching messages and their ranks; with an owner, that owner's only, so the
    ranking (and the ``top`` window) never spends itself on other owners' messages."""
    if owner == NO_OWNER:
        return _MESSAGE_HITS[dialect]
    if dialect == "sqlite":
        return (
            _MESSAGE_HITS[dialect]
            + " AND rowid IN (SELECT m.message_id FROM messages m WHERE m.session_id IN"
            f" ({_owned_sessions(owner)}))"
        )
    return _MESSAGE_HITS[dialect] + f" AND m.session_id IN ({_owned_sessions(owner)})"


def _title_ranked(dialect: str, owner: OwnerShape) -> str:
    if owner == NO_OWNER:
        return _TITLE_RANKED[dialect]
    if dialect == "sqlite":
        return _TITLE_RANKED[dialect] + f" WHERE 1 = 1{_owner_where('s', owner)}"
    return _TITLE_RANKED[dialect] + _owner_where("s", owner)


ORDERS = {
    "relevance": ("b.rank, s.session_id", "(b.rank, s.session_id) > (:after_a, :after_b)"),
    "recent": (
        "s.last_activity DESC, s.session_id DESC",
        "(s.last_activity, s.session_id) < (:after_a, :after_b)",
    ),
}


def sessions_sql(
    dialect: str,
    order: Order,
    *,
    model: bool,
    status: bool,
    since: bool,
    after: bool,
    top: bool = False,
    owner: OwnerShape = NO_OWNER,
) -> str:
    """One page of sessions; with ``top``, only the ``:k`` best messages count.

    ``top`` also returns, on every row, how many messages were ranked and the
    rank of the last of them, which :func:`sessionstore.search._top_ranked` uses to tell whether the
    page is exact or ``:k`` must grow.
    """
    order_by, keyset = ORDERS[order]
    page = keyset if after else None
    filters = session_filters(model=model, status=status, since=since, keyset=page, owner=owner)
    where = ["b.pick = 1", *filters]
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
        f"{prefix}ranked AS MATERIALIZED ({_message_hits(dialect, owner)}{messages_limit}),"
        f" titles AS MATERIALIZED ({_title_ranked(dialect, owner)}),"
        f" titled AS (SELECT t.session_id, t.rank FROM {titled}),"
        " hits AS (SELECT m.session_id AS session_id, r.message_id AS message_id, r.rank AS rank"
        " FROM ranked r JOIN messages m ON m.message_id = r.message_id"
        " UNION ALL SELECT session_id, NULL, rank FROM titled),"
        " best AS (SELECT session_id, message_id, rank,"
        # A matching message represents its session; the title only when none does.
        " ROW_NUMBER() OVER (PARTITION BY session_id"
        " ORDER BY CASE WHEN message_id IS NULL THEN 1 ELSE 0 END, rank, message_id) AS pick"
        " FROM hits)"
        f" SELECT {SESSION_SELECT}, b.message_id, m.sequence_number, m.role, b.rank{extra}"
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


def messages_sql(dialect: str, *, session: bool, after: bool, owner: OwnerShape = NO_OWNER) -> str:
    where = ["1 = 1"]
    if session:
        where.append("m.session_id = :session_id")
    if after:
        where.append("(r.rank, m.message_id) > (:after_a, :after_b)")
    prefix = _PG_QUERY if dialect == "postgresql" else ""
    return (
        f"{prefix}SELECT {MESSAGE_SELECT}, r.rank"
        f" FROM ({_message_hits(dialect, owner)}) r JOIN messages m ON m.message_id = r.message_id"
        f" WHERE {' AND '.join(where)} ORDER BY r.rank, m.message_id LIMIT :limit"
    )


# Snippets: SQLite returns the head of each of the page's rows, at most SNIPPET_SCAN
# characters, and ``search_run`` finds the first match in it and marks the terms of a
# window of it. Not ``highlight()``: it re-copies its output at every match, so its cost
# grows with the square of a row's matches (15 s for one message of 160,000 matching
# words), inside one C call that no time limit interrupts. PostgreSQL's ``ts_headline``
# gets the same head of the row, so its work is bounded the same way.
SNIPPETS = {
    "sqlite": (
        f"SELECT m.message_id, substr(m.content, 1, {SNIPPET_SCAN}) FROM messages m"
        " WHERE m.message_id IN (SELECT value FROM json_each(:ids))"
    ),
    "postgresql": (
        "SELECT m.message_id, ts_headline('sessionstore_search',"
        f" left(m.content, {SNIPPET_SCAN}), to_tsquery('sessionstore_search', :query),"
        " 'StartSel=" + MARK_START + ", StopSel=" + MARK_END + ", MaxWords=30, MinWords=12,"
        " MaxFragments=1') FROM messages m WHERE m.message_id = ANY(:ids)"
    ),
}
TITLE_SNIPPETS = {
    "sqlite": (
        f"SELECT s.session_id, substr(s.title, 1, {SNIPPET_SCAN}) FROM sessions s"
        " WHERE s.session_id IN (SELECT value FROM json_each(:ids))"
    ),
    "postgresql": (
        "SELECT s.session_id, ts_headline('sessionstore_search',"
        f" left(s.title, {SNIPPET_SCAN}), to_tsquery('sessionstore_search', :query),"
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


# Admitting an advanced query (``search_run.admit``): how many messages match, counted
# up to :cap without ranking any (FTS5 walks its doclists; PostgreSQL its GIN index), and
# how many messages the store holds (its highest id: one look at the primary key).
_MATCH_COUNT = {
    "sqlite": "SELECT rowid FROM messages_fts WHERE messages_fts MATCH :query",
    "postgresql": "SELECT 1 FROM messages m, q WHERE m.search_vector @@ q.tsq",
}
MESSAGE_TOTAL = "SELECT coalesce(max(message_id), 0) FROM messages"


def match_count_sql(dialect: str, owner: OwnerShape = NO_OWNER) -> str:
    """The matches a search would rank (an owner's only, as ``_message_hits`` keeps them),
    counted up to ``:cap``."""
    hits = _MATCH_COUNT[dialect]
    if owner != NO_OWNER and dialect == "sqlite":
        hits += (
            " AND rowid IN (SELECT m.message_id FROM messages m WHERE m.session_id IN"
            f" ({_owned_sessions(owner)}))"
        )
    elif owner != NO_OWNER:
        hits += f" AND m.session_id IN ({_owned_sessions(owner)})"
    prefix = _PG_QUERY if dialect == "postgresql" else ""
    return f"{prefix}SELECT count(*) FROM ({hits} LIMIT :cap) c"
