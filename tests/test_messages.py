"""Contract tests for ``store.messages``, run on a SQLite file and on PostgreSQL.

What is proved here: appends get sequence numbers 1, 2, 3 … with no gaps and
keep the session's count, totals, ``last_seq`` and activity time exact; the
title comes from the first user message (cut at 60 characters plus ``...``)
and only from it; ``client_msg_id`` makes an append idempotent per session;
``append_many`` stores a batch in order, all or nothing, and returns stored
messages for client ids seen before; history pages run oldest first and a
walk yields every message once; ``recent`` is the last *n*, oldest first;
get/edit/delete behave and a deleted sequence number is never handed out
again; unknown sessions and messages raise the typed NotFound errors;
metadata round-trips as JSON; archived sessions refuse writes; a session of
1,000 messages has exact totals; history with a cursor still checks that the
session exists; returned records are UTC whatever zone the clock reads in.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import text

from sessionstore import (
    DuplicateMessageId,
    InvalidCursor,
    InvalidInput,
    MessageNotFound,
    MessageRecord,
    NewMessage,
    NotFoundError,
    SessionArchived,
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
    assert value.tzinfo is not None
    assert value.utcoffset() == timedelta(0)


def walk_history(store: SessionStore, session_id: str, limit: int) -> list[MessageRecord]:
    messages: list[MessageRecord] = []
    cursor: str | None = None
    for _ in range(10_000):
        page = store.messages.history(session_id, limit=limit, cursor=cursor)
        assert len(page) <= limit
        messages.extend(page)
        if page.next_cursor is None:
            return messages
        assert len(page) == limit, "only the last page may be short"
        cursor = page.next_cursor
    raise AssertionError("the history never ended")


def message_rows(store: SessionStore) -> list[tuple[Any, ...]]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT message_id, session_id, sequence_number, role, content, tokens_used,"
                " duration_seconds, metadata, client_msg_id FROM messages ORDER BY message_id"
            )
        ).all()
        conn.rollback()
    return [tuple(row) for row in rows]


# --- append ------------------------------------------------------------------------------


def test_append_numbers_without_gaps_and_keeps_totals(
    clocked: SessionStore, clock: FakeClock
) -> None:
    sid = clocked.sessions.create("m").session_id
    other = clocked.sessions.create("m").session_id
    tokens = [3, None, 10, 0, 7]
    durations = [0.25, 1.5, None, 0.125, 2.0]
    appended: list[MessageRecord] = []
    for i, (tok, dur) in enumerate(zip(tokens, durations, strict=True)):
        clock.advance(seconds=1)
        role = ("user", "assistant", "system", "tool", "user")[i]
        record = clocked.messages.append(sid, role, f"message {i}", tokens=tok, duration=dur)
        appended.append(record)
        assert record.sequence_number == i + 1
        assert record.session_id == sid
        assert record.role == role
        assert (record.tokens, record.duration) == (tok, dur)
        assert record.timestamp == clock.now
        assert_utc(record.timestamp)
        assert clocked.messages.get(record.message_id) == record
        session = clocked.sessions.get(sid)
        assert session.message_count == i + 1
        assert session.last_seq == i + 1
        assert session.last_activity == clock.now
        assert session.updated_at == clock.now
    assert len({m.message_id for m in appended}) == 5

    session = clocked.sessions.get(sid)
    assert session.total_tokens == 20
    assert session.total_duration_seconds == 3.875
    assert clocked.messages.append(other, "user", "elsewhere").sequence_number == 1
    assert clocked.sessions.get(sid) == session


def test_title_comes_from_the_first_user_message_only(store: SessionStore) -> None:
    long = "Explain how a router decides which model answers a prompt, in detail please"
    sid = store.sessions.create("m").session_id
    store.messages.append(sid, "system", "You are terse.")
    assert store.sessions.get(sid).title is None
    store.messages.append(sid, "assistant", "Ready.")
    assert store.sessions.get(sid).title is None
    store.messages.append(sid, "user", long)
    assert store.sessions.get(sid).title == long[:60] + "..."
    store.messages.append(sid, "user", "A later question")
    assert store.sessions.get(sid).title == long[:60] + "..."

    cases = {
        "x" * 60: "x" * 60,
        "y" * 61: "y" * 60 + "...",
        "🙂" * 61: "🙂" * 60 + "...",
        "short": "short",
    }
    for content, title in cases.items():
        other = store.sessions.create("m").session_id
        store.messages.append(other, "user", content)
        assert store.sessions.get(other).title == title

    titled = store.sessions.create("m", title="Chosen by the caller").session_id
    store.messages.append(titled, "user", "not a title")
    assert store.sessions.get(titled).title == "Chosen by the caller"

    batch = store.sessions.create("m").session_id
    store.messages.append_many(
        batch,
        [
            NewMessage("system", "setup"),
            NewMessage("user", "first question"),
            NewMessage("user", "second question"),
        ],
    )
    assert store.sessions.get(batch).title == "first question"


def test_client_msg_id_makes_append_idempotent(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    other = store.sessions.create("m").session_id
    first = store.messages.append(
        sid, "user", "hello", tokens=2, metadata={"try": 1}, client_msg_id="c-1"
    )
    assert first.client_msg_id == "c-1"
    # A retry repeats the message (role, kind, content, payload): the stored one comes back.
    again = store.messages.append(sid, "user", "hello", tokens=5, client_msg_id="c-1")
    assert again == first
    # Anything else under the same id is refused, never silently dropped.
    with pytest.raises(DuplicateMessageId):
        store.messages.append(sid, "user", "hello (changed)", client_msg_id="c-1")
    assert store.messages.get(first.message_id) == first
    session = store.sessions.get(sid)
    assert (session.message_count, session.last_seq, session.total_tokens) == (1, 1, 2)

    elsewhere = store.messages.append(other, "user", "same id, other session", client_msg_id="c-1")
    assert elsewhere.message_id != first.message_id
    assert elsewhere.sequence_number == 1
    assert store.messages.append(sid, "assistant", "no id").sequence_number == 2
    assert store.messages.append(sid, "assistant", "no id").sequence_number == 3
    assert store.messages.append(sid, "user", "new id", client_msg_id="c-2").sequence_number == 4
    assert [m.content for m in store.messages.history(sid)] == [
        "hello",
        "no id",
        "no id",
        "new id",
    ]
    assert store.sessions.get(other).message_count == 1


# --- append_many ----------------------------------------------------------------------------


def test_append_many_stores_in_order(clocked: SessionStore, clock: FakeClock) -> None:
    sid = clocked.sessions.create("m").session_id
    clocked.messages.append(sid, "user", "before", tokens=1)
    clock.advance(seconds=3)
    stored = clocked.messages.append_many(
        sid,
        [
            NewMessage("assistant", "one", tokens=4, duration=0.5),
            {"role": "tool", "content": "two", "metadata": {"tool": "search"}},
            NewMessage("user", "three", client_msg_id="b-3"),
            {"role": "assistant", "content": "four", "tokens": 6, "duration": 1.25},
        ],
    )
    assert [m.sequence_number for m in stored] == [2, 3, 4, 5]
    assert [m.content for m in stored] == ["one", "two", "three", "four"]
    assert stored[1].metadata == {"tool": "search"}
    assert stored[2].client_msg_id == "b-3"
    for record in stored:
        assert record.timestamp == clock.now
        assert_utc(record.timestamp)
    assert list(clocked.messages.history(sid))[1:] == stored
    session = clocked.sessions.get(sid)
    assert (session.message_count, session.last_seq, session.total_tokens) == (5, 5, 11)
    assert session.total_duration_seconds == 1.75
    assert session.last_activity == clock.now
    assert clocked.messages.append_many(sid, []) == []
    assert clocked.sessions.get(sid) == session
    assert clocked.messages.append(sid, "user", "after").sequence_number == 6


def test_append_many_is_all_or_nothing(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    store.messages.append(sid, "user", "kept")
    session = store.sessions.get(sid)
    rows = message_rows(store)
    good = NewMessage("assistant", "fine")
    bad_items: list[Any] = [
        NewMessage("", "bad role"),
        NewMessage("user", b"bytes"),  # type: ignore[arg-type]
        NewMessage("user", "neg", tokens=-1),
        NewMessage("user", "nan", duration=float("nan")),
        {"role": "user", "content": "x", "colour": "red"},
        {"content": "no role"},
        ("user", "a tuple"),
        NewMessage("user", "bad metadata", metadata={"s": {1, 2}}),
    ]
    for bad in bad_items:
        for position in range(3):
            batch: list[Any] = [good, good]
            batch.insert(position, bad)
            with pytest.raises(InvalidInput):
                store.messages.append_many(sid, batch)
    duplicated = [
        NewMessage("user", "a", client_msg_id="d"),
        NewMessage("user", "b", client_msg_id="d"),
    ]
    with pytest.raises(InvalidInput):
        store.messages.append_many(sid, duplicated)
    with pytest.raises(SessionNotFound):
        store.messages.append_many("missing", [good])
    assert store.sessions.get(sid) == session
    assert message_rows(store) == rows


def test_append_many_with_already_stored_client_ids(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    earlier = store.messages.append(sid, "user", "original", tokens=1, client_msg_id="a")
    stored = store.messages.append_many(
        sid,
        [
            NewMessage("user", "original", tokens=100, client_msg_id="a"),
            NewMessage("assistant", "new with id", tokens=2, client_msg_id="b"),
            NewMessage("assistant", "new without id", tokens=3),
        ],
    )
    assert stored[0] == earlier
    assert [m.sequence_number for m in stored] == [1, 2, 3]
    assert [m.content for m in stored] == ["original", "new with id", "new without id"]
    retried = store.messages.append_many(
        sid, [{"role": "assistant", "content": "new with id", "client_msg_id": "b"}]
    )
    assert retried == [stored[1]]
    # Another message under a stored id is refused, and the whole batch with it.
    with pytest.raises(DuplicateMessageId):
        store.messages.append_many(
            sid,
            [NewMessage("user", "fresh"), NewMessage("assistant", "again", client_msg_id="b")],
        )
    session = store.sessions.get(sid)
    assert (session.message_count, session.last_seq, session.total_tokens) == (3, 3, 6)
    assert list(store.messages.history(sid)) == stored


# --- reading ---------------------------------------------------------------------------------


def test_history_pages_oldest_first_and_walks_every_message_once(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    other = store.sessions.create("m").session_id
    expected = [store.messages.append(sid, "user", f"m{i}") for i in range(20)]
    store.messages.append(other, "user", "not in this history")
    for limit in (1, 3, 5, 19, 20, 21, 1000):
        walked = walk_history(store, sid, limit)
        assert walked == expected
    first = store.messages.history(sid, limit=5)
    assert [m.sequence_number for m in first] == [1, 2, 3, 4, 5]
    assert first.next_cursor is not None
    last = store.messages.history(sid, limit=50)
    assert last.next_cursor is None
    empty = store.sessions.create("m").session_id
    page = store.messages.history(empty)
    assert (page.items, page.next_cursor) == ((), None)


def test_history_cursor_of_another_session_is_refused(store: SessionStore) -> None:
    one = store.sessions.create("m").session_id
    two = store.sessions.create("m").session_id
    for i in range(3):
        store.messages.append(one, "user", f"a{i}")
        store.messages.append(two, "user", f"b{i}")
    cursor = store.messages.history(one, limit=1).next_cursor
    assert cursor is not None
    with pytest.raises(InvalidCursor):
        store.messages.history(two, cursor=cursor)
    list_cursor = store.sessions.list(limit=1).next_cursor
    assert list_cursor is not None
    with pytest.raises(InvalidCursor):
        store.messages.history(one, cursor=list_cursor)
    assert [m.content for m in store.messages.history(one, cursor=cursor)] == ["a1", "a2"]


def test_recent_returns_the_last_n_oldest_first(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    assert store.messages.recent(sid, 5) == []
    messages = [store.messages.append(sid, "user", f"m{i}") for i in range(8)]
    for n in (1, 3, 7, 8, 9, 1000):
        assert store.messages.recent(sid, n) == messages[-n:]
    store.messages.delete(messages[-1].message_id)
    assert store.messages.recent(sid, 2) == messages[5:7]


def test_iterate_streams_every_message_and_checks_at_the_call(store: SessionStore) -> None:
    """Batches of any size give the whole history in order; a missing session fails at once."""
    sid = store.sessions.create("m1").session_id
    store.messages.append_many(sid, [NewMessage("user", f"m{i}") for i in range(7)])
    everything = [m.content for m in store.messages.iterate(sid, batch=3)]
    assert everything == [f"m{i}" for i in range(7)]
    assert [m.sequence_number for m in store.messages.iterate(sid, after=5)] == [6, 7]
    with pytest.raises(SessionNotFound):
        store.messages.iterate("no-such-session")


def test_get_edit_delete(clocked: SessionStore, clock: FakeClock) -> None:
    sid = clocked.sessions.create("m").session_id
    one = clocked.messages.append(sid, "user", "first", tokens=5, duration=0.5)
    two = clocked.messages.append(sid, "assistant", "second", tokens=7, duration=1.0)
    three = clocked.messages.append(sid, "user", "third", tokens=11, duration=2.0)

    clock.advance(minutes=1)
    edited = clocked.messages.edit(two.message_id, "second, edited")
    assert edited.content == "second, edited"
    unchanged = ("message_id", "session_id", "sequence_number", "role", "timestamp", "tokens")
    for field in unchanged:
        assert getattr(edited, field) == getattr(two, field)
    assert clocked.messages.get(two.message_id) == edited
    assert [m.content for m in clocked.messages.history(sid)] == [
        "first",
        "second, edited",
        "third",
    ]
    assert clocked.sessions.get(sid).message_count == 3

    clocked.messages.delete(three.message_id)
    with pytest.raises(MessageNotFound):
        clocked.messages.get(three.message_id)
    with pytest.raises(MessageNotFound):
        clocked.messages.edit(three.message_id, "ghost")
    with pytest.raises(MessageNotFound):
        clocked.messages.delete(three.message_id)
    session = clocked.sessions.get(sid)
    assert (session.message_count, session.total_tokens) == (2, 12)
    assert session.total_duration_seconds == 1.5
    assert session.last_seq == 3
    assert list(clocked.messages.history(sid)) == [one, edited]

    fourth = clocked.messages.append(sid, "user", "fourth")
    assert fourth.sequence_number == 4
    clocked.messages.delete(one.message_id)
    assert clocked.messages.append(sid, "user", "fifth").sequence_number == 5
    assert [m.sequence_number for m in clocked.messages.history(sid)] == [2, 4, 5]
    assert clocked.sessions.get(sid).message_count == 3


def test_unknown_session_and_message_raise_typed_not_found(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    kept = store.messages.append(sid, "user", "kept")
    session_calls = (
        lambda: store.messages.append("missing", "user", "x"),
        lambda: store.messages.append("missing", "user", "x", client_msg_id="c"),
        lambda: store.messages.append_many("missing", [NewMessage("user", "x")]),
        lambda: store.messages.history("missing"),
        lambda: store.messages.recent("missing", 5),
    )
    for call in session_calls:
        with pytest.raises(SessionNotFound) as caught:
            call()
        assert caught.value.session_id == "missing"
        assert isinstance(caught.value, NotFoundError)
        assert isinstance(caught.value, LookupError)
    unknown = kept.message_id + 1000
    for message_call in (
        lambda: store.messages.get(unknown),
        lambda: store.messages.edit(unknown, "x"),
        lambda: store.messages.delete(unknown),
    ):
        with pytest.raises(MessageNotFound) as missing:
            message_call()
        assert missing.value.message_id == unknown
    assert store.sessions.get(sid).message_count == 1
    assert list(store.messages.history(sid)) == [kept]
    assert not store.sessions.exists("missing")


def test_metadata_json_round_trip_and_tool_role(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    metadata = {
        "tool_call": {"name": "search", "arguments": {"q": "routers", "limit": 5}},
        "scores": [0.5, 1, -2.25, None, True, False],
        "unicode": "naïve café 🙂 日本語",
        "quote": "'\"\\",
        "empty": {},
    }
    record = store.messages.append(sid, "tool", '{"result": 42}', metadata=metadata)
    assert record.role == "tool"
    assert record.metadata == metadata
    assert isinstance(record.metadata_json, str)
    assert store.messages.get(record.message_id).metadata == metadata
    assert store.messages.history(sid).items[0].metadata == metadata
    bare = store.messages.append(sid, "assistant", "no metadata")
    assert (bare.metadata, bare.metadata_json) == (None, None)
    assert store.messages.get(bare.message_id).metadata is None
    empty = store.messages.append(sid, "assistant", "empty metadata", metadata={})
    assert store.messages.get(empty.message_id).metadata == {}


def test_archived_session_refuses_writes_but_reads(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    message = store.messages.append(sid, "user", "before archiving", client_msg_id="c")
    with store.engine.begin() as conn:
        conn.execute(
            text("UPDATE sessions SET status = 'archived' WHERE session_id = :sid"), {"sid": sid}
        )
    before = store.sessions.get(sid)
    for call in (
        lambda: store.messages.append(sid, "user", "x"),
        lambda: store.messages.append(sid, "user", "x", client_msg_id="new"),
        lambda: store.messages.append_many(sid, [NewMessage("user", "x")]),
        lambda: store.messages.edit(message.message_id, "x"),
        lambda: store.messages.delete(message.message_id),
    ):
        with pytest.raises(SessionArchived):
            call()
    # A retry of an append that was stored before the archive still gets its message.
    assert store.messages.append(sid, "user", "before archiving", client_msg_id="c") == message
    assert store.sessions.get(sid) == before
    assert list(store.messages.history(sid)) == [message]


def test_thousand_message_session_has_exact_totals(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    expected_tokens = 0
    expected_duration = 0.0
    for i in range(1000):
        tokens = (i * 37) % 1000
        duration = (i % 13) * 0.001 + 0.0001
        expected_tokens += tokens
        expected_duration += duration
        store.messages.append(
            sid, "user" if i % 2 else "assistant", f"m{i}", tokens=tokens, duration=duration
        )
    session = store.sessions.get(sid)
    assert session.message_count == 1000
    assert session.last_seq == 1000
    assert session.total_tokens == expected_tokens
    assert session.total_duration_seconds == expected_duration
    walked = walk_history(store, sid, 1000)
    assert [m.sequence_number for m in walked] == list(range(1, 1001))
    assert sum(m.tokens or 0 for m in walked) == expected_tokens
    assert store.messages.recent(sid, 1)[0].content == "m999"


def test_history_of_a_deleted_session_with_a_cursor_is_not_found(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    for i in range(3):
        store.messages.append(sid, "user", f"m{i}")
    cursor = store.messages.history(sid, limit=1).next_cursor
    assert cursor is not None
    store.sessions.delete(sid)
    with pytest.raises(SessionNotFound):
        store.messages.history(sid, cursor=cursor)


def test_returned_records_are_utc_with_a_clock_in_another_zone(backend_url: str) -> None:
    clock = FakeClock(datetime(2026, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))))
    with SessionStore.open(backend_url, clock=clock) as store:
        created = store.sessions.create("m")
        assert created.created_at == store.sessions.get(created.session_id).created_at
        appended = store.messages.append(created.session_id, "user", "x")
        batch = store.messages.append_many(created.session_id, [NewMessage("user", "y")])
        assert store.messages.get(appended.message_id).timestamp == appended.timestamp
        for stamp in (
            created.created_at,
            created.updated_at,
            created.last_activity,
            appended.timestamp,
            batch[0].timestamp,
        ):
            assert_utc(stamp)


# --- items: what the framework adapters rebuild their items from --------------------------


def test_items_are_what_the_records_hold_for_every_kind_of_message(store: SessionStore) -> None:
    """``items`` gives each message's (kind, role, content, payload) exactly as its record does."""
    sid = store.sessions.create("m").session_id
    store.messages.append_many(
        sid,
        [
            NewMessage("user", "plain"),
            NewMessage("assistant", "with\x00nul"),
            NewMessage(
                "assistant", "call", kind="function_call",
                payload={"type": "function_call", "n": [1, 2.5, -0.0, None, True, 10**30]},
            ),
            NewMessage("tool", "nul item\x00", kind="item", payload=["a\x00b", {"k": "é"}]),
            NewMessage("user", "scalar", payload="just text"),
            NewMessage("user", "zero", payload=0),
            NewMessage("user", "false", payload=False),
        ],
    )  # fmt: skip
    # Rows no append writes: legacy rows (no kind, no payload) and payloads that
    # are not one JSON value, or only one with spaces around it.
    odd = [None, ' {"spaced": 1} ', '{"a": 1} trailing', "not json", "[1, 2", '"a', "[" * 3000]
    with store.engine.begin() as conn:
        for seq, payload in enumerate(odd, start=8):
            conn.execute(
                text(
                    "INSERT INTO messages (session_id, sequence_number, role, content, payload)"
                    " VALUES (:sid, :seq, 'user', :content, :payload)"
                ),
                {"sid": sid, "seq": seq, "content": f"row {seq}", "payload": payload},
            )
        if conn.dialect.name == "sqlite":  # a BLOB, which only SQLite's column can hold
            conn.execute(
                text(
                    "INSERT INTO messages (session_id, sequence_number, role, content, payload)"
                    " VALUES (:sid, 15, 'user', 'blob', CAST('{\"b\": 1}' AS BLOB))"
                ),
                {"sid": sid},
            )
    expected = [(m.kind, m.role, m.content, m.payload) for m in store.messages.recent(sid, 100)]
    assert len(expected) in (14, 15)
    # repr tells 0 from False and 1 from 1.0, which == does not.
    assert repr(store.messages.items(sid)) == repr(expected)
    for n in (1, 2, 7, 14, 15, 100):
        assert repr(store.messages.items(sid, last=n)) == repr(expected[-n:])
    assert store.messages.items(sid, last=0) == []
    empty = store.sessions.create("m").session_id
    assert store.messages.items(empty) == []
    assert store.messages.items(empty, last=5) == []


def test_items_of_a_missing_session_and_bad_arguments(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    for call in (
        lambda: store.messages.items("missing"),
        lambda: store.messages.items("missing", last=0),
        lambda: store.messages.items("missing", last=3),
    ):
        with pytest.raises(SessionNotFound):
            call()
    for bad in (-1, True, 1.5, "3", 2**63):
        with pytest.raises(InvalidInput, match="last must be an integer"):
            store.messages.items(sid, last=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        store.messages.items("")


def test_a_batch_goes_in_few_statements_on_sqlite(sqlite_url: str) -> None:
    """A batch is a few multi-row INSERTs, not one statement a row (each made FTS5 write)."""
    import sqlalchemy as sa

    statements: list[str] = []

    def traced(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(statements.append)

    sa.event.listen(sa.pool.Pool, "connect", traced)
    try:
        with SessionStore.open(sqlite_url) as store:
            sid = store.sessions.create("m").session_id
            statements.clear()
            batch = [NewMessage("user", f"word{i} text", payload={"i": i}) for i in range(1203)]
            records = store.messages.append_many(sid, batch)
            # SQLite traces a statement again for each trigger run it makes: count texts.
            inserts = {s for s in statements if s.startswith("INSERT INTO messages ")}
            assert len(inserts) == 3  # 500 + 500 + 203 rows
            assert [r.sequence_number for r in records] == list(range(1, 1204))
            assert store.messages.recent(sid, 1203) == records
            assert [m.payload for m in records] == [{"i": i} for i in range(1203)]
            assert store.sessions.get(sid).message_count == 1203
            hits = store.search.messages("word1202", session_id=sid).items
            assert [hit.message.message_id for hit in hits] == [records[-1].message_id]
    finally:
        sa.event.remove(sa.pool.Pool, "connect", traced)
