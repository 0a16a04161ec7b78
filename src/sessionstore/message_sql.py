"""The statements of the message repository, and how their rows become records.

Every statement is a Core construct compiled once per dialect
(:class:`~sessionstore.prepared.Prepared`) and run on the driver connection
by the hot paths, or through SQLAlchemy by the rest. Rows of
:data:`MESSAGE_COLUMNS` become :class:`~sessionstore.records.MessageRecord`
by position in :func:`message_from_db`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Text, bindparam, insert, select, update
from sqlalchemy import delete as sql_delete

from .errors import SessionArchived, SessionNotFound, StoreBusyError
from .items import exact_text
from .models import BigInt, Message, Real, Session, UTCDateTime
from .prepared import Prepared, from_db_time, record_builder
from .records import MessageRecord
from .sessions import require_session
from .transactions import Raw

__all__ = ["MESSAGE_COLUMNS", "MESSAGE_WIDTH", "message_from_db"]

M = Message.__table__.c
S = Session.__table__.c

# Column order is MessageRecord's field order (exact_content last, folded into
# content): rows become records by position.
MESSAGE_COLUMNS = (
    M.message_id,
    M.session_id,
    M.sequence_number,
    M.role,
    M.content,
    M.timestamp,
    M.tokens_used,
    M.duration_seconds,
    M.metadata,
    M.client_msg_id,
    M.kind,
    M.payload,
    M.exact_content,
)
#: How many columns a message row has (search rows carry their rank after them).
MESSAGE_WIDTH = len(MESSAGE_COLUMNS)

#: The columns an append writes, in the order of :data:`INSERT_PARAMS`.
INSERT_COLUMNS = (
    "session_id", "sequence_number", "role", "content", "timestamp", "tokens_used",
    "duration_seconds", "metadata", "client_msg_id", "kind", "payload", "exact_content",
)  # fmt: skip
#: The checked values of one message, as :func:`checked_message` names them.
INSERT_PARAMS = (
    "role", "content", "ts", "tokens", "duration", "meta", "cid", "kind", "payload", "exact",
)  # fmt: skip

APPEND = Prepared(
    insert(Message)
    .from_select(
        list(INSERT_COLUMNS),
        select(
            S.session_id,
            S.last_seq + 1,
            bindparam("role", type_=Text),
            bindparam("content", type_=Text),
            bindparam("ts", type_=UTCDateTime),
            bindparam("tokens", type_=BigInt),
            bindparam("duration", type_=Real),
            bindparam("meta", type_=Text),
            bindparam("cid", type_=Text),
            bindparam("kind", type_=Text),
            bindparam("payload", type_=Text),
            bindparam("exact", type_=Text),
        )
        .where(S.session_id == bindparam("sid"), S.status == "active")
        # PostgreSQL: lock the session row so concurrent appends queue for
        # last_seq; SQLite renders nothing here and relies on BEGIN IMMEDIATE.
        .with_for_update(),
    )
    .returning(M.message_id, M.sequence_number)
)
#: The rows of one batch, with their sequence numbers given: run with ``executemany``.
INSERT_ROWS = Prepared(insert(Message).values({name: bindparam(name) for name in INSERT_COLUMNS}))
#: The ids a batch received, by sequence number.
BATCH_IDS = Prepared(
    select(M.message_id, M.sequence_number)
    .where(
        M.session_id == bindparam("sid"),
        M.sequence_number > bindparam("first"),
        M.sequence_number <= bindparam("last"),
    )
    .order_by(M.sequence_number)
)
SESSION_STATUS = Prepared(select(S.status).where(S.session_id == bindparam("sid")))
LOCK_SESSION = Prepared(
    select(S.status, S.last_seq).where(S.session_id == bindparam("sid")).with_for_update()
)
#: After an append with a caller's timestamp: the session was active now. The
#: insert trigger has moved ``last_activity`` (and ``updated_at``) to the later
#: of it and that timestamp; one in the future (a caller's clock, or any value
#: it chose) would keep the session from ever going idle, so both are now.
TOUCH = Prepared(
    update(Session)
    .where(S.session_id == bindparam("sid"))
    .values(last_activity=bindparam("now", UTCDateTime), updated_at=bindparam("now", UTCDateTime))
)
REPLACED_ATTEMPTS = 3
REPLACED = "session {session_id!r} was replaced again and again while this append waited"
BY_CLIENT_ID = Prepared(
    select(*MESSAGE_COLUMNS).where(
        M.session_id == bindparam("sid"), M.client_msg_id == bindparam("cid")
    )
)
GET = Prepared(select(*MESSAGE_COLUMNS).where(M.message_id == bindparam("mid")))
HISTORY = Prepared(
    select(*MESSAGE_COLUMNS)
    .where(M.session_id == bindparam("sid"), M.sequence_number > bindparam("after"))
    .order_by(M.sequence_number)
    .limit(bindparam("limit"))
)
RECENT = Prepared(
    select(*MESSAGE_COLUMNS)
    .where(M.session_id == bindparam("sid"))
    .order_by(M.sequence_number.desc())
    .limit(bindparam("limit"))
)
#: Messages after a time, by time (ties by sequence number): ix_messages_session_id_timestamp.
SINCE = Prepared(
    select(*MESSAGE_COLUMNS)
    .where(M.session_id == bindparam("sid"), M.timestamp > bindparam("after", UTCDateTime))
    .order_by(M.timestamp, M.sequence_number)
    .limit(bindparam("limit"))
)
EDIT = (
    update(Message)
    .where(M.message_id == bindparam("mid"))
    .values(content=bindparam("content"), exact_content=bindparam("exact"))
    .returning(*MESSAGE_COLUMNS)
)
DELETE = sql_delete(Message).where(M.message_id == bindparam("mid"))
DELETE_BY_CLIENT_ID = (
    sql_delete(Message)
    .where(M.session_id == bindparam("sid"), M.client_msg_id == bindparam("cid"))
    .returning(M.message_id)
)
CLEAR = sql_delete(Message).where(M.session_id == bindparam("sid"))
#: The last message, removed and returned in one statement.
POP = Prepared(
    sql_delete(Message)
    .where(
        M.message_id
        == select(M.message_id)
        .where(M.session_id == bindparam("sid"))
        .order_by(M.sequence_number.desc())
        .limit(1)
        .scalar_subquery()
    )
    .returning(*MESSAGE_COLUMNS)
)


#: Rows become records by position, without the dataclass __init__'s per-field setattr.
_build_message = record_builder(MessageRecord)


def message_from_db(row: Any) -> MessageRecord:
    """A record from a row of MESSAGE_COLUMNS, read through the driver or SQLAlchemy.

    The content is the caller's exact text: ``exact_content`` when the text held NUL.
    """
    exact = row[12]
    return _build_message(
        row[0], row[1], row[2], row[3], row[4] if exact is None else exact_text(exact),
        from_db_time(row[5]), row[6], row[7], row[8], row[9], row[10], row[11],
    )  # fmt: skip


def appended(row: Any, params: Mapping[str, Any]) -> MessageRecord:
    """The record of a message just inserted, from its parameters and the ids it got."""
    return _build_message(
        row[0], params["sid"], row[1], params["role"], params["text"], params["ts"],
        params["tokens"], params["duration"], params["meta"], params["cid"], params["kind"],
        params["payload"],
    )  # fmt: skip


def lock_session(db: Connection | Raw, session_id: str) -> tuple[str, int]:
    """The session's (status, last_seq), its row locked for this transaction.

    On PostgreSQL a ``FOR UPDATE`` that waited for a restore (or any transaction
    that deleted the session and created it again) finds the row it waited for
    deleted and skips it, while the new row is already there: the next
    statement sees it. SQLite's BEGIN IMMEDIATE never lets that happen.
    """
    for _ in range(REPLACED_ATTEMPTS):
        if isinstance(db, Raw):
            lock = db.first(LOCK_SESSION, {"sid": session_id})
        else:
            lock = db.execute(LOCK_SESSION.statement, {"sid": session_id}).first()
        if lock is not None:
            return str(lock[0]), int(lock[1])
        require_exists(db, session_id)
    raise StoreBusyError(REPLACED.format(session_id=session_id))


def lock_active(db: Connection | Raw, session_id: str) -> int:
    """Lock the session's row; its ``last_seq``. :class:`SessionArchived` if archived."""
    status, last_seq = lock_session(db, session_id)
    if status != "active":
        raise SessionArchived(session_id)
    return last_seq


def require_exists(db: Connection | Raw, session_id: str) -> str:
    """The session's status; :class:`SessionNotFound` when it does not exist."""
    if not isinstance(db, Raw):
        return require_session(db, session_id)
    row = db.first(SESSION_STATUS, {"sid": session_id})
    if row is None:
        raise SessionNotFound(session_id)
    return str(row[0])


def require_active(raw: Raw, session_id: str) -> None:
    if require_exists(raw, session_id) != "active":
        raise SessionArchived(session_id)


def execute(db: Connection | Raw, prepared: Prepared, params: Mapping[str, Any]) -> Any:
    """A driver cursor (Raw) or a SQLAlchemy result, for the same statement."""
    if isinstance(db, Raw):
        return prepared.execute(db.dbapi, db.dialect, params)
    return db.execute(prepared.statement, dict(params))


def executemany(raw: Raw, prepared: Prepared, rows: Sequence[Mapping[str, Any]]) -> None:
    """One ``executemany`` of a prepared statement on the driver connection."""
    sql, order, defaults = prepared.render(raw.dialect)
    cursor = raw.dbapi.cursor()
    if order is None:
        cursor.executemany(sql, [{**defaults, **row} for row in rows] if defaults else rows)
    else:
        cursor.executemany(sql, [tuple(row[name] for name in order) for row in rows])
