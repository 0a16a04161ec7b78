"""Writing messages: append one or many, edit, delete, clear, pop.

An append is one ``INSERT … SELECT`` that takes the next sequence number
from the session row (``last_seq + 1``) in the same statement, inside a
transaction that already holds the write lock (``BEGIN IMMEDIATE`` on
SQLite, ``FOR UPDATE`` on the session row on PostgreSQL): no gaps, no
duplicates, however many writers. The insert trigger then bumps the
session's count, totals, ``last_seq`` and activity time in O(1) and indexes
the text, so a session of 100,000 messages appends as fast as an empty one.

A batch (``append_many``) locks the session row once, numbers its rows from
``last_seq`` and inserts them with one ``executemany`` on the driver
connection, then reads the ids back in one indexed range read.

``client_msg_id`` is the caller's message id, unique within its session. An
append under an id already stored is a retry when it repeats the message
(role, kind, content and payload equal, the payload by
:func:`~sessionstore.items.same_payload`): the stored message comes back and
nothing is added. Anything else under that id is
:class:`DuplicateMessageId`.

Sequence numbers are never reused: ``delete``, ``pop`` and ``clear`` remove
rows, and ``last_seq`` never goes down.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from . import message_sql as sql
from .errors import (
    DuplicateMessageId,
    InvalidInput,
    MessageNotFound,
    SessionArchived,
    StoreBusyError,
)
from .items import encode_content, encode_payload, same_payload
from .message_sql import M, appended, lock_active, lock_session, message_from_db
from .owners import Owner, guarded, guarded_message
from .prepared import to_db_time
from .records import MessageRecord, NewMessage
from .sessions import require_session
from .state import CheckedDelta, StateDelta, apply_state_delta, check_state_delta
from .transactions import Raw, Runner
from .validation import (
    aware_utc,
    check_duration,
    check_id,
    check_kind,
    check_message_id,
    check_role,
    check_tokens,
    encode_metadata,
)

__all__ = ["MessageWrites"]

_NEW_FIELDS = frozenset(NewMessage.__dataclass_fields__)


def _retry_or_refuse(stored: MessageRecord, params: Mapping[str, Any]) -> MessageRecord:
    """The stored message when ``params`` repeat it (a retry); else DuplicateMessageId."""
    if (
        stored.role == params["role"]
        and stored.kind == params["kind"]
        and stored.content == params["text"]
        and same_payload(stored.payload_json, params["payload"])
    ):
        return stored
    assert stored.client_msg_id is not None
    raise DuplicateMessageId(stored.session_id, stored.client_msg_id, stored.sequence_number)


def _append_locked(
    conn: Connection, params: dict[str, Any], delta: CheckedDelta | None, now: datetime | None
) -> MessageRecord:
    """One append on the Connection path (a message id, a state delta or both)."""
    session_id = params["sid"]
    status, _ = lock_session(conn, session_id)
    if params["cid"] is not None:
        row = conn.execute(sql.BY_CLIENT_ID.statement, params).first()
        if row is not None:
            return _retry_or_refuse(message_from_db(row), params)
    if status != "active":
        raise SessionArchived(session_id)
    if delta is not None:
        apply_state_delta(conn, session_id, delta)
    record = appended(conn.execute(sql.APPEND.statement, params).one(), params)
    if now is not None:
        conn.execute(sql.TOUCH.statement, {"sid": session_id, "now": now})
    return record


class MessageWrites:
    """The writing half of ``store.messages`` (see :class:`MessageRepository`)."""

    _runner: Runner
    _clock: Callable[[], datetime]
    _max_bytes: int
    _max_payload: int
    _owner: Owner | None

    def _checked(
        self,
        role: object,
        content: object,
        kind: object,
        payload: object,
        timestamp: object,
        tokens: object,
        duration: object,
        metadata: Any,
        client_msg_id: object,
    ) -> dict[str, Any]:
        """One message's values, checked and encoded: the parameters of an insert."""
        shown_text, exact = encode_content(content, self._max_bytes)
        return {
            "role": check_role(role),
            "content": shown_text,
            "exact": exact,
            # The caller's exact text, what the record (and a retry) holds.
            "text": shown_text if exact is None else str(content),
            "kind": check_kind(kind),
            "payload": encode_payload(payload, self._max_payload),
            "ts": None if timestamp is None else aware_utc("timestamp", timestamp),
            "tokens": check_tokens(tokens),
            "duration": check_duration(duration),
            "meta": encode_metadata(metadata),
            "cid": None if client_msg_id is None else check_id("client_msg_id", client_msg_id),
        }

    def append(
        self,
        session_id: str,
        role: str,
        content: str,
        *,
        kind: str = "message",
        payload: Any = None,
        timestamp: datetime | None = None,
        tokens: int | None = None,
        duration: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        client_msg_id: str | None = None,
        state_delta: StateDelta | None = None,
    ) -> MessageRecord:
        """Store one message (or framework item) at the end of the session and return it.

        ``kind`` and ``payload`` carry a framework's item whole (see
        :mod:`sessionstore.items`); ``timestamp`` is the caller's time (aware,
        kept to the microsecond; default the store's clock); ``client_msg_id`` the
        caller's message id; ``state_delta`` changes the session's state (and its
        owner's) in the same transaction: both are stored, or neither (see
        :mod:`sessionstore.state`). A retry that returns the stored message does
        not write it again.
        """
        session_id = check_id("session_id", session_id)
        params = self._checked(
            role, content, kind, payload, timestamp, tokens, duration, metadata, client_msg_id
        )
        delta = check_state_delta(state_delta, max_value_bytes=self._max_bytes)
        now = self._clock()
        # A caller's time may lie in the past: the session's activity is still now.
        touch = None if params["ts"] is None else now
        if params["ts"] is None:
            params["ts"] = now
        params["sid"] = session_id
        if params["cid"] is not None or delta is not None:
            return self._runner.write(
                guarded(
                    self._owner,
                    session_id,
                    lambda conn: _append_locked(conn, params, delta, touch),
                )
            )

        def work(raw: Raw) -> MessageRecord:
            dialect = raw.dialect.name
            bound = {**params, "ts": to_db_time(params["ts"], dialect)}
            # Again only on PostgreSQL, when the row being waited for was replaced
            # (see lock_session); otherwise the first miss is the answer.
            for _ in range(sql.REPLACED_ATTEMPTS):
                row = raw.first(sql.APPEND, bound)
                if row is not None:
                    if touch is not None:
                        sql.execute(
                            raw, sql.TOUCH, {"sid": session_id, "now": to_db_time(touch, dialect)}
                        )
                    return appended(row, params)
                sql.require_active(raw, session_id)
            raise StoreBusyError(sql.REPLACED.format(session_id=session_id))

        return self._runner.fast_write(guarded(self._owner, session_id, work))

    def append_many(
        self,
        session_id: str,
        messages: Iterable[NewMessage | Mapping[str, Any]],
        *,
        state_delta: StateDelta | None = None,
    ) -> list[MessageRecord]:
        """Store several messages in order, in one transaction: all of them or none.

        Items are :class:`~sessionstore.records.NewMessage` or mappings of its
        fields. An item whose ``client_msg_id`` is stored already is a retry (its
        stored message is returned in its place) or :class:`DuplicateMessageId`.
        ``state_delta`` is written in the same transaction (not when every message
        was a retry of one already stored; with no messages, the delta alone).
        """
        session_id = check_id("session_id", session_id)
        if isinstance(messages, str | bytes | Mapping | io.IOBase) or not isinstance(
            messages, Iterable
        ):
            raise InvalidInput("messages must be a list of NewMessage or mappings")
        batch = [self._check_new(item) for item in messages]
        client_ids = [m["cid"] for m in batch if m["cid"] is not None]
        if len(client_ids) != len(set(client_ids)):
            raise InvalidInput("client_msg_id values must be distinct within one batch")
        delta = check_state_delta(state_delta, max_value_bytes=self._max_bytes)
        if not batch and delta is None:
            return []
        now = self._clock()
        touch = any(item["ts"] is not None for item in batch)
        for item in batch:
            if item["ts"] is None:
                item["ts"] = now

        def insert(raw: Raw, last_seq: int, stored: Mapping[str, MessageRecord]) -> list[Any]:
            dialect = raw.dialect.name
            rows = []
            for item in batch:
                if item["cid"] in stored:
                    continue
                last_seq += 1
                rows.append(
                    {
                        "session_id": session_id,
                        "sequence_number": last_seq,
                        "role": item["role"],
                        "content": item["content"],
                        "timestamp": to_db_time(item["ts"], dialect),
                        "tokens_used": item["tokens"],
                        "duration_seconds": item["duration"],
                        "metadata": item["meta"],
                        "client_msg_id": item["cid"],
                        "kind": item["kind"],
                        "payload": item["payload"],
                        "exact_content": item["exact"],
                    }
                )
            if not rows:
                return []
            sql.executemany(raw, sql.INSERT_ROWS, rows)
            first = rows[0]["sequence_number"] - 1
            ids = raw.all(sql.BATCH_IDS, {"sid": session_id, "first": first, "last": last_seq})
            if touch:
                sql.execute(raw, sql.TOUCH, {"sid": session_id, "now": to_db_time(now, dialect)})
            return ids

        def records(ids: list[Any], stored: Mapping[str, MessageRecord]) -> list[MessageRecord]:
            fresh = iter(ids)
            result = []
            for item in batch:
                if item["cid"] in stored:
                    result.append(stored[item["cid"]])
                    continue
                message_id, sequence_number = next(fresh)
                result.append(appended((message_id, sequence_number), {**item, "sid": session_id}))
            return result

        if not client_ids and delta is None:

            def fast(raw: Raw) -> list[MessageRecord]:
                return records(insert(raw, lock_active(raw, session_id), {}), {})

            return self._runner.fast_write(guarded(self._owner, session_id, fast))

        def work(conn: Connection) -> list[MessageRecord]:
            last_seq = lock_active(conn, session_id)
            stored: dict[str, MessageRecord] = {}
            if client_ids:
                found = conn.execute(
                    select(*sql.MESSAGE_COLUMNS).where(
                        M.session_id == session_id, M.client_msg_id.in_(client_ids)
                    )
                )
                stored = {row.client_msg_id: message_from_db(row) for row in found}
                for item in batch:
                    if item["cid"] in stored:
                        _retry_or_refuse(stored[item["cid"]], item)
            # The delta before the rows (it may refuse; nothing is written then),
            # and only when a message is new (a retried batch applied it already)
            # or there is none: a delta alone is a state write to the session.
            if delta is not None and (
                not batch or any(item["cid"] not in stored for item in batch)
            ):
                apply_state_delta(conn, session_id, delta)
            raw = Raw(conn.connection.dbapi_connection, conn.dialect)
            ids = insert(raw, last_seq, stored)
            return records(ids, stored)

        return self._runner.write(guarded(self._owner, session_id, work))

    def _check_new(self, item: NewMessage | Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(item, Mapping):
            unknown = set(item) - _NEW_FIELDS
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
        return self._checked(
            item.role, item.content, item.kind, item.payload, item.timestamp, item.tokens,
            item.duration, item.metadata, item.client_msg_id,
        )  # fmt: skip

    def edit(self, message_id: int, content: str) -> MessageRecord:
        """Replace a message's text (its kind and payload stay); the search index follows."""
        message_id = check_message_id(message_id)
        shown_text, exact = encode_content(content, self._max_bytes)

        def work(conn: Connection) -> MessageRecord:
            self._require_writable(conn, message_id)
            params = {"mid": message_id, "content": shown_text, "exact": exact}
            row = conn.execute(sql.EDIT, params).first()
            assert row is not None
            return message_from_db(row)

        return self._runner.write(guarded_message(self._owner, message_id, work))

    def delete(self, message_id: int) -> None:
        """Remove one message; its sequence number is not reused."""
        message_id = check_message_id(message_id)

        def work(conn: Connection) -> None:
            self._require_writable(conn, message_id)
            conn.execute(sql.DELETE, {"mid": message_id})

        self._runner.write(guarded_message(self._owner, message_id, work))

    def delete_by_client_id(self, session_id: str, client_msg_id: str) -> None:
        """Remove the message the caller's id names; :class:`MessageNotFound` if none."""
        session_id = check_id("session_id", session_id)
        client_msg_id = check_id("client_msg_id", client_msg_id)

        def work(conn: Connection) -> None:
            lock_active(conn, session_id)
            params = {"sid": session_id, "cid": client_msg_id}
            if conn.execute(sql.DELETE_BY_CLIENT_ID, params).first() is None:
                raise MessageNotFound(client_msg_id, session_id)

        self._runner.write(guarded(self._owner, session_id, work))

    def clear(self, session_id: str) -> int:
        """Remove every message of the session; how many went.

        The session stays, with its title, metadata, state and settings; sequence
        numbers go on from where they were (never reused).
        """
        session_id = check_id("session_id", session_id)

        def work(conn: Connection) -> int:
            lock_active(conn, session_id)
            return int(conn.execute(sql.CLEAR, {"sid": session_id}).rowcount)

        return self._runner.write(guarded(self._owner, session_id, work))

    def pop(self, session_id: str) -> MessageRecord | None:
        """Remove and return the session's last message (``None`` when it has none).

        One ``DELETE … WHERE message_id = (SELECT … ORDER BY sequence_number DESC
        LIMIT 1) RETURNING …``; the number it had is not handed out again.
        """
        session_id = check_id("session_id", session_id)

        def work(raw: Raw) -> MessageRecord | None:
            lock_active(raw, session_id)
            row = raw.first(sql.POP, {"sid": session_id})
            return None if row is None else message_from_db(row)

        return self._runner.fast_write(guarded(self._owner, session_id, work))

    @staticmethod
    def _require_writable(conn: Connection, message_id: int) -> None:
        row = conn.execute(sql.GET.statement, {"mid": message_id}).first()
        if row is None:
            raise MessageNotFound(message_id)
        if require_session(conn, row.session_id) != "active":
            raise SessionArchived(row.session_id)
