"""Concurrent use of one store, and of two stores on one database (SQLite file and PostgreSQL).

What is proved here: the legacy application's scenario (5 threads x 10 appends
on one session) stores exactly 50 messages numbered 1..50 without an error;
10 threads x 100 appends store 1,000 messages numbered 1..1000 with no gap or
duplicate and exact totals; the same ``client_msg_id`` appended at once from
several threads stores one message and every thread gets that message back;
two stores with separate pools on one database append together without losing
or repeating a number; a session id created at once by several threads exists
once; and readers paging the history while writers append only ever see a
complete prefix 1..k, with the session's count in step.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sessionstore import DuplicateMessageId, MessageRecord, SessionExists, SessionStore


def run_threads(count: int, target: Callable[[int], Any]) -> tuple[list[Any], list[BaseException]]:
    """Run ``target(i)`` in ``count`` threads released together; results and errors."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []
    lock = threading.Lock()

    def body(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = target(index)
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive(), "a thread hung"
    return results, errors


def history(store: SessionStore, session_id: str) -> list[MessageRecord]:
    messages: list[MessageRecord] = []
    cursor: str | None = None
    while True:
        page = store.messages.history(session_id, limit=1000, cursor=cursor)
        messages.extend(page)
        if page.next_cursor is None:
            return messages
        cursor = page.next_cursor


def assert_complete(store: SessionStore, session_id: str, count: int) -> list[MessageRecord]:
    stored = history(store, session_id)
    assert [m.sequence_number for m in stored] == list(range(1, count + 1))
    assert len({m.message_id for m in stored}) == count
    session = store.sessions.get(session_id)
    assert (session.message_count, session.last_seq) == (count, count)
    return stored


def test_legacy_scenario_five_threads_ten_appends_each(store: SessionStore) -> None:
    sid = store.sessions.create("gpt-4o").session_id

    def writer(thread: int) -> list[int]:
        return [
            store.messages.append(sid, "user", f"t{thread} m{i}", tokens=1).sequence_number
            for i in range(10)
        ]

    results, errors = run_threads(5, writer)
    assert errors == []
    numbers = sorted(n for result in results for n in result)
    assert numbers == list(range(1, 51))
    for result in results:
        assert result == sorted(result), "one thread's appends must be numbered in its order"
    stored = assert_complete(store, sid, 50)
    assert sorted(m.content for m in stored) == sorted(
        f"t{t} m{i}" for t in range(5) for i in range(10)
    )
    assert store.sessions.get(sid).total_tokens == 50


def test_ten_threads_hundred_appends_each(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id

    def writer(thread: int) -> None:
        for i in range(100):
            store.messages.append(sid, "assistant", f"{thread}:{i}", tokens=thread, duration=0.5)

    _, errors = run_threads(10, writer)
    assert errors == []
    stored = assert_complete(store, sid, 1000)
    assert len({m.content for m in stored}) == 1000
    session = store.sessions.get(sid)
    assert session.total_tokens == sum(100 * t for t in range(10))
    assert session.total_duration_seconds == 500.0


def test_same_client_msg_id_from_many_threads_stores_one_message(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    for round_number in range(3):
        client_id = f"retry-{round_number}"

        def append(thread: int, cid: str = client_id) -> MessageRecord:
            return store.messages.append(sid, "user", "the same request", client_msg_id=cid)

        results, errors = run_threads(6, append)
        assert errors == []
        assert len({r.message_id for r in results}) == 1
        assert all(r == results[0] for r in results)
        assert results[0].sequence_number == round_number + 1
    assert_complete(store, sid, 3)

    def batch(thread: int) -> list[MessageRecord]:
        return store.messages.append_many(
            sid,
            [
                {"role": "user", "content": "b", "client_msg_id": "batch-a"},
                {"role": "user", "content": "c", "client_msg_id": "batch-b"},
            ],
        )

    results, errors = run_threads(4, batch)
    assert errors == []
    assert all(r == results[0] for r in results)
    assert [m.sequence_number for m in results[0]] == [4, 5]
    assert_complete(store, sid, 5)


def test_different_messages_under_one_client_msg_id_store_exactly_one(
    store: SessionStore,
) -> None:
    # A repeated id with other content is a conflict, never a silently dropped message.
    sid = store.sessions.create("m").session_id

    def append(thread: int) -> MessageRecord:
        return store.messages.append(sid, "user", f"attempt {thread}", client_msg_id="one")

    results, errors = run_threads(6, append)
    stored = [r for r in results if r is not None]
    assert len(stored) == 1
    assert len(errors) == 5
    assert all(isinstance(error, DuplicateMessageId) for error in errors)
    assert store.messages.get_by_client_id(sid, "one") == stored[0]
    assert_complete(store, sid, 1)


def test_two_stores_with_separate_pools_append_together(backend_url: str) -> None:
    with SessionStore.open(backend_url) as first, SessionStore.open(backend_url) as second:
        assert first.engine.pool is not second.engine.pool
        sid = first.sessions.create("m").session_id
        stores = (first, second)

        def writer(thread: int) -> list[int]:
            store = stores[thread % 2]
            return [
                store.messages.append(sid, "user", f"{thread}:{i}").sequence_number
                for i in range(40)
            ]

        results, errors = run_threads(6, writer)
        assert errors == []
        assert sorted(n for result in results for n in result) == list(range(1, 241))
        assert_complete(first, sid, 240)
        assert_complete(second, sid, 240)


def test_concurrent_create_of_one_session_id(store: SessionStore) -> None:
    def create(thread: int) -> str:
        try:
            return store.sessions.create(f"model-{thread}", session_id="contested").model_id
        except SessionExists:
            return "lost"

    results, errors = run_threads(8, create)
    assert errors == []
    winners = [r for r in results if r != "lost"]
    assert len(winners) == 1
    assert store.sessions.get("contested").model_id == winners[0]
    assert store.sessions.count() == 1


def test_readers_see_only_complete_prefixes_while_writers_append(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    writers_done = threading.Event()
    observed: list[int] = []
    lock = threading.Lock()

    def writer() -> None:
        for i in range(60):
            store.messages.append(sid, "user", f"w{i}")

    def reader() -> None:
        seen = 0
        while True:
            finished = writers_done.is_set()
            numbers: list[int] = []
            cursor: str | None = None
            while True:
                page = store.messages.history(sid, limit=7, cursor=cursor)
                numbers.extend(m.sequence_number for m in page)
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            assert numbers == list(range(1, len(numbers) + 1)), numbers
            assert len(numbers) >= seen, "a reader saw the history shrink"
            seen = len(numbers)
            session = store.sessions.get(sid)
            assert session.message_count == session.last_seq >= seen
            tail = [m.sequence_number for m in store.messages.recent(sid, 5)]
            if tail:
                assert tail == list(range(tail[0], tail[0] + len(tail)))
                assert tail[-1] >= seen
            with lock:
                observed.append(seen)
            if finished:
                return

    def role(index: int) -> None:
        if index < 3:
            writer()
        else:
            reader()

    def done_when_writers_finish(index: int) -> None:
        try:
            role(index)
        finally:
            if index < 3:
                with lock:
                    finished_writers.append(index)
                    if len(finished_writers) == 3:
                        writers_done.set()

    finished_writers: list[int] = []
    _, errors = run_threads(5, done_when_writers_finish)
    assert errors == []
    assert observed, "the readers never read"
    assert max(observed) == 180
    assert_complete(store, sid, 180)
