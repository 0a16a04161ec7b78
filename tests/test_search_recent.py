"""Search in recent order: the walk over the newest sessions gives the exact pages.

Every page, walked by cursor, is compared with a brute-force answer: every
matching message and title ranked by the engine, each session's best chosen
in Python, the sessions sorted by ``(last_activity, session_id)`` newest
first, the filters applied in Python. Ranks must be equal, not close. The
same pages are also compared, snippets and cursors included, with the exact
statement's (the walk switched off). Each runs with the walk at its smallest
(one session per row asked for, doubling, never handing over to the exact
statement), small and handing over part way, and switched off; a corpus
this small is below the shipped walk's minimum of matches, which a test of
its own checks. A write committed while a walk runs is not seen by it. The
walk's statements search the indexes meant for them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from sessionstore import SessionStore, search_recent
from sessionstore import search as search_module
from sessionstore.search import SearchHit

from .conftest import FakeClock

COMMON, RARE, TITLED = "packet", "kappa", "walrus"
FILLER = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "switch", "router"]
OWNERS = [("chat", "alice"), ("chat", "bob"), ("other", "alice"), (None, None)]


@pytest.fixture
def clocked(backend_url: str, clock: FakeClock) -> Iterator[SessionStore]:
    with SessionStore.open(backend_url, clock=clock) as store:
        yield store


@pytest.fixture
def filled(clocked: SessionStore, clock: FakeClock) -> SessionStore:
    """48 sessions of every owner and two models, written in a shuffled order (so
    activity order is not creation order), some at the same instant, some archived,
    some without messages, some found by their title only."""
    rng = random.Random(11)
    store = clocked
    ids = []
    for n in range(48):
        app, user = OWNERS[n % len(OWNERS)]
        title = f"The {TITLED} file {n}" if n % 7 == 0 else f"Session {n}"
        created = store.sessions.create(
            "m" if n % 3 else "other", title=title, app=app, user_id=user
        )
        ids.append(created.session_id)
    for _ in range(150):
        sid = rng.choice(ids[:44])  # the last four stay empty
        words = rng.choices(FILLER, k=rng.randint(3, 14))
        if rng.random() < 0.6:
            words.insert(rng.randrange(len(words) + 1), COMMON)
        if rng.random() < 0.05:
            words.insert(rng.randrange(len(words) + 1), RARE)
        if rng.random() < 0.03:  # (most sessions whose title has it are found by title)
            words.insert(rng.randrange(len(words) + 1), TITLED)
        store.messages.append(sid, rng.choice(["user", "assistant"]), " ".join(words))
        if rng.random() < 0.7:  # else the next append has the same instant: a tie
            clock.advance(seconds=rng.randint(1, 90))
    for sid in ids[5:45:9]:
        store.lifecycle.archive(sid)
    return store


def brute_force(
    store: SessionStore, word: str, **filters: Any
) -> list[tuple[str, int | None, float]]:
    """(session, best message or None for a title, rank) of each matching session, newest
    first: every match ranked by the engine, the rest done here."""
    if store.dialect == "sqlite":
        query = f'"{word}"'
        messages = (
            "SELECT m.session_id, m.message_id, bm25(messages_fts) FROM messages_fts"
            " JOIN messages m ON m.message_id = messages_fts.rowid WHERE messages_fts MATCH :q"
        )
        titles = (
            "SELECT s.session_id, bm25(session_titles_fts) * 1.0 FROM session_titles_fts"
            " JOIN sessions s ON s.search_key = session_titles_fts.rowid"
            " WHERE session_titles_fts MATCH :q"
        )
    else:
        query = f"'{word}'"
        tsq = "to_tsquery('sessionstore_search', :q)"
        messages = (
            f"SELECT session_id, message_id, CAST(-ts_rank(search_vector, {tsq}) AS double"
            f" precision) FROM messages WHERE search_vector @@ {tsq}"
        )
        titles = (
            f"SELECT session_id, CAST(-ts_rank(title_vector, {tsq}) AS double precision) * 1.0"
            f" FROM sessions WHERE title_vector @@ {tsq}"
        )
    best: dict[str, tuple[float, int]] = {}
    with store.engine.connect() as conn:
        for session_id, message_id, rank in conn.execute(text(messages), {"q": query}):
            candidate = (float(rank), int(message_id))
            best[session_id] = min(best.get(session_id, candidate), candidate)
        by_title = {sid: float(rank) for sid, rank in conn.execute(text(titles), {"q": query})}
    sessions = {s.session_id: s for s in _all_sessions(store)}
    found = [(sid, mid, rank) for sid, (rank, mid) in best.items()]
    found += [(sid, None, rank) for sid, rank in by_title.items() if sid not in best]
    keep = []
    for sid, mid, rank in found:
        s = sessions[sid]
        if any(
            value is not None and getattr(s, name) != value
            for name, value in (
                ("model_id", filters.get("model_id")),
                ("status", filters.get("status")),
                ("app", filters.get("app")),
                ("user_id", filters.get("user_id")),
            )
        ):
            continue
        if filters.get("since") is not None and s.last_activity < filters["since"]:
            continue
        keep.append((sid, mid, rank))
    keep.sort(key=lambda hit: (sessions[hit[0]].last_activity, hit[0]), reverse=True)
    return keep


def _all_sessions(store: SessionStore) -> list[Any]:
    found, cursor = [], None
    while True:
        page = store.sessions.list(limit=100, cursor=cursor)
        found += page.items
        if (cursor := page.next_cursor) is None:
            return found


def pages(
    searcher: Any, word: str, limit: int, **options: Any
) -> list[tuple[list[SearchHit], str | None]]:
    """Every page of ``searcher.sessions(word, order="recent")``, walked by cursor."""
    found: list[tuple[list[SearchHit], str | None]] = []
    cursor = None
    while True:
        page = searcher.sessions(word, limit=limit, cursor=cursor, order="recent", **options)
        found.append((list(page.items), page.next_cursor))
        if (cursor := page.next_cursor) is None:
            return found


@pytest.fixture(params=["smallest", "handing-over", "off"])
def walking(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The walk at its smallest and always taken; small, growing eightfold and handing
    over to the exact statement once it would read more than half as many messages as
    match; or off (the exact statement alone). As shipped, a corpus this small never
    has enough matches for the walk (see ``test_the_walk_hands_over_...``)."""
    if request.param != "off":
        monkeypatch.setattr(search_recent, "_WALK_PER_ROW", 1)
        monkeypatch.setattr(search_recent, "_MIN_COUNT", 0)
        monkeypatch.setattr(search_recent, "_SPAN_PER_MATCH", 10**9)
    if request.param == "smallest":
        monkeypatch.setattr(search_recent, "_WALK_GROWTH", 2)
        monkeypatch.setattr(search_recent, "_COUNT_FACTOR", 0)
    if request.param == "off":
        monkeypatch.setattr(search_module, "recent_walk", lambda *args, **kwargs: None)
    return str(request.param)


FILTERS: dict[str, dict[str, Any]] = {
    "none": {},
    "model": {"model_id": "other"},
    "active": {"status": "active"},
    "archived": {"status": "archived"},
    "app": {"app": "chat"},
    "owner": {"app": "chat", "user_id": "alice"},
    "model_and_owner": {"model_id": "m", "app": "other", "user_id": "alice"},
}


@pytest.mark.slow
def test_every_page_is_the_brute_force_page(
    filled: SessionStore, walking: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Common and rare words, a word of titles, with each filter, at three page sizes."""
    for word in (COMMON, RARE, TITLED, "router"):
        for name, filters in FILTERS.items():
            expected = brute_force(filled, word, **filters)
            for limit in (1, 4):
                walked = pages(filled.search, word, limit, **filters)
                got = [
                    (h.session.session_id, h.message_id, h.rank) for page, _ in walked for h in page
                ]
                assert got == expected, (word, name, limit)
                assert all(len(page) == limit for page, _ in walked[:-1])
                if walking == "off":
                    continue
                with monkeypatch.context() as off:
                    off.setattr(search_module, "recent_walk", lambda *args, **kwargs: None)
                    exact = pages(filled.search, word, limit, **filters)
                # Snippets, session records and cursors too.
                assert walked == exact, (word, name, limit)


def test_the_smallest_walk_is_taken_and_exact(
    filled: SessionStore, monkeypatch: pytest.MonkeyPatch, walks_taken: list[bool]
) -> None:
    """At its smallest the walk gives every page itself, sessions found by their title
    only among them."""
    titled = brute_force(filled, TITLED)
    assert {mid is None for _, mid, _ in titled} == {True, False}
    monkeypatch.setattr(search_recent, "_WALK_PER_ROW", 1)
    monkeypatch.setattr(search_recent, "_WALK_GROWTH", 2)
    monkeypatch.setattr(search_recent, "_MIN_COUNT", 0)
    monkeypatch.setattr(search_recent, "_COUNT_FACTOR", 0)
    monkeypatch.setattr(search_recent, "_SPAN_PER_MATCH", 10**9)
    for word in (COMMON, RARE, TITLED):
        walked = pages(filled.search, word, 2)
        got = [(h.session.session_id, h.message_id, h.rank) for items, _ in walked for h in items]
        assert got == brute_force(filled, word)
    assert walks_taken and all(walks_taken)


def test_the_walk_hands_over_when_few_messages_match(
    clocked: SessionStore,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    walks_taken: list[bool],
) -> None:
    """Only old sessions hold the word. As shipped, fewer than ``_MIN_COUNT`` messages
    match: no walk. Without that minimum, none of the newest messages match: no walk.
    Looking back as far as it takes, the walk reads the new sessions in growing rounds
    and hands over once it would read more than half as many messages as match."""
    old = []
    for n in range(30):
        sid = clocked.sessions.create("m").session_id
        clocked.messages.append_many(sid, [{"role": "user", "content": f"{COMMON} {n}"}] * 2)
        old.append(sid)
        clock.advance(seconds=1)
    for n in range(40):
        sid = clocked.sessions.create("m").session_id
        clocked.messages.append_many(sid, [{"role": "user", "content": f"nothing {n}"}] * 2)
        clock.advance(seconds=1)
    expected = brute_force(clocked, COMMON)
    assert [sid for sid, _, _ in expected] == old[::-1]

    def first_page() -> list[tuple[str, int | None, float]]:
        page = clocked.search.sessions(COMMON, limit=3, order="recent")
        return [(h.session.session_id, h.message_id, h.rank) for h in page.items]

    assert first_page() == expected[:3]  # as shipped: 60 matches, too few for the walk
    monkeypatch.setattr(search_recent, "_MIN_COUNT", 0)
    # No match among the newest 16 messages: the walk does not start.
    assert first_page() == expected[:3]
    monkeypatch.setattr(search_recent, "_SPAN_PER_MATCH", 10**9)
    monkeypatch.setattr(search_recent, "_WALK_PER_ROW", 1)
    monkeypatch.setattr(search_recent, "_WALK_GROWTH", 2)
    # Rounds of 4, 8, then 16 sessions: 56 messages to read, more than 60 / 2.
    assert first_page() == expected[:3]
    monkeypatch.setattr(search_recent, "_COUNT_FACTOR", 0)
    assert first_page() == expected[:3]  # never handing over: 4 + 8 + 16 + 32 sessions
    assert walks_taken == [False, False, False, True]


@pytest.mark.parametrize("owner", [("chat", "alice"), ("chat", None), ("other", "alice")])
def test_scoped_views_walk_their_own_sessions(
    filled: SessionStore, walking: str, owner: tuple[str, str | None]
) -> None:
    view = filled.for_user(*owner)
    expected = brute_force(filled, COMMON, app=owner[0], user_id=owner[1])
    assert expected
    for limit in (1, 4):
        walked = pages(view.search, COMMON, limit)
        got = [(h.session.session_id, h.message_id, h.rank) for items, _ in walked for h in items]
        assert got == expected


def test_since_and_ties_in_activity(filled: SessionStore, walking: str) -> None:
    """Sessions active at the same instant are told apart by their id, across pages too."""
    everything = brute_force(filled, COMMON)
    sessions = {s.session_id: s for s in _all_sessions(filled)}
    activity = [sessions[sid].last_activity for sid, _, _ in everything]
    assert len(set(activity)) < len(activity), "the corpus must hold ties"
    since = activity[len(activity) // 2]
    expected = brute_force(filled, COMMON, since=since)
    assert 0 < len(expected) < len(everything)
    for limit in (1, 3):
        walked = pages(filled.search, COMMON, limit, since=since)
        got = [(h.session.session_id, h.message_id, h.rank) for items, _ in walked for h in items]
        assert got == expected


def test_a_write_during_the_walk_is_not_seen(
    sqlite_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walk's statements read one state of the file: a message another connection
    commits between them shows in the next search, not halfway through this one."""
    monkeypatch.setattr(search_recent, "_MIN_COUNT", 0)
    monkeypatch.setattr(search_recent, "_COUNT_FACTOR", 0)
    with (
        SessionStore.open(sqlite_url, clock=clock) as store,
        SessionStore.open(sqlite_url) as other,
    ):
        quiet = store.sessions.create("m").session_id
        store.messages.append(quiet, "user", "nothing here")
        for n in range(4):
            clock.advance(seconds=1)
            sid = store.sessions.create("m").session_id
            store.messages.append(sid, "user", f"{COMMON} {n}")
        before = brute_force(store, COMMON)
        fetch = search_module.fetch_raw
        written: list[bool] = []

        def write_between(*args: Any) -> Any:
            rows = fetch(*args)
            if not written and args[-2].startswith("SELECT s.session_id"):  # the walk began
                other.messages.append(quiet, "user", f"{COMMON} late")
                written.append(True)
            return rows

        monkeypatch.setattr(search_module, "fetch_raw", write_between)
        page = store.search.sessions(COMMON, limit=10, order="recent")
        assert written
        assert [(h.session.session_id, h.message_id, h.rank) for h in page.items] == before
        after = store.search.sessions(COMMON, limit=10, order="recent")
        assert after.items[0].session.session_id == quiet


WALK_SHAPES = [
    # (model, status, since, after, owner): the walk's statements, each searching an index
    # in page order (an app's sessions of every user are sorted: the owner index leads
    # with the user).
    (False, False, False, False, (False, False)),
    (True, False, False, True, (False, False)),
    (False, True, False, False, (False, False)),
    (False, False, True, True, (False, False)),
    (False, False, False, True, (True, True)),
]


@pytest.mark.parametrize("shape", WALK_SHAPES)
@pytest.mark.parametrize("resume", [False, True])
def test_the_walk_reads_sessions_in_index_order(
    sqlite_store: SessionStore, shape: tuple[Any, ...], resume: bool
) -> None:
    model, status, since, after, owner = shape
    sql = search_recent.walk_sql(
        "sqlite", model=model, status=status, since=since, after=after, owner=owner,
        resume=resume,
    )  # fmt: skip
    params = {"model_id": "m", "status": "archived", "since": "2026-01-01", "k": 10,
              "after_a": "2027-01-01", "after_b": "x", "walk_a": "2027-01-01", "walk_b": "x",
              "owner_app": "a", "owner_user": "u"}  # fmt: skip
    with sqlite_store.engine.connect() as conn:
        plan = [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)]
    assert len(plan) == 1, plan
    assert " USING INDEX ix_sessions_" in plan[0], plan


def test_the_walk_asks_the_text_index_for_a_range_of_ids(sqlite_store: SessionStore) -> None:
    """FTS5 reads the doclist between the lowest and highest id asked for, not all of it,
    and is not searched once per id."""
    params = {"query": '"x"', "lo": 1, "hi": 5, "ids": "[]", "cap": 5, "span": 80}
    with sqlite_store.engine.connect() as conn:
        for sql in (search_recent._SQLITE_MATCHING, search_recent._SQLITE_RANKS):
            plan = [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)]
            assert "SCAN messages_fts VIRTUAL TABLE INDEX 0:M1><" in plan, plan
        count = search_recent._COUNT["sqlite"]
        plan = [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + count, params)]
        assert "SCAN messages_fts VIRTUAL TABLE INDEX 0:M1>" in plan, plan
