"""What callers receive: frozen records and pages, never ORM instances.

Records are plain values. They cannot lazy-load or detach behind the
caller's back, they compare by value, and they are safe to hand to another
thread. All timestamps are timezone-aware UTC.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Literal, TypeVar

__all__ = [
    "Expiry",
    "LifecycleRecord",
    "MessageRecord",
    "NewMessage",
    "Page",
    "PurgeItem",
    "PurgeReport",
    "SessionRecord",
    "SnapshotInfo",
    "SweepItem",
    "SweepReport",
]

T = TypeVar("T")
Reason = Literal["idle", "hard"]


@dataclass(frozen=True, slots=True)
class SessionRecord:
    session_id: str
    #: ``None`` for a session created without a model id (frameworks know none).
    model_id: str | None
    model_name: str | None
    title: str | None
    status: str
    created_at: datetime
    updated_at: datetime
    last_activity: datetime
    message_count: int
    total_tokens: int
    total_duration_seconds: float
    #: The sequence number the last appended message received.
    last_seq: int
    #: This session's own timeouts; ``None`` means the store's defaults apply.
    idle_timeout: timedelta | None = None
    hard_timeout: timedelta | None = None
    #: When the session was archived (``None`` while active).
    archived_at: datetime | None = None
    #: The owner: both ``None`` for an unowned session.
    app: str | None = None
    user_id: str | None = None
    #: The session this one was forked from, and the last sequence number it copied.
    parent_session_id: str | None = None
    fork_sequence: int | None = None
    #: True: no timeout archives it (``None`` timeouts mean the store's defaults).
    never_expires: bool = False


@dataclass(frozen=True, slots=True)
class MessageRecord:
    message_id: int
    session_id: str
    sequence_number: int
    role: str
    content: str
    timestamp: datetime
    tokens: int | None
    duration: float | None
    #: The metadata as stored: JSON text (legacy rows may hold text that is not JSON).
    metadata_json: str | None
    #: The caller's message id, unique within the session.
    client_msg_id: str | None
    #: The item kind: ``message`` for plain messages (and every legacy row).
    kind: str = "message"
    #: The framework's item as stored: compact JSON text, ``None`` for plain messages.
    payload_json: str | None = None

    @property
    def metadata(self) -> Any:
        """The metadata decoded from JSON; ``None`` when absent or not valid JSON."""
        if self.metadata_json is None:
            return None
        try:
            return json.loads(self.metadata_json)
        except (ValueError, RecursionError):
            return None

    @property
    def payload(self) -> Any:
        """The item decoded from JSON (a fresh copy each time); ``None`` when absent."""
        if self.payload_json is None:
            return None
        try:
            return json.loads(self.payload_json)
        except (ValueError, RecursionError):
            return None


@dataclass(frozen=True, slots=True)
class NewMessage:
    """One message for :meth:`MessageRepository.append_many`."""

    role: str
    content: str
    tokens: int | None = None
    duration: float | None = None
    metadata: Mapping[str, Any] | None = None
    client_msg_id: str | None = None
    kind: str = "message"
    #: Any JSON value (dict, list, str, number, bool, None): the framework's item.
    payload: Any = None
    #: The caller's time (timezone-aware, kept to the microsecond); None: the store's clock.
    timestamp: datetime | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of results; pass ``next_cursor`` back for the next, ``None`` on the last."""

    items: tuple[T, ...]
    next_cursor: str | None

    def __iter__(self) -> Any:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


# --- the lifecycle's reports (see sessionstore.lifecycle) ---------------------------


@dataclass(frozen=True, slots=True)
class Expiry:
    """A session that has timed out, or will by the horizon asked about."""

    session: SessionRecord
    reason: Reason
    deadline: datetime


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    snapshot_id: int
    session_id: str
    created_at: datetime
    reason: str
    message_count: int
    #: The snapshot's JSON size, and what it takes compressed.
    raw_bytes: int
    stored_bytes: int


@dataclass(frozen=True, slots=True)
class SweepItem:
    session_id: str
    reason: Reason
    deadline: datetime
    #: The snapshot taken when it was archived (``None`` in a dry run).
    snapshot_id: int | None


@dataclass(frozen=True, slots=True)
class SweepReport:
    now: datetime
    dry_run: bool
    archived: tuple[SweepItem, ...]
    #: Sessions found due that were no longer due (or no longer active) at their turn.
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class PurgeItem:
    session_id: str
    snapshot_id: int
    messages: int


@dataclass(frozen=True, slots=True)
class PurgeReport:
    now: datetime
    cutoff: datetime
    purged: tuple[PurgeItem, ...]
    #: Space the purged rows occupied: pages returned to SQLite's free list,
    #: or the rows' size on PostgreSQL.
    bytes_freed: int


@dataclass(frozen=True, slots=True)
class LifecycleRecord:
    """One line of the audit trail."""

    event_id: int
    session_id: str
    action: str
    reason: str | None
    snapshot_id: int | None
    occurred_at: datetime
    details: dict[str, Any]
