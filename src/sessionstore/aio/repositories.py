"""The async faces of the sync repositories: one line per method, no logic of their own.

Each ``Async*`` class wraps one object of the sync core (``store.sessions``,
``store.messages``, …) and declares each public method as
``name = awaitable(SyncClass.name)``: a coroutine method with the sync
method's signature, types and docstring that runs the sync method on the
store's lanes (:mod:`sessionstore.aio.workers`). Validation, SQL, retries
and error translation stay in the sync core, so a record, an error or a
refusal is the same object either way. A method that returns an iterator
is declared with :func:`async_iterator` and is consumed with ``async for``.
Adding a method to a sync repository takes one line here;
``tests/test_async_surface.py`` fails until it is added.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Callable, Coroutine, Generator, Iterator
from datetime import timedelta
from functools import partial
from itertools import islice
from types import EllipsisType
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Generic,
    ParamSpec,
    Protocol,
    TypeVar,
    overload,
)

from ..health import Health
from ..lifecycle import Lifecycle
from ..messages import MessageRepository
from ..search import SearchRepository
from ..sessions import SessionRepository
from ..state import StateRepository
from .scheduler import AsyncScheduler

__all__ = [
    "AsyncHealth",
    "AsyncItems",
    "AsyncLifecycle",
    "AsyncMessages",
    "AsyncSearch",
    "AsyncSessions",
    "AsyncState",
    "Dispatch",
    "Wrapper",
    "async_iterator",
    "awaitable",
]

R = TypeVar("R")
P = ParamSpec("P")
T = TypeVar("T")
#: Items an async iterator takes from the sync iterator per trip to a lane.
CHUNK = 500


class Dispatch(Protocol):
    """Where a wrapper's calls run: the store's lanes, or one transaction's lane."""

    async def run(self, work: Callable[[], T]) -> T: ...


class Wrapper(Generic[R]):
    """The async face of one sync object; ``sync`` is the object itself."""

    __slots__ = ("_dispatch", "_target")

    def __init__(self, target: R, dispatch: Dispatch) -> None:
        self._target = target
        self._dispatch = dispatch

    @property
    def sync(self) -> R:
        """The sync object this wraps (its calls block: not for use on an event loop)."""
        return self._target

    if not TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any:
            # A method the sync object has and this class does not declare yet is
            # awaitable all the same (untyped until its line is added).
            if name.startswith("_"):
                raise AttributeError(name)
            value = getattr(self._target, name)
            if not inspect.ismethod(value):
                return value
            dispatch = self._dispatch

            async def call(*args: Any, **kwargs: Any) -> Any:
                return await dispatch.run(partial(value, *args, **kwargs))

            call.__name__ = name
            call.__signature__ = inspect.signature(value)
            return call


def _unbound_signature(method: Callable[..., Any]) -> inspect.Signature:
    signature = inspect.signature(method)
    params = list(signature.parameters.values())[1:]  # without self
    return signature.replace(parameters=params)


class awaitable(Generic[R, P, T]):
    """``name = awaitable(SyncClass.name)``: the sync method, awaited on a lane."""

    def __init__(self, method: Callable[Concatenate[R, P], T]) -> None:
        self._method = method
        self._signature = _unbound_signature(method)
        self.__doc__ = method.__doc__
        self._name = method.__name__

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> awaitable[R, P, T]: ...

    @overload
    def __get__(self, obj: Wrapper[R], owner: type[Any]) -> Callable[P, Coroutine[Any, Any, T]]: ...

    def __get__(self, obj: Wrapper[R] | None, owner: type[Any]) -> Any:
        if obj is None:
            return self
        method, target, dispatch = self._method, obj._target, obj._dispatch

        async def call(*args: P.args, **kwargs: P.kwargs) -> T:
            return await dispatch.run(partial(method, target, *args, **kwargs))

        call.__name__ = self._name
        call.__qualname__ = f"{type(obj).__name__}.{self._name}"
        call.__doc__ = self.__doc__
        call.__signature__ = self._signature  # type: ignore[attr-defined]
        return call


class AsyncItems(Generic[T]):
    """What an iterating method returns: ``async for item in ...``, or awaited first.

    ``await store.messages.iterate(sid)`` makes the call at once (its checks
    and first batch, as the sync call does) and gives back the same object;
    ``async for`` alone makes it at the first item. Items come :data:`CHUNK` at
    a time from a lane; ``aclose()`` closes the sync iterator (one left
    unfinished holds no transaction: each batch is a short read of its own).
    """

    def __init__(self, start: Callable[[], Iterator[T]], dispatch: Dispatch) -> None:
        self._start = start
        self._dispatch = dispatch
        self._items: Iterator[T] | None = None
        self._buffer: deque[T] = deque()
        self._done = False

    async def _begin(self) -> Iterator[T]:
        if self._items is None:
            start = self._start
            self._items = await self._dispatch.run(lambda: iter(start()))
        return self._items

    def __await__(self) -> Generator[Any, None, AsyncItems[T]]:
        return self._started().__await__()

    async def _started(self) -> AsyncItems[T]:
        await self._begin()
        return self

    def __aiter__(self) -> AsyncItems[T]:
        return self

    async def __anext__(self) -> T:
        if not self._buffer and not self._done:
            items = await self._begin()
            chunk = await self._dispatch.run(lambda: list(islice(items, CHUNK)))
            self._buffer.extend(chunk)
            self._done = len(chunk) < CHUNK
        if self._buffer:
            return self._buffer.popleft()
        await self.aclose()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self._done = True
        self._buffer.clear()
        close = getattr(self._items, "close", None)
        if close is not None:
            await self._dispatch.run(close)


class async_iterator(Generic[R, P, T]):
    """``name = async_iterator(SyncClass.name)``: a sync iterator, read with ``async for``."""

    def __init__(self, method: Callable[Concatenate[R, P], Iterator[T]]) -> None:
        self._method = method
        self._signature = _unbound_signature(method)
        self.__doc__ = method.__doc__
        self._name = method.__name__

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> async_iterator[R, P, T]: ...

    @overload
    def __get__(self, obj: Wrapper[R], owner: type[Any]) -> Callable[P, AsyncItems[T]]: ...

    def __get__(self, obj: Wrapper[R] | None, owner: type[Any]) -> Any:
        if obj is None:
            return self
        method, target, dispatch = self._method, obj._target, obj._dispatch

        def call(*args: P.args, **kwargs: P.kwargs) -> AsyncItems[T]:
            return AsyncItems(partial(method, target, *args, **kwargs), dispatch)

        call.__name__ = self._name
        call.__qualname__ = f"{type(obj).__name__}.{self._name}"
        call.__doc__ = self.__doc__
        call.__signature__ = self._signature  # type: ignore[attr-defined]
        return call


class AsyncSessions(Wrapper[SessionRepository]):
    """``store.sessions``, awaitable."""

    __slots__ = ()
    create = awaitable(SessionRepository.create)
    get = awaitable(SessionRepository.get)
    fork = awaitable(SessionRepository.fork)
    exists = awaitable(SessionRepository.exists)
    list = awaitable(SessionRepository.list)
    count = awaitable(SessionRepository.count)
    rename = awaitable(SessionRepository.rename)
    delete = awaitable(SessionRepository.delete)
    set_metadata = awaitable(SessionRepository.set_metadata)
    delete_metadata = awaitable(SessionRepository.delete_metadata)
    get_metadata = awaitable(SessionRepository.get_metadata)
    metadata = awaitable(SessionRepository.metadata)


class AsyncMessages(Wrapper[MessageRepository]):
    """``store.messages``, awaitable."""

    __slots__ = ()
    append = awaitable(MessageRepository.append)
    append_many = awaitable(MessageRepository.append_many)
    get = awaitable(MessageRepository.get)
    get_by_client_id = awaitable(MessageRepository.get_by_client_id)
    history = awaitable(MessageRepository.history)
    iterate = async_iterator(MessageRepository.iterate)
    items = awaitable(MessageRepository.items)
    recent = awaitable(MessageRepository.recent)
    since = awaitable(MessageRepository.since)
    window = awaitable(MessageRepository.window)
    edit = awaitable(MessageRepository.edit)
    delete = awaitable(MessageRepository.delete)
    delete_by_client_id = awaitable(MessageRepository.delete_by_client_id)
    clear = awaitable(MessageRepository.clear)
    pop = awaitable(MessageRepository.pop)


class AsyncSearch(Wrapper[SearchRepository]):
    """``store.search``, awaitable."""

    __slots__ = ()
    sessions = awaitable(SearchRepository.sessions)
    messages = awaitable(SearchRepository.messages)


class AsyncState(Wrapper[StateRepository]):
    """``store.state``, awaitable."""

    __slots__ = ()
    get = awaitable(StateRepository.get)
    get_many = awaitable(StateRepository.get_many)
    update = awaitable(StateRepository.update)
    merged = awaitable(StateRepository.merged)
    get_user = awaitable(StateRepository.get_user)
    get_app = awaitable(StateRepository.get_app)
    update_user = awaitable(StateRepository.update_user)
    update_app = awaitable(StateRepository.update_app)


class AsyncHealth(Wrapper[Health]):
    """``store.health``, awaitable."""

    __slots__ = ()
    check = awaitable(Health.check)
    repair = awaitable(Health.repair)


class AsyncLifecycle(Wrapper[Lifecycle]):
    """``store.lifecycle``, awaitable; its scheduler is an asyncio task."""

    __slots__ = ("_schedulers",)

    def __init__(self, target: Lifecycle, dispatch: Dispatch) -> None:
        super().__init__(target, dispatch)
        self._schedulers: list[AsyncScheduler] = []

    due = awaitable(Lifecycle.due)
    expiring = awaitable(Lifecycle.expiring)
    set_timeouts = awaitable(Lifecycle.set_timeouts)
    sweep = awaitable(Lifecycle.sweep)
    archive = awaitable(Lifecycle.archive)
    reactivate = awaitable(Lifecycle.reactivate)
    purge = awaitable(Lifecycle.purge)
    restore = awaitable(Lifecycle.restore)
    snapshots = awaitable(Lifecycle.snapshots)
    prune_snapshots = awaitable(Lifecycle.prune_snapshots)
    history = awaitable(Lifecycle.history)
    acquire_lease = awaitable(Lifecycle.acquire_lease)
    release_lease = awaitable(Lifecycle.release_lease)

    @property
    def idle_timeout(self) -> timedelta | None:
        return self._target.idle_timeout

    @property
    def hard_timeout(self) -> timedelta | None:
        return self._target.hard_timeout

    @property
    def purge_after(self) -> timedelta | None:
        return self._target.purge_after

    @property
    def closed(self) -> bool:
        """True once the store that runs this lifecycle is closed."""
        return self._target.closed

    async def start_scheduler(
        self, every: timedelta, *, purge_after: timedelta | EllipsisType | None = ...
    ) -> AsyncScheduler:
        """Sweep (and purge, with a retention) every ``every`` in an asyncio task.

        The same turn as the sync scheduler's (lease, sweep, purge), run on a
        lane; the waiting between turns is the task's. Stopped by
        ``await scheduler.stop()`` or ``await store.close()``.
        """
        scheduler = AsyncScheduler.start(self, every=every, purge_after=purge_after)
        self._schedulers.append(scheduler)
        return scheduler

    async def stop_schedulers(self) -> None:
        """Stop every scheduler this store started, and hand their leases back."""
        while self._schedulers:
            await self._schedulers.pop().stop()
