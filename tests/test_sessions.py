"""Contract tests for ``store.sessions``, run on a SQLite file and on PostgreSQL.

What is proved here: a created session reads back field for field (timezone-
aware UTC, status ``active``); ids are the caller's when given and unique when
not; a duplicate id is refused with :class:`SessionExists` and changes nothing;
session metadata is created, read, upserted and deleted per session; rename
and delete behave (delete takes the messages and metadata with it and leaves
other sessions alone); the list is newest activity first, filters by model and
status, and keyset pagination yields every session exactly once, also while
sessions are created and appended to between page fetches; foreign or
malformed cursors are refused with :class:`InvalidCursor`; ``count`` counts.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from sessionstore import (
    ConflictError,
    InvalidCursor,
    InvalidInput,
    MessageNotFound,
    SessionExists,
    SessionNotFound,
    SessionStore,
)

from .conftest import FakeClock


@pytest.fixture
def clocked(backend_url: str, clock: FakeClock) -> Iterator[SessionStore]:
    """A store on each backend whose time only moves when the test says so."""
    with SessionStore.open(backend_url, clock=clock) as opened:
        yield opened


def assert_utc(value: datetime) -> None:
    assert isinstance(value, datetime)
    assert value.tzinfo is not None
    assert value.utcoffset() == timedelta(0)


def walk(store: SessionStore, limit: int, **filters: Any) -> list[str]:
    """Every session id the list yields, page after page."""
    ids: list[str] = []
    cursor: str | None = None
    for _ in range(10_000):
        page = store.sessions.list(limit=limit, cursor=cursor, **filters)
        assert len(page) <= limit
        ids.extend(record.session_id for record in page)
        if page.next_cursor is None:
            return ids
        assert len(page) == limit, "only the last page may be short"
        cursor = page.next_cursor
    raise AssertionError("the list never ended")


def stored_rows(store: SessionStore, table: str, session_id: str) -> int:
    with store.engine.connect() as conn:
        count = conn.execute(
            text(f"SELECT COUNT(*) FROM {table} WHERE session_id = :sid"), {"sid": session_id}
        ).scalar_one()
        conn.rollback()
    return int(count)


def archive(store: SessionStore, session_id: str) -> None:
    """Put a session in the ``archived`` state (the repository API has no verb for it)."""
    with store.engine.begin() as conn:
        conn.execute(
            text("UPDATE sessions SET status = 'archived' WHERE session_id = :sid"),
            {"sid": session_id},
        )


# --- create and get ------------------------------------------------------------------


def test_create_and_get_round_trip_every_field(clocked: SessionStore, clock: FakeClock) -> None:
    created = clocked.sessions.create("gpt-4o", model_name="GPT-4o", title="Routing plans")
    assert created.model_id == "gpt-4o"
    assert created.model_name == "GPT-4o"
    assert created.title == "Routing plans"
    assert created.status == "active"
    assert created.created_at == created.updated_at == created.last_activity == clock.now
    for stamp in (created.created_at, created.updated_at, created.last_activity):
        assert_utc(stamp)
    assert (created.message_count, created.total_tokens, created.last_seq) == (0, 0, 0)
    assert created.total_duration_seconds == 0.0
    assert str(uuid.UUID(created.session_id)) == created.session_id

    clock.advance(seconds=5)
    fetched = clocked.sessions.get(created.session_id)
    assert fetched == created
    for stamp in (fetched.created_at, fetched.updated_at, fetched.last_activity):
        assert_utc(stamp)
    assert isinstance(fetched.total_duration_seconds, float)
    assert clocked.sessions.exists(created.session_id)
    assert clocked.sessions.count() == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        fetched.title = "changed"  # type: ignore[misc]


def test_create_with_defaults_leaves_optional_fields_empty(store: SessionStore) -> None:
    first = store.sessions.create("llama-3")
    second = store.sessions.create("llama-3")
    assert first.session_id != second.session_id
    assert (first.model_name, first.title) == (None, None)
    assert store.sessions.get(first.session_id) == first
    assert store.sessions.metadata(first.session_id) == {}
    assert not store.sessions.exists("no-such-session")


def test_custom_session_id_is_kept(store: SessionStore) -> None:
    for session_id in ("chat-2026-01-01", "sess/ü/🙂 with spaces", "x" * 255):
        created = store.sessions.create("m", session_id=session_id)
        assert created.session_id == session_id
        assert store.sessions.get(session_id).session_id == session_id
    assert store.sessions.count() == 3


def test_duplicate_id_is_refused_and_changes_nothing(store: SessionStore) -> None:
    original = store.sessions.create(
        "gpt-4o", model_name="GPT", title="first", session_id="fixed", metadata={"k": "v"}
    )
    store.messages.append("fixed", "assistant", "hello", tokens=3)
    before = store.sessions.get("fixed")
    with pytest.raises(SessionExists) as caught:
        store.sessions.create(
            "other-model", title="second", session_id="fixed", metadata={"k": "new", "x": "y"}
        )
    assert isinstance(caught.value, ConflictError)
    assert caught.value.session_id == "fixed"
    assert store.sessions.get("fixed") == before
    assert before.created_at == original.created_at
    assert store.sessions.metadata("fixed") == {"k": "v"}
    assert [m.content for m in store.messages.history("fixed")] == ["hello"]
    assert store.sessions.count() == 1


# --- session metadata ----------------------------------------------------------------------


def test_metadata_at_creation_and_set_get_delete_upsert(store: SessionStore) -> None:
    sid = store.sessions.create("m", metadata={"project": "router", "empty": None}).session_id
    other = store.sessions.create("m", metadata={"project": "other"}).session_id
    assert store.sessions.metadata(sid) == {"project": "router", "empty": None}
    assert store.sessions.get_metadata(sid, "project") == "router"
    assert store.sessions.get_metadata(sid, "empty", "fallback") is None
    assert store.sessions.get_metadata(sid, "missing") is None
    assert store.sessions.get_metadata(sid, "missing", "fallback") == "fallback"

    store.sessions.set_metadata(sid, "project", "router-v2")  # upsert: replaces
    store.sessions.set_metadata(sid, "lang", "en")  # upsert: inserts
    assert store.sessions.metadata(sid) == {"project": "router-v2", "empty": None, "lang": "en"}
    assert store.sessions.get_metadata(sid, "project") == "router-v2"

    assert store.sessions.delete_metadata(sid, "lang") is True
    assert store.sessions.delete_metadata(sid, "lang") is False
    assert store.sessions.get_metadata(sid, "lang", "gone") == "gone"
    assert store.sessions.metadata(sid) == {"project": "router-v2", "empty": None}
    assert store.sessions.metadata(other) == {"project": "other"}

    for call in (
        lambda: store.sessions.metadata("missing"),
        lambda: store.sessions.get_metadata("missing", "k"),
        lambda: store.sessions.set_metadata("missing", "k", "v"),
        lambda: store.sessions.delete_metadata("missing", "k"),
    ):
        with pytest.raises(SessionNotFound):
            call()
    assert stored_rows(store, "session_metadata", "missing") == 0


# --- rename and delete -------------------------------------------------------------------


def test_rename(clocked: SessionStore, clock: FakeClock) -> None:
    created = clocked.sessions.create("m", title="old")
    clock.advance(minutes=1)
    renamed = clocked.sessions.rename(created.session_id, "new title")
    assert renamed.title == "new title"
    assert renamed.updated_at == clock.now
    assert_utc(renamed.updated_at)
    assert renamed.created_at == created.created_at
    assert renamed.last_activity == created.last_activity
    assert clocked.sessions.get(created.session_id) == renamed

    cleared = clocked.sessions.rename(created.session_id, None)
    assert cleared.title is None
    assert clocked.sessions.get(created.session_id).title is None
    with pytest.raises(SessionNotFound):
        clocked.sessions.rename("missing", "x")
    assert clocked.sessions.count() == 1


def test_delete_cascades_to_messages_and_metadata_only(store: SessionStore) -> None:
    doomed = store.sessions.create("m", metadata={"a": "1", "b": "2"}).session_id
    kept = store.sessions.create("m", metadata={"a": "kept"}).session_id
    doomed_ids = [
        store.messages.append(doomed, "user", f"doomed {i}", tokens=1).message_id for i in range(3)
    ]
    kept_messages = [store.messages.append(kept, "user", f"kept {i}") for i in range(2)]
    kept_before = store.sessions.get(kept)

    assert store.sessions.delete(doomed) is None

    assert not store.sessions.exists(doomed)
    with pytest.raises(SessionNotFound):
        store.sessions.get(doomed)
    with pytest.raises(SessionNotFound):
        store.messages.history(doomed)
    with pytest.raises(SessionNotFound):
        store.sessions.metadata(doomed)
    for message_id in doomed_ids:
        with pytest.raises(MessageNotFound):
            store.messages.get(message_id)
    assert stored_rows(store, "messages", doomed) == 0
    assert stored_rows(store, "session_metadata", doomed) == 0
    with pytest.raises(SessionNotFound):
        store.sessions.delete(doomed)

    assert store.sessions.get(kept) == kept_before
    assert list(store.messages.history(kept)) == kept_messages
    assert store.sessions.metadata(kept) == {"a": "kept"}
    assert store.sessions.count() == 1


# --- listing --------------------------------------------------------------------------------


def test_list_is_newest_activity_first_and_append_moves_to_front(
    clocked: SessionStore, clock: FakeClock
) -> None:
    oldest = clocked.sessions.create("m", title="oldest").session_id
    clock.advance(seconds=1)
    middle = clocked.sessions.create("m", title="middle").session_id
    clock.advance(seconds=1)
    newest = clocked.sessions.create("m", title="newest").session_id
    assert [s.session_id for s in clocked.sessions.list()] == [newest, middle, oldest]

    clock.advance(seconds=1)
    clocked.messages.append(oldest, "user", "bump")
    page = clocked.sessions.list()
    assert [s.session_id for s in page] == [oldest, newest, middle]
    assert page.items[0].last_activity == clock.now
    assert page.next_cursor is None
    for record in page:
        assert_utc(record.last_activity)
        assert record == clocked.sessions.get(record.session_id)

    clock.advance(seconds=1)
    clocked.messages.append_many(middle, [{"role": "user", "content": "bump too"}])
    assert [s.session_id for s in clocked.sessions.list()] == [middle, oldest, newest]


def test_list_filters_by_model_and_status(clocked: SessionStore, clock: FakeClock) -> None:
    by_model: dict[str, list[str]] = {"a": [], "b": []}
    for i in range(6):
        clock.advance(seconds=1)
        model = "a" if i % 2 else "b"
        by_model[model].append(clocked.sessions.create(model).session_id)
    archive(clocked, by_model["a"][0])

    for model, ids in by_model.items():
        assert walk(clocked, 2, model_id=model) == list(reversed(ids))
        assert clocked.sessions.count(model_id=model) == len(ids)
    assert walk(clocked, 10, status="archived") == [by_model["a"][0]]
    active = [sid for sid in walk(clocked, 10) if sid != by_model["a"][0]]
    assert walk(clocked, 10, status="active") == active
    assert walk(clocked, 10, model_id="a", status="active") == list(reversed(by_model["a"][1:]))
    assert walk(clocked, 10, model_id="nobody") == []
    assert clocked.sessions.count(status="archived") == 1
    assert clocked.sessions.count(status="active") == 5
    with pytest.raises(InvalidInput):
        clocked.sessions.list(status="deleted")
    with pytest.raises(InvalidInput):
        clocked.sessions.count(status="deleted")


def test_keyset_pagination_walks_every_session_exactly_once(store: SessionStore) -> None:
    created = {store.sessions.create(f"model-{i % 3}").session_id for i in range(23)}
    everything = walk(store, 1000)
    assert len(everything) == 23
    assert set(everything) == created
    for limit in (1, 4, 7, 22, 23, 24):
        assert walk(store, limit) == everything
    activities = [store.sessions.get(sid).last_activity for sid in everything]
    assert activities == sorted(activities, reverse=True)


def test_pagination_with_identical_activity_times_uses_id_order(
    clocked: SessionStore,
) -> None:
    ids = {clocked.sessions.create("m").session_id for _ in range(13)}
    for limit in (1, 5, 13):
        walked = walk(clocked, limit)
        assert walked == sorted(ids, reverse=True)


def test_pagination_during_creates_and_appends_yields_each_preexisting_once(
    clocked: SessionStore, clock: FakeClock
) -> None:
    preexisting: list[str] = []
    for _ in range(20):
        clock.advance(seconds=1)
        preexisting.append(clocked.sessions.create("m").session_id)

    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = clocked.sessions.list(limit=3, cursor=cursor)
        seen.extend(s.session_id for s in page)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        # Between fetches: new sessions appear and get messages, and a session
        # already walked gets new activity (so it moves to the front).
        clock.advance(seconds=1)
        new = clocked.sessions.create("m").session_id
        clocked.messages.append(new, "user", "fresh")
        clock.advance(seconds=1)
        clocked.messages.append(seen[0], "assistant", "walked already")

    assert len(seen) == len(set(seen)), "a session was yielded twice"
    assert [sid for sid in seen if sid in set(preexisting)] == list(reversed(preexisting))


def test_a_session_that_gains_activity_mid_walk_moves_to_the_front(
    clocked: SessionStore, clock: FakeClock
) -> None:
    """Newest-activity-first paging is a keyset on (last_activity, session_id).

    A session not yet reached that gets a new message moves in front of the
    cursor: this walk does not see it again (no duplicates, nothing shifted),
    and a fresh walk starts with it.
    """
    preexisting: list[str] = []
    for _ in range(10):
        clock.advance(seconds=1)
        preexisting.append(clocked.sessions.create("m").session_id)
    first = clocked.sessions.list(limit=3)
    seen = [s.session_id for s in first]
    assert first.next_cursor is not None
    clock.advance(seconds=1)
    clocked.messages.append(preexisting[0], "user", "the oldest session speaks")
    cursor: str | None = first.next_cursor
    while cursor is not None:
        page = clocked.sessions.list(limit=3, cursor=cursor)
        seen.extend(s.session_id for s in page)
        cursor = page.next_cursor
    assert len(seen) == len(set(seen))
    assert sorted(seen) == sorted(preexisting[1:])
    assert clocked.sessions.list(limit=1).items[0].session_id == preexisting[0]


def test_foreign_and_malformed_list_cursors_are_refused(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    for i in range(3):
        store.messages.append(sid, "user", f"m{i}")
    history_cursor = store.messages.history(sid, limit=1).next_cursor
    assert history_cursor is not None
    for cursor in (history_cursor, "garbage!", "bm90IGpzb24", "", "W10", "WyJzZXNzaW9ucyJd"):
        with pytest.raises(InvalidCursor):
            store.sessions.list(cursor=cursor)


def test_count(store: SessionStore) -> None:
    assert store.sessions.count() == 0
    ids = [store.sessions.create("a" if i < 3 else "b").session_id for i in range(5)]
    assert store.sessions.count() == 5
    assert store.sessions.count(model_id="a") == 3
    assert store.sessions.count(model_id="zzz") == 0
    store.messages.append(ids[0], "user", "messages do not count as sessions")
    store.sessions.delete(ids[4])
    assert store.sessions.count() == 4
    assert store.sessions.count(model_id="b") == 1
