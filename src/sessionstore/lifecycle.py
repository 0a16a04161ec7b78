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
with :class:`SessionArchived`. Snapshots outlive the purge of their session
(:mod:`sessionstore.purges`), and ``restore`` brings one back under the rules
in that module.

Each operation on a session is one transaction that first takes the id's
lock (:mod:`sessionstore.ids`); ``sweep`` and ``purge`` take each
session's, re-checking under the lock that the session is still due, so a
session that received a message a moment ago, or that another sweeper
archived, is left alone (``sweep`` locks up to 100 sessions per
transaction: :mod:`sessionstore.sweeps`). Every action is written to ``lifecycle_events``,
which :meth:`Lifecycle.history` reads.

**Owners.** ``StoreConfig.app_timeouts`` gives an app its own default
timeouts (``{"app": (idle, hard)}``), which replace the store's for that
app's sessions (a session's own override still wins). A scoped view's
lifecycle (``store.for_user(...).lifecycle``) sees only its owner's sessions,
snapshots and history; its sweep, purge and ``expiring`` scan only them, and
its leases are its own. ``purge(app=..., user_id=...)`` narrows a purge the
same way from the admin view.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import (
    Connection,
    or_,
    update,
)

from . import leases, purges, snapshots, sweeps, timeouts
from .errors import (
    InvalidInput,
    InvalidStateError,
    SessionActive,
    SessionNotFound,
    SnapshotNotFound,
)
from .ids import lock_id, record_event
from .lifecycle_snapshots import SnapshotMethods
from .models import LifecycleEvent, Session, Snapshot
from .owners import (
    Owner,
    check_owner,
    narrow,
    owner_filter,
)
from .records import (
    Expiry,
    LifecycleRecord,
    PurgeReport,
    SessionRecord,
    SnapshotInfo,
    SweepItem,
    SweepReport,
)
from .scheduler import Scheduler
from .sessions import (
    SESSION_COLUMNS,
    check_never_expires,
    check_timeout,
    lock_session,
    require_writable,
    session_from_db,
)
from .transactions import Runner
from .validation import aware_utc, check_id

Timeouts = tuple[timedelta | None, timedelta | None]

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
N = Snapshot.__table__.c

Progress = purges.Progress
SNAPSHOT_FORMAT = snapshots.SNAPSHOT_FORMAT
_UNSET: Any = object()


class Lifecycle(SnapshotMethods):
    """``store.lifecycle``: timeouts, archive, reactivate, purge, restore, the audit trail."""

    def __init__(
        self,
        runner: Runner,
        clock: Callable[[], datetime],
        *,
        idle_timeout: timedelta | None,
        hard_timeout: timedelta | None,
        purge_after: timedelta | None,
        app_timeouts: Mapping[str, Timeouts] | None = None,
        owner: Owner | None = None,
    ) -> None:
        self._runner = runner
        self._clock = clock
        self.idle_timeout = idle_timeout
        self.hard_timeout = hard_timeout
        self.purge_after = purge_after
        #: Per-app defaults, replacing the store's for that app's sessions.
        self.app_timeouts: dict[str, Timeouts] = dict(app_timeouts or {})
        self._owner = owner
        self._schedulers: list[Scheduler] = []

    def _defaults(self, app: str | None) -> Timeouts:
        """The default (idle, hard) timeouts of an app's sessions."""
        if app is not None and app in self.app_timeouts:
            return self.app_timeouts[app]
        return self.idle_timeout, self.hard_timeout

    def _scope(self, app: object = None, user_id: object = None) -> Any:
        """The owner filter of a scan: the view's owner, narrowed by ``app``/``user_id``."""
        if self._owner is None:
            return check_owner(app, user_id)
        return narrow(
            self._owner,
            None if app is None else check_id("app", app),
            None if user_id is None else check_id("user_id", user_id),
        )

    # --- timeouts -------------------------------------------------------------------

    def due(self, session: SessionRecord, horizon: datetime) -> Expiry | None:
        """The first of the session's deadlines at or before ``horizon``, if any."""
        if not isinstance(session, SessionRecord):
            raise InvalidInput(f"session must be a SessionRecord, not {type(session).__name__}")
        horizon = aware_utc("horizon", horizon)
        return timeouts.first_due(session, horizon, *self._defaults(session.app))

    def _candidates(self, conn: Connection, horizon: datetime) -> list[Expiry]:
        """The due sessions in scope: each app with timeouts of its own on its own scan."""
        scope = self._scope()
        if scope is None:
            return []
        where = owner_filter(S, *scope)
        found: list[Expiry] = []
        apps = [app for app in self.app_timeouts if scope[0] in (None, app)]
        if scope[0] is None or scope[0] not in self.app_timeouts:
            rest = [or_(S.app.is_(None), S.app.not_in(apps))] if apps else []
            found += timeouts.candidates(
                conn, horizon, self.idle_timeout, self.hard_timeout, [*where, *rest]
            )
        for app in apps:
            idle, hard = self.app_timeouts[app]
            found += timeouts.candidates(conn, horizon, idle, hard, [*where, S.app == app])
        return sorted(found, key=lambda e: e.deadline)

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
        never_expires: bool = _UNSET,
    ) -> SessionRecord:
        """Override (or, with ``None``, go back to the defaults for) a session's timeouts.

        ``never_expires=True`` exempts the session from every timeout until it is
        set back to ``False``; its timeouts are kept meanwhile. Leaving an
        argument out leaves that setting as it is.
        """
        session_id = check_id("session_id", session_id)
        values: dict[str, Any] = {}
        if idle_timeout is not _UNSET:
            values["idle_timeout_seconds"] = check_timeout("idle_timeout", idle_timeout)
        if hard_timeout is not _UNSET:
            values["hard_timeout_seconds"] = check_timeout("hard_timeout", hard_timeout)
        if never_expires is not _UNSET:
            values["never_expires"] = check_never_expires(never_expires)
        stmt = update(Session).where(S.session_id == session_id).returning(*SESSION_COLUMNS)

        def work(conn: Connection) -> SessionRecord:
            if not values:
                return lock_session(conn, session_id, self._owner)
            require_writable(conn, session_id, self._owner)
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
        """Archive every active session past its idle or hard timeout.

        Each session is re-checked under its lock; sessions are archived in bounded
        batches, one transaction each (:mod:`sessionstore.sweeps`), a scoped view's
        one session per transaction.
        """
        _check_progress(progress)
        now = self._now(now)
        due = self._runner.read(lambda conn: self._candidates(conn, now))
        if dry_run:
            items = tuple(SweepItem(e.session.session_id, e.reason, e.deadline, None) for e in due)
            return SweepReport(now, True, items)
        archived: list[SweepItem] = []
        if self._owner is not None:
            # A scoped view's sweep: one session per transaction, each under its owner check.
            for done, expiry in enumerate(due, 1):
                item = self._runner.write(partial(self._archive_if_due, expiry=expiry, now=now))
                if item is not None:
                    archived.append(item)
                if progress is not None:
                    progress(done, len(due))
            return SweepReport(now, False, tuple(archived), skipped=len(due) - len(archived))
        # Many sessions per transaction (sessionstore.sweeps): the same snapshots,
        # statuses and audit lines with a statement per kind of row, not per session.
        with sweeps.compressors() as pool:
            for indexes in sweeps.batches([e.session.message_count for e in due]):
                batch = [due[i] for i in indexes]
                work = partial(self._archive_batch, batch=batch, now=now, pool=pool)
                archived += self._runner.write(work)
                if progress is not None:
                    for done in indexes:
                        progress(done + 1, len(due))
        return SweepReport(now, False, tuple(archived), skipped=len(due) - len(archived))

    def _archive_batch(
        self, conn: Connection, batch: Sequence[Expiry], now: datetime, pool: Executor | None
    ) -> list[SweepItem]:
        """Archive those of ``batch`` still due under their locks (taken in id order)."""
        ids = [expiry.session.session_id for expiry in batch]
        for session_id in sorted(ids):
            lock_id(conn, session_id)
        current = sweeps.locked_sessions(conn, ids)
        still_due = []
        for session_id in ids:
            session = current.get(session_id)
            still = None if session is None else self.due(session, now)
            if session is not None and still is not None:
                still_due.append((session, still))
        infos = sweeps.archive_many(
            conn, [(session, f"{still.reason} timeout") for session, still in still_due], now, pool
        )
        return [
            SweepItem(session.session_id, still.reason, still.deadline, info.snapshot_id)
            for (session, still), info in zip(still_due, infos, strict=True)
        ]

    def _archive_if_due(self, conn: Connection, expiry: Expiry, now: datetime) -> SweepItem | None:
        session_id = expiry.session.session_id
        try:
            current = lock_session(conn, session_id, self._owner)
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
            current = lock_session(conn, session_id, self._owner)
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
            current = lock_session(conn, session_id, self._owner)
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
        app: str | None = None,
        user_id: str | None = None,
    ) -> PurgeReport:
        """Delete sessions archived at least ``older_than`` ago; their snapshots stay.

        Like a timeout, the boundary itself counts: a session archived exactly
        ``older_than`` before ``now`` is purged. ``app`` / ``user_id`` purge one
        owner's sessions only (a user_id needs an app).
        """
        _check_progress(progress)
        now = self._now(now)
        cutoff = timeouts.shift(now, older_than, "older_than", -1)
        scope = self._scope(app, user_id)
        if scope is None:
            return PurgeReport(now, cutoff, (), 0)
        where = owner_filter(S, *scope)
        return purges.purge_archived(self._runner, self._owner, now, cutoff, where, progress)

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
        """Take (or renew) the named lease until ``now + ttl`` unless someone else holds it.

        A scoped view's leases are its own: the same name is another lease there.
        """
        name = self._lease(check_id("lease name", name))
        holder = check_id("lease holder", holder)
        now = self._now(now)
        if not isinstance(ttl, timedelta) or not timedelta(0) < ttl <= timedelta(days=366):
            raise InvalidInput("ttl must be a positive timedelta of at most a year")

        return self._runner.write(lambda conn: leases.acquire(conn, name, holder, now, ttl))

    def release_lease(self, name: str, holder: str) -> None:
        """Give the named lease up, if ``holder`` holds it."""
        name = self._lease(check_id("lease name", name))
        holder = check_id("lease holder", holder)
        self._runner.write(lambda conn: leases.release(conn, name, holder))

    def _lease(self, name: str) -> str:
        if self._owner is None:
            return name
        return leases.owner_lease(self._owner.app, self._owner.user_id, name)


def _check_progress(progress: object) -> None:
    """A progress callback is a function (checked first: it is called after commits)."""
    if progress is not None and not callable(progress):
        kind = type(progress).__name__
        raise InvalidInput(f"progress must be a function (done, total) or None, not {kind}")
