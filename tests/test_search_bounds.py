"""What a search may cost is bounded, whatever the caller writes.

Hostile text (a prefix repeated hundreds of times, hundreds of words, huge
words, deep brackets, many ``OR`` s or ``NEAR`` groups) either runs as a
bounded query or is refused with :class:`InvalidSearchQuery` before the
engine sees it, on both backends. Snippets are cut from a window of the
matching text, so a very long message costs its length, not the square of
its matches. A search that runs past the time limit stops with
:class:`SearchTimeout`, and leaves the connection (and a caller's
transaction) as it was. Wrong-typed arguments are :class:`InvalidInput`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from sessionstore import (
    InvalidInput,
    InvalidSearchQuery,
    SearchTimeout,
    SessionStore,
    search_recent,
    search_run,
)
from sessionstore import search as search_module
from sessionstore.search_sql import SNIPPET_WIDTH
from sessionstore.search_text import (
    MAX_ADVANCED_TERMS,
    MAX_DEPTH,
    MAX_NEAR,
    MAX_PREFIXES,
    MAX_QUERY_BYTES,
    MAX_TERMS,
    MIN_PREFIX,
    fts5_plain,
    tsquery_plain,
)

WORDS = [f"word{chr(97 + i % 26)}{chr(97 + i // 26)}" for i in range(40)]


@pytest.fixture
def filled(store: SessionStore) -> SessionStore:
    """Sessions whose messages hold many words sharing short prefixes."""
    for n in range(6):
        sid = store.sessions.create("m", title=f"notes {n}").session_id
        store.messages.append_many(
            sid,
            [
                {"role": "user", "content": " ".join([*WORDS[(n + i) % 40 :], "x", "router"])}
                for i in range(5)
            ],
        )
    return store


def ids(page: Any) -> list[Any]:
    return [(h.session.session_id, h.message_id) for h in page.items]


# --- plain mode --------------------------------------------------------------------------


def test_repeated_prefix_is_one_word(filled: SessionStore) -> None:
    """``"a* " * 341`` (the query that took 34 s) is the word ``a`` once: a one-letter
    prefix is searched as a word, and repetitions count once. (``x`` here: ``a`` is an
    English stop word on PostgreSQL.)"""
    assert fts5_plain("a* " * 341) == '"a"'
    assert tsquery_plain("a* " * 341) == "'a'"
    hostile = "x* " * 341
    assert ids(filled.search.sessions(hostile)) == ids(filled.search.sessions("x"))
    assert len(filled.search.messages(hostile, limit=100).items) == 30


def test_repeated_long_prefix_runs_once(filled: SessionStore) -> None:
    hostile = "wor* " * 200
    assert fts5_plain(hostile) == '"wor"*'
    assert ids(filled.search.sessions(hostile)) == ids(filled.search.sessions("wor*"))
    assert len(filled.search.sessions(hostile).items) == 6


def test_short_prefixes_are_words() -> None:
    assert fts5_plain("r* ro* rou*") == '"r" "ro" "rou"*'
    assert tsquery_plain("r* ro* rou*") == "'r' & 'ro' & 'rou':*"
    assert MIN_PREFIX == 3
    # The prefix is the last part of the word: "don't*" would expand "t".
    assert fts5_plain("don't*") == '"don\'t"'


@pytest.mark.parametrize(
    "query",
    [
        " ".join(WORDS[: MAX_TERMS + 1]),
        " ".join(f"w{i}" for i in range(200)),  # hundreds of words, within the byte limit
        " ".join(f"p{i:03d}*" for i in range(160)),
        "-".join("x" * 3 for _ in range(MAX_TERMS + 1)),  # one chunk, many indexed words
        " OR ".join(WORDS[:30]),
    ],
)
def test_too_many_words_are_refused(filled: SessionStore, query: str) -> None:
    for search in (filled.search.sessions, filled.search.messages):
        with pytest.raises(InvalidSearchQuery, match=f"at most {MAX_TERMS}"):
            search(query)


def test_the_limit_itself_is_accepted(filled: SessionStore) -> None:
    at_limit = " ".join(WORDS[:MAX_TERMS])
    assert len(fts5_plain(at_limit).split()) == MAX_TERMS  # type: ignore[union-attr]
    assert isinstance(filled.search.sessions(at_limit).items, tuple)
    # Repetitions do not count against it.
    assert isinstance(filled.search.sessions(at_limit + " " + at_limit).items, tuple)


def test_one_prefix_per_query(filled: SessionStore) -> None:
    """Each prefix is a union of every word it covers, merged before anything is ranked."""
    assert MAX_PREFIXES == 1
    assert len(filled.search.sessions("router wor*").items) == 6
    for search in (filled.search.sessions, filled.search.messages):
        with pytest.raises(InvalidSearchQuery, match="prefix"):
            search("worda* wordb*")
    # A repeated prefix is one prefix; a short one is a word.
    assert len(filled.search.sessions("wor* wor* x* router").items) == 6


def test_long_text_and_huge_words(filled: SessionStore) -> None:
    with pytest.raises(InvalidSearchQuery, match=str(MAX_QUERY_BYTES)):
        filled.search.sessions("x" * (MAX_QUERY_BYTES + 1))
    with pytest.raises(InvalidSearchQuery):
        filled.search.sessions("é" * (MAX_QUERY_BYTES // 2 + 1))  # bytes, not characters
    assert filled.search.sessions("y" * MAX_QUERY_BYTES).items == ()
    assert filled.search.sessions("z" * 1000 + "*").items == ()


# --- advanced mode -------------------------------------------------------------------------

FTS5_HOSTILE = [
    "(" * (MAX_DEPTH + 1) + "router" + ")" * (MAX_DEPTH + 1),
    " OR ".join(WORDS[:30]),
    " ".join(f"NEAR(router {w})" for w in WORDS[: MAX_NEAR + 1]),
    "a*",
    '"ro"*',
    "router AND wo*",
    "worda* OR wordb*",
    "router* OR worda",  # a prefix in an OR: the union of its matches, all ranked
    "NEAR(router worda, 10) OR wordb",
    " ".join(f'"{w}"' for w in WORDS[: MAX_ADVANCED_TERMS + 1]),
]
TSQUERY_HOSTILE = [
    "(" * (MAX_DEPTH + 1) + "router" + ")" * (MAX_DEPTH + 1),
    " | ".join(WORDS[:30]),
    "a:*",
    "'ro':*",
    "router & wo:*",
    "worda:* | wordb:*",
    "router:* | worda",
    "router <3> worda | wordb",
    " <-> ".join(WORDS[: MAX_ADVANCED_TERMS + 1]),
]


def test_advanced_hostile_queries_are_refused(filled: SessionStore) -> None:
    hostile = FTS5_HOSTILE if filled.dialect == "sqlite" else TSQUERY_HOSTILE
    recent = partial(filled.search.sessions, order="recent")
    for query in hostile:
        for search in (filled.search.sessions, recent, filled.search.messages):
            with pytest.raises(InvalidSearchQuery):
                search(query, mode="advanced")


@pytest.mark.parametrize("order", ["relevance", "recent"])
def test_advanced_queries_within_bounds_run(
    filled: SessionStore, order: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Newest first, the walk over the newest sessions runs them (at its smallest, so
    always), and finds what the exact statement finds."""
    monkeypatch.setattr(search_recent, "_MIN_COUNT", 0)
    monkeypatch.setattr(search_recent, "_COUNT_FACTOR", 0)
    monkeypatch.setattr(search_recent, "_WALK_PER_ROW", 1)
    monkeypatch.setattr(search_recent, "_SPAN_PER_MATCH", 10**9)
    if filled.dialect == "sqlite":
        good = [
            "(" * MAX_DEPTH + "router" + ")" * MAX_DEPTH,
            " OR ".join(WORDS[:MAX_ADVANCED_TERMS]),
            " AND ".join(f"NEAR(router {w}, 40)" for w in WORDS[:MAX_NEAR]),
            "router AND wor*",
            "NEAR(x router, 5) AND router",
            "router OR worda NOT wordb",
            '"x router" OR wordaa',
        ]
    else:
        good = [
            "(" * MAX_DEPTH + "router" + ")" * MAX_DEPTH,
            " | ".join(WORDS[:MAX_ADVANCED_TERMS]),
            "x <-> router",
            "router & wor:*",
            "x <-> router & x",
            "router | worda & !wordb",
            "x <-> router | wordaa",  # a phrase may be an alternative, as in FTS5
        ]
    for query in good:
        found = filled.search.sessions(query, mode="advanced", order=order)  # type: ignore[arg-type]
        assert found.items, query
        if order == "recent":
            with monkeypatch.context() as off:
                off.setattr(search_module, "recent_walk", lambda *args, **kwargs: None)
                assert filled.search.sessions(query, mode="advanced", order="recent") == found


# --- advanced mode: admitted by the cost of ranking it ---------------------------------------


@pytest.fixture
def zoo(store: SessionStore) -> SessionStore:
    """Ten messages, each holding ``zebra`` and ``quokka``; one of them ``okapi`` too."""
    sid = store.sessions.create("m", title="animals").session_id
    store.messages.append_many(
        sid,
        [
            {"role": "user", "content": f"zebra quokka {'okapi' if i == 0 else 'plain'} {i}"}
            for i in range(10)
        ],
    )
    return store


def _searches(store: SessionStore) -> list[Any]:
    return [
        store.search.sessions,
        partial(store.search.sessions, order="recent"),
        store.search.messages,
    ]


def test_an_or_that_would_rank_past_the_bound_is_refused(
    zoo: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bound at the store's size (10 messages): ``zebra OR quokka`` would rank 2 words in
    10 messages, 20 pairs, and is refused with the rule stated; so are repetitions of one
    word (each is ranked). Within the bound, and in plain mode, everything runs."""
    monkeypatch.setattr(search_run, "MIN_RANK_BOUND", 0)
    either = "zebra | quokka" if zoo.dialect == "postgresql" else "zebra OR quokka"
    again = "zebra | zebra" if zoo.dialect == "postgresql" else "zebra OR zebra"
    both = "okapi & zebra" if zoo.dialect == "postgresql" else "okapi AND zebra"
    for search in _searches(zoo):
        for query in (either, again):
            with pytest.raises(InvalidSearchQuery, match="more than a search may rank"):
                search(query, mode="advanced")
        assert len(search("zebra", mode="advanced").items) >= 1  # one word: never counted
        assert len(search(both, mode="advanced").items) == 1  # 1 match x 2 words
        assert search("zebra quokka").items  # plain mode: never refused by this rule
    assert len(zoo.search.messages("zebra", mode="advanced", limit=50).items) == 10


def test_a_small_store_ranks_any_or_within_the_bounds(zoo: SessionStore) -> None:
    """However few messages a store holds, :data:`search_run.MIN_RANK_BOUND` pairs may be
    ranked: an ``OR`` of words in all of them runs."""
    either = "zebra | quokka" if zoo.dialect == "postgresql" else "zebra OR quokka"
    for search in _searches(zoo):
        assert search(either, mode="advanced").items
    assert len(zoo.search.messages(either, mode="advanced", limit=50).items) == 10


def test_a_refused_query_leaves_the_store_as_it_was(
    zoo: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_run, "MIN_RANK_BOUND", 0)
    either = "zebra | quokka" if zoo.dialect == "postgresql" else "zebra OR quokka"
    with pytest.raises(InvalidSearchQuery):
        zoo.search.sessions(either, mode="advanced")
    assert len(zoo.search.messages("okapi").items) == 1


def test_an_owners_search_counts_that_owners_matches(
    zoo: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A search scoped to one owner ranks that owner's matches only, and is admitted by
    them: one match of two words (2 pairs, within 11) runs, though the store's eleven
    matches would be past the bound."""
    monkeypatch.setattr(search_run, "MIN_RANK_BOUND", 0)
    sid = zoo.sessions.create("m", app="app", user_id="bea").session_id
    zoo.messages.append(sid, "user", "zebra quokka")
    either = "zebra | quokka" if zoo.dialect == "postgresql" else "zebra OR quokka"
    for order in ("relevance", "recent"):
        page = zoo.search.sessions(
            either,
            mode="advanced",
            order=order,  # type: ignore[arg-type]
            app="app",
            user_id="bea",
        )
        assert [hit.session.session_id for hit in page.items] == [sid]
        with pytest.raises(InvalidSearchQuery):
            zoo.search.sessions(either, mode="advanced", order=order)  # type: ignore[arg-type]
    found = zoo.search.messages(either, mode="advanced", app="app")
    assert [hit.message.session_id for hit in found.items] == [sid]


def test_the_recent_walk_weighs_matches_by_the_words_ranked(
    zoo: SessionStore, monkeypatch: pytest.MonkeyPatch, walks_taken: list[bool]
) -> None:
    """Newest first, the exact statement ranks every word of the query in every match, so
    the walk is chosen by matches times words: ten matches of a query that ranks four
    words are forty steps, enough for a walk that needs forty; one word is not."""
    monkeypatch.setattr(search_recent, "_MIN_COUNT", 40)
    four = " | ".join(["zebra"] * 4) if zoo.dialect == "postgresql" else " OR ".join(["zebra"] * 4)
    found = zoo.search.sessions(four, mode="advanced", order="recent")
    assert ids(zoo.search.sessions("zebra", order="recent")) == ids(found)
    assert walks_taken == [True, False]
    monkeypatch.setattr(search_module, "recent_walk", lambda *args, **kwargs: None)
    assert zoo.search.sessions(four, mode="advanced", order="recent") == found


# --- snippets ------------------------------------------------------------------------------


def test_snippet_of_a_long_message_is_a_window_around_the_first_match(
    store: SessionStore,
) -> None:
    sid = store.sessions.create("m", title="t").session_id
    before = "lorem ipsum dolor sit amet " * 4000
    after = " consectetur adipiscing elit" * 4000
    store.messages.append(sid, "user", before + "walrus" + after)
    for hit in (store.search.sessions("walrus").items[0], store.search.messages("walrus").items[0]):
        snippet = hit.snippet
        assert "«walrus»" in snippet.lower(), snippet
        if store.dialect == "sqlite":
            assert len(snippet) <= SNIPPET_WIDTH + 2
            # Whole words only, and an ellipsis on each side where text was left out.
            assert snippet.startswith("…") and snippet.endswith("…")
            words = snippet.strip("…").replace("«", "").replace("»", "").split()
            assert set(words) <= set((before + "walrus" + after).split())


def test_snippet_of_a_long_message_full_of_matches(store: SessionStore) -> None:
    """FTS5's snippet() scores every match against every other: for this message (30,000
    matches) it took minutes. The window costs the message's length."""
    sid = store.sessions.create("m", title="t").session_id
    store.messages.append(sid, "user", "common word " * 30_000)
    hit = store.search.messages("common").items[0]
    assert hit.snippet.lower().count("«common»") >= 3
    assert len(hit.snippet) <= (SNIPPET_WIDTH + 2 if store.dialect == "sqlite" else 400)


def test_snippet_keeps_short_text_whole_and_marks_titles(store: SessionStore) -> None:
    sid = store.sessions.create("m", title="The walrus report").session_id
    store.messages.append(sid, "user", "a short note on the walrus, «quoted» as is")
    hits = store.search.messages("walrus").items
    if store.dialect == "sqlite":  # ts_headline trims stop words at the edges
        assert hits[0].snippet.lower() == "a short note on the «walrus», «quoted» as is"
    assert "the «walrus»," in hits[0].snippet.lower()
    other = store.sessions.create("m", title="walrus only in the title").session_id
    store.messages.append(other, "user", "nothing here")
    titled = [h for h in store.search.sessions("walrus").items if h.in_title]
    assert [h.snippet.lower() for h in titled] == ["«walrus» only in the title"]


# --- the time limit -----------------------------------------------------------------------


def test_sqlite_search_past_its_time_limit_stops(
    sqlite_store: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = sqlite_store
    sid = store.sessions.create("m").session_id
    store.messages.append_many(sid, [{"role": "user", "content": f"router {i}"} for i in range(50)])
    monkeypatch.setattr(search_run, "TIME_LIMIT", 0.0)
    monkeypatch.setattr(search_run, "_PROGRESS_STEPS", 1)
    monkeypatch.setattr(search_recent, "_MIN_COUNT", 0)  # newest first: the walk runs
    with pytest.raises(SearchTimeout, match="limit"):
        store.search.sessions("router")
    with pytest.raises(SearchTimeout):
        store.search.sessions("router", order="recent")
    with pytest.raises(SearchTimeout):
        store.search.messages("router")
    with store.transaction() as tx:  # the caller's transaction stays usable
        with pytest.raises(SearchTimeout):
            tx.search.sessions("router")
        with pytest.raises(SearchTimeout):
            tx.search.sessions("router", order="recent")
        tx.messages.append(sid, "user", "after the timeout")
    monkeypatch.setattr(search_run, "TIME_LIMIT", 10.0)
    # Every pooled connection is free of the handler again.
    for _ in range(3):
        assert len(store.search.messages("router", limit=100).items) == 50
        assert len(store.search.sessions("router", order="recent").items) == 1
    assert store.messages.recent(sid, 1)[0].content == "after the timeout"


@pytest.mark.postgres
def test_postgres_search_past_its_time_limit_stops(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The search waits on a lock another connection holds; statement_timeout stops it."""
    monkeypatch.setattr(search_run, "TIME_LIMIT", 0.3)
    with SessionStore.open(postgres_url) as store:
        sid = store.sessions.create("m").session_id
        store.messages.append(sid, "user", "router")
        with exclusive_lock(postgres_url), pytest.raises(SearchTimeout):
            store.search.sessions("router")
        assert len(store.search.sessions("router").items) == 1
        with store.transaction() as tx:
            before = tx_setting(tx)
            assert len(tx.search.sessions("router").items) == 1
            # The limit is put back: it does not outlive the search in the transaction.
            assert tx_setting(tx) == before
            tx.messages.append(sid, "user", "still usable")


def tx_setting(tx: Any) -> str:
    runner = tx.search._runner
    return str(runner._conn.execute(text("SHOW statement_timeout")).scalar())


@contextlib.contextmanager
def exclusive_lock(url: str) -> Iterator[None]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1),
                           poolclass=NullPool)  # fmt: skip
    try:
        with engine.connect() as conn:
            conn.execute(text("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE"))
            yield
            conn.rollback()
    finally:
        engine.dispose()


# --- wrong-typed arguments -----------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"order": []},
        {"order": {}},
        {"order": None},
        {"order": "best"},
        {"mode": []},
        {"mode": {"a": 1}},
        {"mode": "regex"},
        {"model_id": []},
        {"status": []},
        {"since": []},
        {"limit": []},
        {"cursor": []},
    ],
)
def test_wrong_typed_arguments_are_invalid_input(
    store: SessionStore, options: dict[str, Any]
) -> None:
    with pytest.raises(InvalidInput):
        store.search.sessions("router", **options)
    message_options = {k: v for k, v in options.items() if k in ("mode", "limit", "cursor")}
    if message_options:
        with pytest.raises(InvalidInput):
            store.search.messages("router", **message_options)
    with pytest.raises(InvalidInput):
        store.search.messages("router", session_id=[])  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        store.search.sessions(["router"])  # type: ignore[arg-type]
