"""Reading messages: by id, by the caller's id, in order, the newest, by time, as a stream.

Reads are keyset reads over ``(session_id, sequence_number)``, the unique
index every message has, or over ``(session_id, timestamp,
sequence_number)`` for reads by time: no read scans a session, and a
stream of any length (:meth:`MessageReads.iterate`) costs one indexed range
read per batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from . import message_sql as sql
from .errors import InvalidInput, MessageNotFound
from .items import StoredItem, decode_items
from .message_sql import message_from_db, read_session, require_exists
from .owners import Owner, guarded, guarded_message
from .prepared import to_db_time
from .records import MessageRecord, Page
from .transactions import Raw, Runner
from .validation import (
    aware_utc,
    check_id,
    check_limit,
    check_message_id,
    decode_cursor,
    encode_cursor,
    shown,
)

__all__ = ["MAX_BATCH", "MessageReads"]

_CURSOR = "history"
#: The largest batch :meth:`MessageReads.iterate` reads at once.
MAX_BATCH = 10_000
#: More than any session holds: "no limit" for the statements that take one.
_ALL = 2**62
#: The history cursors this process handed out lately: cursor -> (session id,
#: sequence number). The next page's call passes one back nearly always, and
#: finds its value here instead of decoding it (base64 and JSON: a tenth of
#: a page's time). Any other cursor is decoded and checked as ever.
_ISSUED: dict[str, tuple[str, int]] = {}
_ISSUED_LIMIT = 4096


def _count(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{name} must be an integer from {low} to {high}, not {shown(value)}")
    return value


class MessageReads:
    """The reading half of ``store.messages`` (see :class:`MessageRepository`)."""

    _runner: Runner
    _owner: Owner | None

    def _first_sequence(self) -> int:
        # Before every sequence number (legacy rows may hold 0 or below): the
        # smallest the column holds, a 4-byte integer on PostgreSQL.
        return -(2**31) if self._runner.dialect == "postgresql" else -(2**63)

    def get(self, message_id: int) -> MessageRecord:
        message_id = check_message_id(message_id)

        def work(raw: Raw) -> MessageRecord:
            row = raw.first(sql.GET, {"mid": message_id})
            if row is None:
                raise MessageNotFound(message_id)
            return message_from_db(row)

        return self._runner.fast_read(guarded_message(self._owner, message_id, work))

    def get_by_client_id(self, session_id: str, client_msg_id: str) -> MessageRecord:
        """The message the caller's id names; :class:`MessageNotFound` if none."""
        session_id = check_id("session_id", session_id)
        client_msg_id = check_id("client_msg_id", client_msg_id)

        def work(raw: Raw) -> MessageRecord:
            row = raw.first(sql.BY_CLIENT_ID, {"sid": session_id, "cid": client_msg_id})
            if row is None:
                require_exists(raw, session_id)
                raise MessageNotFound(client_msg_id, session_id)
            return message_from_db(row)

        return self._runner.fast_read(guarded(self._owner, session_id, work))

    def history(
        self, session_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> Page[MessageRecord]:
        """The session's messages, oldest first, one keyset page at a time."""
        session_id = check_id("session_id", session_id)
        limit = check_limit(limit)
        after = self._first_sequence()
        if cursor is not None:
            issued = _ISSUED.get(cursor) if cursor.__class__ is str else None
            if issued is not None and issued[0] == session_id:
                after = issued[1]  # what decoding it for this session would give
            else:
                (after,) = decode_cursor(cursor, _CURSOR, (session_id,), int)
            # A cursor is not signed: one naming a number the column cannot hold
            # reads nothing further rather than reach PostgreSQL.
            after = min(after, -self._first_sequence() - 1)

        def work(raw: Raw) -> Page[MessageRecord]:
            params = {"sid": session_id, "after": after, "limit": limit + 1}
            records = read_session(raw, sql.HISTORY, params, session_id)
            if not records:
                require_exists(raw, session_id)
            items = tuple(records[:limit] if len(records) > limit else records)
            next_cursor = None
            if len(records) > limit:
                last = items[-1].sequence_number
                next_cursor = encode_cursor(_CURSOR, (session_id,), last)
                if 0 <= last < 2**63:  # what decode_cursor accepts
                    if len(_ISSUED) >= _ISSUED_LIMIT:
                        _ISSUED.clear()
                    _ISSUED[next_cursor] = (session_id, last)
            return Page(items, next_cursor)

        return self._runner.fast_read(guarded(self._owner, session_id, work))

    def iterate(
        self, session_id: str, *, batch: int = 500, after: int | None = None
    ) -> Iterator[MessageRecord]:
        """Every message of the session after sequence number ``after`` (default: all), in order.

        Read in keyset batches of ``batch`` rows, each in its own short read
        transaction, so a history of any length streams in constant memory and
        never holds a transaction open between batches. The arguments (and the
        session's existence) are checked at the call, before the first item.
        """
        session_id = check_id("session_id", session_id)
        batch = _count("batch", batch, 1, MAX_BATCH)
        lowest = self._first_sequence()
        start = lowest if after is None else _count("after", after, -(2**63), 2**63 - 1)
        # Within what the column holds (a 4-byte integer on PostgreSQL, which
        # refuses a larger parameter): past either end the answer is the same.
        start = min(max(start, lowest), -lowest - 1)
        first = self._batch(session_id, start, batch, check=True)
        return self._stream(session_id, first, batch)

    def _batch(self, session_id: str, after: int, size: int, *, check: bool) -> list[MessageRecord]:
        def work(raw: Raw) -> list[MessageRecord]:
            params = {"sid": session_id, "after": after, "limit": size}
            records = read_session(raw, sql.HISTORY, params, session_id)
            if not records and check:
                require_exists(raw, session_id)
            return records

        return self._runner.fast_read(guarded(self._owner, session_id, work))

    def _stream(
        self, session_id: str, records: list[MessageRecord], size: int
    ) -> Iterator[MessageRecord]:
        while records:
            yield from records
            if len(records) < size:
                return
            records = self._batch(session_id, records[-1].sequence_number, size, check=False)

    def recent(self, session_id: str, n: int = 50) -> list[MessageRecord]:
        """The last ``n`` messages (any number; 0 gives none), oldest first."""
        session_id = check_id("session_id", session_id)
        n = _count("n", n, 0, _ALL)

        def work(raw: Raw) -> list[MessageRecord]:
            params = {"sid": session_id, "limit": n}
            records = read_session(raw, sql.RECENT, params, session_id) if n else []
            if not records:
                require_exists(raw, session_id)
            records.reverse()
            return records

        return self._runner.fast_read(guarded(self._owner, session_id, work))

    def items(self, session_id: str, *, last: int | None = None) -> list[StoredItem]:
        """Every message (or the last ``last``) as ``(kind, role, content, payload)``, oldest first.

        What a framework adapter rebuilds its items from, read in one statement
        without building records: the payload decoded (``None`` when absent),
        the content the caller's exact text. :class:`SessionNotFound` for a
        session that does not exist (or is another owner's).
        """
        return list(decode_items(self._item_rows(session_id, last)))

    def _item_rows(self, session_id: str, last: int | None) -> list[Any]:
        """The rows :meth:`items` decodes (:func:`~sessionstore.items.decode_items`)."""
        session_id = check_id("session_id", session_id)
        n = None if last is None else _count("last", last, 0, _ALL)

        def work(raw: Raw) -> list[Any]:
            if n is None:
                rows = raw.all(sql.ITEMS, {"sid": session_id})
            else:
                rows = raw.all(sql.RECENT_ITEMS, {"sid": session_id, "limit": n}) if n else []
                rows.reverse()
            if not rows:
                require_exists(raw, session_id)
            return rows

        return self._runner.fast_read(guarded(self._owner, session_id, work))

    def since(
        self, session_id: str, after: datetime, *, limit: int | None = None
    ) -> list[MessageRecord]:
        """Messages whose timestamp is after ``after``, by time (ties by sequence number).

        Read on ``ix_messages_session_id_timestamp``: the cost is the rows
        returned, not the session's length. ``limit`` keeps the first ``limit``.
        """
        session_id = check_id("session_id", session_id)
        after = aware_utc("after", after)
        count = _ALL if limit is None else _count("limit", limit, 0, _ALL)

        def work(raw: Raw) -> list[MessageRecord]:
            params = {
                "sid": session_id,
                "after": to_db_time(after, raw.dialect.name),
                "limit": count,
            }
            records = read_session(raw, sql.SINCE, params, session_id) if count else []
            if not records:
                require_exists(raw, session_id)
            return records

        return self._runner.fast_read(guarded(self._owner, session_id, work))
