"""Where transactions begin and end: the store's short ones, and the caller's long one.

Repositories never commit. They hand a function of a connection to a
:class:`Runner`, and the runner decides the transaction around it:

* :class:`StoreRunner` (``store.sessions.append(...)`` outside a
  ``with store.transaction()``) gives every call its own short transaction.
  Writes begin ``BEGIN IMMEDIATE`` on SQLite; a busy database is retried as a
  *whole transaction* with jittered back-off until the busy deadline, then
  :class:`StoreBusyError`. Reads begin deferred and never wait for writers.
* :class:`TransactionRunner` (inside ``with store.transaction() as tx``) runs
  every call on the caller's one connection; the context manager commits on
  success and rolls back on any exception.

Driver and SQLAlchemy exceptions are translated here, once, for everything.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext, suppress
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Dialect, Engine
from sqlalchemy.exc import SQLAlchemyError

from .engine import reader, sqlite_path
from .errors import (
    InvalidStateError,
    SessionStoreError,
    StoreBusyError,
    StoreClosedError,
    translate,
)
from .prepared import Prepared

__all__ = ["Raw", "Runner", "StoreRunner", "TransactionRunner"]

T = TypeVar("T")
Work = Callable[[Connection], T]
RawWork = Callable[["Raw"], T]


class Raw:
    """A pooled DBAPI connection and its dialect, for :class:`Prepared` statements."""

    __slots__ = ("dbapi", "dialect")

    def __init__(self, dbapi: Any, dialect: Dialect) -> None:
        self.dbapi = dbapi
        self.dialect = dialect

    def all(self, prepared: Prepared, params: Mapping[str, Any]) -> list[Any]:
        return prepared.execute(self.dbapi, self.dialect, params).fetchall()  # type: ignore[no-any-return]

    def first(self, prepared: Prepared, params: Mapping[str, Any]) -> Any:
        return prepared.execute(self.dbapi, self.dialect, params).fetchone()


class Runner(Protocol):
    @property
    def dialect(self) -> str: ...

    def write(self, work: Work[T]) -> T: ...

    def read(self, work: Work[T]) -> T: ...

    def fast_write(self, work: RawWork[T]) -> T: ...

    def fast_read(self, work: RawWork[T]) -> T: ...


class StoreRunner:
    """One short transaction per call, retried whole while the database is busy."""

    def __init__(self, engine: Engine, *, busy_deadline: timedelta, serialize: bool) -> None:
        self._engine = engine
        self._reader = reader(engine)
        self._deadline = busy_deadline.total_seconds()
        self._path = sqlite_path(engine)
        self.dialect = engine.dialect.name
        self._dialect = engine.dialect
        self._sqlite = self.dialect == "sqlite"
        self._driver_errors = driver_errors(engine.dialect)
        # A ``:memory:`` store has one connection; its transactions take turns.
        self._lock = threading.RLock() if serialize else None
        self.closed = False

    def write(self, work: Work[T]) -> T:
        return self._retry(lambda: self._run(self._engine, work))

    def read(self, work: Work[T]) -> T:
        return self._run(self._reader, work)

    def fast_write(self, work: RawWork[T]) -> T:
        return self._retry(lambda: self._run_raw(work, write=True))

    def fast_read(self, work: RawWork[T]) -> T:
        return self._run_raw(work, write=False)

    def _retry(self, attempt_once: Callable[[], T]) -> T:
        """Run a whole transaction again while the database reports itself busy."""
        deadline = time.monotonic() + self._deadline
        attempt = 0
        while True:
            try:
                return attempt_once()
            except StoreBusyError:
                attempt += 1
                pause = min(0.5, 0.002 * 2**attempt) * random.uniform(0.5, 1.5)
                if time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)

    def _run_raw(self, work: RawWork[T], *, write: bool) -> T:
        if self.closed:
            raise StoreClosedError()
        if self._lock is None:
            return self._raw_transaction(work, write)
        with self._lock:
            return self._raw_transaction(work, write)

    def _raw_transaction(self, work: RawWork[T], write: bool) -> T:
        """One transaction on a pooled driver connection, without SQLAlchemy's Connection."""
        try:
            fairy = self._engine.pool.connect()
            try:
                dbapi: Any = fairy.dbapi_connection
                if write and self._sqlite:
                    dbapi.execute("BEGIN IMMEDIATE")
                try:
                    result = work(Raw(dbapi, self._dialect))
                    if write or not self._sqlite:
                        dbapi.commit()
                except BaseException:
                    with suppress(Exception):
                        dbapi.rollback()
                    raise
                return result
            finally:
                fairy.close()
        except SessionStoreError:
            raise
        except self._driver_errors as exc:
            raise translate(exc, path=self._path) from exc

    def _run(self, engine: Engine, work: Work[T]) -> T:
        with self._begin(engine) as conn:
            try:
                return work(conn)
            except SessionStoreError:
                raise
            except self._driver_errors as exc:
                raise translate(exc, path=self._path) from exc

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction for the caller's block: commit on success, else roll back."""
        with self._begin(self._engine) as conn:
            yield conn

    @contextmanager
    def _begin(self, engine: Engine) -> Iterator[Connection]:
        """Begin, yield, commit (or roll back): driver errors of those steps translated.

        What the block itself raises passes through untouched: the caller's own
        exceptions are the caller's, and the repositories translate their own.
        """
        if self.closed:
            raise StoreClosedError()
        with self._lock or nullcontext():
            try:
                conn = engine.connect()
            except self._driver_errors as exc:
                raise translate(exc, path=self._path) from exc
            try:
                transaction = conn.begin()
            except self._driver_errors as exc:
                conn.close()
                raise translate(exc, path=self._path) from exc
            try:
                try:
                    yield conn
                except BaseException:
                    with suppress(*self._driver_errors):
                        transaction.rollback()
                    raise
                try:
                    transaction.commit()
                except self._driver_errors as exc:
                    raise translate(exc, path=self._path) from exc
            finally:
                conn.close()


class TransactionRunner:
    """Every call on the caller's one open transaction."""

    def __init__(self, conn: Connection, *, path: str | None) -> None:
        self._conn = conn
        self._path = path
        self.dialect = conn.dialect.name
        self._driver_errors = driver_errors(conn.dialect)
        #: Set when the caller's ``with`` block has ended.
        self.finished = False

    def write(self, work: Work[T]) -> T:
        return self._run(work)

    def read(self, work: Work[T]) -> T:
        return self._run(work)

    def fast_write(self, work: RawWork[T]) -> T:
        return self._run(lambda conn: work(Raw(conn.connection.dbapi_connection, conn.dialect)))

    def fast_read(self, work: RawWork[T]) -> T:
        return self.fast_write(work)

    def _run(self, work: Work[T]) -> T:
        if self.finished:
            raise InvalidStateError(
                "this transaction has ended; open a new one with store.transaction()"
            )
        try:
            return work(self._conn)
        except SessionStoreError:
            raise
        except self._driver_errors as exc:
            raise translate(exc, path=self._path) from exc


def driver_errors(dialect: Dialect) -> tuple[type[BaseException], ...]:
    """The exceptions that come from below us and must be translated."""
    errors: list[type[BaseException]] = [SQLAlchemyError, sqlite3.Error, UnicodeError]
    dbapi = getattr(dialect, "loaded_dbapi", None)
    if dbapi is not None and isinstance(getattr(dbapi, "Error", None), type):
        errors.append(dbapi.Error)
    return tuple(errors)
