"""Leases: which process may run a periodic job (the sweeper) until when.

A lease is one row per job name: its holder and when it expires. Taking it
is an upsert that succeeds when the row is new, is already the caller's, or
has expired; so several processes running the scheduler against one database
take turns, and a holder that died stops holding it when its lease runs out.

A scoped view's leases are its own: :func:`owner_lease` names them after the
owner, so that erasing a user (:mod:`sessionstore.erase`) finds theirs by
:func:`owner_lease_prefix`.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, or_, update

from .models import Lease
from .sessions import dialect_insert

__all__ = ["acquire", "owner_lease", "owner_lease_prefix", "release"]

L = Lease.__table__.c


def owner_lease(app: str, user_id: str | None, name: str) -> str:
    """The stored name of a scoped view's lease ``name``: distinct from every other owner's."""
    return json.dumps(["owner", app, user_id, name])


def owner_lease_prefix(app: str, user_id: str) -> str:
    """What every stored name of one user's leases begins with (and no other's)."""
    return owner_lease(app, user_id, "")[: -len('""]')]


def acquire(conn: Connection, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
    """Take (or renew) the lease until ``now + ttl`` unless someone else holds it."""
    conn.execute(
        dialect_insert(conn.dialect.name, Lease)
        .values(name=name, holder=holder, expires_at=now + ttl)
        .on_conflict_do_nothing(index_elements=[L.name])
    )
    taken = conn.execute(
        update(Lease)
        .where(L.name == name, or_(L.holder == holder, L.expires_at <= now))
        .values(holder=holder, expires_at=now + ttl)
        .returning(L.name)
    ).first()
    return taken is not None


def release(conn: Connection, name: str, holder: str) -> None:
    """Give the lease up, if ``holder`` holds it."""
    conn.execute(delete(Lease).where(L.name == name, L.holder == holder))
