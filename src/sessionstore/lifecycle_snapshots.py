"""The lifecycle's snapshots and audit trail: restore, list, prune, history.

One part of :class:`~sessionstore.lifecycle.Lifecycle` (``store.lifecycle``),
kept apart by concept: what happens to a session over time is in
:mod:`sessionstore.lifecycle`; reading and restoring what it left behind
(snapshots, which outlive a purge, and the ``lifecycle_events`` trail) is
here, the rules of a restore in :mod:`sessionstore.snapshots`. In a scoped
view, another owner's snapshot is :class:`SnapshotNotFound`, and its
snapshots and history are empty lists, as for an id that never existed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Connection, select

from . import snapshots
from .errors import InvalidInput
from .models import LifecycleEvent, Snapshot
from .owners import Owner, owner_filter, require_snapshot_owned
from .records import LifecycleRecord, SessionRecord, SnapshotInfo
from .transactions import Runner
from .validation import aware_utc, check_id, shown

__all__ = ["SnapshotMethods"]

E = LifecycleEvent.__table__.c
N = Snapshot.__table__.c


class SnapshotMethods:
    """``restore``, ``snapshots``, ``prune_snapshots`` and ``history`` of ``store.lifecycle``."""

    _runner: Runner
    _clock: Callable[[], datetime]
    _owner: Owner | None

    def restore(
        self, snapshot_id: int, *, session_id: str | None = None, now: datetime | None = None
    ) -> SessionRecord:
        """Bring a snapshot back: over its own id when nothing is newer, else as a copy.

        Without ``session_id`` the session is recreated exactly as snapshotted (ids,
        sequence numbers, timestamps, metadata, totals), but only from the newest
        snapshot of its id and only while the session is purged, or archived with
        nothing the snapshot lacks: :class:`SessionActive` or
        :class:`SnapshotSuperseded` otherwise. With ``session_id`` the snapshot is
        recreated as a new session under that id, which must be free
        (:class:`SessionExists`, :class:`SessionIdRetired`). See
        :mod:`sessionstore.snapshots`.
        """
        if (
            isinstance(snapshot_id, bool)
            or not isinstance(snapshot_id, int)
            or not 1 <= snapshot_id < 2**63
        ):
            raise InvalidInput(f"snapshot_id must be a positive integer, not {shown(snapshot_id)}")
        target = None if session_id is None else check_id("session_id", session_id)
        now = self._now(now)

        def work(conn: Connection) -> SessionRecord:
            require_snapshot_owned(conn, snapshot_id, self._owner)
            return snapshots.restore(conn, snapshot_id, target, now, self._owner)

        return self._runner.write(work)

    def snapshots(self, session_id: str) -> list[SnapshotInfo]:
        """The session's snapshots, newest first (also after the session was purged)."""
        session_id = check_id("session_id", session_id)
        where = [] if self._owner is None else owner_filter(N, self._owner.app, self._owner.user_id)
        return self._runner.read(lambda conn: snapshots.list_snapshots(conn, session_id, where))

    def prune_snapshots(
        self, keep: int = 1, *, session_id: str | None = None, now: datetime | None = None
    ) -> int:
        """Keep the newest ``keep`` snapshots of each session; how many were deleted."""
        if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep < 2**31:
            raise InvalidInput("keep must be an integer of at least 1")
        if session_id is not None:
            session_id = check_id("session_id", session_id)
        now = self._now(now)
        where = [] if self._owner is None else owner_filter(N, self._owner.app, self._owner.user_id)
        return self._runner.write(lambda conn: snapshots.prune(conn, keep, session_id, now, where))

    def history(self, session_id: str) -> list[LifecycleRecord]:
        """Every lifecycle action on the session, oldest first."""
        session_id = check_id("session_id", session_id)
        stmt = (
            select(
                E.event_id,
                E.session_id,
                E.action,
                E.reason,
                E.snapshot_id,
                E.occurred_at,
                E.details,
            )
            .where(E.session_id == session_id)
            .order_by(E.event_id)
        )
        if self._owner is not None:
            stmt = stmt.where(*owner_filter(E, self._owner.app, self._owner.user_id))

        def work(conn: Connection) -> list[LifecycleRecord]:
            return [
                LifecycleRecord(*row[:6], json.loads(row[6]) if row[6] else {})
                for row in conn.execute(stmt)
            ]

        return self._runner.read(work)

    def _now(self, now: datetime | None) -> datetime:
        if now is None:
            return self._clock()
        return aware_utc("now", now)
