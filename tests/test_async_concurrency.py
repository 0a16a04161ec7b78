"""Many tasks, one async store: the sync core's guarantees hold from an event loop.

64 tasks append to one session (and to 64 sessions) with no gap and no
duplicate; 64 tasks retrying one client id store one message; a writer that
waits on another connection's lock is retried as a whole transaction and
goes ahead once it is released, or gets ``StoreBusyError`` past the busy
deadline; typed errors come through unchanged.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from sessionstore import (
    DuplicateMessageId,
    InvalidInput,
    SessionArchived,
    SessionNotFound,
    StoreBusyError,
)
from sessionstore.aio import AsyncSessionStore

TASKS = 64
EACH = 10


def test_64_tasks_appending_to_one_session_leave_no_gap_and_no_duplicate(
    backend_url: str,
) -> None:
    async def main() -> None:
        async with await AsyncSessionStore.open(backend_url) as store:
            sid = (await store.sessions.create("gpt")).session_id

            async def writer(n: int) -> list[int]:
                return [
                    (await store.messages.append(sid, "user", f"{n}-{i}")).sequence_number
                    for i in range(EACH)
                ]

            numbers = [
                seq for seqs in await asyncio.gather(*map(writer, range(TASKS))) for seq in seqs
            ]
            assert sorted(numbers) == list(range(1, TASKS * EACH + 1))
            session = await store.sessions.get(sid)
            assert (session.message_count, session.last_seq) == (TASKS * EACH, TASKS * EACH)
            stored = [m.content async for m in store.messages.iterate(sid)]
            assert sorted(stored) == sorted(f"{n}-{i}" for n in range(TASKS) for i in range(EACH))
            assert store.busy_workers == 0

    asyncio.run(main())


def test_64_tasks_each_with_its_own_session(backend_url: str) -> None:
    async def main() -> None:
        async with await AsyncSessionStore.open(backend_url) as store:

            async def writer(n: int) -> str:
                sid = (await store.sessions.create("gpt")).session_id
                for i in range(EACH):
                    await store.messages.append(sid, "user", f"{i}")
                return sid

            sids = await asyncio.gather(*map(writer, range(TASKS)))
            for sid in sids:
                assert [m.sequence_number for m in await store.messages.recent(sid, 100)] == list(
                    range(1, EACH + 1)
                )

    asyncio.run(main())


def test_64_tasks_retrying_one_client_id_store_one_message(backend_url: str) -> None:
    async def main() -> None:
        async with await AsyncSessionStore.open(backend_url) as store:
            sid = (await store.sessions.create("gpt")).session_id
            records = await asyncio.gather(
                *(
                    store.messages.append(sid, "user", "once", client_msg_id="req-1")
                    for _ in range(TASKS)
                )
            )
            assert {r.message_id for r in records} == {records[0].message_id}
            assert (await store.sessions.get(sid)).message_count == 1
            with pytest.raises(DuplicateMessageId):
                await store.messages.append(sid, "user", "other", client_msg_id="req-1")

    asyncio.run(main())


def test_typed_errors_come_through_as_the_sync_store_raises_them(backend_url: str) -> None:
    async def main() -> None:
        async with await AsyncSessionStore.open(backend_url) as store:
            with pytest.raises(SessionNotFound):
                await store.messages.append("missing", "user", "x")
            with pytest.raises(InvalidInput):
                await store.messages.recent("", 5)
            sid = (await store.sessions.create("gpt")).session_id
            await store.lifecycle.archive(sid)
            with pytest.raises(SessionArchived):
                await store.messages.append(sid, "user", "late")

    asyncio.run(main())


def test_a_write_waiting_on_another_connections_lock_is_retried_whole(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"

    async def main() -> None:
        async with await AsyncSessionStore.open(f"sqlite:///{path}", busy_timeout=1) as store:
            sid = (await store.sessions.create("gpt")).session_id
            other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            other.execute("BEGIN IMMEDIATE")  # another process's writer, holding the lock
            release = threading.Timer(0.3, other.execute, args=("COMMIT",))
            release.start()
            waited = await store.messages.append(sid, "user", "after the lock")
            assert waited.sequence_number == 1
            release.join()
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreBusyError):
                await store.messages.append(sid, "user", "past the deadline")
            other.execute("ROLLBACK")
            other.close()
            assert (await store.sessions.get(sid)).message_count == 1

    asyncio.run(main())
