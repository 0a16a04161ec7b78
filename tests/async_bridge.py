"""A sync face on :class:`AsyncSessionStore`, so that the contract tests run through it unchanged.

:class:`LoopThread` runs one event loop in a background thread, in asyncio's
debug mode with a 5 ms slow-callback threshold, and records every slow
callback asyncio logs, with whether the OS preempted the loop thread
during it (:class:`MeasuredLoop`). :class:`Bridge` wraps an object of
``sessionstore.aio``: an attribute that is another such object is bridged
in turn, a call whose result is awaitable is run to its end on the loop, an
async iterator becomes an iterator and an async context manager a context
manager. Nothing else is translated: records, errors and return values are
the async store's own.

Each calling thread runs its coroutines in a context of its own, kept from
call to call, as a task keeps its context across awaits: so ``with
store.transaction()`` on the bridge pins the calls that thread makes until
the block ends, as the sync store's thread-local transaction does.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import inspect
import logging
import resource
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")

#: asyncio logs every callback that runs longer than this (debug mode).
SLOW_CALLBACK = 0.005
#: A logged callback is a stall of the store's when the loop thread itself spent
#: this much CPU in it. Between the 5 ms asyncio logs at and this, a test's own
#: code between two awaits (building a 2,000-message batch, collecting an
#: iteration) crossed the line on a busy 2-core machine; a store call run on the
#: loop's thread (a batch, an export, any SQL) takes far more.
STALL_CPU = 0.020


@dataclass(frozen=True)
class Step:
    """One callback the loop ran: its wall and CPU time, and whether the OS preempted it."""

    wall: float
    cpu: float
    preempted: bool
    #: CPU time of garbage collections the callback happened to trigger.
    gc: float
    #: When it ended (``time.perf_counter()``).
    ended: float


class MeasuredLoop(asyncio.SelectorEventLoop):
    """An event loop that measures each callback it runs (on its own thread).

    asyncio's debug mode says a callback took 8 ms; this says how much of that
    the loop thread spent running it (its CPU time). The rest it spent off the
    CPU: preempted by the OS (on a machine busier than its cores a 5 ms
    threshold is crossed by preemptions alone, whoever's callback runs), or
    waiting for the GIL that another thread of the process held (CPython
    takes it back from a thread after a 5 ms switch interval), or blocked in
    a system call. It also counts the garbage collections the callback
    triggered (a full one takes tens of milliseconds in a test process,
    whichever thread's allocation sets it off). Blocking calls of the store on
    the loop thread are caught apart, by ``tests/test_async_stalls.py``, which
    traces every statement's thread.
    """

    #: Garbage collection time on the loop thread so far.
    collecting = 0.0
    _collection_began = 0.0

    def __init__(self) -> None:
        super().__init__()
        self._ident: int | None = None
        gc.callbacks.append(self._on_collection)

    def run_forever(self) -> None:
        self._ident = threading.get_ident()
        try:
            super().run_forever()
        finally:
            gc.callbacks.remove(self._on_collection)

    def _on_collection(self, phase: str, info: dict[str, int]) -> None:
        if threading.get_ident() != self._ident:
            return
        if phase == "start":
            self._collection_began = time.thread_time()
        else:
            self.collecting += time.thread_time() - self._collection_began

    def _measured(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            before = resource.getrusage(resource.RUSAGE_THREAD)
            cpu, wall, collecting = time.thread_time(), time.perf_counter(), self.collecting
            try:
                return callback(*args)
            finally:
                ended = time.perf_counter()
                after = resource.getrusage(resource.RUSAGE_THREAD)
                run.step = Step(  # type: ignore[attr-defined]
                    ended - wall,
                    time.thread_time() - cpu,
                    after.ru_nivcsw > before.ru_nivcsw,
                    self.collecting - collecting,
                    ended,
                )

        run.__qualname__ = getattr(callback, "__qualname__", "callback")
        return run

    def call_soon(self, callback: Any, *args: Any, context: Any = None) -> asyncio.Handle:
        return super().call_soon(self._measured(callback), *args, context=context)

    def call_soon_threadsafe(
        self, callback: Any, *args: Any, context: Any = None
    ) -> asyncio.Handle:
        return super().call_soon_threadsafe(self._measured(callback), *args, context=context)

    def call_at(
        self, when: float, callback: Any, *args: Any, context: Any = None
    ) -> asyncio.TimerHandle:
        return super().call_at(when, self._measured(callback), *args, context=context)


@dataclass(frozen=True)
class Slow:
    message: str
    step: Step | None

    @property
    def by_the_store(self) -> bool:
        """The loop thread itself ran the callback past the threshold (CPU time, less
        the interpreter's garbage collections, which any allocation may trigger).

        A callback not measured is asyncio's own (the self-pipe, I/O readiness):
        every callback anything else schedules goes through ``call_soon``,
        ``call_soon_threadsafe`` or ``call_at``."""
        return self.step is not None and self.step.cpu - self.step.gc >= STALL_CPU


class SlowCallbacks(logging.Handler):
    """The asyncio logger's "Executing … took …" records, as they come."""

    def __init__(self, loop: MeasuredLoop) -> None:
        super().__init__(logging.WARNING)
        self._loop = loop
        self.records: list[Slow] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Executing") and " took " in message:
            # Logged on the loop's thread right after the callback it names, which
            # is still the loop's current handle.
            handle = getattr(self._loop, "_current_handle", None)
            step = getattr(getattr(handle, "_callback", None), "step", None)
            self.records.append(Slow(message, step))

    def by_the_store(self, since: int = 0) -> list[Slow]:
        return [slow for slow in self.records[since:] if slow.by_the_store]


class LoopThread:
    """One event loop running in a daemon thread, in debug mode."""

    def __init__(self) -> None:
        self.loop = MeasuredLoop()
        self.loop.set_debug(True)
        self.loop.slow_callback_duration = SLOW_CALLBACK
        self.slow = SlowCallbacks(self.loop)
        logging.getLogger("asyncio").addHandler(self.slow)
        self._contexts = threading.local()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def _context(self) -> contextvars.Context:
        context: contextvars.Context | None = getattr(self._contexts, "context", None)
        if context is None:
            context = contextvars.Context()
            self._contexts.context = context
        return context

    def run(self, awaitable: Awaitable[T]) -> T:
        """Run ``awaitable`` on the loop, in this thread's context, and return its result."""
        context = self._context()
        done: Future[T] = Future()

        async def main() -> T:
            return await awaitable

        def start() -> None:
            task = self.loop.create_task(main(), context=context)

            def finished(task: asyncio.Task[T]) -> None:
                if task.cancelled():
                    done.cancel()
                elif (exc := task.exception()) is not None:
                    done.set_exception(exc)
                else:
                    done.set_result(task.result())

            task.add_done_callback(finished)

        self.loop.call_soon_threadsafe(start)
        return done.result()

    def close(self) -> None:
        logging.getLogger("asyncio").removeHandler(self.slow)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class Bridge:
    """A sync face on an object of ``sessionstore.aio``."""

    def __init__(self, target: Any, loop: LoopThread) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_loop", loop)

    @property
    def target(self) -> Any:
        return self._target

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if callable(value) and not isinstance(value, type) and not _bridged(value):
            return self._call(value)
        return self._bridge(value)

    def _call(self, function: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            return self._bridge(function(*args, **kwargs))

        call.__signature__ = inspect.signature(function)  # type: ignore[attr-defined]
        call.__name__ = getattr(function, "__name__", "call")
        return call

    def _bridge(self, value: Any) -> Any:
        loop = self._loop
        # Iterators first: ``iterate()``'s result is also awaitable, and awaiting
        # it gives back the same object (its checks made at once, as the sync call does).
        if isinstance(value, AsyncIterator):
            if inspect.isawaitable(value):
                value = loop.run(value)
            return _iterate(value, loop)
        if inspect.isawaitable(value):
            return self._bridge(loop.run(value))
        if _bridged(value):
            return Bridge(value, loop)
        return value

    def __enter__(self) -> Any:
        entered = self._loop.run(self._target.__aenter__())
        return self if entered is self._target else self._bridge(entered)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        self._loop.run(self._target.__aexit__(exc_type, exc, tb))
        return False

    def __repr__(self) -> str:
        return f"<Bridge {self._target!r}>"


def _bridged(value: Any) -> bool:
    """An object of the async store (a repository, a transaction, a scheduler, the store)."""
    return type(value).__module__.startswith("sessionstore.aio") and not callable(value)


def _iterate(iterator: AsyncIterator[Any], loop: LoopThread) -> Iterator[Any]:
    try:
        while True:
            try:
                item = loop.run(iterator.__anext__())
            except StopAsyncIteration:
                return
            yield item
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            loop.run(aclose())
