"""Full-text search benchmarks: 1,000,000 messages in 50,000 sessions; ours against raw FTS5.

(The quick mode: 100,000 messages in 5,000 sessions, shorter measurements.)
The corpus (``search_corpus.py``) is built once and cached under
``.benchmarks/search-corpus/``. Every operation runs twice in the same
benchmark session, on the same file: through the store (``ours``) and
through :class:`raw_search.RawSearch` (``raw``), one persistent
``sqlite3`` connection running the very SQL text ``sessionstore.search``
runs (``sessions_sql`` / ``messages_sql`` and the snippet query for the
page), with the same parameters, in a read transaction. Both sides must
return the same page; the timing is pytest-benchmark's, and the medians are
compared.

Operations: ``search.sessions`` for a rare term (planted in exactly 20
sessions), a common term (in about a third of all messages) at page 1 and at
page 10 (cursors walked outside the measurement), a two-word query, the
common term newest first (``order="recent"``) at pages 1 and 10 and the rare
term newest first; and ``search.messages`` for the rare term. The common term's page is then taken
apart (``test_common_term_stages``): the FTS5 match alone, with ``bm25`` for
every match, with the join to ``messages``, with the window, the whole page,
and the snippets, each timed on the raw connection.

Hostile queries (``test_hostile_query``) are timed beside the worst legitimate
ones (``test_legit_worst_query``), in both orders: each shape the bounds of
``sessionstore.search_text`` let through at its most expensive, those they
refuse (a refusal is timed too), and, per shape an ``OR``/``AND``/``NEAR``/
prefix query can take, the query of the commonest words that the admission
rule (``search_run.admit``) still admits (``EDGE_SHAPES``, found by asking the
store).

Each benchmark's ``extra_info`` (``kind="search"``) carries its operation,
side and the name of its target, which ``report.py`` judges (the targets
live there). At the end of the session the details are written to
``.benchmarks/search-report.txt``: p50 ours and raw, the paired figures, the
stage breakdown, and ``EXPLAIN QUERY PLAN`` of the rare- and common-term
queries.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from modes import scale
from raw_search import RawSearch
from search_corpus import ROOT, CorpusFacts, corpus, vocabulary

from sessionstore import InvalidSearchQuery, SessionStore, search_run, search_sql
from sessionstore import search as _search

PAGE = 20
DEEP_PAGE = 10
#: Seconds of measurement per benchmark (rounds = budget / one call, within the bounds).
BUDGET = scale().search_budget
MIN_ROUNDS, MAX_ROUNDS = 7, 400
SIDES = ("raw", "ours")
REPORT_PATH = ROOT / ".benchmarks" / "search-report.txt"


@dataclass(frozen=True)
class SearchOp:
    title: str
    #: The name of its target in ``report.TARGETS`` / ``report.ABSOLUTE`` (None: not judged).
    target: str | None = "search"


OPS = {
    "rare": SearchOp("search.sessions(rare term), 20 sessions", "search_rare"),
    "common_p1": SearchOp("search.sessions(common term) p. 1"),
    "common_p10": SearchOp("search.sessions(common term) p. 10"),
    "pair": SearchOp("search.sessions(two words) p. 1"),
    "rare_messages": SearchOp("search.messages(rare term) p. 1"),
    "recent_p1": SearchOp("search.sessions(common term, recent) p. 1"),
    "recent_p10": SearchOp("search.sessions(common term, recent) p. 10"),
    "recent_rare": SearchOp("search.sessions(rare term, recent), 20 sessions"),
}


@dataclass
class Results:
    """What the session measured, for the table printed at its end."""

    medians: dict[tuple[str, str], float] = field(default_factory=dict)
    #: Per operation: the raw side's median, timed interleaved with ours.
    paired: dict[str, float] = field(default_factory=dict)
    stages: dict[str, float] = field(default_factory=dict)
    plans: dict[str, list[str]] = field(default_factory=dict)
    corpus: str = ""


RESULTS = Results()


@dataclass
class SearchEnv:
    path: Path
    facts: CorpusFacts
    store: SessionStore
    raw: RawSearch


# --- fixtures -----------------------------------------------------------------------


def _say(config: pytest.Config, line: str) -> None:
    """A line on the terminal now, whatever the capture mode."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    guard = capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()
    with guard:
        reporter.write_line(line)


@pytest.fixture(scope="session")
def search_report(request: pytest.FixtureRequest) -> Iterator[Results]:
    """The results, written to a file when the session ends (``report.py`` prints the table)."""
    yield RESULTS
    text = report(RESULTS)
    REPORT_PATH.parent.mkdir(parents=True, exist_ok=True)
    REPORT_PATH.write_text(text + "\n", encoding="utf-8")


@pytest.fixture(scope="session")
def search_env(request: pytest.FixtureRequest, search_report: Results) -> Iterator[SearchEnv]:
    """The corpus (built on first use, then cached), our store and the raw side on it."""
    started = time.perf_counter()
    path, facts, built = corpus(
        sessions=scale().search_sessions, log=lambda line: _say(request.config, line)
    )
    search_report.corpus = (
        f"corpus: {facts.messages:,} messages in {facts.sessions:,} sessions, "
        f"{facts.content_bytes / 1e6:,.0f} MB of text, file {facts.file_bytes / 1e6:,.0f} MB; "
        f"built in {facts.build_seconds:.0f} s (health check included)"
        + ("" if built else f", reused from the cache ({time.perf_counter() - started:.1f} s)")
        + f"\n  rare {facts.rare_term!r}: {len(facts.rare_message_ids)} messages in "
        f"{len(facts.rare_session_ids)} sessions; common {facts.common_term!r}: "
        f"{facts.common_messages:,} messages in {facts.common_sessions:,} sessions; "
        f"pair {facts.pair_query!r}: {facts.pair_messages:,} messages in "
        f"{facts.pair_sessions:,} sessions"
    )
    store = SessionStore.open(f"sqlite:///{path}")
    raw = RawSearch(path)
    env = SearchEnv(path, facts, store, raw)
    search_report.plans = {
        f"rare term {facts.rare_term!r}": raw.plan(facts.rare_term),
        f"common term {facts.common_term!r}": raw.plan(facts.common_term),
    }
    yield env
    raw.close()
    store.close()


def _deep(env: SearchEnv, order: str) -> dict[str, Any]:
    """Each side's way to page 10 of the common term in ``order``, walked page by page;
    both agree."""
    term = env.facts.common_term
    cursor = None
    ours_ids: list[str] = []
    for _ in range(DEEP_PAGE - 1):
        page = env.store.search.sessions(term, limit=PAGE, cursor=cursor, order=order)  # type: ignore[arg-type]
        ours_ids += [hit.session.session_id for hit in page.items]
        cursor = page.next_cursor
        assert cursor is not None
    key = None
    raw_ids: list[str] = []
    for _ in range(DEEP_PAGE - 1):
        hits, key = env.raw.sessions(term, limit=PAGE, after=key, order=order)
        raw_ids += [hit[0][0] for hit in hits]
        assert key is not None
    assert ours_ids == raw_ids
    assert len(set(ours_ids)) == PAGE * (DEEP_PAGE - 1)
    return {"ours": cursor, "raw": key}


@pytest.fixture(scope="module")
def deep_keys(search_env: SearchEnv) -> dict[str, Any]:
    """Page 10 of the common term by relevance, for each side."""
    return _deep(search_env, "relevance")


@pytest.fixture(scope="module")
def deep_recent_keys(search_env: SearchEnv) -> dict[str, Any]:
    """Page 10 of the common term newest first, for each side."""
    return _deep(search_env, "recent")


# --- measuring ----------------------------------------------------------------------


def _measure(
    benchmark: Any, fn: Callable[[], Any], partner: Callable[[], Any] | None = None
) -> tuple[Any, list[float]]:
    """Time ``fn`` for about :data:`BUDGET` seconds (after one warm-up round).

    ``partner`` (the raw side, when ``fn`` is ours) runs untimed by the
    benchmark just before every round, and is timed here: the two sides,
    interleaved, see the same machine load, which gives a paired ratio.
    """
    partner_times: list[float] = []

    def setup() -> None:
        if partner is not None:
            started = time.perf_counter()
            partner()
            partner_times.append(time.perf_counter() - started)

    fn()
    started = time.perf_counter()
    fn()
    one = time.perf_counter() - started
    if partner is not None:
        setup()
        one += partner_times[-1]
    rounds = int(min(MAX_ROUNDS, max(MIN_ROUNDS, BUDGET / max(one, 1e-6))))
    result = benchmark.pedantic(fn, setup=setup, rounds=rounds, iterations=1, warmup_rounds=1)
    return result, partner_times


def _median(benchmark: Any) -> float | None:
    stats = getattr(benchmark, "stats", None)
    inner = getattr(stats, "stats", None)
    return None if inner is None else float(inner.median)


def _run(
    benchmark: Any,
    env: SearchEnv,
    op: str,
    side: str,
    ours: Callable[[], Any],
    raw: Callable[[], Any],
) -> Any:
    """Label, measure and record one side of one operation; returns that side's result."""
    spec = OPS[op]
    benchmark.group = f"search: {spec.title}"
    benchmark.extra_info.update(
        kind="search",
        op=op,
        side=side,
        title=spec.title,
        target=spec.target,
        corpus_messages=env.facts.messages,
        corpus_sessions=env.facts.sessions,
        corpus_build_seconds=env.facts.build_seconds,
    )
    if side == "ours":
        result, partner = _measure(benchmark, ours, partner=raw)
    else:
        result, partner = _measure(benchmark, raw)
    median = _median(benchmark)
    if median is not None:
        RESULTS.medians[op, side] = median
        benchmark.extra_info["p50_ms"] = median * 1e3
        if partner:
            paired = statistics.median(partner)
            RESULTS.paired[op] = paired
            benchmark.extra_info["paired_raw_p50_ms"] = paired * 1e3
            benchmark.extra_info["paired_ours_over_raw"] = median / paired
        separate = RESULTS.medians.get((op, "raw"))
        if side == "ours" and separate:
            benchmark.extra_info["raw_p50_ms"] = separate * 1e3
            benchmark.extra_info["ours_over_raw"] = median / separate
    return result


def _ours_sessions(page: Any) -> list[tuple[str, int | None, str]]:
    return [(h.session.session_id, h.message_id, h.snippet) for h in page.items]


def _raw_sessions(hits: list[tuple[Any, ...]]) -> list[tuple[str, int | None, str]]:
    return [(h[0][0], h[1], h[3]) for h in hits]


def _found(side: str, result: Any) -> tuple[list[tuple[str, int | None, str]], bool]:
    """The (session, message, snippet) of each hit, and whether a next page exists."""
    if side == "ours":
        return _ours_sessions(result), result.next_cursor is not None
    hits, key = result
    return _raw_sessions(hits), key is not None


# --- benchmarks ---------------------------------------------------------------------


@pytest.mark.parametrize("side", SIDES)
def test_rare_term(benchmark: Any, search_env: SearchEnv, side: str) -> None:
    """A word planted in exactly 20 sessions: one page of 20, no next page."""
    facts, store, raw = search_env.facts, search_env.store, search_env.raw
    if side == "ours":
        benchmark.extra_info["query_plan"] = RESULTS.plans.get(f"rare term {facts.rare_term!r}")
    result = _run(
        benchmark, search_env, "rare", side,
        lambda: store.search.sessions(facts.rare_term, limit=PAGE),
        lambda: raw.sessions(facts.rare_term, limit=PAGE),
    )  # fmt: skip
    found, more = _found(side, result)
    assert not more
    assert sorted(s for s, _, _ in found) == facts.rare_session_ids
    assert {m for _, m, _ in found} <= set(facts.rare_message_ids)
    assert all(f"«{facts.rare_term}»" in snippet.lower() for _, _, snippet in found)
    assert found == _raw_sessions(raw.sessions(facts.rare_term, limit=PAGE)[0])


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("page_number", [1, DEEP_PAGE])
def test_common_term(
    benchmark: Any,
    search_env: SearchEnv,
    deep_keys: dict[str, Any],
    page_number: int,
    side: str,
) -> None:
    """A word in about a third of all messages: page 1, and page 10 by cursor."""
    facts, store, raw = search_env.facts, search_env.store, search_env.raw
    benchmark.extra_info["matching_messages"] = facts.common_messages
    if side == "ours" and page_number == 1:
        benchmark.extra_info["query_plan"] = RESULTS.plans.get(f"common term {facts.common_term!r}")
    cursor = None if page_number == 1 else deep_keys["ours"]
    key = None if page_number == 1 else deep_keys["raw"]
    result = _run(
        benchmark, search_env, "common_p1" if page_number == 1 else "common_p10", side,
        lambda: store.search.sessions(facts.common_term, limit=PAGE, cursor=cursor),
        lambda: raw.sessions(facts.common_term, limit=PAGE, after=key),
    )  # fmt: skip
    found, more = _found(side, result)
    assert more
    assert len({s for s, _, _ in found}) == PAGE
    assert found == _raw_sessions(raw.sessions(facts.common_term, limit=PAGE, after=key)[0])


@pytest.mark.parametrize("side", SIDES)
def test_two_word_query(benchmark: Any, search_env: SearchEnv, side: str) -> None:
    """Two mid-frequency words (each in a few percent of messages), both required."""
    facts, store, raw = search_env.facts, search_env.store, search_env.raw
    benchmark.extra_info["matching_messages"] = facts.pair_messages
    result = _run(
        benchmark, search_env, "pair", side,
        lambda: store.search.sessions(facts.pair_query, limit=PAGE),
        lambda: raw.sessions(facts.pair_query, limit=PAGE),
    )  # fmt: skip
    found, more = _found(side, result)
    assert more
    assert len({s for s, _, _ in found}) == PAGE
    assert found == _raw_sessions(raw.sessions(facts.pair_query, limit=PAGE)[0])


@pytest.mark.parametrize("side", SIDES)
def test_rare_term_messages(benchmark: Any, search_env: SearchEnv, side: str) -> None:
    """``search.messages`` for the rare term: the best 20 of its messages."""
    facts, store, raw = search_env.facts, search_env.store, search_env.raw
    result = _run(
        benchmark, search_env, "rare_messages", side,
        lambda: store.search.messages(facts.rare_term, limit=PAGE),
        lambda: raw.messages(facts.rare_term, limit=PAGE),
    )  # fmt: skip
    if side == "ours":
        found = [(h.message.message_id, h.snippet) for h in result.items]
        more = result.next_cursor is not None
    else:
        found = [(h[0][0], h[1]) for h in result[0]]
        more = result[1] is not None
    assert more == (len(facts.rare_message_ids) > PAGE)
    assert len(found) == min(PAGE, len(facts.rare_message_ids))
    assert {m for m, _ in found} <= set(facts.rare_message_ids)
    assert found == [(h[0][0], h[1]) for h in raw.messages(facts.rare_term, limit=PAGE)[0]]


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("page_number", [1, DEEP_PAGE])
def test_common_term_recent(
    benchmark: Any,
    search_env: SearchEnv,
    deep_recent_keys: dict[str, Any],
    page_number: int,
    side: str,
) -> None:
    """The common term newest first: page 1, and page 10 by cursor (the walk over the
    newest sessions, ``sessionstore.search_recent``)."""
    facts, store, raw = search_env.facts, search_env.store, search_env.raw
    benchmark.extra_info["matching_messages"] = facts.common_messages
    cursor = None if page_number == 1 else deep_recent_keys["ours"]
    key = None if page_number == 1 else deep_recent_keys["raw"]
    result = _run(
        benchmark, search_env, "recent_p1" if page_number == 1 else "recent_p10", side,
        lambda: store.search.sessions(facts.common_term, limit=PAGE, cursor=cursor, order="recent"),
        lambda: raw.sessions(facts.common_term, limit=PAGE, after=key, order="recent"),
    )  # fmt: skip
    found, more = _found(side, result)
    assert more
    assert len({s for s, _, _ in found}) == PAGE
    expected = raw.sessions(facts.common_term, limit=PAGE, after=key, order="recent")[0]
    assert found == _raw_sessions(expected)
    activity = [hit[0][7] for hit in expected]
    assert activity == sorted(activity, reverse=True)


@pytest.mark.parametrize("side", SIDES)
def test_rare_term_recent(benchmark: Any, search_env: SearchEnv, side: str) -> None:
    """The rare term newest first: too few matches for the walk, the exact statement."""
    facts, store, raw = search_env.facts, search_env.store, search_env.raw
    result = _run(
        benchmark, search_env, "recent_rare", side,
        lambda: store.search.sessions(facts.rare_term, limit=PAGE, order="recent"),
        lambda: raw.sessions(facts.rare_term, limit=PAGE, order="recent"),
    )  # fmt: skip
    found, more = _found(side, result)
    assert not more
    assert sorted(s for s, _, _ in found) == facts.rare_session_ids
    assert found == _raw_sessions(raw.sessions(facts.rare_term, limit=PAGE, order="recent")[0])


# --- hostile queries against the worst legitimate ones --------------------------------


def _commonest() -> tuple[list[str], str]:
    """The corpus's words by frequency (its Zipf ranks), and the three letters that
    begin the largest share of its words."""
    words = vocabulary()
    shares: dict[str, float] = {}
    for rank, word in enumerate(words, 1):
        shares[word[:3]] = shares.get(word[:3], 0.0) + 1.0 / rank
    return words, max(shares, key=shares.__getitem__)


_WORDS, _PREFIX = _commonest()
#: Legitimate queries at their most expensive: the word in the most messages (like
#: "the"), and a prefix search of the three letters most words begin with.
LEGIT_WORST = {
    "commonest_word": (_WORDS[0], "plain"),
    "commonest_prefix": (f"{_PREFIX}*", "plain"),
}
#: Hostile queries: each at the most the bounds of ``sessionstore.search_text`` let
#: through (or past them, refused before anything runs).
HOSTILE = {
    "prefix_a_x341": ("a* " * 341, "plain"),
    "prefix_x200": (f"{_PREFIX}* " * 200, "plain"),
    "16_commonest_words": (" ".join(_WORDS[:16]), "plain"),
    "prefix_and_15_commonest": (" ".join([f"{_PREFIX}*", *_WORDS[:15]]), "plain"),
    "200_words_refused": (" ".join(f"w{i}" for i in range(200)), "plain"),
    "2_prefixes_refused": (f"{_PREFIX}* {_WORDS[0][:4]}*", "plain"),
    # Judged by the cost of ranking them (``search_run.admit``): refused on the full
    # corpus, where they would rank more than one word in every message.
    "or_4_commonest": (" OR ".join(_WORDS[:4]), "advanced"),
    "or_2_commonest": (" OR ".join(_WORDS[:2]), "advanced"),
    "prefix_and_3_commonest": (" AND ".join([f"{_PREFIX}*", *_WORDS[:3]]), "advanced"),
    "near_x2_commonest": (
        " AND ".join(f"NEAR({_WORDS[i]} {_WORDS[i + 1]}, 50)" for i in range(0, 4, 2)),
        "advanced",
    ),
    "or_prefix_refused": (f"{_PREFIX}* OR {_WORDS[0]}", "advanced"),
    "or_near_refused": (f"NEAR({_WORDS[0]} {_WORDS[1]}) OR {_WORDS[2]}", "advanced"),
    "brackets_8_deep": ("(" * 8 + " OR ".join(_WORDS[:4]) + ")" * 8, "advanced"),
    "or_9_commonest_refused": (" OR ".join(_WORDS[:9]), "advanced"),
    "brackets_9_deep_refused": ("(" * 9 + _WORDS[0] + ")" * 9, "advanced"),
}


#: Admitted or refused by what ranking them would cost, which depends on the corpus.
BY_COST = {
    "or_4_commonest", "or_2_commonest", "prefix_and_3_commonest", "near_x2_commonest",
    "brackets_8_deep",
}  # fmt: skip
#: Hostile queries at the edge of the admission rule: of each shape, the one of the
#: commonest words (by Zipf rank, found by asking the store) that it still admits.
EDGE_SHAPES = {
    "edge_or_2": lambda r: f"{_WORDS[r]} OR {_WORDS[r + 1]}",
    "edge_or_4": lambda r: " OR ".join(_WORDS[r : r + 4]),
    "edge_prefix_and_1": lambda r: f"{_PREFIX}* AND {_WORDS[r]}",
    "edge_prefix_and_3": lambda r: " AND ".join([f"{_PREFIX}*", *_WORDS[r : r + 3]]),
    "edge_near_x2": lambda r: (
        f"NEAR({_WORDS[r]} {_WORDS[r + 1]}, 50) AND NEAR({_WORDS[r + 2]} {_WORDS[r + 3]}, 50)"
    ),
    "edge_and_4": lambda r: " AND ".join(_WORDS[r : r + 4]),
    "edge_one_word_or_x40": lambda r: " OR ".join([_WORDS[r]] * 40),
}
_EDGES: dict[str, str] = {}


def _edge(store: SessionStore, name: str) -> str:
    """The query of shape ``name`` of the commonest words the store admits (a binary search
    over Zipf ranks; admission falls as the words grow rarer)."""
    if name not in _EDGES:
        shape = EDGE_SHAPES[name]

        def admitted(rank: int) -> bool:
            try:
                store.search.sessions(shape(rank), limit=PAGE, mode="advanced")
            except InvalidSearchQuery:
                return False
            return True

        low, high = -1, len(_WORDS) - 50
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (low, middle) if admitted(middle) else (middle, high)
        _EDGES[name] = shape(high)
    return _EDGES[name]


def _bounded(
    benchmark: Any, env: SearchEnv, role: str, name: str, query: str, mode: str, order: str
) -> None:
    """Time page 1 of ``search.sessions(query)`` (a refusal is timed too), labelled so the
    report pairs the slowest hostile query with the slowest legitimate one, per order."""
    store = env.store

    def search() -> Any:
        try:
            return store.search.sessions(query, limit=PAGE, mode=mode, order=order)  # type: ignore[arg-type]
        except InvalidSearchQuery as exc:
            return exc

    benchmark.group = f"search: hostile queries vs the worst legitimate ones ({order})"
    benchmark.extra_info.update(
        kind="search_bound", role=role, op=f"{name} ({order})", mode=mode,
        pair=f"search_worst_case_{order}", order=order,
        query=query[:80], corpus_messages=env.facts.messages,
    )  # fmt: skip
    result, _ = _measure(benchmark, search)
    refused = isinstance(result, InvalidSearchQuery)
    benchmark.extra_info["refused"] = refused
    if name not in BY_COST:
        assert refused == name.endswith("_refused"), result
    median = _median(benchmark)
    if median is not None:
        benchmark.extra_info["p50_ms"] = median * 1e3


BOUND_ORDERS = ("relevance", "recent")


@pytest.mark.parametrize("order", BOUND_ORDERS)
@pytest.mark.parametrize("name", list(LEGIT_WORST))
def test_legit_worst_query(benchmark: Any, search_env: SearchEnv, name: str, order: str) -> None:
    query, mode = LEGIT_WORST[name]
    _bounded(benchmark, search_env, "legit", name, query, mode, order)


@pytest.mark.parametrize("order", BOUND_ORDERS)
@pytest.mark.parametrize("name", [*HOSTILE, *EDGE_SHAPES])
def test_hostile_query(benchmark: Any, search_env: SearchEnv, name: str, order: str) -> None:
    if name in EDGE_SHAPES:
        query, mode = _edge(search_env.store, name), "advanced"
    else:
        query, mode = HOSTILE[name]
    _bounded(benchmark, search_env, "hostile", name, query, mode, order)


# --- where the common term's time goes ----------------------------------------------

_SQL = search_sql.sessions_sql(
    "sqlite", "relevance", model=False, status=False, since=False, after=False
)
#: The library's own CTEs (``hits``, ``best``), without the final SELECT.
_CTES = _SQL[: _SQL.rindex(" SELECT s.session_id")]
_MATCH = "FROM messages_fts WHERE messages_fts MATCH :query"
_JOIN = "FROM messages_fts JOIN messages m ON m.message_id = messages_fts.rowid"
TOP_K = 200


def _top_k_sql() -> str:
    """The library's page SQL over the ``TOP_K`` best messages only (an alternative, a sketch).

    Exact for page 1 whenever those messages span more than a page of sessions
    (a session's best message is its first in rank order). Titles are left out:
    a title represents only a session none of whose messages match, which this
    sketch does not check.
    """
    hits = (
        "WITH hits AS (SELECT m.session_id AS session_id, t.rid AS message_id, t.r AS rank"
        f" FROM (SELECT rowid AS rid, bm25(messages_fts) AS r {_MATCH} ORDER BY r LIMIT {TOP_K})"
        " t JOIN messages m ON m.message_id = t.rid)"
    )
    return hits + _SQL[_SQL.index(", best AS (") :]


#: (title, SQL). A stage whose title starts with "+" does the work of the ones above it too.
STAGES = {
    "match": ("FTS5 MATCH alone: count(*) of the matches", f"SELECT count(*) {_MATCH}"),
    "join": (
        "+ join messages for each match's session_id (no bm25)",
        f"SELECT count(m.session_id) {_JOIN} WHERE messages_fts MATCH :query",
    ),
    "bm25": (
        "bm25() of every match (no join)",
        # (LIMIT -1 keeps the subquery from being flattened: bm25() needs its FTS5 cursor.)
        f"SELECT count(*), min(r) FROM (SELECT bm25(messages_fts) AS r {_MATCH} LIMIT -1)",
    ),
    "hits": (
        "match + join + bm25 + titles: the hits CTE",
        f"{_CTES} SELECT count(*), min(rank) FROM hits",
    ),
    "window": (
        "+ ROW_NUMBER() window over every hit (sort by session)",
        f"{_CTES} SELECT count(*), min(rank) FROM best WHERE pick = 1",
    ),
    "page": ("+ join sessions, ORDER BY rank LIMIT 21: the page query", _SQL),
    "fts5_rank": (
        "alternative: FTS5 ORDER BY rank LIMIT 21 (no per-session pick)",
        f"SELECT rowid, rank {_MATCH} ORDER BY rank LIMIT 21",
    ),
    "top_k": (
        f"alternative: pick sessions among the {TOP_K} best messages only (same page)",
        _top_k_sql(),
    ),
}


@pytest.mark.full_only
@pytest.mark.parametrize("stage", [*STAGES, "snippets"])
def test_common_term_stages(benchmark: Any, search_env: SearchEnv, stage: str) -> None:
    """Page 1 of the common term taken apart, on the raw connection."""
    facts = search_env.facts
    conn = search_env.raw.conn
    query = _search.fts5_plain(facts.common_term)
    params = {"query": query, "title_weight": _search.TITLE_WEIGHT, "limit": PAGE + 1}
    benchmark.group = "search: common term page 1, stage by stage (raw)"
    page = conn.execute(_SQL, params).fetchall()
    if stage == "snippets":
        title = "snippets for the page's 20 messages"
        ids = [row[search_sql.WIDTH] for row in page[:PAGE] if row[search_sql.WIDTH] is not None]
        sql = search_sql.SNIPPETS["sqlite"]

        def snippets() -> dict[Any, str]:
            fetch = lambda text, bound: conn.execute(text, bound).fetchall()  # noqa: E731
            return search_run.page_snippets(fetch, sql, query, ids, "sqlite")

        result, _ = _measure(benchmark, snippets)
        assert len(result) == len(ids)
    else:
        title, sql = STAGES[stage]
        result, _ = _measure(benchmark, lambda: conn.execute(sql, params).fetchall())
        assert result
        if stage == "top_k":  # the alternative gives the very same page here
            assert result == page
    benchmark.extra_info.update(kind="search_stage", stage=stage, title=title, sql=sql)
    median = _median(benchmark)
    if median is not None:
        RESULTS.stages[title] = median
        benchmark.extra_info["p50_ms"] = median * 1e3


# --- the table ----------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:,.2f}"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return [line(headers), "  ".join("-" * w for w in widths), *map(line, rows)]


def report(results: Results) -> str:
    """The details of this session: ours vs raw (separate and paired), the stages, the plans."""
    lines = [
        "# search benchmarks (p50 = median of the rounds; paired = raw timed just before",
        "# each of our rounds, so both sides see the same machine load)",
        results.corpus,
        "",
    ]
    rows = []
    for op, spec in OPS.items():
        ours = results.medians.get((op, "ours"))
        raw = results.medians.get((op, "raw"))
        paired = results.paired.get(op)
        if ours is None and raw is None:
            continue
        ratio = None if ours is None or not raw else ours / raw
        paired_ratio = None if ours is None or not paired else ours / paired
        rows.append([
            spec.title, _ms(ours), _ms(raw), _ratio(ratio), _ms(paired), _ratio(paired_ratio),
        ])  # fmt: skip
    headers = ["benchmark", "ours p50 ms", "raw p50 ms", "ours/raw", "paired raw ms",
               "paired ours/raw"]  # fmt: skip
    lines += _table(headers, rows)
    if results.stages:
        page = results.stages.get(STAGES["page"][0])
        lines += ["", "common term page 1, stage by stage (raw sqlite3; '+' stages include the"
                  " ones above them):"]  # fmt: skip
        lines += _table(
            ["stage", "p50 ms", "of page"],
            [
                [title, _ms(s), "-" if not page else f"{s / page:.0%}"]
                for title, s in results.stages.items()
            ],
        )
    for name, plan in results.plans.items():
        lines += ["", f"EXPLAIN QUERY PLAN, search.sessions({name}):", *plan]
    return "\n".join(lines)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"
