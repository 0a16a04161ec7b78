"""The message repository: append, read back in order, edit, delete.

An append is one ``INSERT … SELECT`` that takes the next sequence number
from the session row (``last_seq + 1``) in the same statement, inside a
transaction that already holds the write lock (``BEGIN IMMEDIATE`` on
SQLite, ``FOR UPDATE`` on the session row on PostgreSQL): no gaps, no
duplicates, however many writers. The insert trigger then bumps the
session's count, totals, ``last_seq`` and activity time in O(1) and indexes
the text, so a session of 100,000 messages appends as fast as an empty one.

``client_msg_id`` makes an append idempotent: a retry with the same id
returns the message already stored instead of adding a second copy.

Reads are keyset pages over ``(session_id, sequence_number)``, the unique
index every message has.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Text, bindparam, insert, select, update
from sqlalchemy import delete as sql_delete

from .errors import (
    InvalidInput,
    MessageNotFound,
    SessionArchived,
    SessionNotFound,
    StoreBusyError,
)
from .models import BigInt, Message, Real, Session, UTCDateTime
from .prepared import Prepared, from_db_time, to_db_time
from .records import MessageRecord, NewMessage, Page
from .sessions import require_session
from .transactions import Raw, Runner
from .validation import (
    check_content,
    check_duration,
    check_id,
    check_limit,
    check_message_id,
    check_role,
    check_tokens,
    decode_cursor,
    encode_cursor,
    encode_metadata,
)

__all__ = ["MessageRepository"]

M = Message.__table__.c
S = Session.__table__.c

# Column order is MessageRecord's field order: rows become records by position.
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
)
_CURSOR = "history"

_APPEND = Prepared(
    insert(Message)
    .from_select(
        [
            "session_id",
            "sequence_number",
            "role",
            "content",
            "timestamp",
            "tokens_used",
            "duration_seconds",
            "metadata",
            "client_msg_id",
        ],
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
        )
        .where(S.session_id == bindparam("sid"), S.status == "active")
        # PostgreSQL: lock the session row so concurrent appends queue for
        # last_seq; SQLite renders nothing here and relies on BEGIN IMMEDIATE.
        .with_for_update(),
    )
    .returning(M.message_id, M.sequence_number)
)
_SESSION_STATUS = Prepared(select(S.status).where(S.session_id == bindparam("sid")))
_LOCK_SESSION = (
    select(S.status, S.last_seq).where(S.session_id == bindparam("sid")).with_for_update()
)
_REPLACED_ATTEMPTS = 3
_REPLACED = "session {session_id!r} was replaced again and again while this append waited"
_BY_CLIENT_ID = select(*MESSAGE_COLUMNS).where(
    M.session_id == bindparam("sid"), M.client_msg_id == bindparam("cid")
)
_GET = select(*MESSAGE_COLUMNS).where(M.message_id == bindparam("mid"))
_GET_FAST = Prepared(_GET)
_HISTORY = Prepared(
    select(*MESSAGE_COLUMNS)
    .where(M.session_id == bindparam("sid"), M.sequence_number > bindparam("after"))
    .order_by(M.sequence_number)
    .limit(bindparam("limit"))
)
_RECENT = Prepared(
    select(*MESSAGE_COLUMNS)
    .where(M.session_id == bindparam("sid"))
    .order_by(M.sequence_number.desc())
    .limit(bindparam("limit"))
)
_EDIT = (
    update(Message)
    .where(M.message_id == bindparam("mid"))
    .values(content=bindparam("content"))
    .returning(*MESSAGE_COLUMNS)
)
_DELETE = sql_delete(Message).where(M.message_id == bindparam("mid"))
_INSERT_MANY = insert(Message).returning(
    M.message_id, M.sequence_number, sort_by_parameter_order=True
)


def message_from_db(row: Any) -> MessageRecord:
    """A record from a row of MESSAGE_COLUMNS, read through the driver or SQLAlchemy."""
    return MessageRecord(
        row[0], row[1], row[2], row[3], row[4], from_db_time(row[5]), row[6], row[7], row[8],
        row[9],
    )  # fmt: skip


def _appended(row: Any, params: Mapping[str, Any]) -> MessageRecord:
    """The record of a message just inserted, from its parameters and the ids it got."""
    return MessageRecord(
        row[0], params["sid"], row[1], params["role"], params["content"], params["ts"],
        params["tokens"], params["duration"], params["meta"], params["cid"],
    )  # fmt: skip


def _lock_session(conn: Connection, session_id: str) -> Any:
    """The session's row (status, last_seq), locked for this transaction.

    On PostgreSQL a ``FOR UPDATE`` that waited for a restore (or any transaction
    that deleted the session and created it again) finds the row it waited for
    deleted and skips it, while the new row is already there: the next
    statement sees it. SQLite's BEGIN IMMEDIATE never lets that happen.
    """
    for _ in range(_REPLACED_ATTEMPTS):
        lock = conn.execute(_LOCK_SESSION, {"sid": session_id}).first()
        if lock is not None:
            return lock
        require_session(conn, session_id)
    raise StoreBusyError(_REPLACED.format(session_id=session_id))


def _append_idempotent(conn: Connection, params: Mapping[str, Any]) -> MessageRecord:
    """Append unless this client id was stored before; then return the stored message."""
    session_id = params["sid"]
    lock = _lock_session(conn, session_id)
    stored = conn.execute(_BY_CLIENT_ID, params).first()
    if stored is not None:
        return message_from_db(stored)
    if lock.status != "active":
        raise SessionArchived(session_id)
    return _appended(conn.execute(_APPEND.statement, params).one(), params)


def _require_exists(raw: Raw, session_id: str) -> str:
    row = raw.first(_SESSION_STATUS, {"sid": session_id})
    if row is None:
        raise SessionNotFound(session_id)
    return str(row[0])


def _require_active(raw: Raw, session_id: str) -> None:
    if _require_exists(raw, session_id) != "active":
        raise SessionArchived(session_id)


class MessageRepository:
    """``store.messages``: the messages of every session."""

    def __init__(
        self, runner: Runner, clock: Callable[[], datetime], *, max_content_bytes: int
    ) -> None:
        self._runner = runner
        self._clock = clock
        self._max_bytes = max_content_bytes

    def append(
        self,
        session_id: str,
        role: str,
        content: str,
        *,
        tokens: int | None = None,
        duration: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        client_msg_id: str | None = None,
    ) -> MessageRecord:
        """Store one message at the end of the session and return it."""
        session_id = check_id("session_id", session_id)
        role = check_role(role)
        content = check_content(content, self._max_bytes)
        tokens = check_tokens(tokens)
        duration = check_duration(duration)
        meta = encode_metadata(metadata)
        if client_msg_id is not None:
            client_msg_id = check_id("client_msg_id", client_msg_id)
        now = self._clock()
        params: dict[str, Any] = {
            "sid": session_id,
            "role": role,
            "content": content,
            "ts": now,
            "tokens": tokens,
            "duration": duration,
            "meta": meta,
            "cid": client_msg_id,
        }
        if client_msg_id is not None:
            return self._runner.write(lambda conn: _append_idempotent(conn, params))

        def work(raw: Raw) -> MessageRecord:
            bound = {**params, "ts": to_db_time(now, raw.dialect.name)}
            # Again only on PostgreSQL, when the row being waited for was replaced
            # (see _lock_session); otherwise the first miss is the answer.
            for _ in range(_REPLACED_ATTEMPTS):
                row = raw.first(_APPEND, bound)
                if row is not None:
                    return _appended(row, params)
                _require_active(raw, session_id)
            raise StoreBusyError(_REPLACED.format(session_id=session_id))

        return self._runner.fast_write(work)

    def append_many(
        self, session_id: str, messages: Iterable[NewMessage | Mapping[str, Any]]
    ) -> list[MessageRecord]:
        """Store several messages in order, in one transaction: all of them or none."""
        session_id = check_id("session_id", session_id)
        if isinstance(messages, str | bytes | Mapping | io.IOBase) or not isinstance(
            messages, Iterable
        ):
            raise InvalidInput("messages must be a list of NewMessage or mappings")
        batch = [self._check_new(item) for item in messages]
        client_ids = [m["cid"] for m in batch if m["cid"] is not None]
        if len(client_ids) != len(set(client_ids)):
            raise InvalidInput("client_msg_id values must be distinct within one batch")
        if not batch:
            return []
        now = self._clock()

        def work(conn: Connection) -> list[MessageRecord]:
            lock = _lock_session(conn, session_id)
            if lock.status != "active":
                raise SessionArchived(session_id)
            stored: dict[str, MessageRecord] = {}
            if client_ids:
                rows = conn.execute(
                    select(*MESSAGE_COLUMNS).where(
                        M.session_id == session_id, M.client_msg_id.in_(client_ids)
                    )
                )
                stored = {row.client_msg_id: message_from_db(row) for row in rows}
            seq = int(lock.last_seq)
            fresh: list[dict[str, Any]] = []
            for item in batch:
                if item["cid"] in stored:
                    continue
                seq += 1
                fresh.append(
                    {
                        "session_id": session_id,
                        "sequence_number": seq,
                        "role": item["role"],
                        "content": item["content"],
                        "timestamp": now,
                        "tokens_used": item["tokens"],
                        "duration_seconds": item["duration"],
                        "metadata": item["meta"],
                        "client_msg_id": item["cid"],
                    }
                )
            ids = iter(conn.execute(_INSERT_MANY, fresh).all() if fresh else ())
            result = []
            for item in batch:
                if item["cid"] in stored:
                    result.append(stored[item["cid"]])
                    continue
                message_id, sequence_number = next(ids)
                result.append(
                    MessageRecord(
                        message_id,
                        session_id,
                        sequence_number,
                        item["role"],
                        item["content"],
                        now,
                        item["tokens"],
                        item["duration"],
                        item["meta"],
                        item["cid"],
                    )
                )
            return result

        return self._runner.write(work)

    def _check_new(self, item: NewMessage | Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(item, Mapping):
            unknown = set(item) - set(NewMessage.__dataclass_fields__)
            if unknown:
                raise InvalidInput(f"unknown message field(s): {', '.join(sorted(unknown))}")
            try:
                item = NewMessage(**item)
            except TypeError as exc:
                raise InvalidInput(f"a message needs role and content: {exc}") from None
        if not isinstance(item, NewMessage):
            raise InvalidInput(
                f"messages must be NewMessage or mappings, not {type(item).__name__}"
            )
        return {
            "role": check_role(item.role),
            "content": check_content(item.content, self._max_bytes),
            "tokens": check_tokens(item.tokens),
            "duration": check_duration(item.duration),
            "meta": encode_metadata(item.metadata),
            "cid": None
            if item.client_msg_id is None
            else check_id("client_msg_id", item.client_msg_id),
        }

    def get(self, message_id: int) -> MessageRecord:
        message_id = check_message_id(message_id)

        def work(raw: Raw) -> MessageRecord:
            row = raw.first(_GET_FAST, {"mid": message_id})
            if row is None:
                raise MessageNotFound(message_id)
            return message_from_db(row)

        return self._runner.fast_read(work)

    def history(
        self, session_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> Page[MessageRecord]:
        """The session's messages, oldest first, one keyset page at a time."""
        session_id = check_id("session_id", session_id)
        limit = check_limit(limit)
        # Before every sequence number (legacy rows may hold 0 or below): the
        # smallest the column holds, a 4-byte integer on PostgreSQL.
        after = -(2**31) if self._runner.dialect == "postgresql" else -(2**63)
        if cursor is not None:
            (after,) = decode_cursor(cursor, _CURSOR, (session_id,), int)

        def work(raw: Raw) -> Page[MessageRecord]:
            rows = raw.all(_HISTORY, {"sid": session_id, "after": after, "limit": limit + 1})
            if not rows:
                _require_exists(raw, session_id)
            items = tuple(message_from_db(row) for row in rows[:limit])
            next_cursor = None
            if len(rows) > limit:
                next_cursor = encode_cursor(_CURSOR, (session_id,), items[-1].sequence_number)
            return Page(items, next_cursor)

        return self._runner.fast_read(work)

    def recent(self, session_id: str, n: int = 50) -> list[MessageRecord]:
        """The last ``n`` messages, oldest first: what the next prompt needs."""
        session_id = check_id("session_id", session_id)
        n = check_limit(n, "n")

        def work(raw: Raw) -> list[MessageRecord]:
            rows = raw.all(_RECENT, {"sid": session_id, "limit": n})
            if not rows:
                _require_exists(raw, session_id)
            return [message_from_db(row) for row in reversed(rows)]

        return self._runner.fast_read(work)

    def edit(self, message_id: int, content: str) -> MessageRecord:
        """Replace a message's text; the search index follows at once."""
        message_id = check_message_id(message_id)
        content = check_content(content, self._max_bytes)

        def work(conn: Connection) -> MessageRecord:
            self._require_writable(conn, message_id)
            row = conn.execute(_EDIT, {"mid": message_id, "content": content}).first()
            assert row is not None
            return message_from_db(row)

        return self._runner.write(work)

    def delete(self, message_id: int) -> None:
        """Remove one message; its sequence number is not reused."""
        message_id = check_message_id(message_id)

        def work(conn: Connection) -> None:
            self._require_writable(conn, message_id)
            conn.execute(_DELETE, {"mid": message_id})

        self._runner.write(work)

    @staticmethod
    def _require_writable(conn: Connection, message_id: int) -> None:
        row = conn.execute(_GET, {"mid": message_id}).first()
        if row is None:
            raise MessageNotFound(message_id)
        if require_session(conn, row.session_id) != "active":
            raise SessionArchived(row.session_id)
