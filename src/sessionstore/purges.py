"""Purging archived sessions: the deletion half of the lifecycle.

``store.lifecycle.purge`` picks the sessions archived at or before a cutoff
(in one owner's scope, when narrowed) and hands them here. Each is deleted in
a transaction of its own that first takes the id's lock and re-checks, under
it, that the session is still archived and still past the cutoff, so a
session reactivated meanwhile is left alone. Its snapshots stay: the newest
one (taken now, if the session was archived by hand in SQL and has none) is
named in the ``purge`` line of ``lifecycle_events``, together with the last
sequence number handed out, so that no older snapshot is restored over the id.

The bytes a purge gives back are measured on SQLite from the free list
before and after, and on PostgreSQL from the size of the purged message rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import Connection, delete, select, text

from . import snapshots
from .errors import SessionNotFound
from .ids import newest_snapshot, record_event
from .models import Session
from .owners import Owner
from .records import PurgeItem, PurgeReport
from .session_sql import lock_session
from .transactions import Runner

__all__ = ["Progress", "purge_archived"]

S = Session.__table__.c

Progress = Callable[[int, int], None]


def purge_archived(
    runner: Runner,
    owner: Owner | None,
    now: datetime,
    cutoff: datetime,
    where: Sequence[Any],
    progress: Progress | None,
) -> PurgeReport:
    """Delete the sessions matching ``where`` archived at or before ``cutoff``."""
    ids = runner.read(
        lambda conn: list(
            conn.execute(
                select(S.session_id)
                .where(S.status == "archived", S.archived_at <= cutoff, *where)
                .order_by(S.archived_at, S.session_id)
            ).scalars()
        )
    )
    before = _free_bytes(runner)
    purged: list[PurgeItem] = []
    row_bytes = 0
    for done, session_id in enumerate(ids, 1):
        result = runner.write(
            partial(_purge_one, session_id=session_id, cutoff=cutoff, now=now, owner=owner)
        )
        if result is not None:
            purged.append(result[0])
            row_bytes += result[1]
        if progress is not None:
            progress(done, len(ids))
    after = _free_bytes(runner)
    freed = after - before if after is not None and before is not None else row_bytes
    return PurgeReport(now, cutoff, tuple(purged), max(0, freed))


def _purge_one(
    conn: Connection, session_id: str, cutoff: datetime, now: datetime, owner: Owner | None
) -> tuple[PurgeItem, int] | None:
    try:
        current = lock_session(conn, session_id, owner)
    except SessionNotFound:
        return None
    if current.status != "archived" or current.archived_at is None:
        return None
    if current.archived_at > cutoff:
        return None
    snapshot_id = newest_snapshot(conn, session_id)
    if snapshot_id is None:  # archived by hand in SQL: keep a way back all the same
        snapshot_id = snapshots.take_snapshot(conn, session_id, now, "purge").snapshot_id
    size = 0
    if conn.dialect.name == "postgresql":
        size = int(
            conn.execute(
                text(
                    "SELECT COALESCE(SUM(pg_column_size(m.*)), 0) FROM messages m"
                    " WHERE m.session_id = :sid"
                ),
                {"sid": session_id},
            ).scalar()
            or 0
        )
    conn.execute(delete(Session).where(S.session_id == session_id))
    # The last number handed out: no older snapshot may be restored over it.
    details = {"messages": current.message_count, "last_seq": current.last_seq}
    record_event(conn, session_id, "purge", None, snapshot_id, now, details)
    return PurgeItem(session_id, int(snapshot_id), current.message_count), size


def _free_bytes(runner: Runner) -> int | None:
    """Bytes on SQLite's free list (what a purge gives back), else None."""
    if runner.dialect != "sqlite":
        return None

    def work(conn: Connection) -> int:
        pages = int(conn.exec_driver_sql("PRAGMA freelist_count").scalar() or 0)
        return pages * int(conn.exec_driver_sql("PRAGMA page_size").scalar() or 0)

    return runner.read(work)
