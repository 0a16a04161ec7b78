"""The async store's worker threads: a bounded set of lanes, and cancellation that waits.

Every awaitable call of :class:`sessionstore.aio.AsyncSessionStore` is one
call of the sync core, run on a **lane**: a worker thread with its own
queue. A store has at most ``max_workers`` lanes. A call goes to an idle
lane, or waits in a queue from which the next lane to finish a call takes
it directly (no trip through the event loop between two calls). A
transaction (``async with store.transaction()``) gets a lane of its own,
from its ``BEGIN`` to its commit or rollback, because the sync core's
transaction belongs to the thread that began it (the writers' lock is a
``threading.RLock`` and the nesting check is thread-local). Calls made in
the context of an open transaction, on the store itself as well as on
``tx``, go to that transaction's lane, so the sync core sees them from the
thread that holds it and answers as it does for a sync caller
(``NestedTransactionError`` for a write on the store, the last commit for
a read).

**Cancellation.** A call cancelled before its lane started it is dropped:
nothing ran. A call cancelled while its lane runs it cannot be stopped
halfway (the sync core's transaction is in that thread), so the cancelled
task waits, cancellation deferred, until the call has finished (committed
or rolled back, its connection back in the pool) and then raises
:class:`asyncio.CancelledError`. So a cancelled task never leaves a
transaction half done or a connection checked out, and a store's lanes are
all idle once every task that used them has ended. The wait is bounded by
the call itself: at most the busy deadline for a write that waits for a
lock.
"""

from __future__ import annotations

import _thread
import asyncio
import contextvars
import queue
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from ..errors import InvalidInput, StoreClosedError, shown

__all__ = ["PINNED", "Lane", "Pin", "Workers", "outcome", "run_on", "settle"]

T = TypeVar("T")

#: The transaction open in this context (``async with store.transaction()``), if any.
PINNED: contextvars.ContextVar[Pin | None] = contextvars.ContextVar(
    "sessionstore_pinned_lane", default=None
)
_STOP: Any = object()
MAX_WORKERS = 1024


Job = tuple["Future[Any]", Callable[[], Any], bool]


class Lane:
    """One worker thread running the calls it is given, in order.

    A lane runs either the store's calls, one after another (after each it
    takes the next waiting one itself, without a trip through the event
    loop, or goes idle), or one transaction's calls, given to it alone until
    the transaction ends. Started with ``_thread.start_new_thread``, which
    returns at once: ``threading.Thread.start`` waits until the new thread
    runs, and that wait, on a loaded machine, would stall the event loop.
    """

    def __init__(self, workers: Workers) -> None:
        self.workers = workers
        #: Held by a transaction, from its ``BEGIN`` to its lane's release (lock held).
        self.held = False
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._ended = threading.Event()
        self._ident: int | None = None
        _thread.start_new_thread(self._loop, ())

    def submit(self, work: Callable[[], T]) -> Future[T]:
        """A call of the transaction that holds this lane."""
        future: Future[T] = Future()
        self._queue.put((future, work, False))
        return future

    def give(self, job: Job) -> None:
        self._queue.put(job)

    def stop(self) -> None:
        self._queue.put(_STOP)

    def join(self, timeout: float | None) -> None:
        if self._ident != threading.get_ident():
            self._ended.wait(timeout)

    def _loop(self) -> None:
        self._ident = threading.get_ident()
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                job: Job | None = item
                del item
                while job is not None:
                    future, work, shared = job
                    outcome = _call(future, work)
                    # Idle (or on to the next call) before the caller hears back, so
                    # that a caller who has its answer finds the lanes as it left them.
                    job = self.workers.after(self) if shared else None
                    _deliver(future, outcome)
                    del future, work, outcome
        finally:
            self._ended.set()


def _call(future: Future[Any], work: Callable[[], Any]) -> tuple[bool, Any] | None:
    """Run ``work`` unless its caller was cancelled before it started (None)."""
    if not future.set_running_or_notify_cancel():
        return None
    try:
        return True, work()
    except BaseException as exc:
        return False, exc


def _deliver(future: Future[Any], outcome: tuple[bool, Any] | None) -> None:
    if outcome is None:
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


async def settle(future: Future[Any], on_cancel: Callable[[], None] | None = None) -> bool:
    """Wait until a call already submitted has finished, through any number of
    cancellations (never cancelling the call itself); True if the task was cancelled.

    ``on_cancel`` runs at the first cancellation. The call's own outcome stays in
    ``future``.
    """
    cancelled = False
    while not future.done():
        waiter = asyncio.wrap_future(future)
        try:
            # wait() never cancels what it waits for, so the call is never dropped.
            await asyncio.wait((waiter,))
        except asyncio.CancelledError:
            if not cancelled and on_cancel is not None:
                on_cancel()
            cancelled = True
        finally:
            if waiter.done() and not waiter.cancelled():
                # Retrieved here, so that a waiter left behind never logs it as lost.
                waiter.exception()
    return cancelled


class Workers:
    """A store's lanes: at most ``size`` threads, started as they are first needed.

    A call goes to an idle lane, or waits in ``pending`` for the first lane
    that finishes; a transaction waits (on the event loop) for a lane of its
    own, and is served before waiting calls.
    """

    def __init__(self, size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_WORKERS:
            raise InvalidInput(
                f"max_workers must be an integer from 1 to {MAX_WORKERS}, not {shown(size)}"
            )
        self.size = size
        self._lanes: list[Lane] = []
        self._idle: deque[Lane] = deque()
        self._pending: deque[Job] = deque()
        self._waiters: deque[asyncio.Future[Lane]] = deque()
        self._lock = threading.Lock()
        self.closed = False

    def _free_lane(self) -> Lane | None:
        """An idle lane, or a new one while there are fewer than ``size`` (lock held)."""
        if self._idle:
            return self._idle.pop()
        if len(self._lanes) < self.size:
            lane = Lane(self)
            self._lanes.append(lane)
            return lane
        return None

    # --- calls ----------------------------------------------------------------------------

    def submit(self, work: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        job: Job = (future, work, True)
        with self._lock:
            if self.closed:
                raise StoreClosedError()
            lane = self._free_lane()
            if lane is None:
                self._pending.append(job)
                return future
        lane.give(job)
        return future

    async def run(self, work: Callable[[], T]) -> T:
        """``work()`` on a lane (this context's transaction lane, if one is open)."""
        pin = PINNED.get()
        if pin is not None and pin.open and pin.workers is self:
            return await run_on(pin.lane, work)
        return await outcome(self.submit(work))

    def after(self, lane: Lane) -> Job | None:
        """What ``lane`` does next, having finished a call (on the lane's thread)."""
        with self._lock:
            return self._reassign(lane, on_loop=False)

    def _reassign(self, lane: Lane, *, on_loop: bool) -> Job | None:
        # A waiting transaction first, then a waiting call; else the lane is idle.
        while self._waiters:
            waiter = self._waiters.popleft()
            if waiter.done():
                continue
            if on_loop and _running_loop() is waiter.get_loop():
                lane.held = True
                waiter.set_result(lane)
                return None
            try:
                waiter.get_loop().call_soon_threadsafe(_hand_over, self, waiter, lane)
            except RuntimeError:
                continue  # its event loop has closed: nobody is waiting there
            lane.held = True
            return None
        while self._pending:
            job = self._pending.popleft()
            if not job[0].cancelled():
                return job
        self._idle.append(lane)
        return None

    # --- transactions: a lane of their own ---------------------------------------------------

    async def take(self) -> Lane:
        """A lane for one transaction alone, waiting on the event loop (cancellably)."""
        with self._lock:
            if self.closed:
                raise StoreClosedError()
            lane = self._free_lane()
            if lane is not None:
                lane.held = True
                return lane
            waiter: asyncio.Future[Lane] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # Handed a lane in the same moment as cancelled: pass it on.
                self.release(waiter.result())
            raise

    def release(self, lane: Lane) -> None:
        """A transaction's lane, given back (on the event loop's thread)."""
        with self._lock:
            lane.held = False
            if self.closed:
                # Closed while the transaction held it: it stops now that it has ended.
                lane.stop()
                return
            job = self._reassign(lane, on_loop=True)
        if job is not None:
            lane.give(job)

    @property
    def busy(self) -> int:
        """Lanes running a call or held by a transaction right now."""
        with self._lock:
            return len(self._lanes) - len(self._idle)

    def close(self, *, join: float | None = None) -> None:
        """Refuse new calls, fail the waiting ones, and stop every lane once its calls are
        done; ``join`` waits that long for them."""
        with self._lock:
            self.closed = True
            lanes, self._lanes = self._lanes, []
            pending, self._pending = self._pending, deque()
            self._idle.clear()
            # A lane an open transaction holds keeps serving it until it commits or
            # rolls back (release stops it then): stopped now, the transaction's next
            # call, or its end, would wait forever, holding the database's write lock.
            stopping = [lane for lane in lanes if not lane.held]
        for future, _work, _shared in pending:
            if future.set_running_or_notify_cancel():
                future.set_exception(StoreClosedError())
        for lane in stopping:
            lane.stop()
        if join is not None:
            for lane in stopping:
                lane.join(join)


class Pin:
    """One transaction's lane: its calls run there while it is open."""

    __slots__ = ("lane", "open", "workers")

    def __init__(self, workers: Workers, lane: Lane) -> None:
        self.workers = workers
        self.lane = lane
        self.open = True

    async def run(self, work: Callable[[], T]) -> T:
        if self.open:
            return await run_on(self.lane, work)
        # Ended: the sync core refuses the call (InvalidStateError), from any lane.
        return await self.workers.run(work)


async def run_on(lane: Lane, work: Callable[[], T]) -> T:
    """``work()`` on ``lane``, a transaction's."""
    return await outcome(lane.submit(work))


async def outcome(future: Future[T]) -> T:
    """The result of a submitted call; cancelled while it runs, it finishes first."""
    try:
        return await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        if future.cancel() or future.cancelled():
            raise  # never started
        await settle(future)
        raise


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _hand_over(workers: Workers, waiter: asyncio.Future[Lane], lane: Lane) -> None:
    if waiter.done():
        workers.release(lane)  # its transaction was cancelled meanwhile
    else:
        waiter.set_result(lane)
