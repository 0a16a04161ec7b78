"""Translating driver and SQLAlchemy exceptions into the package's own errors.

The one place a ``sqlite3``, psycopg or SQLAlchemy exception becomes a
:class:`~sessionstore.errors.SessionStoreError`: SQLite's result codes (by
name, as Python exposes them) and PostgreSQL's SQLSTATE classes each map to
the error a caller can act on (busy, full, I/O, corrupt, not a database,
read-only, a constraint, a failed connection); errors raised before a
statement runs carry no code and are matched by their text. :func:`translate`
also words the message: what happened and what to do. Everything else is a
plain :class:`~sessionstore.errors.StorageError`. :mod:`sessionstore.errors`
re-exports :func:`translate`.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy import exc as sa_exc

from .errors import (
    ConflictError,
    ConnectionFailed,
    ConstraintViolation,
    DatabaseCorruptError,
    InvalidInput,
    NotADatabaseError,
    ReadOnlyError,
    SessionStoreError,
    StorageError,
    StorageFullError,
    StorageIOError,
    StoreBusyError,
)

__all__ = ["classify_name", "translate"]


# SQLite primary result codes, as names: Python exposes the extended name
# (``SQLITE_IOERR_WRITE``), the primary code is its prefix.
_SQLITE_CLASSES: tuple[tuple[str, type[StorageError] | type[ConflictError]], ...] = (
    ("SQLITE_BUSY", StoreBusyError),
    ("SQLITE_LOCKED", StoreBusyError),
    ("SQLITE_FULL", StorageFullError),
    ("SQLITE_IOERR", StorageIOError),
    ("SQLITE_CORRUPT", DatabaseCorruptError),
    ("SQLITE_NOTADB", NotADatabaseError),
    ("SQLITE_READONLY", ReadOnlyError),
    ("SQLITE_CANTOPEN", StorageIOError),
    ("SQLITE_CONSTRAINT", ConstraintViolation),
)

# PostgreSQL SQLSTATE classes and codes.
_PG_CLASSES: tuple[tuple[str, type[StorageError] | type[ConflictError]], ...] = (
    ("40001", StoreBusyError),  # serialization_failure
    ("40P01", StoreBusyError),  # deadlock_detected
    ("55P03", StoreBusyError),  # lock_not_available
    ("57014", StoreBusyError),  # query_canceled (statement timeout)
    ("53100", StorageFullError),  # disk_full
    ("53", StorageFullError),  # insufficient resources
    ("58", StorageIOError),  # system error
    ("XX001", DatabaseCorruptError),  # data_corrupted
    ("XX002", DatabaseCorruptError),  # index_corrupted
    ("25006", ReadOnlyError),  # read_only_sql_transaction
    ("23", ConstraintViolation),  # integrity constraint violation
    ("08", ConnectionFailed),  # connection exception
    ("28", ConnectionFailed),  # invalid authorization (a wrong password)
    ("3D000", ConnectionFailed),  # invalid catalog name (no such database)
)


def _classify(orig: BaseException | None) -> type[SessionStoreError]:
    if isinstance(orig, sqlite3.Error):
        name = getattr(orig, "sqlite_errorname", "") or ""
        for prefix, cls in _SQLITE_CLASSES:
            if name.startswith(prefix):
                return cls
        text = str(orig).lower()
        # Errors raised before a statement runs carry no code; match their text.
        if "locked" in text or "busy" in text:
            return StoreBusyError
        if "not a database" in text:
            return NotADatabaseError
        if "malformed" in text:
            return DatabaseCorruptError
        if isinstance(orig, sqlite3.IntegrityError):
            return ConstraintViolation
        return StorageError
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        for prefix, cls in _PG_CLASSES:
            if sqlstate.startswith(prefix):
                return cls
    if isinstance(orig, UnicodeError):
        return InvalidInput
    return StorageError


def classify_name(exc: BaseException) -> type[SessionStoreError]:
    """The typed error class a driver (or SQLAlchemy) exception maps to."""
    if isinstance(exc, sa_exc.StatementError) and exc.orig is not None:
        return _classify(exc.orig)
    if isinstance(exc, sa_exc.TimeoutError):
        return StoreBusyError
    return _classify(exc)


def translate(exc: BaseException, *, path: str | None = None) -> SessionStoreError:
    """Turn a driver or SQLAlchemy exception into the package's own error."""
    if isinstance(exc, SessionStoreError):
        return exc
    cls = classify_name(exc)
    orig = exc.orig if isinstance(exc, sa_exc.StatementError) else exc
    detail = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    if isinstance(exc, sa_exc.TimeoutError):
        return StoreBusyError(
            "no pooled connection became free in time; raise pool_size or pool_timeout"
        )
    if issubclass(cls, NotADatabaseError):
        return cls(detail, path=path)
    if issubclass(cls, DatabaseCorruptError):
        return cls(f"the database is damaged: {detail}", path=path)
    if cls is StoreBusyError:
        return StoreBusyError(
            f"the database stayed busy past the deadline ({detail}); "
            "another process holds a write lock — retry later or raise busy_timeout"
        )
    if cls is StorageFullError:
        return StorageFullError(f"no space left for the write ({detail}); nothing was changed")
    return cls(detail)
