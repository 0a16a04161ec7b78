"""Messages as agent frameworks store them: kinds, payloads, NUL, roles, ids, times, history ops.

Every test runs on a SQLite file and on a real PostgreSQL server (``backend_url``).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from sessionstore import (
    DuplicateMessageId,
    InvalidInput,
    MessageNotFound,
    MessageRecord,
    NewMessage,
    SessionArchived,
    SessionNotFound,
    SessionStore,
)

from .conftest import FakeClock


@pytest.fixture
def store(backend_url: str, clock: FakeClock) -> Iterator[SessionStore]:
    with SessionStore.open(backend_url, clock=clock) as opened:
        yield opened


def stored_row(store: SessionStore, message_id: int) -> tuple[Any, ...]:
    """The row as the database holds it: content, exact_content, kind, payload, role."""
    with store.engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT content, exact_content, kind, payload, role FROM messages"
                " WHERE message_id = :m"
            ),
            {"m": message_id},
        ).one()
        conn.rollback()
    return tuple(row)


# --- kind and payload ----------------------------------------------------------------------


def test_an_item_comes_back_equal_with_its_kind(store: SessionStore) -> None:
    sid = store.sessions.create().session_id
    item = {
        "type": "function_call",
        "call_id": "call_1",
        "name": "get_weather",
        "arguments": '{"city": "Zürich"}',
        "nested": {"z": 1, "a": [1.5, -0.0, 10**30, None, True, "ünïcode 🎉"]},
    }
    record = store.messages.append(
        sid, "assistant", "get_weather(Zürich)", kind="function_call", payload=item
    )
    assert (record.kind, record.payload) == ("function_call", item)
    again = store.messages.get(record.message_id)
    assert again == record
    assert again.payload == item
    assert list(again.payload["nested"]) == ["z", "a"]  # key order kept
    # Compact JSON text beside the readable content.
    content, exact, kind, payload, _ = stored_row(store, record.message_id)
    assert (content, exact, kind) == ("get_weather(Zürich)", None, "function_call")
    assert payload == json.dumps(item, ensure_ascii=False, separators=(",", ":"))


def test_plain_messages_are_kind_message_without_payload(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    record = store.messages.append(sid, "user", "hello")
    assert (record.kind, record.payload, record.payload_json) == ("message", None, None)


@pytest.mark.parametrize(
    "payload",
    [
        {"t": (1, 2)},
        {1: "integer key"},
        {"x": float("nan")},
        {"x": float("inf")},
        {"s": {1, 2}},
        {"b": b"bytes"},
        {"d": datetime(2026, 1, 1, tzinfo=UTC)},
        object(),
        {"lone": "\ud800"},
    ],
    ids=["tuple", "int-key", "nan", "inf", "set", "bytes", "datetime", "object", "surrogate"],
)
def test_payloads_json_would_change_are_refused(store: SessionStore, payload: Any) -> None:
    sid = store.sessions.create("m").session_id
    with pytest.raises(InvalidInput):
        store.messages.append(sid, "user", "x", payload=payload)
    with pytest.raises(InvalidInput):
        store.messages.append_many(
            sid, [NewMessage("user", "ok"), NewMessage("user", "x", payload=payload)]
        )
    assert store.sessions.get(sid).message_count == 0


def test_the_payload_size_cap(backend_url: str) -> None:
    with SessionStore.open(backend_url, max_payload_bytes=100) as store:
        sid = store.sessions.create("m").session_id
        store.messages.append(sid, "user", "x", payload={"k": "v" * 80})
        with pytest.raises(InvalidInput, match="limit of 100"):
            store.messages.append(sid, "user", "x", payload={"k": "v" * 100})
        deep: Any = []
        for _ in range(100_000):
            deep = [deep]
        with pytest.raises(InvalidInput):
            store.messages.append(sid, "user", "x", payload=deep)
        assert store.sessions.get(sid).message_count == 1


@pytest.mark.parametrize(
    "kind", ["", "Message", "1call", "a" * 65, "call id", "ü", None, 3, "call\x00"]
)
def test_kinds_outside_the_rule_are_refused(store: SessionStore, kind: Any) -> None:
    sid = store.sessions.create("m").session_id
    with pytest.raises(InvalidInput):
        store.messages.append(sid, "user", "x", kind=kind)


def test_kinds_within_the_rule(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    for kind in ("event", "mcp_call", "web_search_call", "a.b-c_9", "x" * 64):
        assert store.messages.append(sid, "user", "x", kind=kind).kind == kind


# --- NUL -----------------------------------------------------------------------------------


def test_nul_in_content_and_payload_comes_back_exactly(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    exact = "before\x00after\x00 ünïcode \x00\x00"
    payload = {"text\x00key": "value\x00with NUL", "list": ["\x00"]}
    record = store.messages.append(sid, "user", exact, kind="message", payload=payload)
    assert record.content == exact and record.payload == payload
    read = store.messages.get(record.message_id)
    assert (read.content, read.payload) == (exact, payload)
    content, stored_exact, *_ = stored_row(store, record.message_id)
    # What search, titles and the legacy views see: NUL shown as U+FFFD.
    assert content == exact.replace("\x00", "\ufffd")
    assert stored_exact is not None and json.loads(stored_exact) == exact
    assert store.sessions.get(sid).title == exact.replace("\x00", "\ufffd")
    hits = store.search.messages("ünïcode", session_id=sid)
    assert [hit.message.content for hit in hits.items] == [exact]
    # Every read path gives the exact text back.
    assert store.messages.recent(sid, 1)[0].content == exact
    assert next(store.messages.iterate(sid)).content == exact
    assert store.messages.history(sid).items[0].content == exact
    edited = store.messages.edit(record.message_id, "edited\x00")
    assert store.messages.get(record.message_id).content == edited.content == "edited\x00"


def test_text_without_nul_has_no_exact_copy(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    record = store.messages.append(sid, "user", "plain \ufffd text")
    assert stored_row(store, record.message_id)[:2] == ("plain \ufffd text", None)
    assert store.messages.get(record.message_id).content == "plain \ufffd text"


# --- roles ---------------------------------------------------------------------------------


def test_roles_are_open_and_validated(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    for role in ("developer", "Moderator bot", "function", "ツール", "r" * 64):
        assert store.messages.append(sid, role, "x").role == role
    for bad in ("", " ", " user", "user\n", "r" * 65, "a\x07b", None, 7):
        with pytest.raises(InvalidInput):
            store.messages.append(sid, bad, "x")


# --- the caller's message id -----------------------------------------------------------------


def test_message_ids_get_delete_and_retry(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    first = store.messages.append(
        sid, "assistant", "call", kind="function_call", payload={"a": 1, "b": 2},
        client_msg_id="fc_1",
    )  # fmt: skip
    assert store.messages.get_by_client_id(sid, "fc_1") == first
    # A retry (same role, kind, content, payload: key order aside) returns it.
    retry = store.messages.append(
        sid, "assistant", "call", kind="function_call", payload={"b": 2, "a": 1},
        client_msg_id="fc_1",
    )  # fmt: skip
    assert retry == first
    for changed in (
        {"role": "user"},
        {"content": "other"},
        {"kind": "message"},
        {"payload": {"a": 1, "b": 3}},
        {"payload": None},
    ):
        values: dict[str, Any] = {
            "role": "assistant", "content": "call", "kind": "function_call",
            "payload": {"a": 1, "b": 2}, **changed,
        }  # fmt: skip
        with pytest.raises(DuplicateMessageId) as raised:
            store.messages.append(
                sid, values["role"], values["content"], kind=values["kind"],
                payload=values["payload"], client_msg_id="fc_1",
            )  # fmt: skip
        assert raised.value.sequence_number == 1
    assert store.sessions.get(sid).message_count == 1
    # The same id in another session is another message.
    other = store.sessions.create("m").session_id
    assert store.messages.append(other, "user", "x", client_msg_id="fc_1").sequence_number == 1
    with pytest.raises(MessageNotFound):
        store.messages.get_by_client_id(sid, "missing")
    with pytest.raises(SessionNotFound):
        store.messages.get_by_client_id("no-such-session", "fc_1")
    store.messages.delete_by_client_id(sid, "fc_1")
    with pytest.raises(MessageNotFound):
        store.messages.get_by_client_id(sid, "fc_1")
    with pytest.raises(MessageNotFound):
        store.messages.delete_by_client_id(sid, "fc_1")
    # The id is free again; sequence numbers go on.
    assert store.messages.append(sid, "user", "new", client_msg_id="fc_1").sequence_number == 2


def test_append_many_refuses_a_changed_message_under_a_stored_id(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    stored = store.messages.append(sid, "user", "one", client_msg_id="a")
    batch = [
        NewMessage("user", "one", client_msg_id="a"),
        NewMessage("assistant", "two", kind="reasoning", payload={"summary": []}),
    ]
    first, second = store.messages.append_many(sid, batch)
    assert first == stored and (second.sequence_number, second.kind) == (2, "reasoning")
    with pytest.raises(DuplicateMessageId):
        store.messages.append_many(sid, [NewMessage("user", "three"), {"role": "user",
                                   "content": "changed", "client_msg_id": "a"}])  # fmt: skip
    assert store.sessions.get(sid).message_count == 2


# --- the caller's timestamp ------------------------------------------------------------------


def test_caller_timestamps_are_kept_to_the_microsecond(
    store: SessionStore, clock: FakeClock
) -> None:
    sid = store.sessions.create("m").session_id
    clock.advance(hours=5)
    past = datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=timezone(timedelta(hours=2)))
    record = store.messages.append(sid, "user", "then", timestamp=past)
    assert record.timestamp == past and record.timestamp.microsecond == 891011
    assert store.messages.get(record.message_id).timestamp == past
    # The session was active now, whatever time the message carries.
    assert store.sessions.get(sid).last_activity == clock.now
    many = store.messages.append_many(
        sid,
        [
            NewMessage("user", "a", timestamp=past + timedelta(microseconds=1)),
            NewMessage("user", "b"),
        ],
    )
    assert [m.timestamp for m in many] == [past + timedelta(microseconds=1), clock.now]
    assert [m.timestamp for m in store.messages.history(sid).items] == [
        past,
        past + timedelta(microseconds=1),
        clock.now,
    ]
    for bad in (datetime(2025, 1, 1), "2025-01-01T00:00:00+00:00", 1700000000.0):
        with pytest.raises(InvalidInput):
            store.messages.append(sid, "user", "x", timestamp=bad)


def test_since_reads_by_time(store: SessionStore, clock: FakeClock) -> None:
    sid = store.sessions.create("m").session_id
    base = datetime(2026, 1, 1, tzinfo=UTC)
    # Times out of sequence order: since() orders by time, ties by sequence number.
    for offset, name in ((3, "c"), (1, "a"), (2, "b1"), (2, "b2"), (5, "e")):
        store.messages.append(sid, "user", name, timestamp=base + timedelta(seconds=offset))
    found = store.messages.since(sid, base + timedelta(seconds=1))
    assert [m.content for m in found] == ["b1", "b2", "c", "e"]
    assert [m.content for m in store.messages.since(sid, base, limit=2)] == ["a", "b1"]
    assert store.messages.since(sid, base + timedelta(seconds=5)) == []
    assert store.messages.since(sid, base, limit=0) == []
    with pytest.raises(SessionNotFound):
        store.messages.since("missing", base)
    with pytest.raises(InvalidInput):
        store.messages.since(sid, datetime(2026, 1, 1))
    with pytest.raises(InvalidInput):
        store.messages.since(sid, base, limit=-1)


@pytest.mark.parametrize(
    ("name", "params", "index"),
    [
        ("SINCE.plain", ("s", "2026", 5, 0), "ix_messages_session_id_timestamp"),
        ("SINCE.full", ("s", "2026", 5, 0), "ix_messages_session_id_timestamp"),
        ("POP", ("s", 1, 0), "sqlite_autoindex_messages"),
        ("BATCH_IDS", ("s", 1, 100), "sqlite_autoindex_messages"),
        ("BY_CLIENT_ID", ("s", "c"), "uq_messages_session_id_client_msg_id"),
    ],
)
def test_the_new_statements_use_an_index(
    sqlite_url: str, name: str, params: tuple[Any, ...], index: str
) -> None:
    """No scan of the messages and no sort: each reads one index range."""
    from sessionstore import message_sql

    with SessionStore.open(sqlite_url) as store:
        sid = store.sessions.create("m").session_id
        store.messages.append(sid, "user", "x")
        statement: Any = message_sql
        for part in name.split("."):
            statement = getattr(statement, part)
        sql = statement.render(store.engine.dialect)[0]
    with contextlib.closing(sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))) as conn:
        conn.execute("ANALYZE")
        plan = " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
    assert index in plan, plan
    assert "TEMP B-TREE" not in plan and "SCAN messages" not in plan, plan


# --- clear, pop, iterate, recent ---------------------------------------------------------


def test_clear_keeps_the_session_and_never_reuses_numbers(store: SessionStore) -> None:
    sid = store.sessions.create("m", title="Kept", metadata={"k": "v"}).session_id
    store.messages.append_many(sid, [NewMessage("user", f"m{i}", tokens=2) for i in range(5)])
    assert store.messages.clear(sid) == 5
    session = store.sessions.get(sid)
    assert (session.title, session.message_count, session.total_tokens, session.last_seq) == (
        "Kept", 0, 0, 5,
    )  # fmt: skip
    assert store.sessions.metadata(sid) == {"k": "v"}
    assert store.messages.clear(sid) == 0
    assert store.messages.append(sid, "user", "after").sequence_number == 6
    assert store.search.messages("m3", session_id=sid).items == ()
    with pytest.raises(SessionNotFound):
        store.messages.clear("missing")
    store.lifecycle.archive(sid)
    with pytest.raises(SessionArchived):
        store.messages.clear(sid)
    assert store.sessions.get(sid).message_count == 1


def test_pop_removes_and_returns_the_last(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    assert store.messages.pop(sid) is None
    records = store.messages.append_many(
        sid, [NewMessage("user", "q"), NewMessage("assistant", "a\x00", payload={"p": 1})]
    )
    popped = store.messages.pop(sid)
    assert popped == records[1] and popped is not None and popped.content == "a\x00"
    assert store.messages.pop(sid) == records[0]
    assert store.messages.pop(sid) is None
    assert store.messages.append(sid, "user", "again").sequence_number == 3
    assert store.sessions.get(sid).message_count == 1
    with pytest.raises(SessionNotFound):
        store.messages.pop("missing")
    store.lifecycle.archive(sid)
    with pytest.raises(SessionArchived):
        store.messages.pop(sid)


def test_iterate_streams_past_any_page_size(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    expected = store.messages.append_many(sid, [NewMessage("user", f"m{i}") for i in range(2503)])
    assert list(store.messages.iterate(sid)) == expected
    assert list(store.messages.iterate(sid, batch=1000)) == expected
    assert list(store.messages.iterate(sid, batch=7, after=2490)) == expected[2490:]
    assert list(store.messages.iterate(sid, after=2503)) == []
    assert store.messages.recent(sid, 2000) == expected[-2000:]
    assert store.messages.recent(sid, 10**6) == expected
    assert store.messages.recent(sid, 0) == []
    with pytest.raises(SessionNotFound):
        store.messages.iterate("missing")  # at the call, before any item
    for bad in (0, -1, 10_001, True, 1.5, None):
        with pytest.raises(InvalidInput):
            store.messages.iterate(sid, batch=bad)
    with pytest.raises(InvalidInput):
        store.messages.iterate(sid, after="3")  # type: ignore[arg-type]


def test_iterate_reads_each_batch_in_its_own_transaction(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    store.messages.append_many(sid, [NewMessage("user", f"m{i}") for i in range(10)])
    stream = store.messages.iterate(sid, batch=4)
    seen = [next(stream).content for _ in range(4)]
    # Written between batches: a keyset stream sees it, and never repeats a row.
    store.messages.append(sid, "user", "late")
    seen += [m.content for m in stream]
    assert seen == [f"m{i}" for i in range(10)] + ["late"]


# --- sessions without a model id ---------------------------------------------------------


def test_sessions_without_a_model_id(store: SessionStore) -> None:
    session = store.sessions.create()
    assert session.model_id is None
    assert store.sessions.get(session.session_id).model_id is None
    store.messages.append(session.session_id, "user", "hi")
    exported = store.export(session.session_id) or ""
    copy = store.import_session(exported, session_id="copy-of-modelless")
    assert copy.model_id is None
    snapshot = store.lifecycle.archive(session.session_id)
    store.lifecycle.purge(older_than=timedelta(0))
    assert store.lifecycle.restore(snapshot.snapshot_id).model_id is None


# --- export, import, snapshot and restore carry the item whole --------------------------------


def _items(store: SessionStore, sid: str) -> list[MessageRecord]:
    then = datetime(2025, 1, 2, 3, 4, 5, 6, UTC)
    return store.messages.append_many(
        sid,
        [
            NewMessage("developer", "Be brief.\x00", timestamp=then),
            NewMessage("assistant", "f(x)", kind="function_call", payload={"type": "function_call",
                       "arguments": "{\"x\":\"\\u0000\"}", "n": [1.25, 2**70]}, client_msg_id="fc"),
            NewMessage("tool", "42", kind="function_call_output", payload={"output": "42"}),
        ],
    )  # fmt: skip


def test_export_and_import_carry_items(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    originals = _items(store, sid)
    document = json.loads(store.export(sid) or "")
    first = document["messages"][0]
    assert first["content"] == "Be brief.\ufffd" and first["exact_content"] == "Be brief.\x00"
    assert document["messages"][1]["kind"] == "function_call"
    assert document["messages"][1]["payload"] == originals[1].payload
    assert "exact_content" not in document["messages"][1]
    markdown = store.export(sid, format="markdown") or ""
    assert "\x00" not in markdown and "Be brief.\ufffd" in markdown
    copy = store.import_session(document, session_id="imported")
    imported = list(store.messages.iterate(copy.session_id))
    fields = ("sequence_number", "role", "content", "timestamp", "kind", "payload_json",
              "client_msg_id")  # fmt: skip
    assert [[getattr(m, f) for f in fields] for m in imported] == [
        [getattr(m, f) for f in fields] for m in originals
    ]
    # Exports written before items existed import as plain messages.
    for message in document["messages"]:
        for key in ("kind", "payload", "exact_content"):
            message.pop(key, None)
    old = store.import_session(document, session_id="from-an-old-export")
    assert {(m.kind, m.payload) for m in store.messages.iterate(old.session_id)} == {
        ("message", None)
    }


def test_a_snapshot_restores_items_exactly(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    originals = _items(store, sid)
    before = [stored_row(store, m.message_id) for m in originals]
    snapshot = store.lifecycle.archive(sid)
    store.lifecycle.purge(older_than=timedelta(0))
    store.lifecycle.restore(snapshot.snapshot_id)
    assert list(store.messages.iterate(sid)) == originals
    assert [stored_row(store, m.message_id) for m in originals] == before


def test_an_import_refuses_bad_items(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    _items(store, sid)
    document = json.loads(store.export(sid) or "")
    for key, value in (("kind", "Not A Kind"), ("role", ""), ("payload", {"x": [1, 2]})):
        broken = json.loads(json.dumps(document))
        broken["messages"][0][key] = value
        if key == "payload":
            continue  # a JSON document only holds JSON: any payload in it is valid
        with pytest.raises(InvalidInput):
            store.import_session(broken, session_id="refused")
    assert not store.sessions.exists("refused")


def test_batches_inside_a_transaction_commit_or_roll_back_with_it(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    with store.transaction() as tx:
        tx.messages.append_many(sid, [NewMessage("user", "a", client_msg_id="a")])
        tx.messages.append_many(sid, [NewMessage("user", "b", payload=[1])])
        assert tx.messages.pop(sid) is not None
    assert [m.content for m in store.messages.iterate(sid)] == ["a"]
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.messages.append_many(sid, [NewMessage("user", "c", client_msg_id="c")])
        tx.messages.append_many(sid, [NewMessage("user", "d")])
        assert tx.messages.clear(sid) == 3
        raise RuntimeError("roll back")
    assert [m.content for m in store.messages.iterate(sid)] == ["a"]
    assert store.messages.append(sid, "user", "e").sequence_number == 3


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=JSON, content=st.text())
def test_any_json_payload_and_any_text_round_trip(
    sqlite_store: SessionStore, payload: Any, content: str
) -> None:
    sid = sqlite_store.sessions.create().session_id
    record = sqlite_store.messages.append(sid, "tool", content, kind="event", payload=payload)
    read = sqlite_store.messages.get(record.message_id)
    assert read.content == content
    # None means "no payload"; any other JSON value comes back equal, types and order kept.
    expected = payload
    assert read.payload == expected and json.dumps(read.payload) == json.dumps(expected)
