"""The engine: pooling, per-connection pragmas, and how transactions begin.

SQLite file databases get a ``QueuePool`` whose ``connect`` hook sets, on
every new connection, the pragmas the legacy layer never set: foreign keys
on, a busy timeout, ``synchronous``, a larger page cache and in-memory temp
storage. WAL is switched on once (it is a property of the file and persists),
with a retry because another process may be opening the same file — once the
file is known to be a sessionstore or legacy database, so that a file the
store refuses is left untouched.

The pysqlite driver is put in autocommit mode and SQLAlchemy's ``begin``
event emits the ``BEGIN`` itself (the SQLAlchemy documentation's pysqlite
recipe). That gives us two things the driver's own transaction handling
cannot: DDL inside transactions (so migrations are atomic), and
``BEGIN IMMEDIATE`` for every transaction that may write. A deferred
transaction that reads first and writes later has to upgrade its lock, and
when two do it at once one of them fails with "database is locked" at once,
whatever the busy timeout; ``BEGIN IMMEDIATE`` takes the write lock up front
and waits for it properly. Read-only work runs on :func:`reader`, which
begins deferred transactions so readers never queue behind writers.

PostgreSQL gets an ordinary pool with ``pool_pre_ping``.

Opening is where a URL meets the world, so the mistakes made there get
their own typed errors: a malformed or unsupported URL and a directory
given as the database are :class:`InvalidInput`, a driver that is not
installed is :class:`MissingDependency` naming the extra to install, a
missing file (with ``create=False``, which opens SQLite files ``mode=rw``
so nothing is ever created) is :class:`DatabaseNotFound`, and a server or
file that cannot be reached is :class:`ConnectionFailed` saying where
(never with the password).
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import URL, Connection
from sqlalchemy.pool import QueuePool, StaticPool

from . import files
from .config import StoreConfig
from .errors import (
    ConnectionFailed,
    DatabaseNotFound,
    InvalidInput,
    MissingDependency,
    OrphanedJournal,
    SessionStoreError,
    StorageError,
    StorageIOError,
    translate,
)

__all__ = [
    "PoolStatus",
    "build_engine",
    "ensure_wal",
    "is_memory",
    "pool_status",
    "probe",
    "reader",
    "sqlite_path",
]

_BEGIN_OPTION = "sessionstore_begin"
#: WAL pages between automatic checkpoints on SQLite (SQLite's default: 1,000).
WAL_AUTOCHECKPOINT_PAGES = 1000
_WAL_ATTEMPTS = 50


@dataclass(frozen=True, slots=True)
class PoolStatus:
    """What the pool holds, and the settings in force on one of its connections."""

    dialect: str
    pool_class: str
    size: int
    #: Connections in use, including the idle ones the store's hot path keeps.
    checked_out: int
    overflow: int
    pragmas: dict[str, Any]
    #: Of those checked out, the idle ones kept by the hot path between calls.
    kept: int = 0


def normalize_url(url: str | URL) -> URL:
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise InvalidInput(f"not a database URL: {url!r}") from exc
    if parsed.get_backend_name() == "sqlite" and (parsed.host or parsed.port):
        # ``sqlite://name.db`` parses "name.db" as a host: the file is lost.
        name = f"{parsed.host or ''}{'/' + parsed.database if parsed.database else ''}"
        raise InvalidInput(
            f"{parsed.render_as_string(hide_password=True)!r} has two slashes, so it names "
            f"no file: use sqlite:///{name} for a path relative to the working directory, "
            "or sqlite:////absolute/path.db"
        )
    if parsed.drivername in ("postgresql", "postgres"):
        # psycopg 3 is the driver the ``postgres`` extra installs.
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise InvalidInput(
            f"unsupported database {parsed.get_backend_name()!r}: use sqlite:/// or postgresql://"
        )
    return parsed


def is_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def sqlite_path(engine: Engine) -> str | None:
    """The file behind a SQLite engine, or None for memory and other databases."""
    return sqlite_path_of(engine.url)


def sqlite_path_of(url: URL) -> str | None:
    if url.get_backend_name() != "sqlite" or is_memory(url):
        return None
    return str(url.database)


def build_engine(config: StoreConfig, *, create: bool = True) -> Engine:
    """The engine for ``config.url``; with ``create=False`` a missing SQLite file is
    :class:`DatabaseNotFound` and no connection of the engine can create one."""
    url = normalize_url(config.url)
    if url.get_backend_name() == "sqlite":
        try:
            engine = _sqlite_engine(url, config, create=create)
        except TypeError as exc:
            raise _refused_options(exc) from None
    else:
        try:
            engine = create_engine(
                url,
                pool_size=config.pool_size,
                max_overflow=config.max_overflow,
                pool_timeout=config.pool_timeout,
                pool_pre_ping=True,
                **config.engine_options,
            )
        except ImportError as exc:
            raise MissingDependency(
                f"the PostgreSQL driver is not installed ({exc}); install it with "
                "pip install 'sessionstore[postgres]'"
            ) from exc
        except TypeError as exc:
            raise _refused_options(exc) from None
    _dispose_after_fork(engine)
    return engine


def _refused_options(exc: TypeError) -> Exception:
    """``engine_options`` that ``create_engine()`` does not take are bad input."""
    if "create_engine" not in str(exc):
        return exc
    return InvalidInput(f"engine_options holds an argument create_engine() does not take: {exc}")


def where(url: URL) -> str:
    """Where a URL points, for messages: the file, or user@host:port/database (no password)."""
    if url.get_backend_name() == "sqlite":
        return "memory" if is_memory(url) else os.path.abspath(str(url.database))
    user = f"{url.username}@" if url.username else ""
    host = url.host or "localhost (its Unix socket)"
    port = f":{url.port}" if url.port else ""
    return f"{user}{host}{port}/{url.database or ''}"


def probe(engine: Engine) -> None:
    """Open one connection (and give it back to the pool), so that a database that
    cannot be reached is reported as :class:`ConnectionFailed`, saying where, before
    any other work is attempted and blamed for it."""
    try:
        with engine.connect():
            pass
    except Exception as exc:
        raise connection_failed(exc, engine.url) from exc


def connection_failed(exc: BaseException, url: URL) -> SessionStoreError:
    """The typed error for a failure to connect to ``url``."""
    translated = translate(exc, path=sqlite_path_of(url))
    if type(translated) not in (StorageError, StorageIOError, ConnectionFailed):
        # Busy, damaged, not a database: the file was reached and said so.
        return translated
    detail = str(translated).replace("\n", " ").strip()
    if url.password:
        detail = detail.replace(str(url.password), "***")
    if url.get_backend_name() == "sqlite":
        return ConnectionFailed(f"could not open the SQLite database {where(url)}: {detail}")
    return ConnectionFailed(f"could not connect to PostgreSQL at {where(url)}: {detail}")


def reader(engine: Engine) -> Engine:
    """The same engine and pool, beginning deferred (read) transactions on SQLite."""
    return engine.execution_options(**{_BEGIN_OPTION: "BEGIN"})


def _sqlite_engine(url: URL, config: StoreConfig, *, create: bool) -> Engine:
    busy_ms = int(config.busy_timeout.total_seconds() * 1000)
    connect_args = {
        "timeout": config.busy_timeout.total_seconds(),
        "check_same_thread": False,
    }
    if url.query:
        # The driver would ignore them (``?mode=ro`` would still write): refuse.
        raise InvalidInput(
            f"sqlite URLs take no query parameters ({', '.join(sorted(url.query))}): "
            "pass options to SessionStore.open(url, ...), and open an existing file "
            "without creating or upgrading it with create=False, upgrade=False"
        )
    memory = is_memory(url)
    if memory:
        # One connection, shared: a second connection would see another database.
        engine = create_engine(
            url, poolclass=StaticPool, connect_args=connect_args, **config.engine_options
        )
    else:
        path = str(url.database)
        if path.startswith("file:"):
            raise InvalidInput("use a plain path in sqlite:/// URLs, not a file: URI")
        # Absolute from here on: a pooled connection opened after the process
        # changed directory must reach the same file, and so must store.path.
        path = os.path.abspath(path)
        url = url.set(database=path)
        _check_sqlite_path(path, create=create)
        options: dict[str, Any] = {"connect_args": connect_args}
        if not create:
            options = {"creator": _existing_file(path, connect_args)}
        engine = create_engine(
            url,
            poolclass=QueuePool,
            pool_size=config.pool_size,
            max_overflow=config.max_overflow,
            pool_timeout=config.pool_timeout,
            **options,
            **config.engine_options,
        )
    pragmas = (
        # The legacy file declared its foreign keys and cascades but never enforced them.
        "PRAGMA foreign_keys = ON",
        # Wait for another writer's lock instead of failing at once.
        f"PRAGMA busy_timeout = {busy_ms}",
        # NORMAL is crash-safe in WAL mode; FULL also survives power loss.
        f"PRAGMA synchronous = {config.synchronous}",
        # Negative means KiB: a cache big enough for the hot indexes.
        f"PRAGMA cache_size = -{config.cache_size_kib}",
        # Sorts and temporary indexes for search stay off the disk.
        "PRAGMA temp_store = MEMORY",
        # Checkpoint every 1,000 WAL pages (SQLite's default), set so that no
        # build's other default applies. A larger WAL was measured slower: at
        # 8,000 pages an append's p50 rose by 8-13 µs and eight writer threads
        # took 10-20% longer, with bulk and multi-process writers no faster.
        f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}",
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # Autocommit in the driver; the "begin" hook below emits BEGIN itself.
        dbapi_connection.isolation_level = None
        for pragma in pragmas:
            dbapi_connection.execute(pragma)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        statement = conn.get_execution_options().get(_BEGIN_OPTION, "BEGIN IMMEDIATE")
        conn.connection.dbapi_connection.execute(statement)  # type: ignore[union-attr]

    return engine


def _check_sqlite_path(path: str, *, create: bool) -> None:
    # NUL, lone surrogates, names too long: InvalidInput before any system call.
    full = str(files.checked_path(path, "the database path"))
    if os.path.isdir(full):
        raise InvalidInput(
            f"{full} is a directory, not a database file; name a file, "
            f"e.g. sqlite:///{os.path.join(full, 'sessions.db')}"
        )
    if not create and not os.path.exists(full):
        raise DatabaseNotFound(full)
    _refuse_orphaned_journal(full)
    parent = os.path.dirname(full)
    if not os.path.isdir(parent):
        raise InvalidInput(f"the directory {parent} for the database {full} does not exist")


def _refuse_orphaned_journal(full: str) -> None:
    """Refuse a database that is missing (or empty, with a -wal) while its journal is there.

    Such a file holds pages of a database that is no longer there (moved, or
    lost between two renames). Opening would create an empty database, and
    SQLite would then discard those pages: acknowledged writes would vanish
    while the new file reports itself healthy. SQLite looks for them beside
    the resolved file, so a dangling link is followed. An empty file with a
    ``-journal`` beside it is what another process creating the database
    looks like for a moment, so only a ``-wal`` makes an empty file refused
    (a WAL database always has its header written before its first frame).
    """
    for base in dict.fromkeys((full, os.path.realpath(full))):
        try:
            size: int | None = os.path.getsize(base)
        except OSError:
            size = None  # missing, or a link to nothing
        if size:
            continue
        for suffix in ("-wal",) if size == 0 else ("-wal", "-journal"):
            try:
                found = os.path.getsize(base + suffix)
            except OSError:
                continue
            if found > 0:
                raise OrphanedJournal(base, base + suffix)


def _existing_file(path: str, connect_args: dict[str, Any]) -> Callable[[], sqlite3.Connection]:
    """Connections that open the file read-write but never create it (``mode=rw``)."""
    uri = f"file:{quote(os.path.abspath(path))}?mode=rw"

    def connect() -> sqlite3.Connection:
        connection: sqlite3.Connection = sqlite3.connect(uri, uri=True, **connect_args)
        return connection

    return connect


def ensure_wal(engine: Engine, deadline_seconds: float = 10.0) -> None:
    """Switch a SQLite file to WAL if it is not already (it stays so).

    Called once the file is known to be ours (empty, legacy or current), never
    by the connect hook: a file the store refuses must be left as it was.
    """
    if engine.dialect.name != "sqlite" or is_memory(engine.url):
        return
    fairy = engine.raw_connection()
    try:
        _enable_wal(fairy.dbapi_connection, deadline_seconds)  # type: ignore[arg-type]
    except sqlite3.Error as exc:
        raise translate(exc, path=sqlite_path(engine)) from exc
    finally:
        fairy.close()


def _enable_wal(dbapi_connection: sqlite3.Connection, deadline_seconds: float) -> None:
    """Switch the file to WAL once; it stays so for every later connection."""
    mode = dbapi_connection.execute("PRAGMA journal_mode").fetchone()
    if mode is not None and str(mode[0]).lower() == "wal":
        return
    deadline = time.monotonic() + deadline_seconds
    for attempt in range(_WAL_ATTEMPTS):
        try:
            mode = dbapi_connection.execute("PRAGMA journal_mode = WAL").fetchone()
        except sqlite3.OperationalError as exc:
            # Another process holds the file while it opens it too; wait and retry.
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(min(0.2, 0.005 * 2**attempt) * random.uniform(0.5, 1.0))
            continue
        if mode is not None and str(mode[0]).lower() == "wal":
            return
    raise StorageError("could not switch the database to WAL journal mode")


def _dispose_after_fork(engine: Engine) -> None:
    # A pooled connection carried across fork() is shared by two processes,
    # which corrupts SQLite's locking and PostgreSQL's protocol state alike.
    # The child drops the parent's connections (without closing them) and
    # opens its own on first use.
    ref = weakref.ref(engine)

    def _after_fork_in_child() -> None:
        target = ref()
        if target is not None:
            target.dispose(close=False)

    os.register_at_fork(after_in_child=_after_fork_in_child)


def pool_status(engine: Engine, *, kept: int = 0) -> PoolStatus:
    pool = engine.pool
    # Counted before the probe below borrows a connection of its own.
    size = checked_out = overflow = 0
    if isinstance(pool, QueuePool):
        size, checked_out, overflow = pool.size(), pool.checkedout(), max(0, pool.overflow())
    elif isinstance(pool, StaticPool):
        size = 1
    pragmas: dict[str, Any] = {}
    try:
        with reader(engine).connect() as conn:
            if engine.dialect.name == "sqlite":
                for name in _REPORTED_PRAGMAS:
                    pragmas[name] = conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            else:
                for name in ("server_version", "default_transaction_isolation", "TimeZone"):
                    pragmas[name] = conn.exec_driver_sql(f"SHOW {name}").scalar()
            conn.rollback()
    except Exception as exc:
        raise translate(exc, path=sqlite_path(engine)) from exc
    return PoolStatus(
        dialect=engine.dialect.name,
        pool_class=type(pool).__name__,
        size=size,
        checked_out=checked_out,
        overflow=overflow,
        pragmas=pragmas,
        kept=kept,
    )


_REPORTED_PRAGMAS = (
    "foreign_keys",
    "journal_mode",
    "synchronous",
    "busy_timeout",
    "cache_size",
    "temp_store",
)
