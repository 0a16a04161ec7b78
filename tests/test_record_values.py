"""Records stored as tuples behave as frozen dataclasses, and every read builds the same ones.

:class:`MessageRecord` and :class:`SessionRecord` are tuple-backed
(``records.tuple_backed``): these tests hold them to what the frozen slotted
dataclasses they were gave (fields, ``asdict``, ``replace``, equality, hash,
``repr``, pickling, ``FrozenInstanceError``, no ordering, no equality with a
plain tuple). The reads of one session's messages build records from their
own columns (no session id, the plain kind read as NULL): they must give the
records the full-row path (``get``) gives, on both backends, for every kind
of row.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sessionstore import SessionStore
from sessionstore.records import MessageRecord, SessionRecord, tuple_backed

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@dataclasses.dataclass(frozen=True, slots=True)
class Reference:
    """A frozen dataclass as the records were before: the behaviour to keep."""

    number: int
    text: str
    when: datetime
    extra: str | None = None

    @property
    def shout(self) -> str:
        return self.text.upper()


@tuple_backed
@dataclasses.dataclass(frozen=True, slots=True)
class Backed:
    """The same declaration, tuple-backed."""

    number: int
    text: str
    when: datetime
    extra: str | None = None

    @property
    def shout(self) -> str:
        return self.text.upper()


def test_a_tuple_backed_record_behaves_as_its_frozen_dataclass() -> None:
    ref, rec = Reference(1, "a", NOW), Backed(1, "a", NOW)
    assert dataclasses.is_dataclass(rec)
    assert [f.name for f in dataclasses.fields(rec)] == ["number", "text", "when", "extra"]
    assert dataclasses.asdict(rec) == dataclasses.asdict(ref)
    assert dataclasses.astuple(rec) == dataclasses.astuple(ref)
    assert repr(rec) == repr(ref).replace("Reference", "Backed", 1)
    assert Backed.__name__ == "Backed" and Backed.__doc__ == "The same declaration, tuple-backed."
    assert hash(rec) == hash(ref)
    assert rec.extra is None and rec.shout == "A"
    assert Backed(number=1, text="a", when=NOW, extra="x").extra == "x"
    assert dataclasses.replace(rec, text="b") == Backed(1, "b", NOW)
    assert rec == Backed(1, "a", NOW) and rec != Backed(2, "a", NOW)
    # Never equal to a plain tuple (either side), and no ordering, as a dataclass.
    plain = (1, "a", NOW, None)
    assert rec != plain and plain != rec
    assert not rec == plain  # noqa: SIM201 - == itself is under test
    with pytest.raises(TypeError):
        _ = rec < Backed(2, "a", NOW)
    with pytest.raises(TypeError):
        _ = (0,) < rec  # noqa: SIM300 - the tuple's side is under test
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.text = "b"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del rec.text  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.anything = 1  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        Backed(1, "a")  # type: ignore[call-arg]
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert pickle.loads(pickle.dumps(rec, protocol)) == rec
    assert copy.copy(rec) == rec and copy.deepcopy(rec) == rec
    match rec:
        case Backed(1, text):
            assert text == "a"
        case _:
            pytest.fail("the record did not match its own pattern")


def test_the_public_records_keep_their_fields_and_defaults() -> None:
    message = MessageRecord(1, "s", 1, "user", "hi", NOW, None, None, None, None)
    assert (message.kind, message.payload_json, message.metadata, message.payload) == (
        "message", None, None, None,
    )  # fmt: skip
    assert MessageRecord.__match_args__ == tuple(f.name for f in dataclasses.fields(message))
    session = SessionRecord("s", None, None, None, "active", NOW, NOW, NOW, 0, 0, 0.0, 0)
    assert session.never_expires is False and session.idle_timeout is None
    assert isinstance(message, MessageRecord) and isinstance(session, SessionRecord)
    assert message != session


def _kinds_of_rows(store: SessionStore, sid: str) -> None:
    base = NOW - timedelta(hours=1)
    store.messages.append(sid, "user", "plain", timestamp=base)
    store.messages.append(
        sid, "assistant", "all fields", tokens=7, duration=0.25, metadata={"k": [1, 2]},
        client_msg_id="c-1", timestamp=base + timedelta(seconds=1),
    )  # fmt: skip
    store.messages.append(
        sid, "assistant", "", kind="function_call", payload={"name": "f", "args": "{}"},
        timestamp=base + timedelta(seconds=2),
    )  # fmt: skip
    store.messages.append(sid, "user", "NUL \x00 inside", timestamp=base + timedelta(seconds=3))
    store.messages.append(
        sid, "tool", "a message with a payload", kind="message", payload=[1, "two"],
        timestamp=base + timedelta(seconds=4),
    )  # fmt: skip


def test_session_reads_give_the_records_get_gives(backend_url: str) -> None:
    with SessionStore.open(backend_url) as store:
        sid = store.sessions.create("m").session_id
        _kinds_of_rows(store, sid)
        expected = [store.messages.get(m.message_id) for m in store.messages.iterate(sid)]
        assert len(expected) == 5
        assert [m.kind for m in expected] == [
            "message", "message", "function_call", "message", "message",
        ]  # fmt: skip
        assert expected[3].content == "NUL \x00 inside"
        assert all(m.session_id == sid and m.timestamp.tzinfo is not None for m in expected)
        assert store.messages.recent(sid, 5) == expected
        assert store.messages.recent(sid, 2) == expected[-2:]
        first = store.messages.history(sid, limit=2)
        second = store.messages.history(sid, limit=3, cursor=first.next_cursor)
        assert list(first.items) + list(second.items) == expected
        assert store.messages.since(sid, NOW - timedelta(days=1)) == expected
        assert list(store.messages.iterate(sid, batch=2)) == expected
        # Field by field, against a record built by the dataclass constructor.
        call = expected[2]
        assert call == MessageRecord(
            call.message_id, sid, 3, "assistant", "", call.timestamp, None, None, None, None,
            "function_call", '{"name":"f","args":"{}"}',
        )  # fmt: skip


def test_listed_sessions_are_the_sessions_get_gives(backend_url: str) -> None:
    with SessionStore.open(backend_url) as store:
        made: list[Any] = [
            store.sessions.create("m"),
            store.sessions.create(
                "m",
                model_name="M",
                title="t",
                idle_timeout=timedelta(minutes=90),
                hard_timeout=timedelta(days=2, microseconds=500),
                app="a",
                user_id="u",
            ),
            store.sessions.create(None, never_expires=True),
        ]
        store.messages.append(made[0].session_id, "user", "x", duration=1.5, tokens=3)
        store.lifecycle.archive(made[2].session_id)
        forked = store.sessions.fork(made[0].session_id, 1)
        ids = [s.session_id for s in made] + [forked.session_id]
        expected = {sid: store.sessions.get(sid) for sid in ids}
        first = store.sessions.list(limit=2)
        rest = store.sessions.list(limit=10, cursor=first.next_cursor)
        listed = {s.session_id: s for s in [*first.items, *rest.items]}
        assert listed == expected
        for record in listed.values():
            assert isinstance(record.total_duration_seconds, float)
            assert type(record.never_expires) is bool
            for stamp in (record.created_at, record.updated_at, record.last_activity):
                assert stamp.tzinfo is not None
        archived = listed[made[2].session_id]
        assert archived.status == "archived" and archived.archived_at is not None
        assert archived.never_expires is True
        assert listed[made[1].session_id].hard_timeout == timedelta(days=2, microseconds=500)
        assert listed[forked.session_id].parent_session_id == made[0].session_id
