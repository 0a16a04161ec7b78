"""ORM models: the tables as this version of the code expects them at ``head``.

The legacy column names are kept as they are on disk (``message_count``,
``tokens_used``, ``metadata`` …) because other programs still read them.
What the new behaviour needs is added beside them:

* ``sessions.last_seq``: the last sequence number handed out, so an append
  allocates the next one with one indexed read of the session row;
* ``sessions.status``: where the session is in its lifecycle;
* ``messages.client_msg_id``: a caller-chosen id that makes a retried append
  idempotent;
* roles beyond the legacy four (an open set: any 1 to 64 characters);
* ``messages.kind``, ``payload`` and ``exact_content``: a framework's item
  kept whole beside the human-readable text (see :mod:`sessionstore.items`);
* the owner of a session (``app``, ``user_id``), forks and ``never_expires``;
* ``session_state``, ``user_state`` and ``app_state``: state as JSON, a row a key;
* quarantine tables that keep rows the legacy file could not keep (orphans).

Counts and totals on ``sessions`` are maintained by triggers created in the
migrations, not by this code; the full-text index (FTS5 on SQLite, a
``tsvector`` on PostgreSQL) likewise lives only in the migrations, because
neither can be expressed portably here. The revisions never import this
module: they are frozen history, this is the present.

Timestamps are stored as naive UTC (``YYYY-MM-DD HH:MM:SS.ffffff`` on SQLite,
which sorts as text in time order) and handed out timezone-aware.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .column_types import BigInt, Id, Real, UTCDateTime, to_utc_text, utc_now

__all__ = [
    "LEGACY_ROLES",
    "STATUSES",
    "AppState",
    "Base",
    "BigInt",
    "Lease",
    "LifecycleEvent",
    "Message",
    "QuarantinedMessage",
    "QuarantinedMetadata",
    "QuarantinedSession",
    "Real",
    "Session",
    "SessionMetadata",
    "SessionState",
    "Snapshot",
    "UTCDateTime",
    "UserState",
    "to_utc_text",
]

#: The roles the legacy layout allowed; any role of 1 to 64 characters is stored now.
LEGACY_ROLES = ("user", "assistant", "system", "tool")
STATUSES = ("active", "archived")
ACTIONS = ("archive", "reactivate", "purge", "restore", "prune_snapshot")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


_ARCHIVED = "status = 'archived'"


def _partial(name: str, where: str, *columns: str) -> Index:
    """An index over the rows ``where`` holds, on both backends."""
    return Index(name, *columns, sqlite_where=text(where), postgresql_where=text(where))


class Session(Base):
    __tablename__ = "sessions"
    __table_args__ = (
        CheckConstraint(f"status IN {STATUSES!r}", name="status"),
        CheckConstraint("message_count >= 0", name="message_count"),
        # The session list, newest activity first, paged by (last_activity, session_id).
        Index("ix_sessions_last_activity_session_id", "last_activity", "session_id"),
        # Every append moves last_activity: the other indexes holding it are partial
        # (revision 0007), so an append rewrites only those its session is in.
        _partial(
            "ix_sessions_model_id_last_activity",
            "model_id IS NOT NULL",
            "model_id",
            "last_activity",
            "session_id",
        ),
        _partial(
            "ix_sessions_app_user_id_last_activity",
            "app IS NOT NULL",
            "app",
            "user_id",
            "last_activity",
            "session_id",
        ),
        # Archived sessions are never appended to: these cost appends nothing.
        _partial("ix_sessions_archived_last_activity", _ARCHIVED, "last_activity", "session_id"),
        _partial(
            "ix_sessions_archived_model_id_last_activity",
            _ARCHIVED,
            "model_id",
            "last_activity",
            "session_id",
        ),
        _partial("ix_sessions_archived_archived_at", _ARCHIVED, "archived_at", "session_id"),
        Index("ix_sessions_created_at", "created_at"),
        CheckConstraint("user_id IS NULL OR app IS NOT NULL", name="owner"),
    )

    session_id: Mapped[str] = mapped_column(Text, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, server_default=utc_now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, server_default=utc_now()
    )
    last_activity: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, server_default=utc_now()
    )
    #: NULL for sessions a framework created without a model id.
    model_id: Mapped[str | None] = mapped_column(Text)
    model_name: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    message_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    total_tokens: Mapped[int] = mapped_column(BigInt, nullable=False, server_default="0")
    total_duration_seconds: Mapped[float] = mapped_column(Real, nullable=False, server_default="0")
    last_seq: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="active")
    #: Per-session overrides of the store's timeouts; NULL means the store's default.
    idle_timeout_seconds: Mapped[float | None] = mapped_column(Real)
    hard_timeout_seconds: Mapped[float | None] = mapped_column(Real)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The owner: both NULL for an unowned (legacy) session; a user_id needs an app.
    app: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[str | None] = mapped_column(Text)
    #: Where a fork came from. No foreign key: the parent may be purged later.
    parent_session_id: Mapped[str | None] = mapped_column(Text)
    fork_sequence: Mapped[int | None] = mapped_column(Integer)
    #: True: no timeout archives it (NULL timeouts mean the store's defaults).
    never_expires: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("session_id", "sequence_number"),
        CheckConstraint("length(role) BETWEEN 1 AND 64", name="role"),
        Index(
            "uq_messages_session_id_client_msg_id",
            "session_id",
            "client_msg_id",
            unique=True,
            sqlite_where=text("client_msg_id IS NOT NULL"),
            postgresql_where=text("client_msg_id IS NOT NULL"),
        ),
        # Reads "after this time" and "ordered by time" (caller timestamps need not
        # follow the sequence numbers).
        Index("ix_messages_session_id_timestamp", "session_id", "timestamp", "sequence_number"),
        # The first system prompt of a session, for token windows (see windows.py).
        Index(
            "ix_messages_session_id_system",
            "session_id",
            "sequence_number",
            sqlite_where=text("role IN ('system', 'developer')"),
            postgresql_where=text("role IN ('system', 'developer')"),
        ),
        {"sqlite_autoincrement": True},
    )

    message_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(
        Text, ForeignKey("sessions.session_id", ondelete="CASCADE"), nullable=False
    )
    sequence_number: Mapped[int] = mapped_column(Integer, nullable=False)
    role: Mapped[str] = mapped_column(Text, nullable=False)
    content: Mapped[str] = mapped_column(Text, nullable=False)
    timestamp: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, server_default=utc_now()
    )
    tokens_used: Mapped[int | None] = mapped_column(BigInt)
    duration_seconds: Mapped[float | None] = mapped_column(Real)
    # ``metadata`` is reserved on declarative classes; the column keeps its legacy name.
    metadata_json: Mapped[str | None] = mapped_column("metadata", Text)
    #: The caller's message id: unique within the session.
    client_msg_id: Mapped[str | None] = mapped_column(Text)
    #: The item kind: ``message``, ``function_call``, ``reasoning``, ``event``, …
    kind: Mapped[str] = mapped_column(Text, nullable=False, server_default="message")
    #: The framework's item as compact JSON text (TEXT: JSONB refuses NUL, reorders keys).
    payload: Mapped[str | None] = mapped_column(Text)
    #: The caller's text as a JSON string literal, only when it held NUL (``content``
    #: then holds U+FFFD in its place).
    exact_content: Mapped[str | None] = mapped_column(Text)


class SessionMetadata(Base):
    __tablename__ = "session_metadata"
    __table_args__ = (
        UniqueConstraint("session_id", "key"),
        {"sqlite_autoincrement": True},
    )

    metadata_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(
        Text, ForeignKey("sessions.session_id", ondelete="CASCADE"), nullable=False
    )
    key: Mapped[str] = mapped_column(Text, nullable=False)
    value: Mapped[str | None] = mapped_column(Text)


class SessionState(Base):
    """A session's state, one row per key, the value as JSON text."""

    __tablename__ = "session_state"

    session_id: Mapped[str] = mapped_column(
        Text, ForeignKey("sessions.session_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class UserState(Base):
    """State shared by every session of one user of one app."""

    __tablename__ = "user_state"

    app: Mapped[str] = mapped_column(Text, primary_key=True)
    user_id: Mapped[str] = mapped_column(Text, primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class AppState(Base):
    """State shared by every session of one app."""

    __tablename__ = "app_state"

    app: Mapped[str] = mapped_column(Text, primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class QuarantinedMessage(Base):
    """A message that could not stay in ``messages`` (its session is gone), kept as found."""

    __tablename__ = "quarantined_messages"

    message_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    session_id: Mapped[str | None] = mapped_column(Text)
    sequence_number: Mapped[int | None] = mapped_column(Integer)
    role: Mapped[str | None] = mapped_column(Text)
    content: Mapped[str | None] = mapped_column(Text)
    timestamp: Mapped[str | None] = mapped_column(Text)
    tokens_used: Mapped[int | None] = mapped_column(BigInt)
    duration_seconds: Mapped[float | None] = mapped_column(Real)
    metadata_json: Mapped[str | None] = mapped_column("metadata", Text)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    quarantined_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class QuarantinedSession(Base):
    """A legacy session row that could not stay in ``sessions`` (it had no id), kept as found."""

    __tablename__ = "quarantined_sessions"
    __table_args__ = ({"sqlite_autoincrement": True},)

    quarantine_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    session_id: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[str | None] = mapped_column(Text)
    last_activity: Mapped[str | None] = mapped_column(Text)
    model_id: Mapped[str | None] = mapped_column(Text)
    model_name: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    message_count: Mapped[int | None] = mapped_column(Integer)
    total_tokens: Mapped[int | None] = mapped_column(BigInt)
    total_duration_seconds: Mapped[float | None] = mapped_column(Real)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    quarantined_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class QuarantinedMetadata(Base):
    """A session_metadata row whose session is gone, kept as found."""

    __tablename__ = "quarantined_metadata"

    metadata_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    session_id: Mapped[str | None] = mapped_column(Text)
    key: Mapped[str | None] = mapped_column(Text)
    value: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    quarantined_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class Snapshot(Base):
    """A whole session (row, metadata, messages) as compressed JSON; outlives its session."""

    __tablename__ = "session_snapshots"
    __table_args__ = (
        Index("ix_session_snapshots_session_id_snapshot_id", "session_id", "snapshot_id"),
        Index("ix_session_snapshots_app_user_id", "app", "user_id"),
        {"sqlite_autoincrement": True},
    )

    snapshot_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    # No foreign key: the snapshot must survive the purge of its session.
    session_id: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    format: Mapped[str] = mapped_column(Text, nullable=False)
    message_count: Mapped[int] = mapped_column(Integer, nullable=False)
    raw_bytes: Mapped[int] = mapped_column(BigInt, nullable=False)
    stored_bytes: Mapped[int] = mapped_column(BigInt, nullable=False)
    payload: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    #: The session's owner when it was taken: a user's erasure finds it after a purge.
    app: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[str | None] = mapped_column(Text)


class LifecycleEvent(Base):
    """The audit trail: one row per lifecycle action."""

    __tablename__ = "lifecycle_events"
    __table_args__ = (
        CheckConstraint(f"action IN {ACTIONS!r}", name="action"),
        Index("ix_lifecycle_events_session_id_event_id", "session_id", "event_id"),
        Index("ix_lifecycle_events_app_user_id", "app", "user_id"),
        {"sqlite_autoincrement": True},
    )

    event_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(Text, nullable=False)
    action: Mapped[str] = mapped_column(Text, nullable=False)
    reason: Mapped[str | None] = mapped_column(Text)
    snapshot_id: Mapped[int | None] = mapped_column(BigInt)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    details: Mapped[str | None] = mapped_column(Text)
    app: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[str | None] = mapped_column(Text)


class Lease(Base):
    """Who may run a periodic job (the sweeper) until when."""

    __tablename__ = "lifecycle_leases"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    holder: Mapped[str] = mapped_column(Text, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
