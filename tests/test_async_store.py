"""AsyncSessionStore beyond the shared contract suite: transactions from tasks, iteration,
scoped views, the scheduler task, and the item methods (opening and closing:
``test_async_opening.py``).

The contract modules run through the async store too (``store_way`` in
``conftest.py``); these tests cover what only an event loop can show.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any, TypeVar

import pytest

from sessionstore import (
    InvalidInput,
    InvalidStateError,
    MessageNotFound,
    MessageRecord,
    NestedTransactionError,
    SessionNotFound,
    StoreClosedError,
)
from sessionstore.aio import AsyncItems, AsyncSessionStore

T = TypeVar("T")


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(main())


async def opened(url: str, **options: Any) -> AsyncSessionStore:
    return await AsyncSessionStore.open(url, **options)


# --- transactions from tasks ------------------------------------------------------------------


def test_a_transaction_commits_on_success_and_rolls_back_on_an_exception(backend_url: str) -> None:
    async def main() -> None:
        async with await opened(backend_url) as store:
            sid = (await store.sessions.create("gpt")).session_id
            async with store.transaction() as tx:
                await tx.messages.append(sid, "user", "kept")
                await tx.sessions.rename(sid, "Kept")
            with pytest.raises(KeyError):
                async with store.transaction() as tx:
                    await tx.messages.append(sid, "user", "dropped")
                    await tx.sessions.rename(sid, "Dropped")
                    raise KeyError("the caller's own error passes through")
            assert [m.content for m in await store.messages.recent(sid, 10)] == ["kept"]
            assert (await store.sessions.get(sid)).title == "Kept"
            assert store.busy_workers == 0

    run(main)


def test_inside_a_transaction_a_write_on_the_store_is_refused_and_reads_see_the_last_commit(
    sqlite_url: str,
) -> None:
    async def main() -> None:
        async with await opened(sqlite_url) as store:
            sid = (await store.sessions.create("gpt")).session_id
            async with store.transaction() as tx:
                await tx.messages.append(sid, "user", "inside")
                # The same task: a second transaction would wait for this one.
                with pytest.raises(NestedTransactionError):
                    await store.messages.append(sid, "user", "outside")
                with pytest.raises(NestedTransactionError):
                    async with store.transaction():
                        pass
                # A task started inside the block belongs to it too.
                child = asyncio.create_task(store.messages.append(sid, "user", "child"))
                with pytest.raises(NestedTransactionError):
                    await child
                assert (await store.sessions.get(sid)).message_count == 0
                assert (await tx.sessions.get(sid)).message_count == 1
            assert (await store.sessions.get(sid)).message_count == 1

    run(main)


def test_another_task_writes_after_the_transaction_commits(sqlite_url: str) -> None:
    async def main() -> None:
        async with await opened(sqlite_url) as store:
            sid = (await store.sessions.create("gpt")).session_id
            entered = asyncio.Event()
            release = asyncio.Event()

            async def holder() -> None:
                async with store.transaction() as tx:
                    await tx.messages.append(sid, "user", "first")
                    entered.set()
                    await release.wait()

            task = asyncio.create_task(holder())
            await entered.wait()
            # A task of its own, outside the block: it waits for the commit, then writes.
            writer = asyncio.create_task(store.messages.append(sid, "user", "second"))
            await asyncio.sleep(0.05)
            assert not writer.done()
            release.set()
            await task
            second = await writer
            assert second.sequence_number == 2

    run(main)


def test_a_transaction_object_is_refused_after_its_block(backend_url: str) -> None:
    async def main() -> None:
        async with await opened(backend_url) as store:
            sid = (await store.sessions.create("gpt")).session_id
            async with store.transaction() as tx:
                await tx.messages.append(sid, "user", "one")
            with pytest.raises(InvalidStateError):
                await tx.messages.append(sid, "user", "late")
            context = store.transaction()
            async with context:
                pass
            with pytest.raises(RuntimeError):
                async with context:
                    pass

    run(main)


def test_cancelled_during_exit_the_transaction_is_whole_and_its_lane_comes_back(
    backend_url: str,
) -> None:
    async def main() -> None:
        async with await opened(backend_url) as store:
            sid = (await store.sessions.create("gpt")).session_id
            before = await store.pool_status()
            for attempt in range(20):
                task = asyncio.current_task()
                assert task is not None

                async def block(n: int = attempt) -> None:
                    async with store.transaction() as tx:
                        await tx.messages.append(sid, "user", f"a{n}", client_msg_id=f"a{n}")
                        await tx.sessions.set_metadata(sid, f"k{n}", "v")
                        me = asyncio.current_task()
                        assert me is not None
                        # Lands while __aexit__ commits (or before it starts: a rollback).
                        asyncio.get_running_loop().call_soon(me.cancel)

                inner = asyncio.create_task(block())
                with pytest.raises(asyncio.CancelledError):
                    await inner
                committed = await store.sessions.get_metadata(sid, f"k{attempt}") is not None
                try:
                    await store.messages.get_by_client_id(sid, f"a{attempt}")
                    stored = True
                except MessageNotFound:
                    stored = False
                assert committed == stored
                assert store.busy_workers == 0
            # The writers' lock came back each time: a new transaction begins at once.
            async with store.transaction() as tx:
                await tx.messages.append(sid, "user", "after")
            after = await store.pool_status()
            assert (after.checked_out - after.kept, after.overflow) == (
                before.checked_out - before.kept,
                before.overflow,
            )

    run(main)


# --- reading ---------------------------------------------------------------------------------


def test_iterate_streams_with_async_for_and_checks_at_the_await(backend_url: str) -> None:
    async def main() -> None:
        async with await opened(backend_url) as store:
            sid = (await store.sessions.create("gpt")).session_id
            await store.messages.append_many(
                sid, [{"role": "user", "content": f"m{i}"} for i in range(1203)]
            )
            seen = [m.sequence_number async for m in store.messages.iterate(sid, batch=100)]
            assert seen == list(range(1, 1204))
            items = await store.messages.iterate(sid, after=1200)
            assert isinstance(items, AsyncItems)
            assert [m.content async for m in items] == ["m1200", "m1201", "m1202"]
            # Left early, the stream holds nothing: the lanes are all idle again.
            async for message in store.messages.iterate(sid):
                assert isinstance(message, MessageRecord)
                break
            with pytest.raises(SessionNotFound):
                await store.messages.iterate("no-such-session")
            with pytest.raises(InvalidInput):
                async for _ in store.messages.iterate(sid, batch=0):
                    pass
            assert store.busy_workers == 0

    run(main)


def test_a_scoped_view_is_awaitable_and_sees_only_its_owner(backend_url: str) -> None:
    async def main() -> None:
        async with await opened(backend_url) as store:
            alice = store.for_user("chat", "alice")
            bob = store.for_user("chat", "bob")
            sid = (await alice.sessions.create("gpt")).session_id
            await alice.messages.append(sid, "user", "hi")
            with pytest.raises(SessionNotFound):
                await bob.sessions.get(sid)
            async with alice.transaction() as tx:
                await tx.messages.append(sid, "assistant", "hello")
            assert (await alice.stats()).messages == 2
            assert (await bob.stats()).messages == 0
            assert alice.app == "chat" and alice.user_id == "alice"

    run(main)


# --- the scheduler task -------------------------------------------------------------------------


def test_the_scheduler_is_a_task_that_sweeps_and_stops_with_the_store(sqlite_url: str) -> None:
    async def main() -> None:
        store = await opened(sqlite_url, idle_timeout=timedelta(seconds=1))
        sid = (await store.sessions.create("gpt")).session_id
        await store.messages.append(sid, "user", "soon idle")
        threads = threading.active_count()
        scheduler = await store.lifecycle.start_scheduler(every=timedelta(milliseconds=100))
        assert scheduler.running
        assert threading.active_count() == threads  # a task, not the sync scheduler's thread
        assert any(t.get_name() == "sessionstore-scheduler" for t in asyncio.all_tasks())
        for _ in range(100):
            if (await store.sessions.get(sid)).status == "archived":
                break
            await asyncio.sleep(0.05)
        assert (await store.sessions.get(sid)).status == "archived"
        assert scheduler.runs >= 1 and scheduler.last_error is None
        await store.close()
        assert not scheduler.running
        with pytest.raises(StoreClosedError):
            await store.sessions.get(sid)
        with pytest.raises(InvalidInput):
            await store.lifecycle.start_scheduler(every=timedelta(0))

    run(main)


def test_a_views_scheduler_ends_when_the_store_closes(sqlite_url: str) -> None:
    async def main() -> None:
        store = await opened(sqlite_url)
        view = store.for_user("chat", "alice")
        scheduler = await view.lifecycle.start_scheduler(every=timedelta(milliseconds=20))
        await asyncio.sleep(0.05)
        await store.close()  # the view's scheduler is not the store's to stop
        for _ in range(100):
            if not scheduler.running:
                break
            await asyncio.sleep(0.02)
        assert not scheduler.running
        await scheduler.stop()

    run(main)


def test_the_item_methods_through_the_async_store(backend_url: str) -> None:
    async def main() -> None:
        async with await opened(backend_url) as store:
            sid = (await store.sessions.create("gpt")).session_id
            first = await store.messages.append(
                sid, "user", "a\x00b", kind="message", payload={"k": [1]}, client_msg_id="c1"
            )
            assert (await store.messages.get_by_client_id(sid, "c1")).content == "a\x00b"
            assert first.payload == {"k": [1]}
            await store.messages.append(sid, "assistant", "two", tokens=3)
            await store.messages.append(sid, "assistant", "three", tokens=3)
            assert [m.content for m in await store.messages.since(sid, first.timestamp)] == [
                "two",
                "three",
            ]
            assert [m.content for m in await store.messages.window(sid, 3)] == ["three"]
            fork = await store.sessions.fork(sid, 2)
            assert (await store.sessions.get(fork.session_id)).message_count == 2
            popped = await store.messages.pop(sid)
            assert popped is not None and popped.content == "three"
            await store.messages.delete_by_client_id(sid, "c1")
            await store.state.update(sid, {"step": 1})
            assert await store.state.get(sid) == {"step": 1}
            assert await store.messages.clear(sid) == 1
            assert await store.messages.recent(sid, 10) == []

    run(main)
