"""The scoped view: ``store.for_user(app, user_id)``, the store as one owner sees it.

::

    alice = store.for_user("chat-app", "alice")
    session = alice.sessions.create("gpt-4o")          # owned by chat-app / alice
    alice.messages.append(session.session_id, "user", "Hi")
    alice.sessions.list()                              # alice's sessions only
    store.for_user("chat-app", "bob").sessions.get(session.session_id)  # SessionNotFound

A :class:`ScopedStore` has the store's repositories (``sessions``,
``messages``, ``search``, ``state``, ``lifecycle``), its per-session methods
(``export``, ``export_file``, ``import_session``, ``stats``) and
``transaction()``, all built from the same classes as the store's own, with
an :class:`~sessionstore.owners.Owner` passed down: no second implementation
to drift. What it cannot do is what only an administrator should: backups,
upgrades, health, erasure, row-level security. ``for_user(app, None)`` is the
app's view: every session of the app, whoever owns it.

Another owner's session, message or snapshot behaves in a view exactly as one
that does not exist (:class:`SessionNotFound` with the same text, no rows, no
counts). Session ids are one namespace for the whole store, though: creating
or importing a session under an id another owner holds is
:class:`SessionExists`, as for any taken id. Let the store choose ids (the
default, a random UUID) where owners must not learn which ids exist.

The ownership check runs in the transaction of the statement it guards. On
PostgreSQL (read committed) the two see separate snapshots: only a session
deleted and created again under the same id by another owner in between
could slip through, which generated ids rule out; row-level security closes
even that, since the database then filters the statement itself.

On PostgreSQL every transaction of a view first sets ``sessionstore.app`` and
``sessionstore.user_id`` (``set_config(..., true)``: for that transaction
only), which the row-level security policies of :mod:`sessionstore.rls`
read when they are enabled.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection

from .engine import sqlite_path
from .export import Format, export_session, export_to_path
from .imports import import_session
from .lifecycle import Lifecycle
from .messages import MessageRepository
from .owners import Owner
from .records import SessionRecord
from .rls import scope_connection, scope_raw
from .search import SearchRepository
from .sessions import SessionRepository
from .state import StateRepository
from .stats import StoreStats, collect_stats
from .transactions import Raw, Runner, TransactionRunner

if TYPE_CHECKING:
    from .store import SessionStore, Transaction

__all__ = ["ScopedRunner", "ScopedStore"]

T = TypeVar("T")


class ScopedRunner:
    """A runner whose every transaction carries the owner's settings (PostgreSQL).

    On SQLite there is nothing to set and the calls pass straight through.
    """

    def __init__(self, inner: Runner, owner: Owner) -> None:
        self._inner = inner
        self._owner = owner
        self._postgres = inner.dialect == "postgresql"

    @property
    def dialect(self) -> str:
        return self._inner.dialect

    @property
    def closed(self) -> bool:
        return self._inner.closed

    def _conn(self, work: Callable[[Connection], T]) -> Callable[[Connection], T]:
        if not self._postgres:
            return work

        def run(conn: Connection) -> T:
            scope_connection(conn, self._owner)
            return work(conn)

        return run

    def _raw(self, work: Callable[[Raw], T]) -> Callable[[Raw], T]:
        if not self._postgres:
            return work

        def run(raw: Raw) -> T:
            scope_raw(raw, self._owner)
            return work(raw)

        return run

    def write(self, work: Callable[[Connection], T]) -> T:
        return self._inner.write(self._conn(work))

    def read(self, work: Callable[[Connection], T]) -> T:
        return self._inner.read(self._conn(work))

    def fast_write(self, work: Callable[[Raw], T]) -> T:
        return self._inner.fast_write(self._raw(work))

    def fast_read(self, work: Callable[[Raw], T]) -> T:
        return self._inner.fast_read(self._raw(work))


class ScopedStore:
    """One owner's view of a :class:`~sessionstore.SessionStore` (see the module doc)."""

    def __init__(self, store: SessionStore, owner: Owner) -> None:
        self._store = store
        #: Whose view this is (``user_id`` ``None``: the whole app).
        self.owner = owner
        self._runner = ScopedRunner(store._runner, owner)
        config = store.config
        self.sessions = SessionRepository(self._runner, store._clock, owner=owner)
        self.messages = MessageRepository(
            self._runner,
            store._clock,
            max_content_bytes=config.max_content_bytes,
            max_payload_bytes=config.max_payload_bytes,
            owner=owner,
        )
        self.search = SearchRepository(self._runner, owner=owner)
        self.state = StateRepository(
            self._runner, owner=owner, max_value_bytes=config.max_content_bytes
        )
        self.lifecycle = Lifecycle(
            self._runner,
            store._clock,
            idle_timeout=config.idle_timeout,
            hard_timeout=config.hard_timeout,
            purge_after=config.purge_after,
            app_timeouts=config.app_timeouts,
            owner=owner,
        )

    @property
    def app(self) -> str:
        return self.owner.app

    @property
    def user_id(self) -> str | None:
        return self.owner.user_id

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Several calls of this view in one transaction (see ``SessionStore.transaction``)."""
        from .store import Transaction  # noqa: PLC0415 - the store module imports this one

        store = self._store
        with store._runner.transaction() as conn:
            inner = TransactionRunner(conn, path=sqlite_path(store.engine))
            runner = ScopedRunner(inner, self.owner)
            owner = self.owner
            limit = store.config.max_content_bytes
            try:
                yield Transaction(
                    sessions=SessionRepository(runner, store._clock, owner=owner),
                    messages=MessageRepository(
                        runner,
                        store._clock,
                        max_content_bytes=limit,
                        max_payload_bytes=store.config.max_payload_bytes,
                        owner=owner,
                    ),
                    search=SearchRepository(runner, owner=owner),
                    state=StateRepository(runner, owner=owner, max_value_bytes=limit),
                )
            finally:
                inner.finished = True

    def export(
        self, session_id: str, format: Format = "json", out: IO[str] | None = None
    ) -> str | None:
        """``SessionStore.export`` of one of this owner's sessions."""
        return export_session(self._runner, session_id, format, out, owner=self.owner)

    def export_file(
        self,
        session_id: str,
        path: str | os.PathLike[str],
        format: Format = "json",
        *,
        overwrite: bool = False,
    ) -> Path:
        """``SessionStore.export_file`` of one of this owner's sessions."""
        self._store._check_open()
        database = self._store.path
        return export_to_path(
            self._runner,
            session_id,
            path,
            format,
            database=Path(database) if database is not None else None,
            overwrite=overwrite,
            owner=self.owner,
        )

    def import_session(
        self,
        source: str | bytes | IO[str] | Mapping[str, Any],
        *,
        session_id: str | None = None,
    ) -> SessionRecord:
        """``SessionStore.import_session``, the new session stamped with this view's owner."""
        return import_session(
            self._runner,
            source,
            session_id=session_id,
            max_content_bytes=self._store.config.max_content_bytes,
            owner=self.owner,
            now=self._store._clock(),
        )

    def stats(self) -> StoreStats:
        """Totals and the per-model breakdown of this owner's sessions only."""
        return collect_stats(self._runner, (self.owner.app, self.owner.user_id))

    def __repr__(self) -> str:
        who = "*" if self.owner.user_id is None else repr(self.owner.user_id)
        return f"<ScopedStore app={self.owner.app!r} user={who} of {self._store!r}>"
