"""Bad input, run on a SQLite file and on PostgreSQL: typed errors and nothing changed.

Every rejected call must raise a :class:`SessionStoreError` subclass (never a raw
``sqlite3``, SQLAlchemy, ``UnicodeError``, ``TypeError`` or ``OverflowError``),
and the stored data — every session with all its fields, every message, every
metadata row — must be identical before and after. Covered: roles, content
types, lone surrogates, the content size limit, NUL characters, page sizes,
malformed and foreign cursors, unknown/empty/non-str ids, message ids out of
range, metadata that is not JSON, session metadata that is not text, bad
tokens and durations, SQL-injection text (which must round-trip exactly and
touch nothing else), and a closed store.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from sessionstore import (
    InvalidCursor,
    InvalidInput,
    MessageNotFound,
    NewMessage,
    SessionNotFound,
    SessionStore,
    SessionStoreError,
    StoreClosedError,
)
from sessionstore.models import Message, Session, SessionMetadata
from sessionstore.validation import cursor_tag

Snapshot = dict[str, list[tuple[Any, ...]]]

# The content limit used where the limit itself is under test.
SMALL_LIMIT = 64


def snapshot(store: SessionStore) -> Snapshot:
    """Every stored row of every table the repositories write, in a fixed order."""
    tables = {
        "sessions": (Session.__table__, "session_id"),
        "messages": (Message.__table__, "message_id"),
        "session_metadata": (SessionMetadata.__table__, "metadata_id"),
    }
    result: Snapshot = {}
    with store.engine.connect() as conn:
        for name, (table, key) in tables.items():
            rows = conn.execute(select(*table.c).order_by(table.c[key])).all()
            result[name] = [tuple(row) for row in rows]
        conn.rollback()
    return result


def expect(
    store: SessionStore, before: Snapshot, error: type[SessionStoreError], call: Callable[[], Any]
) -> SessionStoreError:
    """``call`` raises ``error`` (a SessionStoreError) and the data is untouched."""
    try:
        call()
    except SessionStoreError as exc:
        assert isinstance(exc, error), f"{type(exc).__name__} instead of {error.__name__}: {exc}"
        raised = exc
    except BaseException as exc:
        kind = f"{type(exc).__module__}.{type(exc).__name__}"
        raise AssertionError(f"{kind} escaped instead of {error.__name__}: {exc}") from exc
    else:
        raise AssertionError(f"no error raised; expected {error.__name__}")
    assert snapshot(store) == before
    return raised


def encoded(payload: Any) -> str:
    """A cursor as the library encodes one, around any payload."""
    raw = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


class Populated:
    """A store with two sessions, their messages and metadata, and its snapshot."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store
        self.sid = store.sessions.create(
            "gpt-4o", model_name="GPT", metadata={"owner": "ann"}
        ).session_id
        self.other = store.sessions.create("llama", title="second").session_id
        self.messages = [
            store.messages.append(self.sid, "user", f"question {i}", tokens=i, duration=0.5)
            for i in range(4)
        ]
        store.messages.append(self.other, "assistant", "other", client_msg_id="c")
        self.mid = self.messages[0].message_id
        self.history_cursor = store.messages.history(self.sid, limit=1).next_cursor
        self.list_cursor = store.sessions.list(limit=1).next_cursor
        assert self.history_cursor is not None and self.list_cursor is not None
        self.before = snapshot(store)

    def expect(self, error: type[SessionStoreError], call: Callable[[], Any]) -> None:
        expect(self.store, self.before, error, call)


@pytest.fixture
def data(store: SessionStore) -> Populated:
    return Populated(store)


# --- roles and content ---------------------------------------------------------------------


def test_roles_that_are_not_roles(data: Populated) -> None:
    """Roles are an open set (any 1 to 64 characters); blank, padded or control text is not."""
    m = data.store.messages
    bad_roles = ("", " ", " user", "user ", "us\ter", "us\x00er", "x" * 65, None, 1, b"user", [])
    for role in bad_roles:
        data.expect(InvalidInput, lambda r=role: m.append(data.sid, r, "x"))
        data.expect(InvalidInput, lambda r=role: m.append_many(data.sid, [NewMessage(r, "x")]))


def test_content_that_is_not_text(data: Populated) -> None:
    m = data.store.messages
    for content in (b"bytes", bytearray(b"x"), None, 42, 4.2, ["x"], {"x": 1}):
        data.expect(InvalidInput, lambda c=content: m.append(data.sid, "user", c))
        data.expect(InvalidInput, lambda c=content: m.edit(data.mid, c))
        data.expect(
            InvalidInput,
            lambda c=content: m.append_many(data.sid, [{"role": "user", "content": c}]),
        )


def test_lone_surrogates_anywhere(data: Populated) -> None:
    bad = "half a pair: \ud800!"
    s, m = data.store.sessions, data.store.messages
    for call in (
        lambda: m.append(data.sid, "user", bad),
        lambda: m.append(data.sid, "user", "\udfff"),
        lambda: m.edit(data.mid, bad),
        lambda: m.append_many(data.sid, [NewMessage("user", "ok"), NewMessage("user", bad)]),
        lambda: m.append(data.sid, "user", "x", metadata={"k": bad}),
        lambda: m.append(data.sid, "user", "x", metadata={bad: "v"}),
        lambda: m.append(data.sid, "user", "x", client_msg_id=bad),
        lambda: s.create(bad),
        lambda: s.create("m", title=bad),
        lambda: s.create("m", model_name=bad),
        lambda: s.create("m", session_id=bad),
        lambda: s.create("m", metadata={"k": bad}),
        lambda: s.rename(data.sid, bad),
        lambda: s.set_metadata(data.sid, bad, "v"),
        lambda: s.set_metadata(data.sid, "k", bad),
        lambda: s.get(bad),
    ):
        data.expect(InvalidInput, call)


def test_content_over_the_size_limit(backend_url: str) -> None:
    with SessionStore.open(backend_url, max_content_bytes=SMALL_LIMIT) as store:
        sid = store.sessions.create("m").session_id
        exact = store.messages.append(sid, "user", "x" * SMALL_LIMIT)
        wide = store.messages.append(sid, "user", "é" * (SMALL_LIMIT // 2))  # 2 bytes each
        assert store.messages.get(exact.message_id).content == "x" * SMALL_LIMIT
        assert store.messages.get(wide.message_id).content == "é" * (SMALL_LIMIT // 2)
        before = snapshot(store)
        m = store.messages
        for content in ("x" * (SMALL_LIMIT + 1), "é" * (SMALL_LIMIT // 2 + 1), "🙂" * 17):
            expect(store, before, InvalidInput, lambda c=content: m.append(sid, "user", c))
            expect(store, before, InvalidInput, lambda c=content: m.edit(exact.message_id, c))
            expect(
                store,
                before,
                InvalidInput,
                lambda c=content: m.append_many(
                    sid, [NewMessage("user", "ok"), {"role": "user", "content": c}]
                ),
            )


def test_content_over_the_default_limit(data: Populated) -> None:
    limit = data.store.config.max_content_bytes
    assert limit == 4 * 1024 * 1024
    m = data.store.messages
    data.expect(InvalidInput, lambda: m.append(data.sid, "assistant", "x" * (limit + 1)))
    data.expect(InvalidInput, lambda: m.edit(data.mid, "x" * (limit + 1)))


def test_nul_is_kept_in_message_text_and_refused_elsewhere(data: Populated) -> None:
    """Message text keeps NUL exactly (sessionstore.items); ids, titles and metadata refuse it."""
    store, m = data.store, data.store.messages
    content = "before\x00after\x00"
    stored = m.append(data.sid, "assistant", content)
    assert m.get(stored.message_id).content == content
    assert m.edit(data.mid, content).content == content
    many = m.append_many(data.sid, [NewMessage("user", "ok"), NewMessage("user", content)])
    assert [m.get(r.message_id).content for r in many] == ["ok", content]
    data.before = snapshot(store)  # what the refusals below must leave as it is
    data.expect(InvalidInput, lambda: store.sessions.set_metadata(data.sid, "k", content))
    data.expect(InvalidInput, lambda: store.sessions.create("m", title=content))
    data.expect(InvalidInput, lambda: store.sessions.rename(data.sid, content))
    for call in (
        lambda: store.sessions.get("a\x00b"),
        lambda: store.messages.history("a\x00b"),
        lambda: store.sessions.delete("a\x00b"),
    ):
        data.expect(InvalidInput, call)
    # JSON escapes NUL, so message metadata holding one round-trips on both.
    meta = m.append(data.sid, "tool", "meta", metadata={"nul": content})
    assert m.get(meta.message_id).metadata == {"nul": content}


# --- page sizes and cursors -------------------------------------------------------------


def test_page_sizes_outside_1_to_1000(data: Populated) -> None:
    s, m = data.store.sessions, data.store.messages
    for size in (-1, 0, 1001, 2**63, 2**70, 1.5, 10.0, True, False, None, "10"):
        data.expect(InvalidInput, lambda n=size: s.list(limit=n))
        data.expect(InvalidInput, lambda n=size: m.history(data.sid, limit=n))
        # recent() takes any number of messages, none included.
        if size not in (0, 1001):
            data.expect(InvalidInput, lambda n=size: m.recent(data.sid, n))
    assert len(s.list(limit=1)) == 1
    assert len(s.list(limit=1000)) == 2
    assert len(m.history(data.sid, limit=1)) == 1
    assert len(m.history(data.sid, limit=1000)) == 4
    assert len(m.recent(data.sid, 1000)) == 4


def test_malformed_cursors(data: Populated) -> None:
    s, m = data.store.sessions, data.store.messages
    history_cursor, list_cursor = data.history_cursor, data.list_cursor
    assert history_cursor is not None and list_cursor is not None
    junk: list[Any] = [
        "",
        "garbage",
        "!!!!",
        "é",
        "x" * 5000,
        base64.urlsafe_b64encode(b"\xff\xfe\x00junk").decode(),
        base64.urlsafe_b64encode(b"{not json").decode(),
        encoded({"kind": "history"}),
        encoded([]),
        encoded(None),
        encoded(["history"]),
        encoded(["history", data.sid]),
        encoded(["history", data.sid, 1, 2]),
        encoded(["history", data.sid, "1"]),
        encoded(["history", data.sid, 1.5]),
        encoded(["history", data.sid, True]),
        encoded(["history", 5, 1]),
        encoded(["sessions", "2026-01-01T00:00:00+00:00"]),
        encoded(["sessions", "not a date", data.sid]),
        encoded(["sessions", 1700000000, data.sid]),
        encoded(["sessions", "2026-01-01T00:00:00+00:00", 7]),
        encoded(["other", data.sid, 1]),
        123,
        b"bytes",
        ["list"],
    ]
    for cursor in junk:
        data.expect(InvalidCursor, lambda c=cursor: m.history(data.sid, cursor=c))
        data.expect(InvalidCursor, lambda c=cursor: s.list(cursor=c))
    # Each cursor handed to the other query, and to another session's history.
    data.expect(InvalidCursor, lambda: m.history(data.sid, cursor=list_cursor))
    data.expect(InvalidCursor, lambda: s.list(cursor=history_cursor))
    data.expect(InvalidCursor, lambda: m.history(data.other, cursor=history_cursor))
    # Every truncation of a real cursor.
    for cut in range(1, len(history_cursor)):
        data.expect(InvalidCursor, lambda c=history_cursor[:cut]: m.history(data.sid, cursor=c))
    for cut in range(1, len(list_cursor)):
        data.expect(InvalidCursor, lambda c=list_cursor[:cut]: s.list(cursor=c))


def tagged(kind: str, bound: tuple[Any, ...], *values: Any) -> str:
    """A cursor with the right kind and query tag around any values."""
    return encoded([kind, cursor_tag(kind, bound), *values])


def test_history_cursor_with_out_of_range_sequence_number(data: Populated) -> None:
    m = data.store.messages
    assert (
        m.history(data.sid, cursor=tagged("history", (data.sid,), 1)).items[0].sequence_number == 2
    )
    for value in (2**64, 2**63, -(2**70), -1, 10**400, 1.5, "1", None, True):
        cursor = tagged("history", (data.sid,), value)
        data.expect(InvalidCursor, lambda c=cursor: m.history(data.sid, cursor=c))


def test_list_cursor_with_out_of_range_timestamp(data: Populated) -> None:
    s = data.store.sessions
    for stamp in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-01-01", 0):
        cursor = tagged("sessions", (None, None), stamp, data.sid)
        data.expect(InvalidCursor, lambda c=cursor: s.list(cursor=c))


def test_cursor_is_bound_to_its_query(data: Populated) -> None:
    """A cursor pages the query that made it, and is refused by any other."""
    s, m, search = data.store.sessions, data.store.messages, data.store.search
    for i in range(3):
        s.create("gpt-4o", title=f"needle {i}")
    data.before = snapshot(data.store)
    by_model = s.list(limit=1, model_id="gpt-4o").next_cursor
    assert by_model is not None
    assert s.list(limit=1, model_id="gpt-4o", cursor=by_model).items  # its own query pages on
    data.expect(InvalidCursor, lambda: s.list(limit=1, model_id="llama", cursor=by_model))
    data.expect(InvalidCursor, lambda: s.list(limit=1, cursor=by_model))
    data.expect(InvalidCursor, lambda: s.list(status="active", model_id="gpt-4o", cursor=by_model))
    # Another session's history.
    data.expect(InvalidCursor, lambda: m.history(data.other, cursor=data.history_cursor))
    # Search: other terms, filters, order, mode or session.
    hits = search.sessions("needle", limit=1)
    assert hits.next_cursor is not None
    assert search.sessions("needle", limit=1, cursor=hits.next_cursor).items
    for call in (
        lambda c: search.sessions("needles haystack", cursor=c),
        lambda c: search.sessions("needle", model_id="gpt-4o", cursor=c),
        lambda c: search.sessions("needle", status="active", cursor=c),
        lambda c: search.sessions("needle", order="recent", cursor=c),
        lambda c: search.sessions("needle", mode="advanced", cursor=c),
        lambda c: search.messages("needle", cursor=c),
    ):
        data.expect(InvalidCursor, lambda call=call: call(hits.next_cursor))
    data.store.messages.append(data.sid, "user", "needle here")
    data.store.messages.append(data.sid, "user", "needle there")
    data.before = snapshot(data.store)
    found = search.messages("needle", limit=1)
    assert found.next_cursor is not None
    assert search.messages("needle", limit=1, cursor=found.next_cursor).items
    data.expect(InvalidCursor, lambda: search.messages("other", cursor=found.next_cursor))
    data.expect(
        InvalidCursor,
        lambda: search.messages("needle", session_id=data.sid, cursor=found.next_cursor),
    )


def test_tampered_cursors(data: Populated) -> None:
    """Nested brackets, huge numbers, wrong types and huge strings: InvalidCursor, no more."""
    s, m, search = data.store.sessions, data.store.messages, data.store.search
    raw_nested = base64.urlsafe_b64encode(b"[" * 3000 + b"]" * 3000).decode()
    hostile: list[Any] = [
        raw_nested[:4096],
        encoded(["history", [[[[[[[[1]]]]]]]], 1]),
        encoded(["history", {"a": 1}, 1]),
        tagged("history", (data.sid,), [[[1]]]),
        tagged("history", (data.sid,), {"a": 1}),
        tagged("history", (data.sid,), 10**300),
        base64.urlsafe_b64encode(b'["history","x",1e999]').decode(),
        base64.urlsafe_b64encode(b'["history","x",NaN]').decode(),
        base64.urlsafe_b64encode(b'["history", "x", 1]').decode(),
        base64.urlsafe_b64encode(b'["history","x",1] ').decode(),
        base64.urlsafe_b64encode(b'["history","x",1,]').decode(),
        base64.urlsafe_b64encode(b"[]").decode(),
        "not base64 at all!",
        "=" * 100,
        "A" * (1024 * 1024),
        "\ud800",
        "\x00",
    ]
    for cursor in hostile:
        data.expect(InvalidCursor, lambda c=cursor: m.history(data.sid, cursor=c))
        data.expect(InvalidCursor, lambda c=cursor: s.list(cursor=c))
        data.expect(InvalidCursor, lambda c=cursor: search.sessions("question", cursor=c))
        data.expect(InvalidCursor, lambda c=cursor: search.messages("question", cursor=c))


# --- ids ------------------------------------------------------------------------------------


def test_unknown_empty_and_non_text_session_ids(data: Populated) -> None:
    s, m = data.store.sessions, data.store.messages

    def calls(sid: Any) -> list[Callable[[], Any]]:
        return [
            lambda: s.get(sid),
            lambda: s.rename(sid, "t"),
            lambda: s.delete(sid),
            lambda: s.set_metadata(sid, "k", "v"),
            lambda: s.get_metadata(sid, "k"),
            lambda: s.delete_metadata(sid, "k"),
            lambda: s.metadata(sid),
            lambda: m.append(sid, "user", "x"),
            lambda: m.append(sid, "user", "x", client_msg_id="c"),
            lambda: m.append_many(sid, [NewMessage("user", "x")]),
            lambda: m.history(sid),
            lambda: m.recent(sid, 5),
        ]

    for unknown in ("missing", "' OR '1'='1", "%", "_", data.sid.upper(), data.sid + " "):
        for call in calls(unknown):
            data.expect(SessionNotFound, call)
        assert not s.exists(unknown)
    for bad in ("", " ", "\t\n", "x" * 256, "é" * 128, None, 1, 1.5, b"id", ["id"], True):
        for call in [*calls(bad), lambda b=bad: s.exists(b)]:
            data.expect(InvalidInput, call)
        if bad is not None:  # None means "none given" for these (no model id)
            data.expect(InvalidInput, lambda b=bad: s.create(b))
            data.expect(InvalidInput, lambda b=bad: s.create("m", session_id=b))
            data.expect(InvalidInput, lambda b=bad: s.list(model_id=b))
            data.expect(InvalidInput, lambda b=bad: s.count(model_id=b))
            data.expect(
                InvalidInput, lambda b=bad: m.append(data.sid, "user", "x", client_msg_id=b)
            )


def test_message_ids_out_of_range_or_not_integers(data: Populated) -> None:
    m = data.store.messages
    for bad in (0, -1, "x", "1", 2**63, 2**70, 1.0, None, True, False):
        data.expect(InvalidInput, lambda b=bad: m.get(b))
        data.expect(InvalidInput, lambda b=bad: m.edit(b, "x"))
        data.expect(InvalidInput, lambda b=bad: m.delete(b))
    for unknown in (2**31 - 1, 2**31, 2**62, 2**63 - 1):
        data.expect(MessageNotFound, lambda u=unknown: m.get(u))
        data.expect(MessageNotFound, lambda u=unknown: m.edit(u, "x"))
        data.expect(MessageNotFound, lambda u=unknown: m.delete(u))


# --- metadata, tokens, durations ---------------------------------------------------------------


def test_message_metadata_that_is_not_json(data: Populated) -> None:
    m = data.store.messages
    circular: dict[str, Any] = {}
    circular["self"] = circular
    for metadata in (
        {"tags": {"a", "b"}},
        {"score": float("nan")},
        {"score": float("inf")},
        {"raw": b"bytes"},
        {"obj": object()},
        {("tuple", "key"): 1},
        circular,
        ["not", "a", "mapping"],
        "not a mapping",
        42,
    ):
        data.expect(InvalidInput, lambda md=metadata: m.append(data.sid, "user", "x", metadata=md))
        data.expect(
            InvalidInput,
            lambda md=metadata: m.append_many(
                data.sid, [{"role": "user", "content": "x", "metadata": md}]
            ),
        )


def test_deeply_nested_metadata(data: Populated) -> None:
    nested: dict[str, Any] = {}
    inner = nested
    for _ in range(50_000):
        inner["a"] = {}
        inner = inner["a"]
    data.expect(
        InvalidInput, lambda: data.store.messages.append(data.sid, "user", "x", metadata=nested)
    )


def test_session_metadata_that_is_not_text(data: Populated) -> None:
    s = data.store.sessions
    for value in (1, 1.5, True, b"bytes", ["x"], {"a": "b"}, object()):
        data.expect(InvalidInput, lambda v=value: s.set_metadata(data.sid, "k", v))
        data.expect(InvalidInput, lambda v=value: s.create("m", metadata={"k": v}))
    for key in ("", " ", None, 1, b"k", "k" * 256):
        data.expect(InvalidInput, lambda k=key: s.set_metadata(data.sid, k, "v"))
        data.expect(InvalidInput, lambda k=key: s.get_metadata(data.sid, k))
        data.expect(InvalidInput, lambda k=key: s.delete_metadata(data.sid, k))
        data.expect(InvalidInput, lambda k=key: s.create("m", metadata={k: "v"}))
    for metadata in (["k", "v"], "kv", 1):
        data.expect(InvalidInput, lambda md=metadata: s.create("m", metadata=md))
    too_long = "x" * (64 * 1024 + 1)
    data.expect(InvalidInput, lambda: s.create("m", title=too_long))
    data.expect(InvalidInput, lambda: s.rename(data.sid, too_long))
    data.expect(InvalidInput, lambda: s.set_metadata(data.sid, "k", too_long))
    for title in (1, b"t", ["t"]):
        data.expect(InvalidInput, lambda t=title: s.create("m", title=t))
        data.expect(InvalidInput, lambda t=title: s.create("m", model_name=t))
        data.expect(InvalidInput, lambda t=title: s.rename(data.sid, t))


def test_bad_tokens_and_durations(data: Populated) -> None:
    m = data.store.messages
    for tokens in (-1, -(2**40), 1.0, 2.5, "3", True, 2**40 + 1, 2**63, [1]):
        data.expect(InvalidInput, lambda t=tokens: m.append(data.sid, "user", "x", tokens=t))
        data.expect(
            InvalidInput, lambda t=tokens: m.append_many(data.sid, [NewMessage("user", "x", t)])
        )
    for duration in (-0.001, -1, float("nan"), float("inf"), float("-inf"), "1.0", True, [1.0]):
        data.expect(InvalidInput, lambda d=duration: m.append(data.sid, "user", "x", duration=d))
        data.expect(
            InvalidInput,
            lambda d=duration: m.append_many(data.sid, [NewMessage("user", "x", None, d)]),
        )
    record = m.append(data.sid, "user", "int duration", tokens=0, duration=2)
    assert (record.tokens, record.duration) == (0, 2.0)
    assert isinstance(m.get(record.message_id).duration, float)


def test_large_token_counts_that_validation_accepts(data: Populated) -> None:
    m = data.store.messages
    record = m.append(data.other, "assistant", "a long answer", tokens=2**40)
    assert m.get(record.message_id).tokens == 2**40
    assert data.store.sessions.get(data.other).total_tokens == 2**40
    m.append(data.other, "assistant", "another", tokens=2**40)
    total = data.store.sessions.get(data.other).total_tokens
    assert total == 2**41
    assert isinstance(total, int)  # an integer sum, never a float that lost digits


# --- SQL injection ---------------------------------------------------------------------------

INJECTIONS = (
    "'; DROP TABLE messages; --",
    "Robert'); DROP TABLE sessions;--",
    '" OR 1=1 --',
    "' OR '1'='1",
    "1; DELETE FROM sessions WHERE 1=1",
    "%s %(x)s ? :name $1 {0}",
    "\\'; SELECT pg_sleep(10); --",
    "' || (SELECT session_id FROM sessions LIMIT 1) || '",
    "*/ UNION SELECT * FROM session_metadata /*",
)


def test_sql_injection_text_round_trips_and_touches_nothing_else(data: Populated) -> None:
    store = data.store
    s, m = store.sessions, store.messages
    for i, evil in enumerate(INJECTIONS):
        before = snapshot(store)
        sid = evil + f" #{i}"
        created = s.create(evil, model_name=evil, title=evil, session_id=sid, metadata={evil: evil})
        assert s.get(sid) == created
        assert (created.model_id, created.model_name, created.title) == (evil, evil, evil)
        s.set_metadata(sid, evil + "2", evil)
        assert s.metadata(sid) == {evil: evil, evil + "2": evil}
        assert s.get_metadata(sid, evil) == evil
        message = m.append(sid, "user", evil, metadata={evil: evil}, client_msg_id=evil)
        assert m.get(message.message_id).content == evil
        assert m.get(message.message_id).metadata == {evil: evil}
        assert m.get(message.message_id).client_msg_id == evil
        assert m.append(sid, "user", evil, client_msg_id=evil) == message
        assert s.get(sid).title == evil
        assert s.rename(sid, evil + "!").title == evil + "!"
        assert [r.session_id for r in s.list(model_id=evil)] == [sid]
        assert s.count(model_id=evil) == 1
        edited = m.edit(message.message_id, evil + evil)
        assert m.get(message.message_id) == edited

        after = snapshot(store)
        mine = {row[0] for row in after["sessions"]} - {row[0] for row in before["sessions"]}
        assert mine == {sid}
        for table in ("sessions", "messages", "session_metadata"):
            untouched = [row for row in after[table] if sid not in row]
            assert untouched == before[table], table
        s.delete(sid)
        assert snapshot(store) == before
    assert s.count() == 2
    assert len(m.history(data.sid)) == 4


# --- closed store -----------------------------------------------------------------------------


def test_closed_store_refuses_everything(store: SessionStore, backend_url: str) -> None:
    data = Populated(store)
    second = SessionStore.open(backend_url)
    second.close()
    second.close()  # closing twice is harmless
    s, m = second.sessions, second.messages

    def in_transaction() -> None:
        with second.transaction() as tx:
            tx.sessions.create("m")

    calls: list[Callable[[], Any]] = [
        lambda: s.create("m"),
        lambda: s.get(data.sid),
        lambda: s.exists(data.sid),
        s.list,
        s.count,
        lambda: s.rename(data.sid, "t"),
        lambda: s.delete(data.sid),
        lambda: s.set_metadata(data.sid, "k", "v"),
        lambda: s.get_metadata(data.sid, "owner"),
        lambda: s.delete_metadata(data.sid, "owner"),
        lambda: s.metadata(data.sid),
        lambda: m.append(data.sid, "user", "x"),
        lambda: m.append(data.sid, "user", "x", client_msg_id="c"),
        lambda: m.append_many(data.sid, [NewMessage("user", "x")]),
        lambda: m.history(data.sid),
        lambda: m.recent(data.sid, 5),
        lambda: m.get(data.mid),
        lambda: m.edit(data.mid, "x"),
        lambda: m.delete(data.mid),
        in_transaction,
        second.pool_status,
        second.upgrade,
    ]
    for call in calls:
        data.expect(StoreClosedError, call)
    assert "closed" in repr(second)
    assert store.sessions.count() == 2


def test_append_many_with_a_batch_that_is_not_a_list(data: Populated) -> None:
    m = data.store.messages
    for batch in (None, 42, NewMessage("user", "x")):
        data.expect(InvalidInput, lambda b=batch: m.append_many(data.sid, b))
