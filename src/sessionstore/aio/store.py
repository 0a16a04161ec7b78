"""``AsyncSessionStore``: the store, every call awaitable, over the sync core.

::

    store = await AsyncSessionStore.open("sqlite+aiosqlite:///chat.db")
    session = await store.sessions.create("gpt-4o")
    await store.messages.append(session.session_id, "user", "Hello")
    async with store.transaction() as tx:
        await tx.messages.append(session.session_id, "assistant", "Hi!")
    async for message in store.messages.iterate(session.session_id):
        ...
    await store.close()

The store wraps a :class:`SessionStore` (``store.sync``) and runs each call
on a bounded set of worker threads (:mod:`sessionstore.aio.workers`);
opening, upgrading and closing run there too, so nothing blocks the event
loop. **URLs**: the async drivers' URLs are accepted and mapped to the sync
driver of the same database, which is what the core runs:
``sqlite+aiosqlite://`` to the standard library's ``sqlite3``,
``postgresql+asyncpg://`` and ``postgresql+psycopg_async://`` to psycopg 3
(``postgresql+psycopg://``, which is both); the plain URLs as the sync store
takes them. aiosqlite, asyncpg and greenlet are never imported. A PostgreSQL URL
without psycopg installed is :class:`MissingDependency` naming
``pip install 'sessionstore[postgres]'``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import weakref
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, cast

from sqlalchemy import Engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import QueuePool

from .. import migrations
from ..backup import RestoreReport
from ..config import StoreConfig
from ..engine import is_memory
from ..errors import InvalidInput
from ..store import SessionStore
from .repositories import (
    AsyncHealth,
    AsyncLifecycle,
    AsyncMessages,
    AsyncSearch,
    AsyncSessions,
    AsyncState,
    Wrapper,
    awaitable,
)
from .scoped import AsyncScopedStore
from .transaction import TransactionContext
from .workers import Workers, settle

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["AsyncSessionStore", "sync_url"]

Clock = Callable[[], datetime]

#: Async drivers, and the sync driver of the same database that the core runs.
SYNC_DRIVERS = {
    "sqlite+aiosqlite": "sqlite",
    "postgresql+asyncpg": "postgresql+psycopg",
    "postgresql+psycopg_async": "postgresql+psycopg",
    "postgres+asyncpg": "postgresql+psycopg",
}
#: asyncpg's URL options that libpq spells otherwise (or has no use for).
_ASYNCPG_QUERY = {"ssl": "sslmode", "prepared_statement_cache_size": None}


def sync_url(url: str | URL) -> str:
    """``url`` with an async driver replaced by the sync driver the store runs."""
    if not isinstance(url, str | URL):
        raise InvalidInput(f"url must be a str, not {type(url).__name__}")
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise InvalidInput(f"not a database URL: {url!r}") from exc
    driver = SYNC_DRIVERS.get(parsed.drivername)
    if driver is None:
        return url if isinstance(url, str) else url.render_as_string(hide_password=False)
    if parsed.drivername.endswith("+asyncpg") and parsed.query:
        query = dict(parsed.query)
        for name, libpq in _ASYNCPG_QUERY.items():
            if name in query:
                value = query.pop(name)
                if libpq is not None:
                    query.setdefault(libpq, value)
        parsed = parsed.set(query=query)
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def default_workers(config: StoreConfig) -> int:
    """Threads enough to keep the pool busy, not so many that they queue for it.

    The hot path keeps up to ``pool_size`` idle connections out of the pool
    between calls (``transactions.ConnectionCache``), and a call holds one
    more (a read made inside a transaction, two): half the pool's capacity
    in threads leaves the other half for those. An in-memory database has
    one connection, whose calls take turns anyway.
    """
    url = make_url(sync_url(config.url))
    if is_memory(url):
        return 1
    return max(1, min((config.pool_size + config.max_overflow) // 2, 32))


class AsyncSessionStore(Wrapper[SessionStore]):
    """Sessions and messages of LLM conversations, every call awaitable."""

    __slots__ = (
        "__weakref__",
        "_owns",
        "_workers",
        "health",
        "lifecycle",
        "messages",
        "search",
        "sessions",
        "state",
    )

    def __init__(self, store: SessionStore, workers: Workers, *, owns: bool) -> None:
        super().__init__(store, workers)
        self._workers = workers
        self._owns = owns
        # A store dropped without close() still stops its threads.
        weakref.finalize(self, workers.close)
        self.sessions = AsyncSessions(store.sessions, workers)
        self.messages = AsyncMessages(store.messages, workers)
        self.search = AsyncSearch(store.search, workers)
        self.state = AsyncState(store.state, workers)
        self.lifecycle = AsyncLifecycle(store.lifecycle, workers)
        self.health = AsyncHealth(store.health, workers)

    # --- opening and closing -----------------------------------------------------

    @classmethod
    async def open(
        cls,
        url: str | None = None,
        *,
        upgrade: bool = True,
        create: bool = True,
        check_schema: bool = True,
        clock: Clock | None = None,
        max_workers: int | None = None,
        **options: Any,
    ) -> Self:
        """Open the database at ``url`` (else ``$SESSIONSTORE_URL``, else the default file).

        As :meth:`SessionStore.open`, async driver URLs included. ``max_workers``
        bounds the threads that run the calls (default: half the pool's
        capacity, ``(pool_size + max_overflow) // 2``, at most 32).
        """
        config = StoreConfig.from_env(url, **options)
        return await cls.from_config(
            config.with_options(url=sync_url(config.url)),
            upgrade=upgrade,
            create=create,
            check_schema=check_schema,
            clock=clock,
            max_workers=max_workers,
        )

    @classmethod
    async def from_config(
        cls,
        config: StoreConfig,
        *,
        upgrade: bool = True,
        create: bool = True,
        check_schema: bool = True,
        clock: Clock | None = None,
        max_workers: int | None = None,
    ) -> Self:
        if not isinstance(config, StoreConfig):
            raise InvalidInput(f"config must be a StoreConfig, not {type(config).__name__}")
        config = config.with_options(url=sync_url(config.url))
        workers = Workers(default_workers(config) if max_workers is None else max_workers)

        def opened() -> SessionStore:
            return SessionStore.from_config(
                config, upgrade=upgrade, create=create, check_schema=check_schema, clock=clock
            )

        return await cls._opening(workers, opened, owns=True)

    @classmethod
    async def from_engine(
        cls,
        engine: Any,
        *,
        upgrade: bool = True,
        clock: Clock | None = None,
        max_workers: int | None = None,
        **options: Any,
    ) -> Self:
        """A store on the database of an engine the caller made.

        A sync :class:`~sqlalchemy.Engine` is used as it is (the caller disposes
        of it). An :class:`~sqlalchemy.ext.asyncio.AsyncEngine` is not: its
        connections speak through the event loop, and the core runs in threads.
        The store takes its URL (password included) and pool size and opens its
        own sync pool on the same database, which :meth:`close` disposes of; the
        ``AsyncEngine`` is neither used nor disposed. An in-memory SQLite
        ``AsyncEngine`` is refused: its database cannot be reached from
        another pool.
        """
        if isinstance(engine, Engine):
            sync_engine = engine
            if max_workers is None:
                url = engine.url.render_as_string(hide_password=False)
                max_workers = default_workers(StoreConfig.from_env(url, **options))
            workers = Workers(max_workers)
            return await cls._opening(
                workers,
                lambda: SessionStore.from_engine(
                    sync_engine, upgrade=upgrade, clock=clock, **options
                ),
                owns=True,
            )
        url = _async_engine_url(engine)
        pool = engine.pool
        if isinstance(pool, QueuePool) and "pool_size" not in options:
            options["pool_size"] = pool.size()
        return await cls.open(url, upgrade=upgrade, clock=clock, max_workers=max_workers, **options)

    @classmethod
    def from_sync(cls, store: SessionStore, *, max_workers: int | None = None) -> Self:
        """An async face on a sync store the caller keeps (and closes)."""
        if not isinstance(store, SessionStore):
            raise InvalidInput(f"store must be a SessionStore, not {type(store).__name__}")
        size = default_workers(store.config) if max_workers is None else max_workers
        return cls(store, Workers(size), owns=False)

    @classmethod
    async def _opening(
        cls, workers: Workers, opened: Callable[[], SessionStore], *, owns: bool
    ) -> Self:
        try:
            lane = await workers.take()
        except BaseException:
            workers.close()
            raise
        future = lane.submit(opened)
        try:
            store = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if not (future.cancel() or future.cancelled()):
                await settle(future)
                if future.exception() is None:
                    # Opened after all: closed before the cancellation goes on.
                    await settle(lane.submit(future.result().close))
            workers.close()
            raise
        except BaseException:
            workers.close()
            raise
        workers.release(lane)
        return cls(store, workers, owns=owns)

    async def close(self) -> None:
        """Stop the schedulers, release every pooled connection, stop the worker threads."""
        if self._workers.closed:
            return
        await self.lifecycle.stop_schedulers()
        if self._owns:
            await self._workers.run(self._target.close)
        self._workers.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- what the store is ---------------------------------------------------------

    @property
    def engine(self) -> Engine:
        """The sync engine the core runs (not an ``AsyncEngine``)."""
        return self._target.engine

    @property
    def config(self) -> StoreConfig:
        return self._target.config

    @property
    def dialect(self) -> str:
        return self._target.dialect

    @property
    def path(self) -> Path | None:
        """The SQLite file, or ``None`` for memory and PostgreSQL."""
        return self._target.path

    @property
    def upgrade_report(self) -> migrations.UpgradeReport | None:
        """What opening the store did to the database (``None`` with ``upgrade=False``)."""
        return self._target.upgrade_report

    @property
    def max_workers(self) -> int:
        """The most threads that run this store's calls at once."""
        return self._workers.size

    @property
    def busy_workers(self) -> int:
        """Worker threads running a call or holding a transaction right now."""
        return self._workers.busy

    pool_status = awaitable(SessionStore.pool_status)
    upgrade = awaitable(SessionStore.upgrade)

    # --- transactions ----------------------------------------------------------------

    def transaction(self) -> TransactionContext:
        """``async with store.transaction() as tx``: committed if the block succeeds,
        else rolled back (cancellation included)."""
        return TransactionContext(self._target, self._workers)

    # --- whole sessions and the whole store -------------------------------------------

    export = awaitable(SessionStore.export)
    export_file = awaitable(SessionStore.export_file)
    import_session = awaitable(SessionStore.import_session)
    backup = awaitable(SessionStore.backup)
    stats = awaitable(SessionStore.stats)

    # --- owners ---------------------------------------------------------------------

    def for_user(self, app: str, user_id: str | None) -> AsyncScopedStore:
        """The store as one owner sees it (see :meth:`SessionStore.for_user`); no I/O."""
        return AsyncScopedStore(self._target.for_user(app, user_id), self._workers)

    erase_user = awaitable(SessionStore.erase_user)
    enable_row_level_security = awaitable(SessionStore.enable_row_level_security)
    disable_row_level_security = awaitable(SessionStore.disable_row_level_security)
    row_level_security = awaitable(SessionStore.row_level_security)

    @staticmethod
    async def restore_backup(
        backup: str | os.PathLike[str],
        target: str | os.PathLike[str],
        *,
        force: bool = False,
    ) -> RestoreReport:
        """Put a verified backup into the database ``target``; see
        :meth:`SessionStore.restore_backup`. Runs on a thread of its own."""
        if isinstance(target, str):
            target = sync_url(target)
        workers = Workers(1)
        try:
            return await workers.run(
                lambda: SessionStore.restore_backup(backup, target, force=force)
            )
        finally:
            workers.close()

    def __repr__(self) -> str:
        return repr(self._target).replace("<SessionStore", "<AsyncSessionStore", 1)


def _async_engine_url(engine: object) -> str:
    # Never imported here: SQLAlchemy's asyncio extension needs greenlet, which the
    # store does not. A caller holding an AsyncEngine has imported it already.
    module = sys.modules.get("sqlalchemy.ext.asyncio")
    async_engine = getattr(module, "AsyncEngine", None)
    if not isinstance(async_engine, type) or not isinstance(engine, async_engine):
        kind = type(engine).__name__
        raise InvalidInput(f"engine must be a SQLAlchemy Engine or AsyncEngine, not {kind}")
    url = cast("AsyncEngine", engine).url
    if is_memory(url):
        raise InvalidInput(
            "an in-memory SQLite AsyncEngine's database cannot be reached from another "
            "pool: open a file (sqlite+aiosqlite:///path.db) or use AsyncSessionStore.open"
        )
    return url.render_as_string(hide_password=False)
