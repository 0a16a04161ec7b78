"""Archiving many due sessions in one transaction: the sweep's bulk path.

``lifecycle.sweep`` archived one session per transaction, through the same
statements as ``lifecycle.archive``: about ten statements per session, each
built and compiled anew (the session row twice, its metadata, messages,
state and owner, the snapshot, the status, the audit line). Profiled on
10,000 idle 20-message sessions, statement building took more time than the
snapshots' JSON and compression together.

Here a batch of due sessions (the caller holds their locks and has checked,
under them, that each is still due) is snapshotted and archived with a
statement per *kind of row* instead: the metadata, the state, the messages
and the owners of the whole batch in one read each, the snapshots in one
multi-row ``INSERT … RETURNING``, the statuses in one ``UPDATE``, the audit
lines in one ``executemany``. Each snapshot is written by the export's own
JSON writer into the same zlib stream format as ``snapshots.take_snapshot``
(compressed in chunks of 256 KiB rather than line by line), so a sweep's
snapshot holds the document ``archive`` stores, restored the same way. A
batch holds at most :data:`BATCH_SESSIONS` sessions and
:data:`BATCH_MESSAGES` messages (a larger session goes alone), so the write
lock is held for a bounded time and the batch's messages fit in memory.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import datetime
from itertools import groupby
from typing import Any

from sqlalchemy import Connection, insert, select, update

from .export import _write_json
from .message_sql import MESSAGE_COLUMNS, message_from_db
from .models import LifecycleEvent, Message, Session, SessionMetadata, SessionState, Snapshot
from .records import SessionRecord, SnapshotInfo
from .snapshots import SNAPSHOT_FORMAT
from .statedelta import decode_value

__all__ = ["BATCH_MESSAGES", "BATCH_SESSIONS", "archive_many", "batches"]

#: Sessions archived in one transaction, at most.
BATCH_SESSIONS = 100
#: Messages (by the sessions' counts) snapshotted in one transaction, at most.
BATCH_MESSAGES = 10_000

M = Message.__table__.c
S = Session.__table__.c
D = SessionMetadata.__table__.c
N = Snapshot.__table__.c
T = SessionState.__table__.c

#: Text gathered before it is handed to zlib (one ``compress`` call per message
#: line cost more than the compression itself).
_CHUNK = 256 * 1024


class _Sink:
    """A text sink compressing in chunks: the zlib stream ``take_snapshot`` writes, coarser."""

    def __init__(self) -> None:
        self._zlib = zlib.compressobj(level=6)
        self._pending: list[str] = []
        self._pending_chars = 0
        self._chunks: list[bytes] = []
        self.raw_bytes = 0

    def write(self, text: str, /) -> int:
        self._pending.append(text)
        self._pending_chars += len(text)
        if self._pending_chars >= _CHUNK:
            self._flush()
        return len(text)

    def _flush(self) -> None:
        data = "".join(self._pending).encode("utf-8")
        self.raw_bytes += len(data)
        self._chunks.append(self._zlib.compress(data))
        self._pending, self._pending_chars = [], 0

    def finish(self) -> bytes:
        self._flush()
        self._chunks.append(self._zlib.flush())
        return b"".join(self._chunks)


_INSERT_SNAPSHOTS = insert(Snapshot).returning(N.snapshot_id, sort_by_parameter_order=True)
_INSERT_EVENTS = insert(LifecycleEvent)


def batches(counts: Sequence[int]) -> list[range]:
    """Consecutive index ranges of sessions (by message count) within the batch bounds."""
    found: list[range] = []
    start = messages = 0
    for i, count in enumerate(counts):
        if i > start and (i - start >= BATCH_SESSIONS or messages + count > BATCH_MESSAGES):
            found.append(range(start, i))
            start, messages = i, 0
        messages += count
    if start < len(counts):
        found.append(range(start, len(counts)))
    return found


def archive_many(
    conn: Connection, due: Sequence[tuple[SessionRecord, str]], now: datetime
) -> list[SnapshotInfo]:
    """Snapshot each (session, reason), then mark them archived; their snapshots, in order.

    The caller's transaction holds every session's lock and has re-read each
    ``SessionRecord`` under it.
    """
    if not due:
        return []
    ids = [session.session_id for session, _ in due]
    metadata: dict[str, dict[str, str | None]] = {sid: {} for sid in ids}
    for sid, key, value in conn.execute(
        select(D.session_id, D.key, D.value)
        .where(D.session_id.in_(ids))
        .order_by(D.session_id, D.key)
    ):
        metadata[sid][key] = value
    states: dict[str, dict[str, Any]] = {sid: {} for sid in ids}
    for sid, key, value in conn.execute(
        select(T.session_id, T.key, T.value)
        .where(T.session_id.in_(ids))
        .order_by(T.session_id, T.key)
    ):
        states[sid][key] = decode_value(key, value)
    owners = {
        row.session_id: (row.app, row.user_id)
        for row in conn.execute(select(S.session_id, S.app, S.user_id).where(S.session_id.in_(ids)))
    }
    rows = conn.execute(
        select(*MESSAGE_COLUMNS)
        .where(M.session_id.in_(ids))
        .order_by(M.session_id, M.sequence_number)
    ).all()
    messages = {sid: list(group) for sid, group in groupby(rows, key=lambda row: row[1])}
    snapshots: list[dict[str, Any]] = []
    for session, reason in due:
        sid = session.session_id
        sink = _Sink()
        stream = ((message_from_db(row), row.content) for row in messages.get(sid, ()))
        count = _write_json(sink, session, metadata[sid], stream, states[sid])
        payload = sink.finish()
        app, user_id = owners[sid]
        snapshots.append(
            {
                "app": app,
                "user_id": user_id,
                "session_id": sid,
                "created_at": now,
                "reason": reason,
                "format": SNAPSHOT_FORMAT,
                "message_count": count,
                "raw_bytes": sink.raw_bytes,
                "stored_bytes": len(payload),
                "payload": payload,
            }
        )
    snapshot_ids = [int(row[0]) for row in conn.execute(_INSERT_SNAPSHOTS, snapshots)]
    conn.execute(
        update(Session).where(S.session_id.in_(ids)).values(status="archived", archived_at=now)
    )
    conn.execute(
        _INSERT_EVENTS,
        [
            {
                "app": snap["app"],
                "user_id": snap["user_id"],
                "session_id": snap["session_id"],
                "action": "archive",
                "reason": snap["reason"],
                "snapshot_id": snapshot_id,
                "occurred_at": now,
                "details": None,
            }
            for snap, snapshot_id in zip(snapshots, snapshot_ids, strict=True)
        ],
    )
    return [
        SnapshotInfo(
            snapshot_id, snap["session_id"], now, snap["reason"], snap["message_count"],
            snap["raw_bytes"], snap["stored_bytes"],
        )
        for snap, snapshot_id in zip(snapshots, snapshot_ids, strict=True)
    ]  # fmt: skip
