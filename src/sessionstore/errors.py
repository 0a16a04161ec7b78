"""The package's error hierarchy, and the one place driver errors are translated.

Every error a caller can see derives from :class:`SessionStoreError`. Each
subclass names a situation the caller can act on: something was not found,
the input was invalid, the request conflicts with what is stored, the session
is in the wrong state, the schema is not what this version expects, or the
storage itself failed (busy, full, I/O, corrupt).

Driver and SQLAlchemy exceptions are translated by :func:`translate` at the
boundary of the store; none of them reaches a caller.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy import exc as sa_exc

__all__ = [
    "ConflictError",
    "ConstraintViolation",
    "DatabaseCorruptError",
    "InvalidCursor",
    "InvalidInput",
    "InvalidSearchQuery",
    "InvalidStateError",
    "MessageNotFound",
    "MigrationError",
    "NotADatabaseError",
    "NotFoundError",
    "ReadOnlyError",
    "SchemaMismatchError",
    "SessionActive",
    "SessionArchived",
    "SessionExists",
    "SessionNotFound",
    "SessionStoreError",
    "SnapshotNotFound",
    "StorageError",
    "StorageFullError",
    "StorageIOError",
    "StoreBusyError",
    "StoreClosedError",
    "translate",
]


class SessionStoreError(Exception):
    """Base class of every error raised by sessionstore."""


# --- the caller asked for something that is not there -----------------------


class NotFoundError(SessionStoreError, LookupError):
    """The thing asked for does not exist."""


class SessionNotFound(NotFoundError):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"no session with id {session_id!r}")
        self.session_id = session_id


class MessageNotFound(NotFoundError):
    def __init__(self, message_id: int) -> None:
        super().__init__(f"no message with id {message_id!r}")
        self.message_id = message_id


# --- the caller's input is wrong ---------------------------------------------


class InvalidInput(SessionStoreError, ValueError):
    """An argument was rejected before anything was written."""


class InvalidCursor(InvalidInput):
    """A pagination cursor was malformed or belongs to another query."""


class InvalidSearchQuery(InvalidInput):
    """An advanced search query is not valid syntax for the database's search engine."""


# --- the request conflicts with what is stored --------------------------------


class ConflictError(SessionStoreError):
    """The request conflicts with the stored state."""


class SessionExists(ConflictError):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"a session with id {session_id!r} already exists")
        self.session_id = session_id


class ConstraintViolation(ConflictError):
    """A database constraint rejected the write; nothing was changed."""


class SnapshotNotFound(NotFoundError):
    def __init__(self, snapshot_id: int) -> None:
        super().__init__(f"no snapshot with id {snapshot_id!r}")
        self.snapshot_id = snapshot_id


class SessionActive(ConflictError):
    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"session {session_id!r} is active; restoring a snapshot over it would lose its "
            "newer messages. Archive it first, or import the snapshot under another id"
        )
        self.session_id = session_id


class InvalidStateError(SessionStoreError):
    """The object is not in a state that allows the operation."""


class SessionArchived(InvalidStateError):
    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"session {session_id!r} is archived and takes no new messages; "
            f"bring it back with store.lifecycle.reactivate({session_id!r})"
        )
        self.session_id = session_id


class StoreClosedError(InvalidStateError):
    def __init__(self) -> None:
        super().__init__("the store is closed; open a new one with SessionStore.open()")


# --- the schema is not what this version expects ----------------------------


class SchemaMismatchError(SessionStoreError):
    """The database's schema is unknown, or not at the revision this code needs."""


class MigrationError(SessionStoreError):
    """An upgrade failed; the database was left at its previous revision."""


# --- the storage itself failed ------------------------------------------------


class StorageError(SessionStoreError):
    """The database could not carry out the operation."""


class StoreBusyError(StorageError):
    """Another writer held the database for longer than the busy deadline."""


class StorageFullError(StorageError):
    """The disk (or the database's page limit) is full; the write was rolled back."""


class StorageIOError(StorageError):
    """The operating system reported an I/O error."""


class ReadOnlyError(StorageError):
    """The database file cannot be written."""


class DatabaseCorruptError(StorageError):
    """The file is damaged or is not a database at all."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        if path:
            message = (
                f"{message} (file: {path}). Restore a backup with "
                f"`sessionstore restore-backup BACKUP --db sqlite:///{path}`."
            )
        super().__init__(message)
        self.path = path


class NotADatabaseError(DatabaseCorruptError):
    """The file is not a SQLite database at all (its header is wrong, or it is something else)."""


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
