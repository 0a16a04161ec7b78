"""The store: one object that owns an engine and hands out the repositories.

::

    store = SessionStore.open("sqlite:///.ai-router-sessions.db")
    session = store.sessions.create("gpt-4o")
    store.messages.append(session.session_id, "user", "Hello")
    with store.transaction() as tx:          # several calls, one transaction
        tx.messages.append(session.session_id, "assistant", "Hi!")
        tx.sessions.rename(session.session_id, "Greetings")
    store.close()

Opening a store brings the database to the current schema first (an empty
file is created, a legacy file is backed up and adopted; see
:mod:`sessionstore.migrations`) unless ``upgrade=False``, in which case a
database that is not current is refused with :class:`SchemaMismatchError`.
``create=False`` opens only a database that exists: a missing SQLite file is
:class:`DatabaseNotFound` and nothing is created. Read-only tools open with
both (``create=False, upgrade=False``) and leave every file as they found it.
Nothing is created at import time: the engine is the store's, and
:meth:`close` disposes of it. Backups and restores are in
:mod:`sessionstore.store_backups`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from sqlalchemy import Engine

from . import migrations, rls
from .config import StoreConfig
from .engine import (
    PoolStatus,
    build_engine,
    is_memory,
    pool_status,
    probe,
    sqlite_path,
)
from .erase import ErasureReport, erase_user
from .errors import InvalidInput, StoreClosedError
from .export import Format, export_session, export_to_path
from .health import Health
from .imports import import_session
from .lifecycle import Lifecycle
from .messages import MessageRepository
from .owners import Owner, check_owner
from .records import SessionRecord
from .scoped import ScopedStore
from .search import SearchRepository
from .sessions import SessionRepository
from .state import StateRepository
from .stats import StoreStats, collect_stats
from .store_backups import BackupMethods
from .transactions import StoreRunner, TransactionRunner
from .validation import check_id

__all__ = ["SessionStore", "Transaction"]

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def _in_utc(clock: Clock) -> Clock:
    """The caller's clock, its readings in UTC (a naive reading is taken as UTC)."""

    def now() -> datetime:
        value = clock()
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    return now


def _require(name: str, value: object, kind: type) -> None:
    """An object a store is built from, checked before anything uses it."""
    if not isinstance(value, kind):
        raise InvalidInput(f"{name} must be a {kind.__name__}, not {type(value).__name__}")


def _check_clock(clock: object) -> None:
    if clock is not None and not callable(clock):
        kind = type(clock).__name__
        raise InvalidInput(f"clock must be a function returning a datetime, not {kind}")


@dataclass(frozen=True, slots=True)
class Transaction:
    """The repositories, bound to one open transaction (see :meth:`SessionStore.transaction`)."""

    sessions: SessionRepository
    messages: MessageRepository
    search: SearchRepository
    state: StateRepository


class SessionStore(BackupMethods):
    """Sessions and messages of LLM conversations, in SQLite or PostgreSQL."""

    def __init__(
        self,
        engine: Engine,
        *,
        config: StoreConfig | None = None,
        clock: Clock | None = None,
        owns_engine: bool = False,
    ) -> None:
        _require("engine", engine, Engine)
        if config is not None:
            _require("config", config, StoreConfig)
        _check_clock(clock)
        self._engine = engine
        self._config = config or StoreConfig(url=engine.url.render_as_string(hide_password=False))
        self._clock = _in_utc(clock) if clock is not None else utc_now
        self._owns_engine = owns_engine
        self._runner = StoreRunner(
            engine,
            busy_deadline=self._config.busy_timeout,
            serialize=is_memory(engine.url),
            cache=self._config.pool_size,
        )
        self.sessions = SessionRepository(self._runner, self._clock)
        self.messages = MessageRepository(
            self._runner,
            self._clock,
            max_content_bytes=self._config.max_content_bytes,
            max_payload_bytes=self._config.max_payload_bytes,
        )
        self.search = SearchRepository(self._runner)
        self.state = StateRepository(self._runner, max_value_bytes=self._config.max_content_bytes)
        self.lifecycle = Lifecycle(
            self._runner,
            self._clock,
            idle_timeout=self._config.idle_timeout,
            hard_timeout=self._config.hard_timeout,
            purge_after=self._config.purge_after,
            app_timeouts=self._config.app_timeouts,
        )
        self.health = Health(engine, self._runner, self._clock)
        #: What opening the store did to the database (``None`` with ``upgrade=False``).
        self.upgrade_report: migrations.UpgradeReport | None = None

    # --- opening and closing -----------------------------------------------------

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        upgrade: bool = True,
        create: bool = True,
        check_schema: bool = True,
        clock: Clock | None = None,
        **options: Any,
    ) -> Self:
        """Open the database at ``url`` (else ``$SESSIONSTORE_URL``, else the default file).

        ``upgrade=False`` never changes the schema: a database not at the current
        revision is refused with :class:`SchemaMismatchError` (unless
        ``check_schema=False``, for diagnostic tools that report the schema
        themselves). ``create=False`` never creates a database: a missing SQLite file
        is :class:`DatabaseNotFound`.
        """
        return cls.from_config(
            StoreConfig.from_env(url, **options),
            upgrade=upgrade,
            create=create,
            check_schema=check_schema,
            clock=clock,
        )

    @classmethod
    def from_config(
        cls,
        config: StoreConfig,
        *,
        upgrade: bool = True,
        create: bool = True,
        check_schema: bool = True,
        clock: Clock | None = None,
    ) -> Self:
        _require("config", config, StoreConfig)
        _check_clock(clock)
        engine = build_engine(config, create=create)
        store = cls(engine, config=config, clock=clock, owns_engine=True)
        try:
            store._prepare(upgrade, check_schema=check_schema)
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def from_engine(
        cls,
        engine: Engine,
        *,
        upgrade: bool = True,
        clock: Clock | None = None,
        **options: Any,
    ) -> Self:
        """A store on an engine the caller made (and disposes of: :meth:`close` leaves it)."""
        _require("engine", engine, Engine)
        _check_clock(clock)
        url = engine.url.render_as_string(hide_password=False)
        store = cls(engine, config=StoreConfig.from_env(url, **options), clock=clock)
        store._prepare(upgrade)
        return store

    def _prepare(self, upgrade: bool, *, check_schema: bool = True) -> None:
        # A server or file that cannot be reached is said so here, not blamed on the upgrade.
        probe(self._engine)
        if upgrade:
            self.upgrade_report = self.upgrade()
        elif check_schema:
            migrations.check_at_head(self._engine)

    def close(self) -> None:
        """Release every pooled connection. The store cannot be used afterwards."""
        if self._runner.closed:
            return
        self.lifecycle.stop_schedulers()
        self._runner.close()
        if self._owns_engine:
            self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- what the store is ---------------------------------------------------------

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def config(self) -> StoreConfig:
        return self._config

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    @property
    def path(self) -> Path | None:
        """The SQLite file, or ``None`` for memory and PostgreSQL."""
        path = sqlite_path(self._engine)
        return Path(path) if path else None

    def pool_status(self) -> PoolStatus:
        """Pool size, connections checked out and in overflow, and the pragmas in force."""
        self._check_open()
        return pool_status(self._engine, kept=self._runner.cache.idle)

    def upgrade(self, target: str = "head") -> migrations.UpgradeReport:
        """Bring the database to ``target``; see :mod:`sessionstore.migrations`."""
        self._check_open()
        # Alembic takes lists, tuples and iterables of revisions too, and walks
        # whatever it is given: only a revision name gets that far.
        target = check_id("target", target)
        return migrations.upgrade(self._engine, target)

    # --- transactions ----------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Several calls in one transaction: committed if the block succeeds, else rolled back."""
        with self._runner.transaction() as conn:
            runner = TransactionRunner(conn, path=sqlite_path(self._engine))
            try:
                yield Transaction(
                    sessions=SessionRepository(runner, self._clock),
                    messages=MessageRepository(
                        runner,
                        self._clock,
                        max_content_bytes=self._config.max_content_bytes,
                        max_payload_bytes=self._config.max_payload_bytes,
                    ),
                    search=SearchRepository(runner),
                    state=StateRepository(runner, max_value_bytes=self._config.max_content_bytes),
                )
            finally:
                runner.finished = True

    # --- whole sessions and the whole store -------------------------------------------

    def export(
        self, session_id: str, format: Format = "json", out: IO[str] | None = None
    ) -> str | None:
        """The whole session as JSON or Markdown, streamed to ``out`` or returned as text.

        ``out`` is a text file object (``open(path, "w")``, ``io.StringIO``); anything
        else, a path included, is :class:`InvalidInput`.
        """
        return export_session(self._runner, session_id, format, out)

    def export_file(
        self,
        session_id: str,
        path: str | os.PathLike[str],
        format: Format = "json",
        *,
        overwrite: bool = False,
    ) -> Path:
        """Export the session into the file at ``path``, whole or not at all.

        Written beside ``path`` in a private directory, with the database's
        permission bits, then put in place in one step. An existing file is
        replaced only with ``overwrite=True``; a symbolic link there is never
        followed; the database's own files are refused.
        """
        self._check_open()
        return export_to_path(
            self._runner,
            session_id,
            path,
            format,
            database=Path(self.path) if self.path is not None else None,
            overwrite=overwrite,
        )

    def import_session(
        self,
        source: str | bytes | IO[str] | Mapping[str, Any],
        *,
        session_id: str | None = None,
    ) -> SessionRecord:
        """Recreate a session from :meth:`export` JSON (optionally under a new id).

        The document is checked as new input (what ``append`` refuses, it refuses).
        The id must be free: :class:`SessionExists` if a session has it,
        :class:`SessionIdRetired` if a purged session of that id still has snapshots.
        """
        return import_session(
            self._runner,
            source,
            session_id=session_id,
            max_content_bytes=self._config.max_content_bytes,
            now=self._clock(),
        )

    def stats(self, *, app: str | None = None, user_id: str | None = None) -> StoreStats:
        """Totals and a per-model breakdown, from the session rows alone.

        ``app`` / ``user_id`` count one owner's sessions only (a user_id needs an app).
        """
        return collect_stats(self._runner, check_owner(app, user_id))

    # --- owners -------------------------------------------------------------------------

    def for_user(self, app: str, user_id: str | None) -> ScopedStore:
        """The store as one owner sees it: only ``user_id``'s sessions of ``app``.

        ``user_id=None`` is the app's view: every session of ``app``. The view has
        the store's repositories and per-session methods; another owner's session
        is :class:`SessionNotFound` there, as if it did not exist. The store itself
        is the admin view: it sees every session, owned or not. See
        :mod:`sessionstore.scoped`.
        """
        self._check_open()
        if user_id is not None and not isinstance(user_id, str):
            raise InvalidInput(f"user_id must be a str or None, not {type(user_id).__name__}")
        return ScopedStore(self, Owner(check_id("app", app), user_id))

    def erase_user(self, app: str, user_id: str) -> ErasureReport:
        """Delete everything of one user, in one transaction; counts per table.

        Sessions (with their messages, metadata, state and search index entries),
        the user's state, and the snapshots and lifecycle events of their sessions.
        Backups and exported files are out of its reach: see :mod:`sessionstore.erase`.
        """
        return erase_user(self._runner, app, user_id)

    def enable_row_level_security(self) -> rls.RlsStatus:
        """PostgreSQL: policies that let a scoped view's transactions see only its owner's
        rows, even through hand-written SQL (see :mod:`sessionstore.rls`)."""
        rls.require_postgres(self.dialect)
        return self._runner.write(rls.enable)

    def disable_row_level_security(self) -> rls.RlsStatus:
        """PostgreSQL: drop the policies of :meth:`enable_row_level_security`."""
        rls.require_postgres(self.dialect)
        return self._runner.write(rls.disable)

    def row_level_security(self) -> rls.RlsStatus:
        """Whether the row-level security policies are on, table by table."""
        return self._runner.read(rls.status)

    def _check_open(self) -> None:
        if self._runner.closed:
            raise StoreClosedError()

    def __repr__(self) -> str:
        url = self._engine.url.render_as_string(hide_password=True)
        state = "closed" if self._runner.closed else "open"
        return f"<SessionStore {url} ({state})>"
