"""The package's error hierarchy.

Every error a caller can see derives from :class:`SessionStoreError`. Each
subclass names a situation the caller can act on: something was not found,
the input was invalid, the request conflicts with what is stored, the session
is in the wrong state, the schema is not what this version expects, or the
storage itself failed (busy, full, I/O, corrupt).

Driver and SQLAlchemy exceptions are translated by :func:`translate` at the
boundary of the store (:mod:`sessionstore.driver_errors`, re-exported here);
none of them reaches a caller.
"""

from __future__ import annotations

import reprlib

__all__ = [
    "ConflictError",
    "ConnectionFailed",
    "ConstraintViolation",
    "DatabaseCorruptError",
    "DatabaseInUse",
    "DatabaseNotFound",
    "DestinationExists",
    "DuplicateMessageId",
    "InvalidCursor",
    "InvalidInput",
    "InvalidSearchQuery",
    "InvalidStateError",
    "MessageNotFound",
    "MigrationError",
    "MissingDependency",
    "NestedTransactionError",
    "NotADatabaseError",
    "NotFoundError",
    "OrphanedJournal",
    "ReadOnlyError",
    "RestoreRefused",
    "SchemaMismatchError",
    "SearchTimeout",
    "SessionActive",
    "SessionArchived",
    "SessionExists",
    "SessionIdRetired",
    "SessionNotFound",
    "SessionStoreError",
    "SnapshotNotFound",
    "SnapshotSuperseded",
    "StorageError",
    "StorageFullError",
    "StorageIOError",
    "StoreBusyError",
    "StoreClosedError",
    "translate",
]


class SessionStoreError(Exception):
    """Base class of every error raised by sessionstore."""


class _Shown(reprlib.Repr):
    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 256:  # repr() refuses ints past sys.get_int_max_str_digits()
            return f"<an integer of {x.bit_length()} bits>"
        return super().repr_int(x, level)


# Long enough for any id the store accepts (255 characters), short enough for one line.
_SHOWN = _Shown()
_SHOWN.maxstring = _SHOWN.maxother = 300
_SHOWN.maxlevel = 3


def shown(value: object) -> str:
    """A short ``repr`` of a caller's value, for error messages.

    Bounded in length and depth: a megabyte of text or a list nested ten thousand
    deep must not make the message huge, or its ``repr`` raise ``RecursionError``.
    (``reprlib`` also names the type of an object whose own ``__repr__`` raises.)
    """
    return _SHOWN.repr(value)


# --- the caller asked for something that is not there -----------------------


class NotFoundError(SessionStoreError, LookupError):
    """The thing asked for does not exist."""


class SessionNotFound(NotFoundError):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"no session with id {shown(session_id)}")
        self.session_id = session_id


class MessageNotFound(NotFoundError):
    def __init__(self, message_id: int | str, session_id: str | None = None) -> None:
        where = "" if session_id is None else f" in session {shown(session_id)}"
        super().__init__(f"no message with id {shown(message_id)}{where}")
        self.message_id = message_id


class DatabaseNotFound(NotFoundError):
    """A store opened with ``create=False`` found no database file at its path."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"no database at {path}; check the path, or create it with "
            f"`sessionstore upgrade --db sqlite:///{path}`"
        )
        self.path = path


# --- the caller's input is wrong ---------------------------------------------


class InvalidInput(SessionStoreError, ValueError):
    """An argument was rejected before anything was written."""


class InvalidCursor(InvalidInput):
    """A pagination cursor was malformed or belongs to another query."""


class InvalidSearchQuery(InvalidInput):
    """A search query is not valid syntax for the database's search engine, or asks for
    more work than a search is allowed (too many words, too short a prefix)."""


class DuplicateMessageId(InvalidInput):
    """A message id (``client_msg_id``) already names another message of the session.

    An append that repeats a stored message exactly (same role, kind, content and
    payload) is a retry and returns the stored message; anything else under the
    same id is refused: a repeated id is never silently dropped.
    """

    def __init__(self, session_id: str, client_msg_id: str, sequence_number: int) -> None:
        super().__init__(
            f"message id {shown(client_msg_id)} already names message {sequence_number} of "
            f"session {shown(session_id)}, with another role, kind, content or payload; "
            "a retry repeats the message exactly, a new message needs a new id"
        )
        self.session_id = session_id
        self.client_msg_id = client_msg_id
        self.sequence_number = sequence_number


class DestinationExists(InvalidInput):
    """Something is already at the path a file was to be written to; it was left alone."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class SearchTimeout(InvalidSearchQuery):
    """A search ran past its time limit and was stopped; nothing was changed."""


# --- the request conflicts with what is stored --------------------------------


class ConflictError(SessionStoreError):
    """The request conflicts with the stored state."""


class SessionExists(ConflictError):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"a session with id {shown(session_id)} already exists")
        self.session_id = session_id


class ConstraintViolation(ConflictError):
    """A database constraint rejected the write; nothing was changed."""


class SnapshotNotFound(NotFoundError):
    def __init__(self, snapshot_id: int) -> None:
        super().__init__(f"no snapshot with id {shown(snapshot_id)}")
        self.snapshot_id = snapshot_id


def _as_copy(snapshot_id: int | None) -> str:
    call = f"{snapshot_id}, " if snapshot_id is not None else "snapshot_id, "
    return (
        f"Restore it as a copy under a new id instead: "
        f"store.lifecycle.restore({call}session_id='new-id')"
    )


class SessionActive(ConflictError):
    def __init__(self, session_id: str, snapshot_id: int | None = None) -> None:
        super().__init__(
            f"session {shown(session_id)} is active; restoring a snapshot over it would lose its "
            f"newer messages. {_as_copy(snapshot_id)}"
        )
        self.session_id = session_id
        self.snapshot_id = snapshot_id


class SnapshotSuperseded(ConflictError):
    """Restoring this snapshot under its own id would undo later messages of that id."""

    def __init__(self, snapshot_id: int, session_id: str, why: str) -> None:
        super().__init__(
            f"snapshot {snapshot_id} of session {shown(session_id)} is superseded ({why}): "
            "restoring it over that id would hand out its later sequence numbers again. "
            f"{_as_copy(snapshot_id)}"
        )
        self.snapshot_id = snapshot_id
        self.session_id = session_id


class SessionIdRetired(SessionExists):
    """The id belongs to a purged session whose snapshots are kept; it is not free."""

    def __init__(self, session_id: str, snapshot_id: int) -> None:
        ConflictError.__init__(
            self,
            f"session id {shown(session_id)} is retired: a purged session with that id still has "
            "snapshots, and a new session under it would hand out its sequence numbers again. "
            f"Bring it back with store.lifecycle.restore({snapshot_id}), or use another id",
        )
        self.session_id = session_id
        self.snapshot_id = snapshot_id


class RestoreRefused(ConflictError):
    """Restoring a backup would replace a healthy database (or a file that is not a
    database at all, perhaps an unrelated one), and ``force`` was not given."""

    def __init__(self, path: str, what: str = "is a healthy database") -> None:
        super().__init__(
            f"{path} {what}; restoring the backup would replace it. Pass force=True "
            "(`restore-backup --force`) to replace it anyway; a copy of it is kept beside it"
        )
        self.path = path


class InvalidStateError(SessionStoreError):
    """The object is not in a state that allows the operation."""


class SessionArchived(InvalidStateError):
    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"session {shown(session_id)} is archived and read-only (no new messages, title, "
            "metadata, state or timeouts); "
            f"bring it back with store.lifecycle.reactivate({shown(session_id)})"
        )
        self.session_id = session_id


class StoreClosedError(InvalidStateError):
    def __init__(self) -> None:
        super().__init__("the store is closed; open a new one with SessionStore.open()")


class NestedTransactionError(InvalidStateError):
    """A write on the store from a thread (or, on the async store, a task) that is inside
    ``with store.transaction()``."""

    def __init__(self) -> None:
        super().__init__(
            "this thread (on the async store: this task) is inside "
            "`with store.transaction() as tx`: a write on the store "
            "itself would need a second transaction, which would wait for this one until "
            "the busy timeout. Make the call through the transaction's repositories "
            "(tx.messages, tx.sessions, tx.search, tx.state), or after the block"
        )


class MissingDependency(SessionStoreError):
    """An optional dependency the request needs is not installed."""


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


class DatabaseInUse(StoreBusyError):
    """Another connection holds the database's write lock; the operation changed nothing."""


class OrphanedJournal(StorageError):
    """A ``-wal`` or ``-journal`` file lies where its database is missing."""

    def __init__(self, path: str, journal: str) -> None:
        super().__init__(
            f"{journal} holds pages of a database that is missing from {path}: "
            "opening it would discard them. Put the database it belongs to back at that "
            "path, or move the file away if it is not needed"
        )
        self.path = path
        self.journal = journal


class ConnectionFailed(StorageError):
    """The database could not be reached: refused, unknown, or the credentials were wrong."""


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

    def __init__(self, message: str, *, path: str | None = None) -> None:
        # No advice to restore a backup over it: the path may name an unrelated file.
        if path:
            message = (
                f"{path} is not a SQLite database ({message}); check that the path names "
                "the database you meant. Nothing was changed"
            )
        StorageError.__init__(self, message)
        self.path = path


# The translation of driver errors maps onto every class above, so it is
# imported once they exist; callers keep importing ``translate`` from here.
from .driver_errors import translate  # noqa: E402
