"""Running the search statements: engine errors, the time limit, snippets.

:mod:`sessionstore.search` decides what to run; this module runs one
statement at a time for it (a :data:`Fetch`), on SQLite's driver connection
or through SQLAlchemy on PostgreSQL, and turns what the engine says into the
package's errors: a query the engine cannot parse is
:class:`InvalidSearchQuery`, a search stopped at its time limit
:class:`SearchTimeout`. The time limit is a progress handler on the SQLite
connection for the duration of one search, and ``statement_timeout`` on
PostgreSQL, set inside a savepoint and put back before it is released.

Snippets on SQLite are made here from the head of each row the statement
returns (see ``search_sql.SNIPPETS``): the first word that matches a term of
the query within :data:`~sessionstore.search_sql.SNIPPET_SCAN` characters
(the head of the text when none does), a window of
:data:`~sessionstore.search_sql.SNIPPET_WIDTH` characters around it with its
matching words marked, cut to whole words, ``…`` where text was left out.
Words match as the FTS5 tokenizer sees them, as far as is reasonable without
it: case and accents folded, prefixes, and the suffixes of plurals, ``-ed``
and ``-ing`` stripped (the first step of the Porter stemmer); a word FTS5
matched through a deeper stem is left unmarked.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from .errors import InvalidSearchQuery, SearchTimeout
from .prepared import Prepared
from .search_sql import (
    HIGHLIGHT_END,
    HIGHLIGHT_START,
    MARK_END,
    MARK_START,
    MESSAGE_TOTAL,
    SNIPPET_BEFORE,
    SNIPPET_SCAN,
    SNIPPET_WIDTH,
)
from .search_text import Mode, _fts5_counts
from .transactions import Raw

__all__ = [
    "MIN_RANK_BOUND",
    "TIME_LIMIT",
    "Fetch",
    "admit",
    "fetch_postgres",
    "fetch_raw",
    "finish_snippet",
    "make_snippet",
    "page_snippets",
    "postgres_time_limit",
    "sqlite_snapshot",
    "sqlite_time_limit",
]

#: The longest a search may run, in seconds (per statement on PostgreSQL).
TIME_LIMIT = 10.0

Fetch = Callable[[str, dict[str, Any]], Sequence[Any]]
_PREPARED: dict[str, Prepared] = {}
# How many SQLite virtual-machine steps pass between two looks at the clock.
_PROGRESS_STEPS = 10_000


#: The least an advanced query may rank, in (message, word) pairs, however few messages
#: the store holds: so much ranks within a fraction of a second.
MIN_RANK_BOUND = 100_000


def admit(fetch: Fetch, count_sql: str, params: dict[str, Any], words: int) -> None:
    """Refuse an advanced query whose ranking would cost more than ranking one word in
    every message of the store: more than that many (matching message, word) pairs.

    Ranking (``bm25``, ``ts_rank``) costs about one step per word of the query per
    matching message, and an ``OR`` matches the union of its sides: ``w1 OR w2 OR w3 OR
    w4`` of four common words ranks four words in nearly every message, several times
    what any plain word or prefix costs. Counting the matches costs a small part of
    ranking them, and stops at the bound, so a refused query is refused fast. A query
    of one word (one ranked per match) is admitted uncounted: it is within the bound.
    ``count_sql`` is ``search_sql.match_count_sql`` (the matches the search would rank:
    an owner's only), ``params`` its query and owner.
    """
    if words <= 1:
        return
    total = int(fetch(MESSAGE_TOTAL, params)[0][0] or 0)
    bound = max(total, MIN_RANK_BOUND)
    cap = bound // words + 1
    matches = int(fetch(count_sql, {**params, "cap": cap})[0][0])
    if matches * words > bound:
        raise InvalidSearchQuery(
            f"the search query would rank its {words} words in {matches:,} or more "
            f"matching messages, more than a search may rank ({bound:,} message-word "
            "pairs, one word in every stored message): join its words with AND rather "
            "than OR, or leave out the commonest"
        )


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
def sqlite_snapshot(dbapi: sqlite3.Connection) -> Iterator[None]:
    """One read transaction for the block (unless the caller's is open already): a search
    of several statements (its walk, its snippets) reads one state of the file."""
    if dbapi.in_transaction:
        yield
        return
    dbapi.execute("BEGIN")
    try:
        yield
    except BaseException:
        dbapi.rollback()
        raise
    dbapi.commit()


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


_SPACE = re.compile(r"\s")
# A word as FTS5's unicode61 tokenizer sees it: letters and digits.
_WORD = re.compile(r"[^\W_]+")


class _Folding(dict[int, str]):
    """``str.translate`` table: each character to one character, lower case without its
    accents (as ``remove_diacritics`` folds it), so offsets in the folded text are the
    text's own. Filled as characters are met."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        base = "".join(
            c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
        )
        folded = base.casefold()
        if len(folded) != 1:
            folded = char.lower() if len(char.lower()) == 1 else char
        self[code] = folded
        return folded


_FOLDING = _Folding()


def _fold(text: str) -> str:
    return text.lower() if text.isascii() else text.translate(_FOLDING)


def _is_consonant(word: str, i: int) -> bool:
    if word[i] in "aeiou":
        return False
    return word[i] != "y" or i == 0 or not _is_consonant(word, i - 1)


def _has_vowel(word: str) -> bool:
    return any(not _is_consonant(word, i) for i in range(len(word)))


def _stem(word: str) -> str:
    """Step 1 of the Porter stemmer (plurals, ``-ed``, ``-ing``, ``-y``), on a folded
    word, without its trailing ``e``: two words with the same result are one to FTS5's
    ``porter`` tokenizer (the converse holds for most words, not all)."""
    if len(word) > 2:
        if word.endswith(("sses", "ies")):
            word = word[:-2]
        elif word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        if word.endswith("eed"):
            word = word[:-1]
        else:
            for suffix in ("ed", "ing"):
                stem = word[: -len(suffix)]
                if word.endswith(suffix) and _has_vowel(stem):
                    word = stem
                    doubled = len(word) > 1 and word[-1] == word[-2] and word[-1] not in "lsz"
                    if doubled and _is_consonant(word, len(word) - 1):
                        word = word[:-1]
                    break
        if word.endswith("y") and _has_vowel(word[:-1]):
            word = word[:-1] + "i"
    return word[:-1] if len(word) > 2 and word.endswith("e") else word


class _Terms:
    """The words of an FTS5 query, and whether a word of a text matches one of them."""

    def __init__(self, query: str) -> None:
        words, prefixes, _near, _ors = _fts5_counts(query)
        self.prefixes = tuple(_fold(p) for p in prefixes)
        self.stems = frozenset(_stem(_fold(w)) for w in words)
        # Every word that can match starts with one of these (a stem may end in an
        # ``i`` for a ``y``, or be one letter short of a doubled one) and, unless it is
        # a prefix's, has at most a suffix of step 1 after it.
        stems = {stem[:-1] or stem for stem in self.stems}
        alternatives = [re.escape(h) + r"[^\W_]{0,5}(?![^\W_])" for h in sorted(stems)]
        alternatives += [re.escape(p) for p in sorted(self.prefixes)]
        self.candidate = (
            re.compile(rf"(?<![^\W_])(?:{'|'.join(alternatives)})") if alternatives else None
        )
        self._seen: dict[str, bool] = {}

    def match(self, folded_word: str) -> bool:
        known = self._seen.get(folded_word)
        if known is None:
            known = folded_word.startswith(self.prefixes) or _stem(folded_word) in self.stems
            if len(self._seen) < _MAX_CANDIDATES:
                self._seen[folded_word] = known
        return known

    def first(self, folded: str) -> int | None:
        """Where the first matching word of the folded text starts, if one of the first
        :data:`_MAX_CANDIDATES` words that look like a match is one."""
        if self.candidate is None:
            return None
        for n, found in enumerate(self.candidate.finditer(folded)):
            word = _WORD.match(folded, found.start())
            if word is not None and self.match(word.group()):
                return found.start()
            if n >= _MAX_CANDIDATES:
                break
        return None


# How many words that look like a match (they start like a term) a snippet checks
# before it gives up on finding one and shows the head of the text: a bound on the
# work for a text written to defeat the search (``zebra`` 100,000 times, for ``zebr``).
_MAX_CANDIDATES = 1_000
_NO_SENTINELS = str.maketrans({HIGHLIGHT_START: "\ufffd", HIGHLIGHT_END: "\ufffd"})


def make_snippet(terms: _Terms, text: str | None) -> str:
    """The snippet of a row's head (at most ``SNIPPET_SCAN`` characters): a window
    around its first match, its matching words marked, cut to words."""
    # A stored sentinel would read as a mark: shown as U+FFFD (same length, same offsets).
    text = (text or "")[:SNIPPET_SCAN].translate(_NO_SENTINELS)
    folded = _fold(text)
    first = terms.first(folded)
    start = 0 if first is None else max(0, first - SNIPPET_BEFORE)
    # Marks take room in the window, as they did when it was cut from marked text; the
    # text is taken a little wider, so the last word's match is known before it is cut.
    end = min(len(text), start + SNIPPET_WIDTH + 1 + 64)
    pieces: list[str] = []
    at = start
    for word in _WORD.finditer(folded, start, end):
        if word.start() == start and start > 0 and _WORD.match(folded, start - 1):
            continue  # the window starts inside this word: it is not a whole word
        if terms.match(word.group()):
            pieces += [text[at : word.start()], HIGHLIGHT_START, text[word.start() : word.end()]]
            pieces.append(HIGHLIGHT_END)
            at = word.end()
    pieces.append(text[at:end])
    return finish_snippet(start + 1, "".join(pieces)[: SNIPPET_WIDTH + 1])


def finish_snippet(start: int, window: str | None) -> str:
    """A snippet from a marked window of the text starting at character ``start``
    (1-based): whole words only, ``…`` where text was left out, the caller's markers."""
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
    }
    rows = fetch(sql, params)
    if dialect != "sqlite":
        return {row[0]: row[1] or "" for row in rows}
    terms = _Terms(query)
    return {row[0]: make_snippet(terms, row[1]) for row in rows}
