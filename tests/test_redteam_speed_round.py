"""Hostile inputs against the fast paths: payload checks, batch inserts, item reads.

* A payload (or metadata, or state) that holds the same list twice, itself
  among them, is a cycle: it must be refused as too deep, quickly, not walked
  a level at a time with every reference copied (the level doubles each step,
  2**100 entries by the depth limit). A list held 2**60 times over (no cycle)
  is refused by its size without being written out.
* The multi-row ``INSERT … VALUES`` batches of ``append_many`` stay within the
  connection's own limit on statement parameters (999 on SQLite before 3.32).
* ``messages.items`` treats another owner's session as missing.
* A cursor is the JSON array ``json.dumps`` writes, values or none; a history
  cursor handed out lately is still checked against its session and text.
"""

from __future__ import annotations

import base64
import json
import resource
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from sessionstore import SessionStore
from sessionstore.errors import InvalidCursor, InvalidInput, SessionNotFound
from sessionstore.items import encode_payload
from sessionstore.validation import check_depth, cursor_tag, decode_cursor, encode_cursor


@contextmanager
def memory_ceiling(extra: int = 1 << 30) -> Iterator[None]:
    """At most ``extra`` more bytes of address space: a regression fails with MemoryError
    rather than take the machine's memory."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/status") as status:
        size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    ceiling = size + extra if hard == resource.RLIM_INFINITY else min(hard, size + extra)
    resource.setrlimit(resource.RLIMIT_AS, (ceiling, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def doubled_cycle() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    loop.append(loop)
    return loop


def test_a_list_holding_itself_twice_is_refused_as_too_deep() -> None:
    with memory_ceiling():
        with pytest.raises(InvalidInput, match="nested more than 100 deep"):
            encode_payload(doubled_cycle(), 1 << 20)
        with pytest.raises(InvalidInput, match="nested more than 100 deep"):
            encode_payload({"a": doubled_cycle()}, 1 << 20)
        with pytest.raises(InvalidInput, match="nested more than 100 deep"):
            check_depth("metadata", {"k": doubled_cycle()})


def shared_many_times(levels: int) -> list[Any]:
    """A list that JSON writes out as 2**levels lists, built from ``levels`` lists."""
    value: list[Any] = [1]
    for _ in range(levels):
        value = [value, value]
    return value


def test_a_list_held_many_times_over_is_refused_without_writing_it_out() -> None:
    many: list[Any] = []
    many.extend([many] * 1000)
    with memory_ceiling():
        for value in (
            shared_many_times(60),
            {"k": shared_many_times(60)},
            (1, shared_many_times(60)),
        ):
            with pytest.raises(InvalidInput, match="more than the limit"):
                encode_payload(value, 1 << 24)
        with pytest.raises(InvalidInput, match="nested more than 100 deep"):
            encode_payload(many, 1 << 24)
        with pytest.raises(InvalidInput, match="nested more than 100 deep"):
            check_depth("state", (many,))
        check_depth("state", {"k": shared_many_times(60)})  # 61 deep: within the limit
    small = shared_many_times(5)
    assert json.loads(encode_payload(small, 1 << 20) or "null") == small


def test_a_shared_value_is_still_stored(tmp_path: Path) -> None:
    shared = {"x": [1, 2.5, "t", None, True]}
    payload = {"a": shared, "b": [shared, shared]}
    assert encode_payload(payload, 1 << 20) is not None
    with SessionStore.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        sid = store.sessions.create().session_id
        with memory_ceiling(), pytest.raises(InvalidInput):
            store.messages.append(sid, "user", "hi", payload=doubled_cycle())
        stored = store.messages.append(sid, "user", "hi", payload=payload)
        assert store.messages.get(stored.message_id).payload == payload
        assert store.messages.items(sid) == [("message", "user", "hi", payload)]


@pytest.mark.parametrize("count", [1, 2, 76, 77, 499, 500, 501, 1500])
def test_batches_stay_within_the_connections_parameter_limit(tmp_path: Path, count: int) -> None:
    with SessionStore.open(f"sqlite:///{tmp_path / 's.db'}") as store:

        @event.listens_for(store.engine, "connect")
        def lower(dbapi_connection: Any, record: Any) -> None:
            # What SQLite before 3.32 allows.
            dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)

        store.engine.dispose()
        sid = store.sessions.create().session_id
        first = store.messages.append(sid, "user", "before")
        batch = [
            {"role": "user", "content": f"m{i}", "client_msg_id": f"c{i}" if i % 2 else None}
            for i in range(count)
        ]
        stored = store.messages.append_many(sid, batch)
        assert [m.sequence_number for m in stored] == list(range(2, count + 2))
        assert [m.content for m in stored] == [f"m{i}" for i in range(count)]
        assert [store.messages.get(m.message_id) for m in stored] == stored
        assert [m.message_id for m in stored] == sorted(m.message_id for m in stored)
        assert stored[0].message_id > first.message_id
        # A retry of the whole batch stores nothing new and returns the same records
        # for the client ids.
        if count > 1:
            again = store.messages.append_many(sid, [batch[1]])
            assert again == [stored[1]]
        assert len(store.messages.items(sid)) == count + 1


def test_items_of_another_owners_session_are_not_found(tmp_path: Path) -> None:
    with SessionStore.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        mine = store.for_user("app", "u1")
        sid = mine.sessions.create().session_id
        mine.messages.append(sid, "user", "hello")
        assert mine.messages.items(sid, last=1) == [("message", "user", "hello", None)]
        theirs = store.for_user("app", "u2")
        for last in (None, 0, 1):
            with pytest.raises(SessionNotFound):
                theirs.messages.items(sid, last=last)


@pytest.mark.parametrize(
    "values",
    [(), (7,), ("plain",), ('é "q" \\',), (1, "a"), (datetime(2026, 1, 2, 3, 4, 5, 6, UTC),)],
)
def test_a_cursor_is_the_json_it_always_was(values: tuple[Any, ...]) -> None:
    cursor = encode_cursor("kind", ("bound",), *values)
    text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
    written = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    assert text == json.dumps(
        ["kind", cursor_tag("kind", ("bound",)), *written], separators=(",", ":")
    )
    types = tuple(type(v) for v in values)
    assert decode_cursor(cursor, "kind", ("bound",), *types) == values


def test_history_cursors_stay_with_their_session_and_text(tmp_path: Path) -> None:
    with SessionStore.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        sids = [store.for_user("app", f"u{i}").sessions.create().session_id for i in range(2)]
        for sid in sids:
            store.messages.append_many(
                sid, [{"role": "user", "content": f"m{i}"} for i in range(5)]
            )
        page = store.messages.history(sids[0], limit=2)
        assert page.next_cursor is not None
        with pytest.raises(InvalidCursor):
            store.messages.history(sids[1], limit=2, cursor=page.next_cursor)
        with pytest.raises(SessionNotFound):
            store.for_user("app", "u1").messages.history(sids[0], cursor=page.next_cursor)
        flipped = page.next_cursor[:-1] + ("A" if page.next_cursor[-1] != "A" else "B")
        with pytest.raises(InvalidCursor):
            store.messages.history(sids[0], limit=2, cursor=flipped)
        rest = store.for_user("app", "u0").messages.history(sids[0], cursor=page.next_cursor)
        assert [m.content for m in rest.items] == ["m2", "m3", "m4"]


def test_threads_paging_different_sessions_each_read_their_own(tmp_path: Path) -> None:
    with SessionStore.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        sids = [store.sessions.create().session_id for _ in range(4)]
        for n, sid in enumerate(sids):
            store.messages.append_many(
                sid, [{"role": "user", "content": f"{n}-{i}"} for i in range(30)]
            )

        def page_all(n: int) -> list[str]:
            seen: list[str] = []
            for _ in range(5):
                seen.clear()
                cursor = None
                while True:
                    page = store.messages.history(sids[n], limit=3, cursor=cursor)
                    seen.extend(m.content for m in page.items)
                    cursor = page.next_cursor
                    if cursor is None:
                        break
            return seen

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(page_all, range(4)))
        assert results == [[f"{n}-{i}" for i in range(30)] for n in range(4)]


class ZuluTime(datetime):
    """A datetime that writes UTC as ``Z``, as some libraries' subclasses do."""

    def isoformat(self, sep: str = "T", timespec: str = "auto") -> str:
        return super().isoformat(sep, timespec).replace("+00:00", "Z")


def test_a_datetime_subclass_is_stored_to_the_microsecond(tmp_path: Path) -> None:
    when = ZuluTime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    with SessionStore.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        sid = store.sessions.create().session_id
        stored = store.messages.append(sid, "user", "x", timestamp=when)
        batch = store.messages.append_many(
            sid, [{"role": "user", "content": "y", "timestamp": when}]
        )
        for record in (stored, *batch):
            read = store.messages.get(record.message_id)
            assert read.timestamp == when
            assert read == record


def test_metadata_and_state_holding_a_list_many_times_over_are_refused(tmp_path: Path) -> None:
    """Counted, not walked leaf by leaf nor written out: refused at once, nothing stored."""
    with SessionStore.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        sid = store.sessions.create().session_id
        with memory_ceiling():
            with pytest.raises(InvalidInput, match="more than"):
                store.messages.append(sid, "user", "hi", metadata={"k": shared_many_times(60)})
            with pytest.raises(InvalidInput, match="more than"):
                store.state.update(sid, {"k": shared_many_times(60)})
        assert store.messages.recent(sid, 5) == [] and store.state.get(sid) == {}
        shared = shared_many_times(5)  # 62 values: stored, and read back equal
        store.messages.append(sid, "user", "hi", metadata={"k": shared})
        store.state.update(sid, {"k": shared})
        assert store.state.get(sid) == {"k": shared}
