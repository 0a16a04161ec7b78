"""Bring a session back from its JSON document: an import, or a snapshot's restore.

A document (see :mod:`sessionstore.export`) is checked completely before
anything is written (:mod:`sessionstore.import_parse`): :func:`parse_export`
holds an import to the rules for new input, :func:`parse_snapshot` checks a
snapshot's structure only, since it holds what the store itself held.

:func:`recreate` then inserts the session, its metadata, its state and its messages.
The triggers fill the session's counts and totals as for appends; an import
keeps them (re-derived from the messages), a restore sets every column back
to the value snapshotted, so the row is the row that was archived.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import IO, Any

from sqlalchemy import Connection, column, func, insert, table, update

from .errors import SessionExists
from .ids import lock_id, require_free
from .import_parse import ParsedSession, parse_export, parse_snapshot
from .models import Session, SessionMetadata, UTCDateTime
from .owners import Owner
from .records import SessionRecord
from .sessions import SESSION_COLUMNS, dialect_insert, session_from_db
from .state import insert_session_state
from .transactions import Runner
from .validation import check_id

__all__ = ["ParsedSession", "import_session", "parse_export", "parse_snapshot", "recreate"]

# The session columns a trigger moves while the messages go in; set back afterwards.
_DERIVED = ("message_count", "total_tokens", "total_duration_seconds", "last_seq")

S = Session.__table__.c
# The messages table without SQLAlchemy's bind processing of numbers: a legacy
# INTEGER or REAL column may hold text, and a snapshot must give it back as is
# (the column's Float type would call float() on it).
_MESSAGES = table(
    "messages",
    *(column(name) for name in ("message_id", "session_id", "sequence_number", "role")),
    column("content"),
    column("timestamp", UTCDateTime()),
    *(column(name) for name in ("tokens_used", "duration_seconds", "metadata", "client_msg_id")),
    *(column(name) for name in ("kind", "payload", "exact_content")),
)


# --- writing it back ----------------------------------------------------------------------------


def recreate(
    conn: Connection, parsed: ParsedSession, *, session_id: str, keep_ids: bool
) -> SessionRecord:
    """Insert a parsed session on ``conn``; message ids kept only with ``keep_ids``.

    The caller holds the id's lock and has made sure the id is free (or has just
    deleted the session the snapshot replaces).
    """
    values = {**parsed.session, "session_id": session_id}
    # Inserted active and with empty totals, which the triggers fill from the
    # messages; the fields a trigger also moves are set back afterwards.
    columns = {k: v for k, v in values.items() if k not in _DERIVED}
    row = {**columns, "status": "active", "archived_at": None}
    # A row the caller cannot see (PostgreSQL row-level security hides other owners')
    # still holds the id: the id is taken, as for any other.
    stmt = dialect_insert(conn.dialect.name, Session).values(row)
    inserted = conn.execute(
        stmt.on_conflict_do_nothing(index_elements=[S.session_id]).returning(S.session_id)
    ).first()
    if inserted is None:
        raise SessionExists(session_id)
    if parsed.metadata:
        conn.execute(
            insert(SessionMetadata),
            [{"session_id": session_id, "key": k, "value": v} for k, v in parsed.metadata.items()],
        )
    insert_session_state(conn, session_id, parsed.state)
    if parsed.messages:
        rows = [{**row, "session_id": session_id} for row in parsed.messages]
        if not keep_ids:
            for message in rows:
                message.pop("message_id")
        conn.execute(insert(_MESSAGES), rows)
    settled: dict[str, Any] = {
        "title": values["title"],
        "status": values["status"],
        "archived_at": values["archived_at"],
        "updated_at": values["updated_at"],
        "last_activity": values["last_activity"],
        # Exact as exported: a float sum depends on the order it was added in,
        # and the last sequence number handed out may belong to a deleted message.
        "total_duration_seconds": values["total_duration_seconds"],
    }
    if parsed.exact:
        settled.update({name: values[name] for name in _DERIVED})
    else:
        greatest: Callable[..., Any] = func.max if conn.dialect.name == "sqlite" else func.greatest
        settled["last_seq"] = greatest(S.last_seq, values["last_seq"])
    stored = conn.execute(
        update(Session)
        .where(S.session_id == session_id)
        .values(settled)
        .returning(*SESSION_COLUMNS)
    ).one()
    return session_from_db(stored)


def import_session(
    runner: Runner,
    source: str | bytes | IO[str] | Mapping[str, Any],
    *,
    session_id: str | None = None,
    max_content_bytes: int | None = None,
    owner: Owner | None = None,
    now: datetime | None = None,
) -> SessionRecord:
    """Recreate a session from an export; ``session_id`` imports it under a new id.

    The id must be free: :class:`SessionExists` if a session has it,
    :class:`SessionIdRetired` if a purged session of that id still has snapshots.
    The document's owner is kept, except in a scoped view, which stamps its own.
    The session's times later than ``now`` (the store's clock) are taken as
    ``now``: a creation or activity time in the future would keep the session
    from ever reaching its timeouts.
    """
    parsed = parse_export(source, max_content_bytes=max_content_bytes)
    now = datetime.now(UTC) if now is None else now
    for name in ("created_at", "updated_at", "last_activity", "archived_at"):
        value = parsed.session[name]
        if value is not None and value > now:
            parsed.session[name] = now
    if owner is not None:
        user_id = owner.user_id
        if user_id is None and parsed.session["app"] == owner.app:
            user_id = parsed.session["user_id"]
        parsed.session.update(app=owner.app, user_id=user_id)
    new_id = (
        parsed.session["session_id"] if session_id is None else check_id("session_id", session_id)
    )

    def work(conn: Connection) -> SessionRecord:
        lock_id(conn, new_id)
        require_free(conn, new_id, owner)
        return recreate(conn, parsed, session_id=new_id, keep_ids=False)

    return runner.write(work)
