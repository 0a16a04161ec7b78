"""What the framework adapters share: their optional imports, their store, their writes.

sessionstore sits under the frameworks people already use, each through the
interface that framework defines:

* :mod:`sessionstore.integrations.openai_agents`: the OpenAI Agents SDK's
  ``Session`` protocol (``pip install 'sessionstore[openai-agents]'``);
* :mod:`sessionstore.integrations.langchain`: LangChain's
  ``BaseChatMessageHistory`` (``pip install 'sessionstore[langchain]'``);
* :mod:`sessionstore.integrations.adk`: Google ADK's ``BaseSessionService``
  (``pip install 'sessionstore[adk]'``).

Importing this package imports no framework. Importing an adapter without its
extra raises :class:`~sessionstore.errors.MissingDependency` naming the
``pip install`` line (:func:`require`).

Every adapter takes its store one of two ways: an open
:class:`~sessionstore.SessionStore` (or
:class:`~sessionstore.aio.AsyncSessionStore`) that the application shares with
its other code and closes itself, or a URL (``from_url``), opened through
:func:`acquire`: every adapter opened on the same URL and options shares one
store, closed when the last of them closes. Each framework item becomes one
message (the item as ``payload``, its kind, its text as ``content``), so one
database holds the histories of every framework, searchable, exportable,
backed up and expired like any other session.

The frameworks create a history the first time they write to it and know no
model id: :func:`writing` creates the session then (``model_id`` ``None``), and
brings back a session the lifecycle sweep archived, so an idle conversation
picks up where it stopped (the reactivation is in the audit trail), unless the
adapter was made with ``on_archived="raise"``.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal, TypeVar

from ..aio import AsyncSessionStore, sync_url
from ..errors import (
    InvalidInput,
    InvalidStateError,
    MissingDependency,
    SessionArchived,
    SessionExists,
    SessionNotFound,
    StoreClosedError,
    shown,
)
from ..items import StoredItem, decode_items
from ..records import MessageRecord, NewMessage
from ..scoped import ScopedStore
from ..store import SessionStore

__all__ = [
    "Linked",
    "OnArchived",
    "SharedStore",
    "StoreLink",
    "acquire",
    "require",
]

T = TypeVar("T")

#: What an adapter's calls go through: the store, or one owner's view of it.
View = SessionStore | ScopedStore
#: What a write does to a session the lifecycle archived: bring it back, or refuse.
OnArchived = Literal["reactivate", "raise"]
_ON_ARCHIVED = ("reactivate", "raise")
#: How often a write retries after a concurrent writer created or reactivated the session.
_ATTEMPTS = 4


def require(module: str, *, extra: str, what: str) -> ModuleType:
    """Import ``module``, or raise :class:`MissingDependency` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(
            f"{what} is not installed ({exc}); install it with pip install 'sessionstore[{extra}]'"
        ) from exc


def check_on_archived(value: object) -> OnArchived:
    if not isinstance(value, str) or value not in _ON_ARCHIVED:
        raise InvalidInput(f"on_archived must be 'reactivate' or 'raise', not {shown(value)}")
    return value  # type: ignore[return-value]


# --- one store per URL ---------------------------------------------------------------


@dataclass
class SharedStore:
    """A store opened by URL, shared by every adapter opened with the same URL and options."""

    store: SessionStore
    key: tuple[str | None, str]
    users: int = 0


# Filled by from_url only (nothing is opened at import): the stores open by URL.
_shared: dict[tuple[str | None, str], SharedStore] = {}
_shared_lock = threading.Lock()


def acquire(url: str | None, **options: Any) -> SharedStore:
    """The store at ``url`` (opened now, or the one already open), with one more user.

    Pair every call with :func:`release`: the last release closes the store.
    ``url`` ``None`` is ``$SESSIONSTORE_URL`` or the default file, as in
    :meth:`SessionStore.open`.
    """
    key = (url, repr(sorted(options.items())))
    with _shared_lock:
        shared = _shared.get(key)
        if shared is None or shared.store.lifecycle.closed:
            shared = SharedStore(SessionStore.open(url, **options), key)
            _shared[key] = shared
        shared.users += 1
        return shared


def release(shared: SharedStore) -> None:
    """One user fewer; the last one closes the store."""
    with _shared_lock:
        shared.users -= 1
        if shared.users > 0:
            return
        if _shared.get(shared.key) is shared:
            del _shared[shared.key]
    shared.store.close()


# --- the link between an adapter and its store --------------------------------------


@dataclass
class StoreLink:
    """An adapter's store, the view its calls go through, and what closing it does.

    ``view`` is the store itself, or with an owner (``app``, ``user_id``) the
    store as that owner sees it (:meth:`SessionStore.for_user`): the sessions
    the adapter creates are the owner's, and another owner's session reads as
    missing. Calls run on worker threads (``asyncio.to_thread``) against the
    sync store (an :class:`~sessionstore.aio.AsyncSessionStore`'s ``sync``):
    one adapter operation, such as appending a batch and creating the session
    it goes to, is one hop off the event loop.
    """

    store: SessionStore
    view: View
    shared: SharedStore | None = None
    closed: bool = field(default=False)

    @classmethod
    def of(
        cls,
        store: SessionStore | AsyncSessionStore,
        *,
        app: str | None = None,
        user_id: str | None = None,
        shared: SharedStore | None = None,
    ) -> StoreLink:
        if isinstance(store, AsyncSessionStore):
            store = store.sync
        if not isinstance(store, SessionStore):
            raise InvalidInput(
                f"store must be a SessionStore or an AsyncSessionStore, not {shown(store)}"
            )
        if app is None and user_id is not None:
            raise InvalidInput("a user_id needs its app: pass app= as well")
        view = store if app is None else store.for_user(app, user_id)
        return cls(store, view, shared=shared)

    @classmethod
    def from_url(
        cls, url: str | None, *, app: str | None = None, user_id: str | None = None, **options: Any
    ) -> StoreLink:
        # The frameworks' own stores take async URLs (sqlite+aiosqlite://…): the same database.
        shared = acquire(None if url is None else sync_url(url), **options)
        try:
            return cls.of(shared.store, app=app, user_id=user_id, shared=shared)
        except BaseException:
            release(shared)
            raise

    @property
    def max_content_bytes(self) -> int:
        return self.store.config.max_content_bytes

    def close(self) -> None:
        """Release a store opened by URL (the last adapter closes it); a store passed in stays.

        Closing twice, from any threads, releases once.
        """
        with _shared_lock:
            if self.closed:
                return
            self.closed = True
        if self.shared is not None:
            release(self.shared)

    async def read(self, fn: Callable[[], T]) -> T:
        """Run a read on a worker thread: the event loop never waits on the database."""
        return await asyncio.to_thread(fn)

    async def write(self, fn: Callable[[], T]) -> T:
        """Run a write on a worker thread, and learn its outcome even if cancelled.

        A cancelled caller still waits until the write committed or failed before
        the cancellation propagates: an outcome it cannot know would invite a
        retry that stores the items twice.
        """
        task = asyncio.ensure_future(self.read(fn))
        cancelled: asyncio.CancelledError | None = None
        while not task.done():
            try:
                await asyncio.wait({task})
            except asyncio.CancelledError as exc:
                cancelled = cancelled or exc
        if cancelled is not None:
            if not task.cancelled():
                task.exception()  # retrieved, so the loop does not report it as lost
            raise cancelled
        return task.result()


class Linked:
    """What the OpenAI and LangChain adapters share: their link to the store."""

    _link: StoreLink

    @property
    def store(self) -> SessionStore:
        """The store the history lives in: search, export, lifecycle and backups go through it."""
        return self._link.store

    def close(self) -> None:
        """Done with this history: a store opened by ``from_url`` closes with its last user."""
        self._link.close()

    def _check_open(self) -> View:
        if self._link.closed:
            raise StoreClosedError()
        return self._link.view


# --- writes that create or bring back the session -----------------------------------


def _reactivate(store: View, session_id: str) -> None:
    try:
        store.lifecycle.reactivate(session_id)
    except SessionArchived:
        raise
    except InvalidStateError:
        pass  # "not archived": another writer brought it back first


def writing(
    store: View,
    session_id: str,
    on_archived: OnArchived,
    fn: Callable[[], T],
    *,
    create: bool = True,
) -> T:
    """``fn()``, a write to the session, after creating or reactivating the session if needed.

    The write is tried first (one transaction in the common case); a session
    that does not exist yet is created (with ``create``), one the sweep
    archived is reactivated (``on_archived="reactivate"``), and the write tried
    again. With ``on_archived="raise"`` the :class:`SessionArchived` propagates.
    """
    taken: SessionExists | None = None
    for attempt in range(_ATTEMPTS):
        try:
            return fn()
        except SessionNotFound:
            if not create or attempt == _ATTEMPTS - 1:
                raise
            if taken is not None:
                # Created by no one we can see: the id is another owner's, or retired.
                raise taken from None
            try:
                store.sessions.create(None, session_id=session_id)
            except SessionExists as exc:
                # Most often another writer created it first, which is what was wanted.
                taken = exc
        except SessionArchived:
            if on_archived == "raise" or attempt == _ATTEMPTS - 1:
                raise
            _reactivate(store, session_id)
    raise AssertionError("unreachable")  # pragma: no cover


def append_items(
    store: View, session_id: str, rows: list[NewMessage], on_archived: OnArchived
) -> list[MessageRecord]:
    """Append ``rows`` in order, in one transaction, creating the session on its first write."""
    if not rows:
        return []
    return writing(
        store, session_id, on_archived, lambda: store.messages.append_many(session_id, rows)
    )


def read_items(store: View, session_id: str, last: int | None = None) -> Iterator[StoredItem]:
    """Every message (or the last ``last``) as ``(kind, role, content, payload)``, oldest first.

    None for a session not created yet. What ``store.messages.items`` reads,
    decoded one item at a time as the adapter turns each into its
    framework's object (see :func:`~sessionstore.items.decode_items`).
    """
    try:
        rows = store.messages._item_rows(session_id, last)
    except SessionNotFound:
        return iter(())
    return decode_items(rows)


def pop_last(store: View, session_id: str, on_archived: OnArchived) -> MessageRecord | None:
    """Remove and return the newest message; ``None`` for an empty or missing session."""
    try:
        return writing(
            store, session_id, on_archived, lambda: store.messages.pop(session_id), create=False
        )
    except SessionNotFound:
        return None


def clear_all(store: View, session_id: str, on_archived: OnArchived) -> int:
    """Remove every message (the session, its metadata and state stay); 0 when missing."""
    try:
        return writing(
            store, session_id, on_archived, lambda: store.messages.clear(session_id), create=False
        )
    except SessionNotFound:
        return 0


def clip(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8 at a character boundary.

    The readable text is a copy for search and export; the item itself (the
    payload) is kept whole, so an item whose text outgrows a message is still
    stored exactly.
    """
    if len(text) * 4 <= max_bytes:
        return text
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", "ignore")


def joined(parts: Iterable[str]) -> str:
    return "\n".join(part for part in parts if part)
