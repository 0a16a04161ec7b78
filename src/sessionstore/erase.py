"""Erasing a user: everything one owner left in the store, removed in one transaction.

``store.erase_user(app, user_id)`` (``sessionstore erase-user APP USER``)
deletes, in one transaction:

* the user's sessions, and with them (foreign keys, ``ON DELETE CASCADE``)
  their messages, metadata and session state, and their search index entries
  (the FTS5 rows on SQLite, removed by the delete triggers; the ``tsvector``
  columns of the deleted rows on PostgreSQL);
* the user's state (``user_state``);
* the snapshots taken of the user's sessions, which outlive a purge, and the
  lifecycle events (the audit trail) of those sessions; both carry the owner
  since revision 0006, so they are found after the session itself is gone;
* the leases the user's view took (``for_user(app, user_id).lifecycle``),
  whose names carry the owner.

Nothing of another owner is touched, nor the app's shared state. The report
counts the rows removed from each table. A fork of one of the user's sessions,
or a restore of one of their snapshots, that commits while the erasure runs is
erased too (its session is the user's, and the erasure waits for it); sessions
the user creates anew while it runs, after it has last listed theirs, are not
part of it.

What the store cannot reach: backups taken before the erasure (``store.backup``
files, ``pg_dump`` archives), the ``.replaced-*`` copies ``restore_backup``
keeps, and exports written to files still hold the user's data. On SQLite
the freed pages keep their old bytes until reused or until ``VACUUM``, and
the WAL file until its next checkpoint; on PostgreSQL the dead row versions
until ``VACUUM``. Run ``VACUUM`` after an erasure when the bytes themselves
must go.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, select, text

from .ids import lock_id
from .leases import owner_lease_prefix
from .models import (
    Lease,
    LifecycleEvent,
    Message,
    Session,
    SessionMetadata,
    SessionState,
    Snapshot,
    UserState,
)
from .state import lock_user_state
from .transactions import Runner
from .validation import check_id

__all__ = ["ErasureReport", "erase_user"]

S = Session.__table__.c
M = Message.__table__.c
D = SessionMetadata.__table__.c
V = SessionState.__table__.c
U = UserState.__table__.c
N = Snapshot.__table__.c
E = LifecycleEvent.__table__.c
L = Lease.__table__.c


@dataclass(frozen=True, slots=True)
class ErasureReport:
    """What ``erase_user`` removed: rows per table."""

    app: str
    user_id: str
    sessions: int
    messages: int
    metadata: int
    session_state: int
    user_state: int
    snapshots: int
    lifecycle_events: int
    #: Search index entries: FTS5 rows of the messages and titles (SQLite), or the
    #: indexed rows whose ``tsvector`` went with them (PostgreSQL).
    search_index: int
    #: Leases taken through the user's view (their names carry the owner).
    leases: int

    @property
    def tables(self) -> dict[str, int]:
        """The counts by table, in the order the report lists them."""
        counts = asdict(self)
        del counts["app"], counts["user_id"]
        return counts

    @property
    def total(self) -> int:
        return sum(self.tables.values())


_CHUNK = 500  # ids per statement: well under any backend's limit on bound parameters


def _chunks(values: Sequence[Any]) -> list[list[Any]]:
    return [list(values[i : i + _CHUNK]) for i in range(0, len(values), _CHUNK)]


def _count(conn: Connection, column: Any, ids: Sequence[Any]) -> int:
    stmt = select(func.count()).select_from(column.table).where(column.in_(ids))
    return int(conn.execute(stmt).scalar() or 0)


def _fts_rows(conn: Connection, table: str, keys: Sequence[int]) -> int:
    """The FTS5 index rows (one ``_docsize`` row per document) of ``keys``."""
    if not keys:
        return 0
    # ``table`` is one of this module's two names, never a caller's value.
    sql = text(
        f"SELECT count(*) FROM {table}_docsize WHERE id IN (SELECT value FROM json_each(:k))"
    )
    return int(conn.execute(sql, {"k": json.dumps([int(k) for k in keys])}).scalar() or 0)


_SEARCH_KEYS = text(
    "SELECT search_key FROM sessions WHERE search_key IS NOT NULL"
    " AND session_id IN (SELECT value FROM json_each(:ids))"
)


_OWNED = (
    select(S.session_id)
    .where(S.app == bindparam("app"), S.user_id == bindparam("user_id"))
    .order_by(S.session_id)
)


def _erase(conn: Connection, app: str, user_id: str) -> ErasureReport:
    sqlite = conn.dialect.name == "sqlite"
    counts = dict.fromkeys(("messages", "metadata", "session_state", "search_index"), 0)
    sessions = events = 0
    # The snapshots first: a restore under way holds the one it read (FOR SHARE), so
    # this waits for it and the listing below finds what it restored; a restore that
    # starts later finds no snapshot.
    snapshots = conn.execute(delete(Snapshot).where(N.app == app, N.user_id == user_id)).rowcount
    # Until none is left: on PostgreSQL a fork of one of the user's sessions that
    # was under way when they were listed holds its parent's row, so the delete
    # below waits for it to commit, and the next listing (a new snapshot under
    # read committed) finds the copy. (SQLite: writers take turns; one pass.)
    while ids := list(conn.execute(_OWNED, {"app": app, "user_id": user_id}).scalars()):
        before = sessions
        for session_id in ids:
            # The id's lock, as for a delete: no archive, restore or purge of it races this.
            lock_id(conn, session_id)
        for chunk in _chunks(ids):
            counts["messages"] += _count(conn, M.session_id, chunk)
            counts["metadata"] += _count(conn, D.session_id, chunk)
            counts["session_state"] += _count(conn, V.session_id, chunk)
            if sqlite:
                message_ids = conn.execute(select(M.message_id).where(M.session_id.in_(chunk)))
                keys = conn.execute(_SEARCH_KEYS, {"ids": json.dumps(chunk)})
                counts["search_index"] += _fts_rows(
                    conn, "messages_fts", list(message_ids.scalars())
                )
                counts["search_index"] += _fts_rows(
                    conn, "session_titles_fts", list(keys.scalars())
                )
            # Snapshots and events of the user's sessions from before owners existed.
            snapshots += conn.execute(
                delete(Snapshot).where(N.session_id.in_(chunk), N.app.is_(None))
            ).rowcount
            events += conn.execute(
                delete(LifecycleEvent).where(E.session_id.in_(chunk), E.app.is_(None))
            ).rowcount
            sessions += conn.execute(delete(Session).where(S.session_id.in_(chunk))).rowcount
        if sessions == before:  # nothing listed could be deleted: never loop on it
            break
    if not sqlite:
        # The index entries are the tsvector columns of the rows deleted.
        counts["search_index"] = counts["messages"] + sessions
    # After a write of the user's state under way has committed (PostgreSQL).
    lock_user_state(conn, app, user_id)
    user_state = conn.execute(delete(UserState).where(U.app == app, U.user_id == user_id)).rowcount
    # Those taken since (an archive that the delete of its session waited for).
    snapshots += conn.execute(delete(Snapshot).where(N.app == app, N.user_id == user_id)).rowcount
    events += conn.execute(
        delete(LifecycleEvent).where(E.app == app, E.user_id == user_id)
    ).rowcount
    # Compared as text, not with LIKE: SQLite's LIKE ignores case, and ids do not.
    prefix = owner_lease_prefix(app, user_id)
    leases = conn.execute(
        delete(Lease).where(func.substr(L.name, 1, len(prefix)) == prefix)
    ).rowcount
    return ErasureReport(
        app=app,
        user_id=user_id,
        sessions=sessions,
        user_state=user_state,
        snapshots=snapshots,
        lifecycle_events=events,
        leases=leases,
        **counts,
    )


def erase_user(runner: Runner, app: str, user_id: str) -> ErasureReport:
    """Delete everything of ``(app, user_id)``, in one transaction; see the module doc."""
    app = check_id("app", app)
    user_id = check_id("user_id", user_id)
    return runner.write(lambda conn: _erase(conn, app, user_id))
