"""Cancellation: a task cancelled anywhere in an append, a batch, an archive or a
transaction has committed all of it or none, and gave its connection back.

500 operations (seeded) are each cancelled at a random point: before their
lane starts them, after a random number of event-loop turns, or after a
random few milliseconds (while a lane runs them, or while a transaction's
block awaits its next statement or its commit). Every write carries client
ids or a metadata key, so what it would have written can be looked for
afterwards: all of it, or none. Afterwards the lanes are idle, the pool holds
no connection beyond the idle ones the hot path keeps (as before), and every
session's counters agree with its rows.
"""

from __future__ import annotations

import asyncio
import io
import random
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from sessionstore import MessageNotFound
from sessionstore.aio import AsyncSessionStore

ROUNDS = 500
SESSIONS = 8


async def _stored(store: AsyncSessionStore, sid: str, ids: list[str]) -> int:
    found = 0
    for cid in ids:
        try:
            await store.messages.get_by_client_id(sid, cid)
            found += 1
        except MessageNotFound:
            pass
    return found


async def _idle(store: AsyncSessionStore) -> bool:
    """Every lane idle again (a call cancelled before it started leaves its lane as soon
    as the lane has skipped it)."""
    for _ in range(2000):
        if store.busy_workers == 0:
            return True
        await asyncio.sleep(0.001)
    return False


async def _cancel_at_random(rng: random.Random, work: Callable[[], Awaitable[Any]]) -> bool:
    """Run ``work`` in a task and cancel it at a random point; True if it was cancelled."""
    task = asyncio.ensure_future(work())
    how = rng.randrange(3)
    if how == 1:
        for _ in range(rng.randrange(1, 12)):
            await asyncio.sleep(0)
    elif how == 2:
        await asyncio.sleep(rng.uniform(0, 0.004))
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return True
    return False


def test_cancelled_at_random_points_nothing_is_half_written_or_leaked(backend_url: str) -> None:
    rng = random.Random(13)

    async def main() -> None:
        async with await AsyncSessionStore.open(backend_url, max_workers=4) as store:
            sids = [(await store.sessions.create("gpt")).session_id for _ in range(SESSIONS)]
            archivable = [(await store.sessions.create("gpt")).session_id for _ in range(60)]
            # Warm every path once, so the idle connections the hot path keeps are in place.
            await store.messages.append(sids[0], "user", "warm", client_msg_id="warm")
            async with store.transaction() as tx:
                await tx.messages.append(sids[0], "user", "warm tx")
            before = await store.pool_status()
            checks: list[Callable[[], Awaitable[bool]]] = []
            cancelled = 0
            for n in range(ROUNDS):
                sid = rng.choice(sids)
                kind = rng.choice(("append", "batch", "transaction", "archive"))
                if kind == "archive" and not archivable:
                    kind = "append"
                if kind == "append":
                    ids = [f"a{n}"]

                    async def work(sid: str = sid, ids: list[str] = ids) -> Any:
                        return await store.messages.append(sid, "user", "x", client_msg_id=ids[0])
                elif kind == "batch":
                    ids = [f"b{n}-{i}" for i in range(5)]

                    async def work(sid: str = sid, ids: list[str] = ids) -> Any:
                        items = [{"role": "user", "content": c, "client_msg_id": c} for c in ids]
                        return await store.messages.append_many(sid, items)
                elif kind == "transaction":
                    ids = [f"t{n}-{i}" for i in range(3)]

                    async def work(sid: str = sid, ids: list[str] = ids, n: int = n) -> Any:
                        async with store.transaction() as tx:
                            for cid in ids:
                                await tx.messages.append(sid, "user", cid, client_msg_id=cid)
                            await tx.sessions.set_metadata(sid, f"t{n}", "done")
                else:
                    ids = []
                    target = archivable.pop()

                    async def work(target: str = target) -> Any:
                        return await store.lifecycle.archive(target)

                cancelled += await _cancel_at_random(rng, work)

                async def whole(
                    sid: str = sid, ids: list[str] = ids, kind: str = kind, n: int = n
                ) -> bool:
                    found = await _stored(store, sid, ids)
                    if kind == "transaction":
                        marked = await store.sessions.get_metadata(sid, f"t{n}") is not None
                        return found in (0, len(ids)) and marked == (found == len(ids))
                    return found in (0, len(ids))

                checks.append(whole)
                assert await _idle(store), f"round {n}: a lane stayed busy"
            partial = [n for n, check in enumerate(checks) if not await check()]
            assert partial == []
            assert cancelled > ROUNDS // 2  # most landed while something was under way
            # An archive is its snapshot and its status, together.
            for sid in archivable:
                assert (await store.sessions.get(sid)).status == "active"
                assert await store.lifecycle.snapshots(sid) == []
            # Counters agree with the rows; sequence numbers have no gap.
            for sid in sids:
                session = await store.sessions.get(sid)
                seqs = [m.sequence_number async for m in store.messages.iterate(sid)]
                assert seqs == list(range(1, session.last_seq + 1))
                assert session.message_count == len(seqs)
            after = await store.pool_status()
            assert (after.size, after.checked_out, after.overflow, after.kept) == (
                before.size,
                before.checked_out,
                before.overflow,
                before.kept,
            )
            assert after.checked_out == after.kept  # no connection out beyond the idle ones

    asyncio.run(main())


@pytest.mark.parametrize("stage", ["queued", "running"])
def test_a_call_cancelled_before_or_while_it_runs_ends_whole(sqlite_url: str, stage: str) -> None:
    async def main() -> None:
        async with await AsyncSessionStore.open(sqlite_url, max_workers=1) as store:
            sid = (await store.sessions.create("gpt")).session_id
            gate = asyncio.Event()

            async def hold_the_lane() -> None:
                async with store.transaction() as tx:
                    await tx.messages.append(sid, "user", "held")
                    await gate.wait()

            holder = asyncio.create_task(hold_the_lane())
            await asyncio.sleep(0.01)
            # With one lane held, this call waits for a lane: cancelled there, nothing ran.
            waiting = asyncio.create_task(
                store.messages.append(sid, "user", "w", client_msg_id="w")
            )
            await asyncio.sleep(0.01)
            if stage == "queued":
                waiting.cancel()
                gate.set()
                await holder
                with pytest.raises(asyncio.CancelledError):
                    await waiting
                with pytest.raises(MessageNotFound):
                    await store.messages.get_by_client_id(sid, "w")
            else:
                gate.set()
                await holder
                await asyncio.sleep(0)
                waiting.cancel()
                try:
                    await waiting
                    stored = 1
                except asyncio.CancelledError:
                    stored = await _stored(store, sid, ["w"])
                assert stored in (0, 1)
            assert store.busy_workers == 0
            assert (await store.sessions.get(sid)).message_count == 1 + (
                await _stored(store, sid, ["w"])
            )

    asyncio.run(main())


class HeldWriter(io.StringIO):
    """A text file whose first write waits until the test lets it go: a call held mid-run."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def write(self, text: str) -> int:
        self.entered.set()
        self.release.wait(10)
        return super().write(text)


async def _entered(writer: HeldWriter) -> None:
    while not writer.entered.is_set():
        await asyncio.sleep(0.001)


def test_a_task_cancelled_mid_call_ends_only_when_the_call_has(sqlite_url: str) -> None:
    async def main() -> None:
        async with await AsyncSessionStore.open(sqlite_url) as store:
            sid = (await store.sessions.create("gpt")).session_id
            await store.messages.append(sid, "user", "exported whole")
            writer = HeldWriter()
            task = asyncio.create_task(store.export(sid, out=writer))
            await _entered(writer)
            task.cancel()
            # The call is still running on its lane: the task has not ended.
            done, _ = await asyncio.wait({task}, timeout=0.1)
            assert not done
            assert store.busy_workers == 1
            writer.release.set()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert "exported whole" in writer.getvalue()
            assert store.busy_workers == 0

    asyncio.run(main())


def test_cancelled_before_its_commit_starts_a_transaction_rolls_back_and_unlocks(
    sqlite_url: str,
) -> None:
    async def main() -> None:
        async with await AsyncSessionStore.open(sqlite_url, busy_timeout=2) as store:
            sid = (await store.sessions.create("gpt")).session_id
            writer = HeldWriter()
            exports: list[asyncio.Task[Any]] = []

            async def block() -> None:
                async with store.transaction() as tx:
                    await tx.messages.append(sid, "user", "never", client_msg_id="never")
                    # A call of this context keeps the transaction's lane busy, so the
                    # commit queues behind it when the block ends.
                    exports.append(asyncio.create_task(store.export(sid, out=writer)))
                    await _entered(writer)

            task = asyncio.create_task(block())
            await _entered(writer)
            await asyncio.sleep(0.01)  # the block has ended: __aexit__ waits for the lane
            task.cancel()
            await asyncio.sleep(0.01)
            writer.release.set()
            with pytest.raises(asyncio.CancelledError):
                await task
            await exports[0]
            with pytest.raises(MessageNotFound):
                await store.messages.get_by_client_id(sid, "never")
            # The writers' lock was released by the lane that held it: a writer on
            # another thread (not a lane) goes ahead at once, as does a transaction.
            await asyncio.to_thread(store.sync.messages.append, sid, "user", "next")
            async with store.transaction() as tx:
                await tx.messages.append(sid, "user", "after")
            assert (await store.sessions.get(sid)).message_count == 2
            assert store.busy_workers == 0

    asyncio.run(main())
