"""``store.for_user(app, user_id)`` on the async store: the scoped view, awaitable.

The view is the sync core's :class:`sessionstore.scoped.ScopedStore` (every
statement that names a session carries the owner's predicate there, and
nowhere else), wrapped like the store: its repositories, per-session
methods and ``transaction()`` run on the store's lanes.
"""

from __future__ import annotations

from ..owners import Owner
from ..scoped import ScopedStore
from .repositories import (
    AsyncLifecycle,
    AsyncMessages,
    AsyncSearch,
    AsyncSessions,
    AsyncState,
    Wrapper,
    awaitable,
)
from .transaction import TransactionContext
from .workers import Workers

__all__ = ["AsyncScopedStore"]


class AsyncScopedStore(Wrapper[ScopedStore]):
    """One owner's view of an :class:`AsyncSessionStore`."""

    __slots__ = ("_workers", "lifecycle", "messages", "search", "sessions", "state")

    def __init__(self, view: ScopedStore, workers: Workers) -> None:
        super().__init__(view, workers)
        self._workers = workers
        self.sessions = AsyncSessions(view.sessions, workers)
        self.messages = AsyncMessages(view.messages, workers)
        self.search = AsyncSearch(view.search, workers)
        self.state = AsyncState(view.state, workers)
        self.lifecycle = AsyncLifecycle(view.lifecycle, workers)

    @property
    def owner(self) -> Owner:
        """Whose view this is (``user_id`` ``None``: the whole app)."""
        return self._target.owner

    @property
    def app(self) -> str:
        return self._target.app

    @property
    def user_id(self) -> str | None:
        return self._target.user_id

    def transaction(self) -> TransactionContext:
        """``async with view.transaction() as tx``: several calls of this view, one transaction."""
        return TransactionContext(self._target, self._workers)

    export = awaitable(ScopedStore.export)
    export_file = awaitable(ScopedStore.export_file)
    import_session = awaitable(ScopedStore.import_session)
    stats = awaitable(ScopedStore.stats)

    def __repr__(self) -> str:
        return repr(self._target).replace("<ScopedStore", "<AsyncScopedStore", 1)
