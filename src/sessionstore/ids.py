"""Who may use a session id: the per-id lock, and whether an id is free, taken or retired.

A session id hands out sequence numbers 1, 2, 3 … through its ``last_seq``,
and a caller may hold on to a ``(session_id, sequence_number)`` pair as the
name of a message. So an id must never hand out the same number twice, also
across archive, purge, restore and import:

* an id is **taken** while its session row exists;
* it is **retired** while a purged session of that id still has snapshots:
  a new session under it would start again at 1. It can only come back
  through ``lifecycle.restore`` of its newest snapshot;
* otherwise it is **free**.

Every operation that decides on an id's fate (create with an id, import,
archive, reactivate, purge, delete, restore) first takes the id's lock, so a
check and the write that follows it cannot race: on SQLite the writing
transaction began ``BEGIN IMMEDIATE`` and holds the database's only write
lock; on PostgreSQL a transaction-scoped advisory lock on a hash of the id
(two ids sharing a hash merely take turns).

The highest sequence number an id handed out before its session row went
away is kept in the ``details`` of its ``purge`` event (``sessions.delete``
of a session with snapshots records one too), so a restore can tell whether
its snapshot still holds everything the id ever acknowledged.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, text

from .errors import SessionExists, SessionIdRetired, SnapshotNotFound
from .models import LifecycleEvent, Session, Snapshot
from .owners import Owner, require_snapshot_owned
from .rls import unscoped

__all__ = ["high_water", "lock_id", "newest_snapshot", "record_event", "require_free"]

S = Session.__table__.c
N = Snapshot.__table__.c
E = LifecycleEvent.__table__.c

# The first key of PostgreSQL's two-key advisory locks: this library's space.
_LOCK_SPACE = 0x5E55_0001
_LOCK = text("SELECT pg_advisory_xact_lock(:space, :key)")


def _key(session_id: str) -> int:
    digest = hashlib.blake2b(session_id.encode("utf-8", "surrogatepass"), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_id(conn: Connection, session_id: str) -> None:
    """Hold the id's lock until the transaction ends (SQLite: BEGIN IMMEDIATE already does)."""
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK, {"space": _LOCK_SPACE, "key": _key(session_id)})


def newest_snapshot(conn: Connection, session_id: str) -> int | None:
    value = conn.execute(select(func.max(N.snapshot_id)).where(N.session_id == session_id)).scalar()
    return None if value is None else int(value)


def require_free(conn: Connection, session_id: str, owner: Owner | None = None) -> None:
    """:class:`SessionExists` if the id is taken, :class:`SessionIdRetired` if retired.

    In a scoped view (``owner``), an id retired by another owner's snapshots is
    :class:`SessionExists`, as a taken id: the snapshot's id is not the view's to see.
    """
    # Under row-level security a view cannot see another owner's rows: the id's
    # state is read as the admin (only whether it is free comes out).
    with unscoped(conn):
        taken = conn.execute(select(S.session_id).where(S.session_id == session_id)).first()
        snapshot_id = None if taken else newest_snapshot(conn, session_id)
    if taken:
        raise SessionExists(session_id)
    if snapshot_id is not None:
        if owner is not None:
            try:
                require_snapshot_owned(conn, snapshot_id, owner)
            except SnapshotNotFound:
                raise SessionExists(session_id) from None
        raise SessionIdRetired(session_id, snapshot_id)


def high_water(conn: Connection, session_id: str) -> int:
    """The highest ``last_seq`` recorded when a session of this id was purged or deleted."""
    rows = conn.execute(
        select(E.details).where(
            E.session_id == session_id, E.action == "purge", E.details.is_not(None)
        )
    ).scalars()
    best = 0
    for details in rows:
        try:
            value = json.loads(details).get("last_seq")
        except (ValueError, AttributeError):
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            best = max(best, value)
    return best


def record_event(
    conn: Connection,
    session_id: str,
    action: str,
    reason: str | None,
    snapshot_id: int | None,
    now: datetime,
    details: dict[str, Any] | None = None,
) -> None:
    """One line of the audit trail (``lifecycle.history``), stamped with the owner.

    The owner is the session's, or, once its row is gone (a purge, a delete),
    that of its newest snapshot: a user's erasure finds every line.
    """
    owner = conn.execute(select(S.app, S.user_id).where(S.session_id == session_id)).first()
    if owner is None:
        owner = conn.execute(
            select(N.app, N.user_id)
            .where(N.session_id == session_id)
            .order_by(N.snapshot_id.desc())
            .limit(1)
        ).first()
    conn.execute(
        insert(LifecycleEvent).values(
            app=None if owner is None else owner.app,
            user_id=None if owner is None else owner.user_id,
            session_id=session_id,
            action=action,
            reason=reason,
            snapshot_id=snapshot_id,
            occurred_at=now,
            details=json.dumps(details) if details else None,
        )
    )
