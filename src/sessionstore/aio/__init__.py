"""sessionstore from an event loop: :class:`AsyncSessionStore`, every call awaitable.

::

    from sessionstore.aio import AsyncSessionStore

    store = await AsyncSessionStore.open("postgresql+asyncpg://app@db/chat")
    await store.messages.append(session_id, "user", "Hello")
    async with store.transaction() as tx:
        await tx.messages.append(session_id, "assistant", "Hi!")
    await store.close()

**The design: a bounded thread executor over the sync core.** Each async
method awaits the sync store's own method, run on one of the store's
worker threads (:mod:`.workers`); the async layer holds no SQL, no
validation and no retry logic, so the sync and async stores cannot drift
(:mod:`.repositories` declares each method in one line, and
``tests/test_async_surface.py`` fails when a sync method lacks its line).
A transaction keeps one thread from ``BEGIN`` to commit
(:mod:`.transaction`); cancellation waits for a running call to finish, so
nothing is left half done (:mod:`.workers`).

**Why, measured** (``benchmarks/test_bench_async.py``, full mode, 29
November 2026, on a 2-core machine shared with other work: load average 7
to 9; a SQLite file; p50 of 2,000 awaited calls from one task):

====================================================  ========  ==============
way                                                   append    recent(50) of
                                                                20,000
====================================================  ========  ==============
the sync store, called directly (no event loop)        122 us    142 us
this design: the sync core on a worker thread          277 us    402 us
SQLAlchemy asyncio: ``AsyncEngine`` on aiosqlite,      903 us    692 us
the same repository code through ``conn.run_sync``
====================================================  ========  ==============

(An earlier run of the same file, at load average 12 to 14: 106, 169 and
714 us for append; 120, 194 and 606 us for recent.) SQLAlchemy's asyncio
layer runs the sync code in a greenlet *on the event loop's thread*, and
every driver call (each fetch included) is a hop to aiosqlite's own thread
and back: 3.3 to 4.2 times this design's append and 1.7 to 3.1 times its
``recent``, while the store's Python work (validation, record building, a
2,000-message batch) blocks the loop for its whole length. Native async
drivers (asyncpg, aiosqlite used directly) would need a second copy of the
statement execution the hot path does on the DBAPI connection, which is
what one implementation rules out. The threads cost a hand-off each way
(60 to 260 us at the p50, growing with the machine's load: a woken worker
waits for a core) and leave the loop free: on it, a call is a submit and a
resume. 64 tasks x 100 appends took 2.9 s on SQLite to one session and
2.3 s to 64 sessions, against 2.6 s and 1.6 s for the sync store written
by 8 threads, and 6.6 s and 3.3 s on PostgreSQL against 5.9 s and 2.7 s;
no errors, no gaps. That gap is the GIL's: the loop and the workers take
turns holding it, and a loop callback can wait up to the interpreter's
switch interval (5 ms) for a worker to yield it.
"""

from .repositories import (
    AsyncHealth,
    AsyncItems,
    AsyncLifecycle,
    AsyncMessages,
    AsyncSearch,
    AsyncSessions,
    AsyncState,
)
from .scheduler import AsyncScheduler
from .scoped import AsyncScopedStore
from .store import AsyncSessionStore, sync_url
from .transaction import AsyncTransaction

__all__ = [
    "AsyncHealth",
    "AsyncItems",
    "AsyncLifecycle",
    "AsyncMessages",
    "AsyncScheduler",
    "AsyncScopedStore",
    "AsyncSearch",
    "AsyncSessionStore",
    "AsyncSessions",
    "AsyncState",
    "AsyncTransaction",
    "sync_url",
]
