"""sessionstore: conversation history for LLM applications, stored in SQL safely and fast.

Sessions and their messages live in SQLite (the embedded default, one file)
or PostgreSQL, behind :class:`SessionStore`. Opening a store brings the
database to the current schema, adopting a legacy ``.ai-router-sessions.db``
in place. Nothing is opened at import time.
"""

from .backup import BackupReport, RestoreReport
from .config import DEFAULT_URL, StoreConfig
from .errors import (
    ConflictError,
    ConstraintViolation,
    DatabaseCorruptError,
    InvalidCursor,
    InvalidInput,
    InvalidSearchQuery,
    InvalidStateError,
    MessageNotFound,
    MigrationError,
    NotADatabaseError,
    NotFoundError,
    ReadOnlyError,
    SchemaMismatchError,
    SessionActive,
    SessionArchived,
    SessionExists,
    SessionNotFound,
    SessionStoreError,
    SnapshotNotFound,
    StorageError,
    StorageFullError,
    StorageIOError,
    StoreBusyError,
    StoreClosedError,
)
from .health import Check, HealthReport, RepairReport
from .migrations import UpgradeReport
from .records import (
    Expiry,
    LifecycleRecord,
    MessageRecord,
    NewMessage,
    Page,
    PurgeReport,
    SessionRecord,
    SnapshotInfo,
    SweepReport,
)
from .search import MessageHit, SearchHit
from .store import SessionStore, Transaction

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_URL",
    "BackupReport",
    "Check",
    "ConflictError",
    "ConstraintViolation",
    "DatabaseCorruptError",
    "Expiry",
    "HealthReport",
    "InvalidCursor",
    "InvalidInput",
    "InvalidSearchQuery",
    "InvalidStateError",
    "LifecycleRecord",
    "MessageHit",
    "MessageNotFound",
    "MessageRecord",
    "MigrationError",
    "NewMessage",
    "NotADatabaseError",
    "NotFoundError",
    "Page",
    "PurgeReport",
    "ReadOnlyError",
    "RepairReport",
    "RestoreReport",
    "SchemaMismatchError",
    "SearchHit",
    "SessionActive",
    "SessionArchived",
    "SessionExists",
    "SessionNotFound",
    "SessionRecord",
    "SessionStore",
    "SessionStoreError",
    "SnapshotInfo",
    "SnapshotNotFound",
    "StorageError",
    "StorageFullError",
    "StorageIOError",
    "StoreBusyError",
    "StoreClosedError",
    "StoreConfig",
    "SweepReport",
    "Transaction",
    "UpgradeReport",
    "__version__",
]
