"""No event-loop stalls: the async store runs nothing heavy on the event loop's thread.

A workload touching every kind of call (opening, appends, a 2,000-message
batch, reads, search, export, a transaction, archive, sweep, health,
backup, iteration, closing) runs on a loop in asyncio's debug mode with a
5 ms slow-callback threshold, the ``asyncio`` logger captured: no slow
callback is the store's, one in which the loop thread itself spent 20 ms of
CPU (see :class:`tests.async_bridge.MeasuredLoop` for how preemptions, GIL
waits and garbage collections are told apart, and ``STALL_CPU`` for why 20). The
same check flags the sync store called from a coroutine, so it can fail.
And every SQL statement of the workload ran on a worker thread, never on
the loop's (traced on each SQLite connection).

The contract suite runs through the same loop and check (``conftest.py``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from sqlalchemy import event

from sessionstore import SessionStore, StoreConfig
from sessionstore.aio import AsyncSessionStore
from sessionstore.engine import build_engine

from .async_bridge import LoopThread, Slow


def _on_debug_loop(main: Callable[[], Coroutine[Any, Any, None]]) -> list[Slow]:
    loop = LoopThread()
    try:
        loop.run(main())
    finally:
        loop.close()
    return loop.slow.by_the_store()


#: Built before the loop runs: the test's own work is not the store's.
BATCH = [{"role": "assistant", "content": f"batch {i} " * 20} for i in range(2000)]


async def _workload(store: AsyncSessionStore, tmp_path: Path) -> None:
    sid = (await store.sessions.create("gpt", title="stalls")).session_id
    for i in range(50):
        await store.messages.append(sid, "user", f"message {i} about write-ahead logs")
    await store.messages.append_many(sid, BATCH)
    await asyncio.gather(*(store.messages.recent(sid, 50) for _ in range(20)))
    await store.messages.history(sid, limit=100)
    assert len([m async for m in store.messages.iterate(sid, batch=300)]) == 2050
    await store.search.sessions("write-ahead")
    await store.search.messages("batch", session_id=sid)
    await store.export(sid, format="markdown")
    async with store.transaction() as tx:
        for i in range(20):
            await tx.messages.append(sid, "tool", f"tx {i}")
        await tx.sessions.rename(sid, "renamed")
    await store.stats()
    await store.health.check(quick=True)
    await store.backup(tmp_path / "stalls-backup.db")
    other = (await store.sessions.create("gpt")).session_id
    await store.lifecycle.archive(other)
    await store.lifecycle.sweep()


def test_the_async_store_never_stalls_the_loop_and_runs_no_sql_on_it(tmp_path: Path) -> None:
    engine = build_engine(StoreConfig(url=f"sqlite:///{tmp_path / 'stalls.db'}"))
    statements: dict[int, int] = {}

    @event.listens_for(engine, "connect")
    def trace(dbapi: Any, _record: Any) -> None:
        def count(_sql: str) -> None:
            ident = threading.get_ident()
            statements[ident] = statements.get(ident, 0) + 1

        dbapi.set_trace_callback(count)

    loop_thread: list[int] = []

    async def main() -> None:
        loop_thread.append(threading.get_ident())
        store = await AsyncSessionStore.from_engine(engine)
        await _workload(store, tmp_path)
        await store.close()

    stalls = _on_debug_loop(main)
    engine.dispose()
    assert stalls == []
    assert sum(statements.values()) > 2000
    assert loop_thread[0] not in statements, "SQL ran on the event loop's thread"


def test_the_check_flags_the_sync_store_called_on_the_loop(tmp_path: Path) -> None:
    async def main() -> None:
        with SessionStore.open(f"sqlite:///{tmp_path / 'blocking.db'}") as store:
            sid = store.sessions.create("gpt").session_id
            # What the async store exists to avoid: the sync core on the loop's thread.
            store.messages.append_many(
                sid, [{"role": "user", "content": f"m {i} " * 20} for i in range(2000)]
            )

    stalls = _on_debug_loop(main)
    assert stalls, "a 2,000-message batch on the loop's thread went unnoticed"
    assert all(slow.step is not None and slow.step.cpu >= 0.005 for slow in stalls)
