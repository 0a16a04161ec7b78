"""Snippets cost a bounded window of each row, never its whole length or its matches.

A snippet looks for its first match in at most ``SNIPPET_SCAN`` characters at
the head of the row (SQLite: in Python, on what the statement returns;
PostgreSQL: ``ts_headline`` of that head), so a message of 160,000 matching
words costs what a short one does, and a match past the bound is not looked
for (the snippet is the head of the text). On SQLite no statement runs
``highlight()`` (its output is re-copied at every match) over a stored row.
Matching words are marked as the tokenizer matches them: case and accents
folded, prefixes, plurals and ``-ed`` / ``-ing``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import create_engine, event

from sessionstore import SessionStore
from sessionstore.search_run import _Terms, make_snippet
from sessionstore.search_sql import SNIPPET_SCAN, SNIPPET_WIDTH

# ts_headline trims by words, not characters.
PG_LONGEST = 400


def longest(store: SessionStore) -> int:
    return SNIPPET_WIDTH + 2 if store.dialect == "sqlite" else PG_LONGEST


def test_160000_matching_words_give_a_short_marked_snippet(store: SessionStore) -> None:
    sid = store.sessions.create("m", title="t").session_id
    store.messages.append(sid, "user", "zebra " * 160_000)
    for hit in (store.search.messages("zebra").items[0], store.search.sessions("zebra").items[0]):
        snippet = hit.snippet
        assert snippet.startswith("«zebra» «zebra»"), snippet
        assert snippet.endswith("…" if store.dialect == "sqlite" else "»"), snippet
        assert snippet.count("«zebra»") >= 3
        assert len(snippet) <= longest(store)
        assert set(snippet.strip("…").split()) == {"«zebra»"}


def test_a_match_past_the_scanned_head_is_not_looked_for(sqlite_url: str) -> None:
    """The bound itself: a snippet made from the whole row (as ``highlight()`` would)
    finds the match at the end and marks it. (PostgreSQL indexes the first 250,000
    characters of a message only, all of them inside the bound.)"""
    with SessionStore.open(sqlite_url) as store:
        sid = store.sessions.create("m", title="t").session_id
        head = "lorem ipsum dolor " * (SNIPPET_SCAN // 18 + 1)
        store.messages.append(sid, "user", head + "walrus")
        snippet = store.search.messages("walrus").items[0].snippet
        assert "walrus" not in snippet.lower() and "«" not in snippet
        assert snippet.startswith("lorem ipsum dolor") and snippet.endswith("…")
        assert len(snippet) <= SNIPPET_WIDTH + 2
        # Just inside the bound, it is found.
        other = store.sessions.create("m", title="t").session_id
        store.messages.append(other, "user", head[: SNIPPET_SCAN - 7] + " okapi")
        snippet = store.search.messages("okapi").items[0].snippet
        assert snippet.startswith("…") and snippet.endswith("«okapi»"), snippet


def test_no_statement_highlights_a_stored_row(backend_url: str) -> None:
    engine = create_engine(backend_url)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    if engine.dialect.name == "sqlite":  # searches run on the driver connection
        event.listen(
            engine, "connect", lambda dbapi, _r: dbapi.set_trace_callback(statements.append)
        )
    else:
        event.listen(engine, "before_cursor_execute", record)
    with SessionStore.from_engine(engine) as store:
        sid = store.sessions.create("m", title="zebra notes").session_id
        store.messages.append(sid, "user", "zebra " * 50_000)
        other = store.sessions.create("m", title="zebra only here").session_id
        store.messages.append(other, "user", "nothing")
        statements.clear()
        assert store.search.messages("zebra").items[0].snippet.startswith("«zebra»")
        hits = store.search.sessions("zebra").items
    engine.dispose()
    snippets = {h.session.session_id: h.snippet for h in hits}
    assert snippets[other] == "«zebra» only here"
    assert snippets[sid].startswith("«zebra» «zebra»")
    assert [s for s in statements if "MATCH" in s or "@@" in s], statements
    assert not [s for s in statements if "highlight(" in s or "snippet(" in s]
    # Each snippet statement takes the bounded head of its rows only.
    cut = "substr({}, 1, {})" if engine.dialect.name == "sqlite" else "left({}, {})"
    assert len([s for s in statements if cut.format("m.content", SNIPPET_SCAN) in s]) == 2
    assert [s for s in statements if cut.format("s.title", SNIPPET_SCAN) in s]
    assert len([s for s in statements if "ts_headline" in s]) == (
        0 if engine.dialect.name == "sqlite" else 3
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("cafe routed", "The «CAFÉ» was «routing» packets; «cafés» «route» them, «Café»!"),
        ("rout*", "The CAFÉ was «routing» packets; cafés «route» them, Café!"),
        ("CAFÉS", "The «CAFÉ» was routing packets; «cafés» route them, «Café»!"),
    ],
)
def test_words_are_marked_as_the_tokenizer_matches_them(
    store: SessionStore, query: str, expected: str
) -> None:
    sid = store.sessions.create("m", title="t").session_id
    store.messages.append(sid, "user", "The CAFÉ was routing packets; cafés route them, Café!")
    snippet = store.search.messages(query).items[0].snippet
    if store.dialect == "sqlite":
        assert snippet == expected
    # PostgreSQL's own stemmer and headline (which trims the edges) mark the same words.
    assert re.findall("«[^»]*»", snippet) == re.findall("«[^»]*»", expected)


def test_the_window_is_cut_around_the_first_match_in_python() -> None:
    text = "alpha " * 30 + "Zébras grazed " + "beta " * 40
    snippet = make_snippet(_Terms('"zebra"'), text)
    assert snippet.startswith("…") and snippet.endswith("…")
    assert "«Zébras» grazed" in snippet
    assert snippet.index("«") <= 45  # at most SNIPPET_BEFORE characters before it
    assert len(snippet) <= SNIPPET_WIDTH + 2
    # A word cut at the window's start is dropped, not shown in part.
    assert snippet[1:].startswith("alpha ")
    # Many words that look like a match but are not: the head of the text, unmarked.
    decoys = "zebrx " * 5_000 + "zebra"
    assert "«" not in make_snippet(_Terms('"zebra"'), decoys)
    assert make_snippet(_Terms('"zebra"'), "zebrx " * 10 + "zebra").endswith("«zebra»")


def test_stored_sentinel_characters_never_read_as_marks(sqlite_store: SessionStore) -> None:
    sid = sqlite_store.sessions.create("m").session_id
    sqlite_store.messages.append(sid, "user", "plain \ue000fake\ue001 text with word")
    sqlite_store.messages.append(sid, "user", "\ue000 starts here and the word")
    snippets = sorted(h.snippet for h in sqlite_store.search.messages("word").items)
    for snippet in snippets:
        assert snippet.count("«") == snippet.count("»") == 1, snippet
        assert "«word»" in snippet
