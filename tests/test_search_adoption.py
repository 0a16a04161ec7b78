"""Search through the store's API on an adopted legacy file: what the old index lost is found.

The legacy triggers wiped every ``sessions_fts`` row of a session on each
edit or delete of one of its messages, so a legacy file holds live messages
its own search could never find. These tests build a small damaged legacy
file with ``tests/legacy.py``, work out with raw ``sqlite3`` *before*
adoption which live messages its ``sessions_fts`` had no row for, and plant
one more word the way the damage happens (two messages of a session edited
to carry it, then a third edited, so the legacy trigger leaves only the
third indexed). After ``SessionStore.open`` adopts the file,
``store.search.sessions`` and ``store.search.messages`` must find every one
of those messages, each session once.

Then, on the adopted file, edits and deletes (through the store, and by
another program with raw ``sqlite3``) show in the very next search, and
never make a session's other messages unsearchable again.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sessionstore import SessionStore
from sessionstore.search import SearchHit

from .legacy import LegacyFacts, build_legacy_db, legacy_connect

#: Small: about 40 sessions of ~10 messages; the whole module runs in a few seconds.
SESSIONS = 40
PER_SESSION = 10
#: Planted in messages the legacy index has lost; in no other message.
PLANTED = "wombatquill"
PLANTED_SESSIONS = 3


@dataclass
class Adopted:
    facts: LegacyFacts
    store: SessionStore
    #: Live messages the legacy ``sessions_fts`` had no row for, computed from the file.
    unindexed: frozenset[int]
    #: The messages carrying :data:`PLANTED`, by session.
    planted: dict[str, set[int]]


def _unindexed(path: Path) -> frozenset[int]:
    """Live messages of a legacy file with no row in its ``sessions_fts``, by raw SQL."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        live = conn.execute(
            "SELECT m.message_id, m.session_id, m.content FROM messages m"
            " JOIN sessions s ON s.session_id = m.session_id"
        ).fetchall()
        indexed = set(conn.execute("SELECT session_id, content FROM sessions_fts").fetchall())
    return frozenset(mid for mid, sid, content in live if (sid, content) not in indexed)


def _legacy_matches(path: Path, word: str) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        (n,) = conn.execute(
            "SELECT COUNT(*) FROM sessions_fts WHERE sessions_fts MATCH ?", (f'"{word}"',)
        ).fetchone()
    return int(n)


def _plant(facts: LegacyFacts) -> dict[str, set[int]]:
    """Two messages per session get :data:`PLANTED`; a third edit wipes them from the index.

    Done the old code's way (raw ``sqlite3``, the legacy triggers firing) on the
    legacy file before adoption.
    """
    chosen = [
        sid
        for sid in sorted(facts.live_session_ids)
        if len(facts.messages_of(sid)) >= 4
        and not any(m.message_id in facts.fts_missing_message_ids for m in facts.messages_of(sid))
    ][:PLANTED_SESSIONS]
    assert len(chosen) == PLANTED_SESSIONS
    planted: dict[str, set[int]] = {}
    with contextlib.closing(legacy_connect(facts.path)) as conn:
        for sid in chosen:
            first, second, third = facts.messages_of(sid)[1:4]
            for message in (first, second):
                conn.execute(
                    "UPDATE messages SET content = content || ? WHERE message_id = ?",
                    (f" and then {PLANTED}", message.message_id),
                )
            # Any update fires the legacy trigger: the session's index rows are
            # wiped and only this message is put back.
            conn.execute(
                "UPDATE messages SET metadata = metadata WHERE message_id = ?",
                (third.message_id,),
            )
            planted[sid] = {first.message_id, second.message_id}
    return planted


@pytest.fixture
def adopted(tmp_path: Path) -> Iterator[Adopted]:
    facts = build_legacy_db(
        tmp_path / "legacy.db", sessions=SESSIONS, messages_per_session=PER_SESSION
    )
    planted = _plant(facts)
    unindexed = _unindexed(facts.path)
    # The damage is real and is what the builder says, plus the planted sessions:
    # every message of one but the one edited last is gone from the index.
    kept = {facts.messages_of(sid)[3].message_id for sid in planted}
    wiped = {m.message_id for sid in planted for m in facts.messages_of(sid)} - kept
    assert unindexed == facts.fts_missing_message_ids | wiped
    assert len(facts.fts_missing_message_ids) >= 5
    # The legacy index cannot find the planted word at all.
    assert _legacy_matches(facts.path, PLANTED) == 0
    store = SessionStore.open(f"sqlite:///{facts.path}")
    try:
        yield Adopted(facts, store, unindexed, planted)
    finally:
        store.close()


def _token(facts: LegacyFacts, message_id: int) -> str:
    return facts.messages[message_id].token


def _all_sessions(store: SessionStore, query: str) -> list[SearchHit]:
    """Every page of ``search.sessions``, walked with small pages to cross page boundaries."""
    hits: list[SearchHit] = []
    cursor = None
    while True:
        page = store.search.sessions(query, limit=2, cursor=cursor)
        hits.extend(page.items)
        if page.next_cursor is None:
            return hits
        cursor = page.next_cursor


def _message_ids(store: SessionStore, query: str, session_id: str | None = None) -> list[int]:
    page = store.search.messages(query, session_id=session_id, limit=100)
    assert page.next_cursor is None
    return [hit.message.message_id for hit in page.items]


def test_messages_the_legacy_index_lost_are_found_after_adoption(adopted: Adopted) -> None:
    facts, store = adopted.facts, adopted.store
    assert store.health.check().ok
    not_found = []
    for message_id in sorted(adopted.unindexed):
        token = _token(facts, message_id)
        session_id = facts.messages[message_id].session_id
        hits = store.search.sessions(token).items
        if (
            [(h.session.session_id, h.message_id) for h in hits] != [(session_id, message_id)]
            or _message_ids(store, token) != [message_id]
            or _message_ids(store, token, session_id) != [message_id]
        ):
            not_found.append(message_id)
    assert not not_found, (
        f"{len(not_found)} of {len(adopted.unindexed)} messages lost by the legacy index "
        f"are still not found: {not_found[:10]}"
    )
    for hit in store.search.sessions(_token(facts, min(adopted.unindexed))).items:
        assert "«" in hit.snippet


def test_a_word_in_several_lost_messages_finds_each_session_once(adopted: Adopted) -> None:
    store, planted = adopted.store, adopted.planted
    hits = _all_sessions(store, PLANTED)
    sessions = [hit.session.session_id for hit in hits]
    assert len(sessions) == len(set(sessions)), f"a session came back twice: {sessions}"
    assert set(sessions) == set(planted)
    for hit in hits:
        assert hit.message_id in planted[hit.session.session_id]
        assert PLANTED in hit.snippet
    # One page, and page by page: the same sessions.
    assert {h.session.session_id for h in store.search.sessions(PLANTED).items} == set(planted)
    assert sorted(_message_ids(store, PLANTED)) == sorted(set().union(*planted.values()))
    for session_id, message_ids in planted.items():
        assert sorted(_message_ids(store, PLANTED, session_id)) == sorted(message_ids)


def test_orphans_and_deleted_sessions_are_not_found(adopted: Adopted) -> None:
    facts, store = adopted.facts, adopted.store
    assert facts.orphan_messages
    for message in facts.orphan_messages.values():
        assert store.search.sessions(message.token).items == ()
        assert _message_ids(store, message.token) == []


def test_edits_and_deletes_show_in_the_next_search_on_an_adopted_file(adopted: Adopted) -> None:
    facts, store = adopted.facts, adopted.store
    # A session the legacy index had damaged, with enough messages to touch several.
    sid = max(
        (s for s in facts.live_session_ids if len(facts.messages_of(s)) >= 6),
        key=lambda s: sum(m.message_id in adopted.unindexed for m in facts.messages_of(s)),
    )
    msgs = facts.messages_of(sid)
    title = store.sessions.get(sid).title or ""
    edited, deleted, raw_edited, raw_deleted = msgs[1], msgs[2], msgs[3], msgs[4]
    rest = [m for m in msgs if m not in (edited, deleted, raw_edited, raw_deleted)]
    assert all(m.token not in title for m in (edited, deleted, raw_edited, raw_deleted))

    store.messages.edit(edited.message_id, "rewritten entirely: zebrafinch and more")
    assert store.search.sessions(edited.token).items == ()
    assert _message_ids(store, edited.token) == []
    hits = store.search.sessions("zebrafinch").items
    assert [(h.session.session_id, h.message_id) for h in hits] == [(sid, edited.message_id)]
    assert _message_ids(store, "zebrafinch") == [edited.message_id]

    store.messages.delete(deleted.message_id)
    assert store.search.sessions(deleted.token).items == ()
    assert _message_ids(store, deleted.token) == []

    # Another program writing to the adopted file: the new triggers keep the index.
    with contextlib.closing(sqlite3.connect(facts.path, isolation_level=None)) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(
            "UPDATE messages SET content = 'nightjar, by hand' WHERE message_id = ?",
            (raw_edited.message_id,),
        )
        conn.execute("DELETE FROM messages WHERE message_id = ?", (raw_deleted.message_id,))
    assert _message_ids(store, raw_edited.token) == []
    assert _message_ids(store, "nightjar") == [raw_edited.message_id]
    assert [h.message_id for h in store.search.sessions("nightjar").items] == [
        raw_edited.message_id
    ]
    assert _message_ids(store, raw_deleted.token) == []
    assert store.search.sessions(raw_deleted.token).items == ()

    # The session's other messages are all still found (the legacy bug lost them).
    lost = [
        m.message_id
        for m in rest
        if _message_ids(store, m.token) != [m.message_id]
        or [h.message_id for h in store.search.sessions(m.token).items] != [m.message_id]
    ]
    assert not lost, f"{len(lost)} of {len(rest)} messages of the session became unsearchable"

    # A deleted session takes its messages out of every search at once.
    gone = next(s for s in sorted(facts.live_session_ids) if s != sid and facts.messages_of(s))
    store.sessions.delete(gone)
    for message in facts.messages_of(gone):
        assert store.search.sessions(message.token).items == ()
        assert _message_ids(store, message.token) == []
    report = store.health.check()
    assert report.ok, report.failed
