"""The session row: its columns, how a row becomes a record, and the checks on it.

Everything here is shared by the repositories that touch sessions (sessions,
messages, lifecycle, state, forks, search, export): the column order of
:class:`~sessionstore.records.SessionRecord` (:data:`SESSION_COLUMNS`),
:func:`session_from_db`, the existence, ownership and archive checks run
inside a transaction (:func:`require_session`, :func:`require_writable`,
:func:`lock_session`),
the one deletion path (:func:`delete_session`), the prepared INSERT of a new
session, and the prepared statements of the session list, one per combination
of filters, the owner's included (``ix_sessions_app_user_id_last_activity``).
:mod:`sessionstore.sessions` re-exports them.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, bindparam, delete, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from . import prepared
from .errors import InvalidInput, SessionArchived, SessionNotFound, shown
from .ids import lock_id, newest_snapshot, record_event
from .models import STATUSES, Session, SessionMetadata
from .owners import Owner, owner_clauses, require_owned
from .prepared import Prepared, from_db_time
from .records import SessionRecord

__all__ = [
    "MAX_TIMEOUT",
    "SESSION_COLUMNS",
    "check_never_expires",
    "check_status",
    "check_timeout",
    "delete_session",
    "dialect_insert",
    "lock_session",
    "new_session_id",
    "require_session",
    "require_writable",
    "session_from_db",
    "sessions_from_db",
]

S = Session.__table__.c
D = SessionMetadata.__table__.c

# Column order is SessionRecord's field order: rows become records by position.
SESSION_COLUMNS = (
    S.session_id,
    S.model_id,
    S.model_name,
    S.title,
    S.status,
    S.created_at,
    S.updated_at,
    S.last_activity,
    S.message_count,
    S.total_tokens,
    S.total_duration_seconds,
    S.last_seq,
    S.idle_timeout_seconds,
    S.hard_timeout_seconds,
    S.archived_at,
    S.app,
    S.user_id,
    S.parent_session_id,
    S.fork_sequence,
    S.never_expires,
)

_GET = Prepared(select(*SESSION_COLUMNS).where(S.session_id == bindparam("session_id")))
_EXISTS = select(S.status).where(S.session_id == bindparam("session_id"))
_DELETE = (
    delete(Session)
    .where(S.session_id == bindparam("session_id"))
    .returning(S.session_id, S.message_count, S.last_seq)
)


def dialect_insert(dialect: str, table: Any) -> sqlite.Insert | postgresql.Insert:
    """``INSERT`` with ``ON CONFLICT`` support for the dialect in use."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def require_session(conn: Connection, session_id: str, owner: Owner | None = None) -> str:
    """The session's status; :class:`SessionNotFound` when it does not exist (or, with an
    ``owner``, is not inside that scope: see :func:`sessionstore.owners.require_owned`)."""
    require_owned(conn, session_id, owner)
    status = conn.execute(_EXISTS, {"session_id": session_id}).scalar()
    if status is None:
        raise SessionNotFound(session_id)
    return str(status)


def require_writable(conn: Connection, session_id: str, owner: Owner | None = None) -> None:
    """Lock the session's row for this transaction; :class:`SessionArchived` if archived.

    An archived session is read-only, its title, metadata and timeouts
    included: its snapshot is what a purge keeps and a restore brings back, so
    a change made after it would be silently undone. With an ``owner``, a session
    outside the scope is :class:`SessionNotFound`, checked first.
    """
    require_owned(conn, session_id, owner)
    status = conn.execute(_EXISTS.with_for_update(), {"session_id": session_id}).scalar()
    if status is None:
        raise SessionNotFound(session_id)
    if status == "archived":
        raise SessionArchived(session_id)


def check_status(status: object) -> str | None:
    if status is None:
        return None
    if not isinstance(status, str) or status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}, not {shown(status)}")
    return status


def _span(seconds: float | None) -> timedelta | None:
    return None if seconds is None else timedelta(seconds=seconds)


#: A SessionRecord is a tuple of its fields (records.tuple_backed): built with
#: one tuple.__new__, no __init__.
_new = cast(Callable[..., SessionRecord], tuple.__new__)


def session_from_db(row: Any) -> SessionRecord:
    """A record from a row of SESSION_COLUMNS, read through the driver or SQLAlchemy.

    Timestamps may come as stored (text, naive UTC) or already converted; the
    REAL total may come back as an int when it happens to be whole.
    """
    time = from_db_time
    return _new(SessionRecord, (
        row[0], row[1], row[2], row[3], row[4], time(row[5]), time(row[6]), time(row[7]),
        row[8], row[9], float(row[10]), row[11],
        None if row[12] is None else timedelta(seconds=row[12]),
        None if row[13] is None else timedelta(seconds=row[13]),
        None if row[14] is None else time(row[14]), row[15], row[16], row[17], row[18],
        bool(row[19]),
    ))  # fmt: skip


def sessions_from_db(rows: Iterable[Any]) -> list[SessionRecord]:
    """:func:`session_from_db` of each row, in one loop (a page is built per call, not per row)."""
    new, cls, time, span = _new, SessionRecord, from_db_time, timedelta
    # The times parsed before, looked up here rather than in a call per value.
    known = prepared.parsed_times().get
    return [
        new(cls, (
            r[0], r[1], r[2], r[3], r[4], known(r[5]) or time(r[5]), known(r[6]) or time(r[6]),
            known(r[7]) or time(r[7]), r[8], r[9],
            float(r[10]), r[11], None if r[12] is None else span(seconds=r[12]),
            None if r[13] is None else span(seconds=r[13]),
            None if r[14] is None else time(r[14]), r[15], r[16], r[17], r[18],
            bool(r[19]),
        ))
        for r in rows
    ]  # fmt: skip


def new_session_id() -> str:
    """A fresh session id: a time-ordered UUID (version 7, RFC 9562).

    48 bits of Unix milliseconds, then 74 random bits. Every index that
    begins with ``session_id`` (the sessions key, the messages' sequence and
    time indexes, metadata, state) then receives new sessions at its end, as
    a counter would, instead of at random pages: creating 2,000 sessions of 5
    messages wrote and checkpointed about 15% less with them than with
    random (version 4) ids.
    """
    random = int.from_bytes(os.urandom(10), "big")  # 12 + 62 bits used
    value = (
        (time.time_ns() // 1_000_000 & (1 << 48) - 1) << 80
        | 0x7 << 76
        | (random >> 62 & 0xFFF) << 64
        | 0b10 << 62
        | random & (1 << 62) - 1
    )
    return str(uuid.UUID(int=value))


MAX_TIMEOUT = timedelta(days=36_600)  # a century: any deadline stays a valid datetime


def check_timeout(name: str, value: object) -> float | None:
    """A timeout override in seconds: a positive timedelta, or None for the default."""
    if value is None:
        return None
    if not isinstance(value, timedelta) or not timedelta(0) < value <= MAX_TIMEOUT:
        raise InvalidInput(
            f"{name} must be a positive timedelta of at most a century, or None; not {shown(value)}"
        )
    return value.total_seconds()


def check_never_expires(value: object) -> bool:
    """``never_expires``: exactly True or False (``None`` is not "the default" here)."""
    if not isinstance(value, bool):
        raise InvalidInput(f"never_expires must be True or False, not {shown(value)}")
    return value


def delete_session(
    conn: Connection, session_id: str, now: datetime, owner: Owner | None = None
) -> bool:
    """Delete one session under its id's lock; whether it existed.

    Every deletion of a session goes through here (``sessions.delete``, the
    legacy manager's cleanup), so that one with snapshots leaves its last
    sequence number in the history, as a purge does: no older snapshot is
    then restored over the id as if those numbers had never been given.
    """
    lock_id(conn, session_id)
    if owner is not None:
        try:
            require_owned(conn, session_id, owner)
        except SessionNotFound:
            return False
    row = conn.execute(_DELETE, {"session_id": session_id}).first()
    if row is None:
        return False
    snapshot_id = newest_snapshot(conn, session_id)
    if snapshot_id is not None:
        details = {"messages": row.message_count, "last_seq": row.last_seq}
        record_event(conn, session_id, "purge", "delete", snapshot_id, now, details)
    return True


_LIST_CACHE: dict[tuple[bool, bool, bool, tuple[bool, bool]], Prepared] = {}
_GET_OWNED: dict[str, Prepared] = {}


def _get_owned(owner: Owner) -> Prepared:
    """``_GET`` with the scope's predicate in the same statement."""
    prepared = _GET_OWNED.get(owner.shape)
    if prepared is None:
        stmt = select(*SESSION_COLUMNS).where(
            S.session_id == bindparam("session_id"), *owner_clauses(S, owner.app, owner.user_id)
        )
        prepared = _GET_OWNED[owner.shape] = Prepared(stmt)
    return prepared


def _list_statement(
    by_model: bool, by_status: bool, after: bool, by_owner: tuple[bool, bool] = (False, False)
) -> Prepared:
    """One prepared statement per filter combination."""
    key = (by_model, by_status, after, by_owner)
    prepared = _LIST_CACHE.get(key)
    if prepared is None:
        stmt = select(*SESSION_COLUMNS)
        # ix_sessions_app_user_id_last_activity: (app, user_id, last_activity, session_id).
        stmt = stmt.where(
            *owner_clauses(S, "" if by_owner[0] else None, "" if by_owner[1] else None)
        )
        if by_model:
            stmt = stmt.where(S.model_id == bindparam("model_id"))
        if by_status:
            stmt = stmt.where(S.status == bindparam("status"))
        if after:
            stmt = stmt.where(
                tuple_(S.last_activity, S.session_id)
                < tuple_(
                    bindparam("after_activity", type_=S.last_activity.type),
                    bindparam("after_id"),
                )
            )
        stmt = stmt.order_by(S.last_activity.desc(), S.session_id.desc()).limit(bindparam("limit"))
        prepared = _LIST_CACHE[key] = Prepared(stmt)
    return prepared


_CREATE: dict[str, Prepared] = {}


def _create_statement(dialect: str) -> Prepared:
    """The INSERT of a new session, prepared once per dialect (``ON CONFLICT`` differs)."""
    prepared = _CREATE.get(dialect)
    if prepared is None:
        now = bindparam("now", type_=S.created_at.type)
        stmt = (
            dialect_insert(dialect, Session)
            .values(
                session_id=bindparam("session_id"),
                model_id=bindparam("model_id", type_=S.model_id.type),
                model_name=bindparam("model_name", type_=S.model_name.type),
                title=bindparam("title", type_=S.title.type),
                status="active",
                created_at=now,
                updated_at=now,
                last_activity=now,
                idle_timeout_seconds=bindparam("idle", type_=S.idle_timeout_seconds.type),
                hard_timeout_seconds=bindparam("hard", type_=S.hard_timeout_seconds.type),
                app=bindparam("app", type_=S.app.type),
                user_id=bindparam("user_id", type_=S.user_id.type),
                never_expires=bindparam("never", type_=S.never_expires.type),
            )
            .on_conflict_do_nothing(index_elements=[S.session_id])
            .returning(S.session_id)
        )
        prepared = _CREATE[dialect] = Prepared(stmt)
    return prepared


def lock_session(conn: Connection, session_id: str, owner: Owner | None = None) -> SessionRecord:
    """The session, its id's lock and its row held for this transaction.

    With an ``owner``, a session outside that scope is :class:`SessionNotFound`.
    """
    lock_id(conn, session_id)
    require_owned(conn, session_id, owner)
    row = conn.execute(
        select(*SESSION_COLUMNS).where(S.session_id == session_id).with_for_update()
    ).first()
    if row is None:
        raise SessionNotFound(session_id)
    return session_from_db(row)
