"""Session lifecycle: timeouts, sweep, archive, reactivate, purge, and the audit trail.

A session times out when it has had no activity for its **idle timeout**,
or when its **hard timeout** has passed since it was created, whichever
comes first; at the deadline itself it has timed out. Both default to the
store's configuration (``SessionStore.open(url, idle_timeout=...,
hard_timeout=...)``) and can be set per session. ``now`` can be passed to
every operation, so timeouts are tested with a clock, never with sleeps.

Archiving takes a **snapshot** first (:mod:`sessionstore.snapshots`) and
marks the session archived, in one transaction that holds the session's
lock: an append either committed before (and is in the snapshot) or fails
with :class:`SessionArchived`. Snapshots outlive the purge of their session,
and ``restore`` brings one back under the rules in that module.

Each operation on a session is one transaction that first takes the id's
lock (:mod:`sessionstore.ids`); ``sweep`` and ``purge`` take one per
session, re-checking under the lock that the session is still due, so a
session that received a message a moment ago, or that another sweeper
archived, is left alone. Every action is written to ``lifecycle_events``,
which :meth:`Lifecycle.history` reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import (
    Connection,
    delete,
    select,
    text,
    update,
)

from . import leases, snapshots, timeouts
from .errors import (
    InvalidInput,
    InvalidStateError,
    SessionActive,
    SessionNotFound,
    SnapshotNotFound,
)
from .ids import lock_id, newest_snapshot, record_event
from .models import LifecycleEvent, Session
from .records import (
    Expiry,
    LifecycleRecord,
    PurgeItem,
    PurgeReport,
    SessionRecord,
    SnapshotInfo,
    SweepItem,
    SweepReport,
)
from .scheduler import Scheduler
from .sessions import SESSION_COLUMNS, check_timeout, require_writable, session_from_db
from .transactions import Runner
from .validation import aware_utc, check_id, shown

__all__ = [
    "Expiry",
    "Lifecycle",
    "LifecycleRecord",
    "PurgeReport",
    "SessionActive",
    "SnapshotInfo",
    "SnapshotNotFound",
    "SweepReport",
]

S = Session.__table__.c
E = LifecycleEvent.__table__.c

Progress = Callable[[int, int], None]
SNAPSHOT_FORMAT = snapshots.SNAPSHOT_FORMAT
_UNSET: Any = object()


class Lifecycle:
    """``store.lifecycle``: timeouts, archive, reactivate, purge, restore, the audit trail."""

    def __init__(
        self,
        runner: Runner,
        clock: Callable[[], datetime],
        *,
        idle_timeout: timedelta | None,
        hard_timeout: timedelta | None,
        purge_after: timedelta | None,
    ) -> None:
        self._runner = runner
        self._clock = clock
        self.idle_timeout = idle_timeout
        self.hard_timeout = hard_timeout
        self.purge_after = purge_after
        self._schedulers: list[Scheduler] = []

    # --- timeouts -------------------------------------------------------------------

    def due(self, session: SessionRecord, horizon: datetime) -> Expiry | None:
        """The first of the session's deadlines at or before ``horizon``, if any."""
        if not isinstance(session, SessionRecord):
            raise InvalidInput(f"session must be a SessionRecord, not {type(session).__name__}")
        horizon = aware_utc("horizon", horizon)
        return timeouts.first_due(session, horizon, self.idle_timeout, self.hard_timeout)

    def _candidates(self, conn: Connection, horizon: datetime) -> list[Expiry]:
        return timeouts.candidates(conn, horizon, self.idle_timeout, self.hard_timeout)

    def expiring(self, within: timedelta, now: datetime | None = None) -> list[Expiry]:
        """Active sessions that time out within ``within`` of ``now`` (or already have)."""
        horizon = timeouts.shift(self._now(now), within, "within", +1)
        return self._runner.read(lambda conn: self._candidates(conn, horizon))

    def set_timeouts(
        self,
        session_id: str,
        *,
        idle_timeout: timedelta | None = _UNSET,
        hard_timeout: timedelta | None = _UNSET,
    ) -> SessionRecord:
        """Override (or, with ``None``, go back to the defaults for) a session's timeouts."""
        session_id = check_id("session_id", session_id)
        values: dict[str, Any] = {}
        if idle_timeout is not _UNSET:
            values["idle_timeout_seconds"] = check_timeout("idle_timeout", idle_timeout)
        if hard_timeout is not _UNSET:
            values["hard_timeout_seconds"] = check_timeout("hard_timeout", hard_timeout)
        stmt = update(Session).where(S.session_id == session_id).returning(*SESSION_COLUMNS)

        def work(conn: Connection) -> SessionRecord:
            if not values:
                return _locked(conn, session_id)
            require_writable(conn, session_id)
            row = conn.execute(stmt.values(**values)).first()
            if row is None:
                raise SessionNotFound(session_id)
            return session_from_db(row)

        return self._runner.write(work)

    # --- archive, reactivate --------------------------------------------------------

    def sweep(
        self,
        now: datetime | None = None,
        *,
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> SweepReport:
        """Archive every active session past its idle or hard timeout, one transaction each."""
        now = self._now(now)
        due = self._runner.read(lambda conn: self._candidates(conn, now))
        if dry_run:
            items = tuple(SweepItem(e.session.session_id, e.reason, e.deadline, None) for e in due)
            return SweepReport(now, True, items)
        archived: list[SweepItem] = []
        for done, expiry in enumerate(due, 1):
            item = self._runner.write(partial(self._archive_if_due, expiry=expiry, now=now))
            if item is not None:
                archived.append(item)
            if progress is not None:
                progress(done, len(due))
        return SweepReport(now, False, tuple(archived), skipped=len(due) - len(archived))

    def _archive_if_due(self, conn: Connection, expiry: Expiry, now: datetime) -> SweepItem | None:
        session_id = expiry.session.session_id
        try:
            current = _locked(conn, session_id)
        except SessionNotFound:
            return None
        still = self.due(current, now)
        if still is None:
            return None
        snapshot = self._archive(conn, current, now, f"{still.reason} timeout")
        return SweepItem(session_id, still.reason, still.deadline, snapshot.snapshot_id)

    def archive(
        self, session_id: str, *, reason: str = "manual", now: datetime | None = None
    ) -> SnapshotInfo:
        """Snapshot the session, then mark it archived; returns the snapshot."""
        session_id = check_id("session_id", session_id)
        reason = check_id("reason", reason)
        now = self._now(now)

        def work(conn: Connection) -> SnapshotInfo:
            current = _locked(conn, session_id)
            if current.status != "active":
                raise InvalidStateError(f"session {session_id!r} is already archived")
            return self._archive(conn, current, now, reason)

        return self._runner.write(work)

    def _archive(
        self, conn: Connection, session: SessionRecord, now: datetime, reason: str
    ) -> SnapshotInfo:
        snapshot = snapshots.take_snapshot(conn, session.session_id, now, reason)
        conn.execute(
            update(Session)
            .where(S.session_id == session.session_id)
            .values(status="archived", archived_at=now)
        )
        record_event(conn, session.session_id, "archive", reason, snapshot.snapshot_id, now)
        return snapshot

    def reactivate(self, session_id: str, *, now: datetime | None = None) -> SessionRecord:
        """Bring an archived session back, messages intact; its idle timer starts again.

        The hard timeout still counts from creation: a session past it is archived
        again by the next sweep unless its ``hard_timeout`` is raised first
        (:meth:`set_timeouts`).
        """
        session_id = check_id("session_id", session_id)
        now = self._now(now)

        def work(conn: Connection) -> SessionRecord:
            current = _locked(conn, session_id)
            if current.status != "archived":
                raise InvalidStateError(f"session {session_id!r} is not archived")
            row = conn.execute(
                update(Session)
                .where(S.session_id == session_id)
                .values(status="active", archived_at=None, last_activity=now)
                .returning(*SESSION_COLUMNS)
            ).one()
            record_event(conn, session_id, "reactivate", None, None, now)
            return session_from_db(row)

        return self._runner.write(work)

    # --- purge, restore, snapshots --------------------------------------------------

    def purge(
        self,
        older_than: timedelta,
        now: datetime | None = None,
        *,
        progress: Progress | None = None,
    ) -> PurgeReport:
        """Delete sessions archived at least ``older_than`` ago; their snapshots stay.

        Like a timeout, the boundary itself counts: a session archived exactly
        ``older_than`` before ``now`` is purged.
        """
        now = self._now(now)
        cutoff = timeouts.shift(now, older_than, "older_than", -1)
        ids = self._runner.read(
            lambda conn: list(
                conn.execute(
                    select(S.session_id)
                    .where(S.status == "archived", S.archived_at <= cutoff)
                    .order_by(S.archived_at, S.session_id)
                ).scalars()
            )
        )
        before = self._free_bytes()
        purged: list[PurgeItem] = []
        row_bytes = 0
        for done, session_id in enumerate(ids, 1):
            result = self._runner.write(
                partial(self._purge_one, session_id=session_id, cutoff=cutoff, now=now)
            )
            if result is not None:
                purged.append(result[0])
                row_bytes += result[1]
            if progress is not None:
                progress(done, len(ids))
        after = self._free_bytes()
        freed = after - before if after is not None and before is not None else row_bytes
        return PurgeReport(now, cutoff, tuple(purged), max(0, freed))

    def _purge_one(
        self, conn: Connection, session_id: str, cutoff: datetime, now: datetime
    ) -> tuple[PurgeItem, int] | None:
        try:
            current = _locked(conn, session_id)
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

    def _free_bytes(self) -> int | None:
        """Bytes on SQLite's free list (what a purge gives back), else None."""
        if self._runner.dialect != "sqlite":
            return None

        def work(conn: Connection) -> int:
            pages = int(conn.exec_driver_sql("PRAGMA freelist_count").scalar() or 0)
            return pages * int(conn.exec_driver_sql("PRAGMA page_size").scalar() or 0)

        return self._runner.read(work)

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
        return self._runner.write(lambda conn: snapshots.restore(conn, snapshot_id, target, now))

    def snapshots(self, session_id: str) -> list[SnapshotInfo]:
        """The session's snapshots, newest first (also after the session was purged)."""
        session_id = check_id("session_id", session_id)
        return self._runner.read(lambda conn: snapshots.list_snapshots(conn, session_id))

    def prune_snapshots(
        self, keep: int = 1, *, session_id: str | None = None, now: datetime | None = None
    ) -> int:
        """Keep the newest ``keep`` snapshots of each session; how many were deleted."""
        if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep < 2**31:
            raise InvalidInput("keep must be an integer of at least 1")
        if session_id is not None:
            session_id = check_id("session_id", session_id)
        now = self._now(now)
        return self._runner.write(lambda conn: snapshots.prune(conn, keep, session_id, now))

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

        def work(conn: Connection) -> list[LifecycleRecord]:
            return [
                LifecycleRecord(*row[:6], json.loads(row[6]) if row[6] else {})
                for row in conn.execute(stmt)
            ]

        return self._runner.read(work)

    # --- the scheduler, and its lease ----------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the store that runs this lifecycle is closed."""
        return self._runner.closed

    def start_scheduler(
        self, every: timedelta, *, purge_after: timedelta | None = _UNSET
    ) -> Scheduler:
        """Sweep (and purge, with a retention) every ``every`` in a background thread.

        Runs until :meth:`Scheduler.stop` or ``store.close()``. Several processes may
        run one against the same database: a lease makes them take turns.
        """
        retention = self.purge_after if purge_after is _UNSET else purge_after
        scheduler = Scheduler(self, every=every, purge_after=retention)
        self._schedulers.append(scheduler)
        scheduler.start()
        return scheduler

    def stop_schedulers(self) -> None:
        while self._schedulers:
            self._schedulers.pop().stop()

    def acquire_lease(
        self, name: str, holder: str, ttl: timedelta, now: datetime | None = None
    ) -> bool:
        """Take (or renew) the named lease until ``now + ttl`` unless someone else holds it."""
        name = check_id("lease name", name)
        holder = check_id("lease holder", holder)
        now = self._now(now)
        if not isinstance(ttl, timedelta) or not timedelta(0) < ttl <= timedelta(days=366):
            raise InvalidInput("ttl must be a positive timedelta of at most a year")

        return self._runner.write(lambda conn: leases.acquire(conn, name, holder, now, ttl))

    def release_lease(self, name: str, holder: str) -> None:
        """Give the named lease up, if ``holder`` holds it."""
        name = check_id("lease name", name)
        holder = check_id("lease holder", holder)
        self._runner.write(lambda conn: leases.release(conn, name, holder))

    def _now(self, now: datetime | None) -> datetime:
        if now is None:
            return self._clock()
        return aware_utc("now", now)


def _locked(conn: Connection, session_id: str) -> SessionRecord:
    """The session, its id's lock and its row held for this transaction."""
    lock_id(conn, session_id)
    row = conn.execute(
        select(*SESSION_COLUMNS).where(S.session_id == session_id).with_for_update()
    ).first()
    if row is None:
        raise SessionNotFound(session_id)
    return session_from_db(row)
