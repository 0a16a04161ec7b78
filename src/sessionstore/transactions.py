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
  success and rolls back on any exception. While it is open, a write on the
  store itself from the same thread is refused at once with
  :class:`NestedTransactionError`: it would need a second write transaction,
  which would wait for the first (the thread's own) until the busy deadline.
  Reads on the store still run, on their own connection, and see the last
  commit, not the open transaction's writes.

Driver and SQLAlchemy exceptions are translated here, once, for everything.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Dialect, Engine
from sqlalchemy.exc import SQLAlchemyError

from .connection_cache import ConnectionCache
from .engine import _BEGIN_OPTION, reader, sqlite_path
from .errors import (
    InvalidStateError,
    NestedTransactionError,
    SessionStoreError,
    StoreBusyError,
    StoreClosedError,
    translate,
)
from .prepared import Prepared

__all__ = ["Raw", "Runner", "StoreRunner", "TransactionRunner", "one_snapshot"]

T = TypeVar("T")
#: Seconds a kept PostgreSQL connection is reused without the pool's ping.
POSTGRES_TRUSTED_IDLE = 2.0
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

    @property
    def closed(self) -> bool:
        """True once no more work can run (the store closed, the transaction ended)."""
        ...

    def write(self, work: Work[T]) -> T: ...

    def read(self, work: Work[T]) -> T: ...

    def fast_write(self, work: RawWork[T]) -> T: ...

    def fast_read(self, work: RawWork[T]) -> T: ...


class StoreRunner:
    """One short transaction per call, retried whole while the database is busy."""

    def __init__(
        self, engine: Engine, *, busy_deadline: timedelta, serialize: bool, cache: int
    ) -> None:
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
        # Writers of one process queue here rather than in SQLite's busy
        # handler, which polls with growing sleeps (up to 100 ms each): the
        # next writer starts the moment the last one commits.
        self._writer = threading.RLock() if self._sqlite and not serialize else None
        self.cache = ConnectionCache(
            engine,
            0 if serialize else cache,
            max_idle=None if self._sqlite else POSTGRES_TRUSTED_IDLE,
        )
        self.closed = False
        # Set while this thread is inside ``with store.transaction()``.
        self._in_transaction = threading.local()
        if self._writer is not None:
            _fork_waits_for_writers(self)

    def _before_fork(self) -> None:
        # A fork in the middle of a write would copy a held lock, and SQLite's
        # in-process lock state with it, into a child that could then never write.
        if self._writer is not None:
            self._writer.acquire()

    def _after_fork_in_parent(self) -> None:
        if self._writer is not None:
            self._writer.release()

    def _after_fork_in_child(self) -> None:
        if self._writer is not None:
            self._writer = threading.RLock()

    def close(self) -> None:
        self.closed = True
        self.cache.drain()

    def write(self, work: Work[T]) -> T:
        return self._retry(lambda: self._run(self._engine, work, write=True))

    def read(self, work: Work[T]) -> T:
        return self._run(self._reader, work, write=False)

    def fast_write(self, work: RawWork[T]) -> T:
        # The first attempt without the retry loop's closure and clock: nearly
        # every write succeeds at once.
        started = time.monotonic()
        try:
            return self._run_raw(work, write=True)
        except StoreBusyError as busy:
            first = busy
        return self._retry(lambda: self._run_raw(work, write=True), failed=(first, started))

    def fast_read(self, work: RawWork[T]) -> T:
        return self._run_raw(work, write=False)

    def _retry(
        self,
        attempt_once: Callable[[], T],
        failed: tuple[StoreBusyError, float] | None = None,
    ) -> T:
        """Run a whole transaction again while the database reports itself busy.

        ``failed``: a first attempt already made, its busy error and when it began.
        """
        deadline = (time.monotonic() if failed is None else failed[1]) + self._deadline
        attempt = 0
        error = None if failed is None else failed[0]
        while True:
            if error is not None:
                attempt += 1
                pause = min(0.5, 0.002 * 2**attempt) * random.uniform(0.5, 1.5)
                if time.monotonic() + pause > deadline:
                    raise error
                time.sleep(pause)
            try:
                return attempt_once()
            except StoreBusyError as busy:
                error = busy

    @contextmanager
    def _turn(self, write: bool) -> Iterator[None]:
        """This thread's turn: the store-wide lock (memory), the writers' lock (files)."""
        if self.closed:
            raise StoreClosedError()
        if write and getattr(self._in_transaction, "open", False):
            # The thread's own transaction holds the write lock this one would wait for.
            raise NestedTransactionError()
        lock = self._take_turn(write)
        try:
            yield
        finally:
            if lock is not None:
                lock.release()

    def _take_turn(self, write: bool) -> threading.RLock | None:
        """:meth:`_turn` without a generator, for the hot path; release what it returns."""
        if self.closed:
            raise StoreClosedError()
        if write and getattr(self._in_transaction, "open", False):
            raise NestedTransactionError()
        lock = self._lock or (self._writer if write else None)
        if lock is None:
            return None
        if not lock.acquire(timeout=self._deadline):
            raise StoreBusyError(
                "another thread of this process kept the database busy past the busy deadline"
            )
        return lock

    def _run_raw(self, work: RawWork[T], *, write: bool) -> T:
        """One transaction on a driver connection, without SQLAlchemy's Connection."""
        lock = self._take_turn(write)
        try:
            try:
                fairy = self.cache.take()
            except self._driver_errors as exc:
                raise translate(exc, path=self._path) from exc
            dbapi: Any = fairy.dbapi_connection
            reusable = False
            try:
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
                reusable = True
                return result
            except SessionStoreError:
                # The work refused (not found, archived…): the connection is fine.
                reusable = not getattr(dbapi, "in_transaction", False)
                raise
            except self._driver_errors as exc:
                raise translate(exc, path=self._path) from exc
            finally:
                self.cache.give_back(fairy, reusable=reusable)
        finally:
            if lock is not None:
                lock.release()

    def _run(self, engine: Engine, work: Work[T], *, write: bool) -> T:
        with self._turn(write), self._begin(engine) as conn:
            try:
                return work(conn)
            except SessionStoreError:
                raise
            except self._driver_errors as exc:
                raise translate(exc, path=self._path) from exc

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction for the caller's block: commit on success, else roll back."""
        with self._turn(write=True), self._begin(self._engine) as conn:
            self._in_transaction.open = True
            try:
                yield conn
            finally:
                self._in_transaction.open = False

    @contextmanager
    def _begin(self, engine: Engine) -> Iterator[Connection]:
        """Begin, yield, commit (or roll back): driver errors of those steps translated.

        What the block itself raises passes through untouched: the caller's own
        exceptions are the caller's, and the repositories translate their own.
        """
        try:
            conn = engine.connect()
        except self._driver_errors as exc:
            raise translate(exc, path=self._path) from exc
        try:
            try:
                transaction = conn.begin()
            except self._driver_errors as exc:
                raise translate(exc, path=self._path) from exc
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

    @property
    def closed(self) -> bool:
        return self.finished

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


def _fork_waits_for_writers(runner: StoreRunner) -> None:
    """Make ``fork()`` wait until no thread of this process is writing through ``runner``."""
    ref = weakref.ref(runner)

    def call(method: str) -> Callable[[], None]:
        def hook() -> None:
            target = ref()
            if target is not None:
                getattr(target, method)()

        return hook

    os.register_at_fork(
        before=call("_before_fork"),
        after_in_parent=call("_after_fork_in_parent"),
        after_in_child=call("_after_fork_in_child"),
    )


def driver_errors(dialect: Dialect) -> tuple[type[BaseException], ...]:
    """The exceptions that come from below us and must be translated."""
    errors: list[type[BaseException]] = [SQLAlchemyError, sqlite3.Error, UnicodeError]
    dbapi = getattr(dialect, "loaded_dbapi", None)
    if dbapi is not None and isinstance(getattr(dbapi, "Error", None), type):
        errors.append(dbapi.Error)
    return tuple(errors)


def one_snapshot(conn: Connection) -> None:
    """Make a read of several statements see one state of the database.

    SQLite's read transaction is one snapshot already. PostgreSQL's default
    (``READ COMMITTED``) lets each statement see what committed before it: a
    walk or an export of keyset batches would mix states (a message appended
    between two batches, a session deleted between two statements of one search).
    The store's own read transaction (:func:`sessionstore.engine.reader`) is made
    ``REPEATABLE READ`` when nothing has run in it yet; a caller's transaction
    (``store.transaction()``, which writes) is left as the caller began it.
    """
    if conn.dialect.name != "postgresql" or _BEGIN_OPTION not in conn.get_execution_options():
        return
    info = getattr(conn.connection.dbapi_connection, "info", None)
    # psycopg's ``pq.TransactionStatus.IDLE`` (0): no BEGIN sent yet, nothing run.
    if info is not None and int(info.transaction_status) == 0:
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
