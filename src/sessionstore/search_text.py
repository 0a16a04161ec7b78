"""A caller's search text turned into a bounded query of the engine's language.

The cost of a full-text query grows with what the caller writes: each term
is a posting list to read and rank, a prefix expands to every indexed word
that starts with it, and FTS5's ranking and highlighting walk every match of
every term. So the text is bounded here, before anything runs:

* at most :data:`MAX_QUERY_BYTES` bytes of UTF-8;
* at most :data:`MAX_TERMS` words (the indexed words a query names: ``C++``
  is one, ``multi-agent`` two). Repeated words count once: every word is
  required, so a repetition adds nothing. A query past the limit is refused
  with :class:`InvalidSearchQuery`, never silently cut short;
* a prefix (``rout*``) needs at least :data:`MIN_PREFIX` characters; a shorter
  one (``a*``) is searched as the word itself. A query holds at most
  :data:`MAX_PREFIXES` prefix: without a prefix index, FTS5 reads and merges
  the postings of every indexed word a prefix covers before it ranks
  anything, so each prefix costs up to a pass over a large part of the index;
* in ``advanced`` mode at most :data:`MAX_ADVANCED_TERMS` words (an ``OR``
  makes every word a union of its matches, each ranked), the same prefix
  limits, at most :data:`MAX_NEAR` ``NEAR`` groups, no prefix and no
  ``NEAR`` group (on PostgreSQL: no ``<N>`` wider than a phrase) in a query
  with an ``OR`` (the union of a prefix's or a ``NEAR`` group's matches with
  others is the costliest thing the syntax can ask), and brackets nested at
  most :data:`MAX_DEPTH` deep, all counted before the engine sees the text;
* and, in ``advanced`` mode, a query is admitted by what ranking it would cost
  (``search_run.admit``): an ``OR`` ranks each word of its sides in every
  message of their union, so its matches are counted first (cheaply: no
  ranking) and the query is refused when matches times words would exceed
  ranking one word in every message of the store.

A search also stops at a time limit (``search_run.TIME_LIMIT``), and its
snippets cost a bounded head of each of the page's rows (``search_sql``).

In the default ``plain`` mode each whitespace-separated word is quoted as a
string of the engine's query language (``multi-agent``, ``don't``, ``C++``,
``"unbalanced``, ``(x``, ``AND``, ``col:x`` are words, not operators); a
trailing ``*`` keeps its meaning as a prefix search.
"""

from __future__ import annotations

import re
from typing import Literal

from .errors import InvalidInput, InvalidSearchQuery
from .validation import check_text

__all__ = [
    "MAX_ADVANCED_TERMS",
    "MAX_DEPTH",
    "MAX_NEAR",
    "MAX_PREFIXES",
    "MAX_QUERY_BYTES",
    "MAX_TERMS",
    "MIN_PREFIX",
    "Mode",
    "check_advanced",
    "clean",
    "fts5_plain",
    "ranked_words",
    "tsquery_plain",
]

Mode = Literal["plain", "advanced"]

#: The longest query text accepted, in bytes of UTF-8.
MAX_QUERY_BYTES = 1024
#: The most words one query may name (repetitions count once).
MAX_TERMS = 16
#: The fewest characters a prefix search needs; shorter ones are searched as words.
MIN_PREFIX = 3
#: The most prefix searches in one query.
MAX_PREFIXES = 1
#: Advanced mode: the most words one query may name.
MAX_ADVANCED_TERMS = 4
#: Advanced mode: the most ``NEAR`` groups, and the deepest nesting of brackets.
MAX_NEAR = 2
MAX_DEPTH = 8

# A word as both engines index it: letters and digits (``_`` separates).
_WORD = re.compile(r"[^\W_]+")
# A word as FTS5's ``unicode61`` indexes it: also characters of the private use areas
# (category Co, a word character to it), which the counts of advanced mode must see.
_FTS5_WORD = re.compile(r"(?:[^\W_]|[\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd])+")


def clean(query: object) -> str:
    """The query text, checked: a string, not empty, within :data:`MAX_QUERY_BYTES`."""
    if isinstance(query, str):
        query = query.replace("\x00", " ")  # a separator, like any other non-word character
    try:
        query = check_text("query", query, max_bytes=MAX_QUERY_BYTES)
    except InvalidInput as exc:
        if isinstance(query, str):
            raise InvalidSearchQuery(str(exc)) from None
        raise
    if not query.strip():
        raise InvalidInput("the search query is empty")
    return query


def _too_many(count: int, limit: int = MAX_TERMS) -> InvalidSearchQuery:
    return InvalidSearchQuery(
        f"the search query names {count} words; at most {limit} are searched at once "
        "(repeated words count once): leave out the least specific ones"
    )


def _too_many_prefixes(count: int) -> InvalidSearchQuery:
    return InvalidSearchQuery(
        f"the search query has {count} prefix searches (word*); at most {MAX_PREFIXES} "
        "is allowed: write the other words out in full"
    )


def _plain_words(query: str) -> list[tuple[str, list[str], bool]]:
    """Each distinct whitespace-separated word: its text (without a trailing ``*``),
    the parts the index sees in it, and whether it is searched as a prefix."""
    seen: set[tuple[object, ...]] = set()
    words: list[tuple[str, list[str], bool]] = []
    total = 0
    for chunk in query.split():
        word = chunk.rstrip("*")
        parts = _WORD.findall(word)
        if not parts:
            continue  # nothing either engine indexes: punctuation, emoji
        # A prefix must be long enough not to expand to a large part of the vocabulary.
        prefix = chunk.endswith("*") and len(parts[-1]) >= MIN_PREFIX
        key = (*(part.casefold() for part in parts), prefix)
        if key in seen:
            continue  # every word is required: saying it twice changes nothing
        seen.add(key)
        words.append((word, parts, prefix))
        total += len(parts)
    if total > MAX_TERMS:
        raise _too_many(total)
    prefixes = sum(1 for _word, _parts, prefix in words if prefix)
    if prefixes > MAX_PREFIXES:
        raise _too_many_prefixes(prefixes)
    return words


def fts5_plain(query: str) -> str | None:
    """Each word an FTS5 string (quotes doubled), ``*`` kept as a prefix mark."""
    terms = [
        '"' + word.replace('"', '""') + '"' + ("*" if prefix else "")
        for word, _parts, prefix in _plain_words(query)
    ]
    return " ".join(terms) or None


def tsquery_plain(query: str) -> str | None:
    """Each word a ``to_tsquery`` phrase of quoted lexemes, joined with ``&``."""
    terms = []
    for _word, parts, prefix in _plain_words(query):
        quoted = [f"'{part}'" for part in parts]
        if prefix:
            quoted[-1] += ":*"
        terms.append(quoted[0] if len(quoted) == 1 else "(" + " <-> ".join(quoted) + ")")
    return " & ".join(terms) or None


# --- advanced mode: counted, not rewritten ---------------------------------------------

# FTS5: a string (quotes doubled inside), or a bareword.
_FTS5_TOKEN = re.compile(r'"(?:[^"]|"")*"?|[^\s"()*:^+{},]+|[()*,]')
_FTS5_KEYWORDS = {"AND", "OR", "NOT"}
# to_tsquery: distances (<->, <3>) and weight/prefix labels (:*, :AB) are not words.
_TSQUERY_NOISE = re.compile(r"<\d*-?>|:[*a-dA-D]+")
_TSQUERY_DISTANCE = re.compile(r"<(\d+)>")
_TSQUERY_PREFIX = re.compile(r"([^\W_]+)'?\s*:[a-dA-D]*\*")


def check_advanced(query: str, dialect: str) -> str:
    """``query`` unchanged, once its words, prefixes, ``NEAR`` groups and depth are in bounds.

    The engine still parses it (and reports its own syntax errors); this only
    refuses what would be costly to run, without trying to understand the rest.
    """
    depth = deepest = 0
    for char in query:
        if char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth = max(0, depth - 1)
    if deepest > MAX_DEPTH:
        raise InvalidSearchQuery(
            f"the search query nests brackets {deepest} deep; at most {MAX_DEPTH} are allowed"
        )
    if dialect == "postgresql":
        words = _WORD.findall(_TSQUERY_NOISE.sub(" ", query))
        prefixes = [m.group(1) for m in _TSQUERY_PREFIX.finditer(query)]
        # Its counterpart of NEAR is a distance operator wider than a phrase's (<N>,
        # N > 1); bounded by the words around it, it counts only beside an OR.
        near = sum(1 for n in _TSQUERY_DISTANCE.findall(query) if int(n) > 1)
        ors, near_groups = query.count("|"), 0
    else:
        words, prefixes, near, ors = _fts5_counts(query)
        near_groups = near
    distinct = {w.casefold() for w in words}
    if len(distinct) > MAX_ADVANCED_TERMS:
        raise _too_many(len(distinct), MAX_ADVANCED_TERMS)
    if near_groups > MAX_NEAR:
        raise InvalidSearchQuery(
            f"the search query has {near_groups} NEAR groups; at most {MAX_NEAR} are allowed"
        )
    short = [p for p in prefixes if len(p) < MIN_PREFIX]
    if short:
        raise InvalidSearchQuery(
            f"the prefix {short[0]!r}* is too short: a prefix search needs at least "
            f"{MIN_PREFIX} characters"
        )
    if len(prefixes) > MAX_PREFIXES:
        raise _too_many_prefixes(len(prefixes))
    if ors and (prefixes or near):
        raise InvalidSearchQuery(
            "the search query puts a prefix search or a NEAR group in an OR: every "
            "match of either side would be ranked; use AND, or search for them one at a time"
        )
    return query


def ranked_words(query: str, dialect: str) -> int:
    """How many words the engine's query (plain or advanced, as made here) ranks in each
    message it matches: every word it names, repetitions included (each is a phrase of
    its own to the ranking)."""
    if dialect == "postgresql":
        return len(_WORD.findall(_TSQUERY_NOISE.sub(" ", query)))
    return len(_fts5_counts(query)[0])


def _fts5_counts(query: str) -> tuple[list[str], list[str], int, int]:
    """FTS5 text: the words of its strings and barewords, the word before each ``*``,
    the ``NEAR`` groups and the ``OR`` s."""
    words: list[str] = []
    prefixes: list[str] = []
    near = ors = 0
    previous: list[str] = []
    tokens = _FTS5_TOKEN.findall(query)
    for i, token in enumerate(tokens):
        if token == "*":
            if previous:
                prefixes.append(previous[-1])
            continue
        if token in "(),":
            previous = []
            continue
        if i and tokens[i - 1] == "," and token.isdigit():
            continue  # a NEAR group's distance, not a word
        if token == "NEAR" and i + 1 < len(tokens) and tokens[i + 1] == "(":
            near += 1
            previous = []
            continue
        if token in _FTS5_KEYWORDS:
            ors += token == "OR"
            previous = []
            continue
        text = token[1:-1].replace('""', '"') if token.startswith('"') else token
        previous = _FTS5_WORD.findall(text)
        words.extend(previous)
    return words, prefixes, near, ors
