"""Archiving many due sessions in one transaction: the sweep's bulk path.

``lifecycle.sweep`` archived one session per transaction, through the same
statements as ``lifecycle.archive``: about ten statements per session, each
built and compiled anew (the session row twice, its metadata, messages,
state and owner, the snapshot, the status, the audit line). Profiled on
10,000 idle 20-message sessions, statement building took more time than the
snapshots' JSON and compression together.

Here a batch of due sessions (the caller holds their locks and has checked,
under them, that each is still due) is snapshotted and archived with a
statement per *kind of row* instead: the metadata, the state and the
messages of the whole batch in one read each, the snapshots in one
multi-row ``INSERT … RETURNING``, the statuses in one ``UPDATE``, the audit
lines in one ``executemany``.

Each snapshot is the export's JSON document, character for character,
formatted by :mod:`sessionstore.export_json`, and the zlib stream
``snapshots.take_snapshot`` stores (``snapshots.LEVEL``), restored the same
way. zlib releases the GIL, so the batch's documents are compressed on
:data:`COMPRESS_THREADS` other thread (:func:`compressors`, one pool per
sweep) while the sweep's own thread formats the next ones. At level 6 zlib
was the largest part of the sweep's CPU time (about 215 µs of 575 for a
session of 20 messages) and the second thread halved the sweep's time; at
level 1 (90 µs) the sweep's own thread is the bottleneck and the second
thread gains little (1,838-1,960 sessions/s with it, 1,883-2,213 without,
measured with one CPU partly busy).

A batch holds at most :data:`BATCH_SESSIONS` sessions and
:data:`BATCH_MESSAGES` messages (a larger session goes alone, and is
snapshotted by ``take_snapshot``, which streams), so the write lock is held
for a bounded time (about 40 ms for 100 sessions of 20 messages) and the
batch's messages fit in memory; writers waiting for the lock take their
turn between batches. A crash rolls the whole batch back: every session of
it is left active, without a snapshot.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from itertools import groupby
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Select, insert, select, update

from .export_json import MESSAGE_ROWS, session_text
from .models import LifecycleEvent, Message, Session, SessionMetadata, SessionState, Snapshot
from .records import SessionRecord, SnapshotInfo
from .session_sql import SESSION_COLUMNS, session_from_db
from .snapshots import LEVEL, SNAPSHOT_FORMAT, take_snapshot
from .statedelta import decode_value

__all__ = [
    "BATCH_MESSAGES",
    "BATCH_SESSIONS",
    "COMPRESS_THREADS",
    "archive_many",
    "batches",
    "compressors",
    "locked_sessions",
]

#: Sessions archived in one transaction, at most.
BATCH_SESSIONS = 100
#: Messages (by the sessions' counts) snapshotted in one transaction, at most.
BATCH_MESSAGES = 10_000
#: Threads compressing a sweep's snapshots (none with a single CPU). One is enough:
#: a snapshot's zlib costs less than its reading and formatting.
COMPRESS_THREADS = 1
#: Sessions compressed per task handed to the pool.
_CHUNK = 8

M = Message.__table__.c
S = Session.__table__.c
D = SessionMetadata.__table__.c
N = Snapshot.__table__.c
T = SessionState.__table__.c

#: Each new snapshot's id, by its session (a batch snapshots a session once). Not
#: ``sort_by_parameter_order``: SQLAlchemy then inserts row by row on SQLite, a
#: statement per session (about 100 µs of a swept session's 500).
_INSERT_SNAPSHOTS = insert(Snapshot).returning(N.snapshot_id, N.session_id)
_INSERT_EVENTS = insert(LifecycleEvent)


def _weight(stored: Any) -> int:
    """A session's stored message count, as a batch counts it: a legacy value that is no
    finite number (text, an infinite real) is unknown, so the session is streamed alone."""
    if stored.__class__ is int or (isinstance(stored, float) and math.isfinite(stored)):
        return max(0, int(stored))
    return BATCH_MESSAGES + 1


def batches(counts: Sequence[Any]) -> list[range]:
    """Consecutive index ranges of sessions (by message count) within the batch bounds."""
    found: list[range] = []
    start = messages = 0
    for i, count in enumerate(map(_weight, counts)):
        if i > start and (i - start >= BATCH_SESSIONS or messages + count > BATCH_MESSAGES):
            found.append(range(start, i))
            start, messages = i, 0
        messages += count
    if start < len(counts):
        found.append(range(start, len(counts)))
    return found


@contextmanager
def compressors() -> Iterator[Executor | None]:
    """The threads one sweep compresses its snapshots on, stopped when it ends.

    ``None`` (compress on the sweep's own thread) with a single CPU, where
    another thread would only take turns with it.
    """
    cpus = os.cpu_count() or 1
    threads = min(COMPRESS_THREADS, cpus)
    if cpus < 2 or threads < 1:
        yield None
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="sessionstore-sweep") as pool:
        yield pool


def locked_sessions(conn: Connection, ids: Sequence[str]) -> dict[str, SessionRecord]:
    """The sessions that still exist among ``ids``, read again under their locks."""
    statement = select(*SESSION_COLUMNS).where(S.session_id.in_(ids)).with_for_update()
    return {row[0]: session_from_db(row) for row in _driver_rows(conn, statement)}


def archive_many(
    conn: Connection,
    due: Sequence[tuple[SessionRecord, str]],
    now: datetime,
    pool: Executor | None = None,
) -> list[SnapshotInfo]:
    """Snapshot each (session, reason), then mark them archived; their snapshots, in order.

    Each session appears once (the snapshots' ids come back by session).

    The caller's transaction holds every session's lock and has re-read each
    ``SessionRecord`` under it. ``pool`` compresses the snapshots (by default,
    this thread does).
    """
    if not due:
        return []
    ids = [session.session_id for session, _ in due]
    small = [i for i, (s, _) in enumerate(due) if _weight(s.message_count) <= BATCH_MESSAGES]
    infos: dict[int, SnapshotInfo] = {}
    for i, (session, reason) in enumerate(due):
        if _weight(session.message_count) > BATCH_MESSAGES:
            # Streamed, a message at a time: a session of any size fits in memory.
            infos[i] = take_snapshot(conn, session.session_id, now, reason)
    if small:
        snapshots = _snapshot_rows(conn, [due[i] for i in small], now, pool)
        new_ids = {row[1]: int(row[0]) for row in conn.execute(_INSERT_SNAPSHOTS, snapshots)}
        for i, snap in zip(small, snapshots, strict=True):
            infos[i] = SnapshotInfo(
                new_ids[snap["session_id"]], snap["session_id"], now, snap["reason"],
                snap["message_count"], snap["raw_bytes"], snap["stored_bytes"],
            )  # fmt: skip
    found = [infos[i] for i in range(len(due))]
    conn.execute(
        update(Session).where(S.session_id.in_(ids)).values(status="archived", archived_at=now)
    )
    conn.execute(
        _INSERT_EVENTS,
        [
            {
                "app": session.app,
                "user_id": session.user_id,
                "session_id": session.session_id,
                "action": "archive",
                "reason": reason,
                "snapshot_id": info.snapshot_id,
                "occurred_at": now,
                "details": None,
            }
            for (session, reason), info in zip(due, found, strict=True)
        ],
    )
    return found


def _driver_rows(conn: Connection, statement: Select[Any]) -> Sequence[Any]:
    """The statement's rows as the driver returns them (SQLAlchemy's row objects skipped)."""
    result = conn.execute(statement)
    try:
        return result.cursor.fetchall()
    finally:
        result.close()


def _compress_all(texts: list[bytes]) -> list[bytes]:
    return [zlib.compress(data, LEVEL) for data in texts]


def _snapshot_rows(
    conn: Connection,
    due: Sequence[tuple[SessionRecord, str]],
    now: datetime,
    pool: Executor | None,
) -> list[dict[str, Any]]:
    """The ``session_snapshots`` rows of the sessions, each read in one statement per table."""
    ids = [session.session_id for session, _ in due]
    metadata: dict[str, dict[str, str | None]] = {sid: {} for sid in ids}
    for sid, key, value in _driver_rows(
        conn,
        select(D.session_id, D.key, D.value)
        .where(D.session_id.in_(ids))
        .order_by(D.session_id, D.key),
    ):
        metadata[sid][key] = value
    states: dict[str, dict[str, Any]] = {sid: {} for sid in ids}
    for sid, key, value in _driver_rows(
        conn,
        select(T.session_id, T.key, T.value)
        .where(T.session_id.in_(ids))
        .order_by(T.session_id, T.key),
    ):
        states[sid][key] = decode_value(key, value)
    rows = _driver_rows(
        conn,
        select(*MESSAGE_ROWS)
        .where(M.session_id.in_(ids))
        .order_by(M.session_id, M.sequence_number),
    )
    messages = {sid: list(group) for sid, group in groupby(rows, key=itemgetter(1))}
    del rows
    counts: list[int] = []
    texts: list[bytes] = []
    compressed: list[Future[list[bytes]] | list[bytes]] = []
    start = 0
    for session, _ in due:
        sid = session.session_id
        text, count = session_text(session, metadata[sid], states[sid], messages.pop(sid, ()))
        counts.append(count)
        texts.append(text.encode("utf-8"))
        if len(texts) - start == _CHUNK or len(texts) == len(due):
            # A few sessions per task: a task costs the pool about what a session's JSON does.
            chunk, start = texts[start:], len(texts)
            compressed.append(
                _compress_all(chunk) if pool is None else pool.submit(_compress_all, chunk)
            )
    payloads = [
        payload
        for chunk in compressed
        for payload in (chunk if isinstance(chunk, list) else chunk.result())
    ]
    return [
        {
            "app": session.app,
            "user_id": session.user_id,
            "session_id": session.session_id,
            "created_at": now,
            "reason": reason,
            "format": SNAPSHOT_FORMAT,
            "message_count": count,
            "raw_bytes": len(data),
            "stored_bytes": len(payload),
            "payload": payload,
        }
        for (session, reason), count, data, payload in zip(
            due, counts, texts, payloads, strict=True
        )
    ]
