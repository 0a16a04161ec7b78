"""The statements of the message repository, and how their rows become records.

Every statement is a Core construct compiled once per dialect
(:class:`~sessionstore.prepared.Prepared`) and run on the driver connection
by the hot paths, or through SQLAlchemy by the rest. Rows of
:data:`MESSAGE_COLUMNS` become :class:`~sessionstore.records.MessageRecord`
by position in :func:`message_from_db`.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Text,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy import delete as sql_delete

from . import prepared
from .errors import SessionArchived, SessionNotFound, StoreBusyError
from .items import exact_text
from .models import BigInt, Message, Real, Session, UTCDateTime
from .prepared import Prepared, from_db_time, record_builder
from .records import MessageRecord
from .sessions import require_session
from .transactions import Raw

__all__ = [
    "MESSAGE_COLUMNS",
    "MESSAGE_WIDTH",
    "message_from_db",
    "read_session",
    "session_messages",
]

M = Message.__table__.c
S = Session.__table__.c
#: The kind of a plain message (the column's default).
PLAIN_KIND = "message"

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
#: The reads of one session's messages (:func:`session_messages`) leave out the
#: session id, the one asked for, and read the kind as NULL when it is the
#: plain ``message``: each saves the driver a text to decode per row.
IN_SESSION_COLUMNS = tuple(
    func.nullif(M.kind, literal_column(f"'{PLAIN_KIND}'")) if column is M.kind else column
    for column in MESSAGE_COLUMNS
    if column is not M.session_id
)

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
    .values(
        last_activity=bindparam("now", type_=UTCDateTime),
        updated_at=bindparam("now", type_=UTCDateTime),
    )
)
REPLACED_ATTEMPTS = 3
REPLACED = "session {session_id!r} was replaced again and again while this append waited"
BY_CLIENT_ID = Prepared(
    select(*MESSAGE_COLUMNS).where(
        M.session_id == bindparam("sid"), M.client_msg_id == bindparam("cid")
    )
)
GET = Prepared(select(*MESSAGE_COLUMNS).where(M.message_id == bindparam("mid")))
#: NULL for a plain chat message: no metadata, caller's id, payload or exact
#: text, and the plain kind. Anything else is 1.
RICH = case(
    (
        and_(
            M.metadata.is_(None),
            M.client_msg_id.is_(None),
            M.kind == literal_column(f"'{PLAIN_KIND}'"),
            M.payload.is_(None),
            M.exact_content.is_(None),
        ),
        None,
    ),
    else_=literal_column("1"),
)
#: The columns of a plain message's record (those of :data:`IN_SESSION_COLUMNS`
#: up to the duration), and :data:`RICH` (see :func:`read_session`).
PLAIN_COLUMNS = (*IN_SESSION_COLUMNS[:7], RICH)


class ReadPair(NamedTuple):
    """A read of one session's messages: the plain statement and the full one."""

    plain: Prepared
    full: Prepared


def _plain_and_full(build: Callable[[Sequence[ColumnElement[Any]]], Select[Any]]) -> ReadPair:
    """One read of a session's messages as its two statements: plain columns, every column."""
    return ReadPair(Prepared(build(PLAIN_COLUMNS)), Prepared(build(IN_SESSION_COLUMNS)))


HISTORY = _plain_and_full(
    lambda columns: (
        select(*columns)
        .where(M.session_id == bindparam("sid"), M.sequence_number > bindparam("after"))
        .order_by(M.sequence_number)
        .limit(bindparam("limit"))
    )
)
RECENT = _plain_and_full(
    lambda columns: (
        select(*columns)
        .where(M.session_id == bindparam("sid"))
        .order_by(M.sequence_number.desc())
        .limit(bindparam("limit"))
    )
)
#: Messages after a time, by time (ties by sequence number): ix_messages_session_id_timestamp.
SINCE = _plain_and_full(
    lambda columns: (
        select(*columns)
        .where(
            M.session_id == bindparam("sid"), M.timestamp > bindparam("after", type_=UTCDateTime)
        )
        .order_by(M.timestamp, M.sequence_number)
        .limit(bindparam("limit"))
    )
)
#: What a framework adapter rebuilds its items from (items.decode_items), no more.
ITEM_COLUMNS = (M.kind, M.role, M.content, M.exact_content, M.payload)
#: Every item of a session, oldest first.
ITEMS = Prepared(
    select(*ITEM_COLUMNS).where(M.session_id == bindparam("sid")).order_by(M.sequence_number)
)
#: The newest items, newest first.
RECENT_ITEMS = Prepared(
    select(*ITEM_COLUMNS)
    .where(M.session_id == bindparam("sid"))
    .order_by(M.sequence_number.desc())
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


#: Rows become records by position: a MessageRecord is a tuple of its fields
#: (records.tuple_backed), built with one tuple.__new__ and no __init__.
_build_message = record_builder(MessageRecord)
_new = cast(Callable[..., MessageRecord], tuple.__new__)


def message_from_db(row: Any) -> MessageRecord:
    """A record from a row of MESSAGE_COLUMNS, read through the driver or SQLAlchemy.

    The content is the caller's exact text: ``exact_content`` when the text held NUL.
    """
    exact = row[12]
    return _new(MessageRecord, (
        row[0], row[1], row[2], row[3], row[4] if exact is None else exact_text(exact),
        from_db_time(row[5]), row[6], row[7], row[8], row[9], row[10], row[11],
    ))  # fmt: skip


def session_messages(rows: Iterable[Any], session_id: str) -> list[MessageRecord]:
    """Records from rows of :data:`IN_SESSION_COLUMNS`, all of session ``session_id``.

    One loop for the page (not a call per row); otherwise :func:`message_from_db`.
    """
    new, cls, time, text, sid, plain = (
        _new, MessageRecord, from_db_time, exact_text, session_id, PLAIN_KIND,
    )  # fmt: skip
    known = prepared.parsed_times().get  # the times parsed before, without a call per row
    return [
        new(cls, (
            r[0], sid, r[1], r[2], r[3] if r[11] is None else text(r[11]),
            known(r[4]) or time(r[4]),
            r[5], r[6], r[7], r[8], plain if r[9] is None else r[9], r[10],
        ))
        for r in rows
    ]  # fmt: skip


def plain_messages(rows: Iterable[Any], session_id: str) -> list[MessageRecord]:
    """Records from rows of :data:`PLAIN_COLUMNS` whose :data:`RICH` is NULL."""
    new, cls, time, sid, plain = _new, MessageRecord, from_db_time, session_id, PLAIN_KIND
    known = prepared.parsed_times().get
    return [
        new(cls, (
            r[0], sid, r[1], r[2], r[3], known(r[4]) or time(r[4]), r[5], r[6],
            None, None, plain, None,
        ))
        for r in rows
    ]  # fmt: skip


#: Sessions whose last page read held plain chat messages only.
_PLAIN_SESSIONS: dict[str, None] = {}
_PLAIN_LIMIT = 8192
#: A plain statement's row: whether it holds more than plain chat.
_rich = itemgetter(7)
#: A full statement's row: what only a message beyond plain chat holds, and
#: what they are in a plain message (compared, not tested for truth: ``""`` is
#: a value).
_extras = itemgetter(7, 8, 9, 10, 11)
_NOTHING = (None,) * 5


def read_session(
    raw: Raw, read: ReadPair, params: Mapping[str, Any], session_id: str
) -> list[MessageRecord]:
    """The records one of a session's reads returns, in its order.

    Most chats hold plain text messages only: no metadata, caller's id,
    payload or exact text. For those the plain statement reads 8 columns
    where the full one reads 12, and every column of every row costs the
    driver a call (a 50-row page: 59 µs instead of 70 on SQLite). A session
    is read with the full statement until a page of it held plain messages
    only; from then on with the plain one, until a page holds anything else,
    which is then read again, whole, by the full statement (one statement,
    so the page is what one moment held). The sessions read plain are
    remembered only to choose the first statement: the answer never depends
    on it.
    """
    if session_id in _PLAIN_SESSIONS:
        rows = raw.all(read.plain, params)
        if not any(map(_rich, rows)):
            return plain_messages(rows, session_id)
        _PLAIN_SESSIONS.pop(session_id, None)
    rows = raw.all(read.full, params)
    if rows and not any(map(_NOTHING.__ne__, map(_extras, rows))):
        if len(_PLAIN_SESSIONS) >= _PLAIN_LIMIT:
            _PLAIN_SESSIONS.clear()
        _PLAIN_SESSIONS[session_id] = None
    return session_messages(rows, session_id)


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
    """A prepared ``INSERT … VALUES`` of every row, in order, on the driver connection.

    On SQLite the rows go in multi-row ``VALUES (…), (…)`` statements, not
    one statement a row: within a transaction SQLite opens a statement
    savepoint for each, and at each one FTS5 writes the terms it holds to
    the index, so the insert trigger's text index was written row by row (a
    100-row batch took 3 to 7 times longer). Elsewhere, one ``executemany``.
    """
    sql, order, defaults = prepared.render(raw.dialect)
    cursor = raw.dbapi.cursor()
    if order is None:
        cursor.executemany(sql, [{**defaults, **row} for row in rows] if defaults else rows)
        return
    if raw.dialect.name != "sqlite" or len(rows) < 2 or len(order) < 2:
        cursor.executemany(sql, [tuple(row[name] for name in order) for row in rows])
        return
    params = list(map(itemgetter(*order), rows))
    # Within SQLite's limit on parameters in one statement (32,766 by default,
    # 999 before 3.32).
    getlimit = getattr(raw.dbapi, "getlimit", None)
    limit = 999 if getlimit is None else getlimit(_VARIABLE_LIMIT)
    per = max(1, min(_ROWS_PER_INSERT, limit // len(order)))
    for start in range(0, len(params), per):
        chunk = params[start : start + per]
        cursor.execute(_multi_row(sql, len(chunk)), list(chain.from_iterable(chunk)))


#: The most rows one multi-row INSERT carries on SQLite.
_ROWS_PER_INSERT = 500
_VARIABLE_LIMIT = sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER


@functools.lru_cache(maxsize=64)
def _multi_row(sql: str, count: int) -> str:
    """``INSERT … VALUES (?, …)`` with its row of values repeated ``count`` times."""
    head, values, row = sql.rpartition(" VALUES ")
    if not values:
        raise ValueError(f"not an INSERT … VALUES statement: {sql}")
    return head + values + ", ".join([row] * count)
