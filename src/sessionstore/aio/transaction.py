"""``async with store.transaction() as tx``: the sync core's transaction, held by one lane.

The sync transaction (``BEGIN IMMEDIATE`` on SQLite, commit on success,
rollback on any exception, the writers' lock held by its thread) is entered,
used and left on one lane, which the transaction keeps until it ends; the
context of the ``async with`` block points at that lane (:data:`PINNED`),
so calls on the store made inside the block reach the sync core from the
thread that holds the transaction, as a sync caller's would.

Leaving is shielded: once ``__aexit__`` has begun, the commit or rollback
runs to its end and the lane is given back, whatever cancellations arrive
meanwhile. A cancellation that arrives before the commit has started turns
it into a rollback; one that arrives later waits for the commit to finish.
Either way the task then raises :class:`asyncio.CancelledError`, and the
transaction is wholly committed or wholly rolled back. A transaction
cancelled while it begins is rolled back as soon as it has begun.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from ..store import Transaction
from .repositories import AsyncMessages, AsyncSearch, AsyncSessions, AsyncState
from .workers import PINNED, Lane, Pin, Workers, settle

if TYPE_CHECKING:
    from contextvars import Token


class Transactional(Protocol):
    """A sync store or scoped view: what ``transaction()`` is called on."""

    def transaction(self) -> AbstractContextManager[Transaction]: ...


__all__ = ["AsyncTransaction", "TransactionContext"]


@dataclass(frozen=True, slots=True)
class AsyncTransaction:
    """The repositories, bound to one open transaction (awaitable like the store's)."""

    sessions: AsyncSessions
    messages: AsyncMessages
    search: AsyncSearch
    state: AsyncState

    @classmethod
    def of(cls, tx: Transaction, pin: Pin) -> AsyncTransaction:
        return cls(
            sessions=AsyncSessions(tx.sessions, pin),
            messages=AsyncMessages(tx.messages, pin),
            search=AsyncSearch(tx.search, pin),
            state=AsyncState(tx.state, pin),
        )


def _leave(
    manager: AbstractContextManager[Any],
    exc_type: type[BaseException] | None,
    exc: BaseException | None,
    tb: TracebackType | None,
) -> None:
    """Commit (no exception) or roll back (``exc``); the block's own exception is not re-raised."""
    try:
        manager.__exit__(exc_type, exc, tb)
    except BaseException as raised:
        if raised is not exc:
            raise


class TransactionContext:
    """What ``store.transaction()`` returns: an async context manager, used once."""

    def __init__(self, sync: Transactional, workers: Workers) -> None:
        self._sync = sync
        self._workers = workers
        self._manager: AbstractContextManager[Transaction] | None = None
        self._pin: Pin | None = None
        self._owned = False
        self._token: Token[Pin | None] | None = None

    async def __aenter__(self) -> AsyncTransaction:
        if self._manager is not None:
            raise RuntimeError("this transaction() was already entered; call it again")
        outer = PINNED.get()
        if outer is not None and outer.open and outer.workers is self._workers:
            # A transaction inside one, in the same context: the sync core refuses it
            # (NestedTransactionError) from the thread that holds the outer one.
            lane, owned = outer.lane, False
        else:
            lane, owned = await self._workers.take(), True
        manager = self._sync.transaction()
        self._manager = manager
        future = lane.submit(manager.__enter__)
        try:
            tx = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if not (future.cancel() or future.cancelled()):
                await settle(future)
                if future.exception() is None:
                    # Begun after all: roll it back before the lane goes back.
                    await settle(lane.submit(lambda: _rollback(manager)))
            self._give_back(lane, owned)
            raise
        except BaseException:
            self._give_back(lane, owned)
            raise
        pin = Pin(self._workers, lane)
        self._pin, self._owned = pin, owned
        self._token = PINNED.set(pin)
        return AsyncTransaction.of(tx, pin)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pin, manager = self._pin, self._manager
        if pin is None or manager is None or not pin.open:
            # Leaving twice would give the lane back twice: two callers would then
            # share one thread, and one of them would run inside the other's transaction.
            # A misuse of the context object, refused as entering it twice is.
            raise RuntimeError("this transaction() is not open: it has ended or never began")
        rollback = False

        def leave() -> None:
            if rollback and exc_type is None:
                _rollback(manager)
            else:
                _leave(manager, exc_type, exc, tb)

        def cancelled_before_commit() -> None:
            nonlocal rollback
            rollback = True

        future = pin.lane.submit(leave)
        try:
            cancelled = await settle(future, cancelled_before_commit)
        finally:
            pin.open = False
            self._reset_context()
            self._give_back(pin.lane, self._owned)
        if cancelled:
            raise asyncio.CancelledError()
        future.result()  # a failed commit raises here

    def _reset_context(self) -> None:
        token, self._token = self._token, None
        if token is None:
            return
        try:
            PINNED.reset(token)
        except ValueError:
            # Left from another context than the one that entered.
            PINNED.set(None)

    def _give_back(self, lane: Lane, owned: bool) -> None:
        if owned:
            self._workers.release(lane)


def _rollback(manager: AbstractContextManager[Any]) -> None:
    """Leave the sync transaction rolling back, as an exception in its block would."""
    cancelled = asyncio.CancelledError()
    _leave(manager, asyncio.CancelledError, cancelled, None)
