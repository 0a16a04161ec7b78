"""Leases: which process may run a periodic job (the sweeper) until when.

A lease is one row per job name: its holder and when it expires. Taking it
is an upsert that succeeds when the row is new, is already the caller's, or
has expired; so several processes running the scheduler against one database
take turns, and a holder that died stops holding it when its lease runs out.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, or_, update

from .models import Lease
from .sessions import dialect_insert

__all__ = ["acquire", "release"]

L = Lease.__table__.c


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
