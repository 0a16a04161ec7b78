"""When a session times out: its idle and hard deadlines, and finding the sessions due.

A session times out when it has had no activity for its **idle timeout**, or
when its **hard timeout** has passed since it was created, whichever comes
first; at the deadline itself it has timed out. Each timeout is the session's
own override when it has one, else the store's default (``None`` turns a
default off). Only active sessions time out, and never one marked
``never_expires``: that flag overrides both timeouts, the session's own and
the store's, and is kept apart from them (``None`` timeouts still mean "the
store's defaults" once the flag is cleared). The scan for due sessions leaves
such sessions out in its SQL, so a store where most sessions never expire
does not read them at every sweep.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Connection, and_, false, or_, select

from .errors import InvalidInput, shown
from .models import Session
from .records import Expiry, Reason, SessionRecord
from .sessions import SESSION_COLUMNS, session_from_db
from .validation import aware_utc

__all__ = ["candidates", "first_due", "shift"]

S = Session.__table__.c


def first_due(
    session: SessionRecord,
    horizon: datetime,
    idle_default: timedelta | None,
    hard_default: timedelta | None,
) -> Expiry | None:
    """The first of the session's deadlines at or before ``horizon``, if any."""
    if session.status != "active" or session.never_expires:
        return None
    deadlines: list[tuple[datetime, Reason]] = []
    idle = session.idle_timeout or idle_default
    hard = session.hard_timeout or hard_default
    # A deadline past the last datetime there is never comes.
    with suppress(OverflowError):
        if idle is not None:
            deadlines.append((session.last_activity + idle, "idle"))
    with suppress(OverflowError):
        if hard is not None:
            deadlines.append((session.created_at + hard, "hard"))
    due = [d for d in deadlines if d[0] <= horizon]
    if not due:
        return None
    deadline, reason = min(due)
    return Expiry(session, reason, deadline)


def candidates(
    conn: Connection,
    horizon: datetime,
    idle_default: timedelta | None,
    hard_default: timedelta | None,
    where: Sequence[ColumnElement[bool]] = (),
) -> list[Expiry]:
    """Every active session due by ``horizon`` (of those ``where`` keeps), earliest first."""
    # Sessions on the store's defaults are found through the indexes; the few
    # with their own timeouts are all read and judged one by one.
    wide: list[ColumnElement[bool]] = [
        S.idle_timeout_seconds.is_not(None),
        S.hard_timeout_seconds.is_not(None),
    ]
    if idle_default is not None:
        cut = horizon - idle_default
        wide.append(and_(S.idle_timeout_seconds.is_(None), S.last_activity <= cut))
    if hard_default is not None:
        cut = horizon - hard_default
        wide.append(and_(S.hard_timeout_seconds.is_(None), S.created_at <= cut))
    rows = conn.execute(
        select(*SESSION_COLUMNS)
        .where(S.status == "active", S.never_expires == false(), or_(*wide), *where)
        .order_by(S.last_activity, S.session_id)
    )
    found = (first_due(session_from_db(row), horizon, idle_default, hard_default) for row in rows)
    return sorted((e for e in found if e is not None), key=lambda e: e.deadline)


def shift(moment: datetime, span: object, name: str, sign: int) -> datetime:
    """``moment`` moved by a non-negative ``span``, within the datetimes a database keeps."""
    if not isinstance(span, timedelta) or span < timedelta(0):
        raise InvalidInput(f"{name} must be a non-negative timedelta, not {shown(span)}")
    try:
        return aware_utc(name, moment + sign * span)
    except OverflowError:
        raise InvalidInput(f"{name} reaches beyond the years a database can store") from None
