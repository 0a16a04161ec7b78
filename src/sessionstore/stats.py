"""Store statistics: totals and a per-model breakdown.

Computed from the ``sessions`` rows alone, whose counts and totals the
triggers keep exact, so the cost grows with the number of sessions and
never with the number of messages. Filtered by owner (``app``,
``user_id``), they count that owner's sessions only, through the owner
index. Sums are exact: where SQLite's 64-bit ``SUM`` would overflow
(totals adopted from a legacy file can be anything), the rows are summed
in Python instead, and a duration total that no float can hold is
reported as the largest float, never ``inf``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Float, Numeric, cast, func, select, type_coerce
from sqlalchemy.exc import OperationalError

from .models import Session
from .owners import owner_clauses, owner_params
from .prepared import from_db_time
from .transactions import Runner

__all__ = ["ModelStats", "StoreStats", "collect_stats"]

S = Session.__table__.c


@dataclass(frozen=True, slots=True)
class ModelStats:
    #: ``None`` for the sessions created without a model id.
    model_id: str | None
    sessions: int
    messages: int
    tokens: int
    duration_seconds: float
    first_session: datetime | None
    last_activity: datetime | None


@dataclass(frozen=True, slots=True)
class StoreStats:
    sessions: int
    messages: int
    tokens: int
    duration_seconds: float
    #: Sessions by status (``active``, ``archived``).
    by_status: dict[str, int]
    #: One entry per model, most sessions first.
    by_model: tuple[ModelStats, ...]
    first_session: datetime | None
    last_activity: datetime | None


def _time(value: object) -> datetime | None:
    return None if value is None else from_db_time(value)


def _finite(total: float) -> float:
    return min(total, sys.float_info.max)


def _number(value: object) -> Any:
    """A stored total as SQLite's SUM reads it: text that is not a number counts as 0."""
    if isinstance(value, int | float):
        return value
    try:
        return float(str(value))
    except ValueError:
        return 0


def _sum_in_python(conn: Connection, scope: Scope) -> list[tuple[Any, ...]]:
    """The per-model rows of ``collect_stats``, with exact integer sums of any size."""
    groups: dict[str | None, list[Any]] = {}
    rows = conn.execute(
        select(
            S.model_id, S.message_count, S.total_tokens, S.total_duration_seconds,
            S.created_at, S.last_activity,
        ).where(*owner_clauses(S, *scope)),
        owner_params(*scope),
    )  # fmt: skip
    for model_id, messages, tokens, duration, created, active in rows:
        group = groups.setdefault(model_id, [model_id, 0, 0, 0, 0.0, created, active])
        group[1] += 1
        group[2] += int(_number(messages))
        group[3] += int(_number(tokens))
        group[4] += float(_number(duration))
        group[5] = min(group[5], created)
        group[6] = max(group[6], active)
    return sorted(
        (tuple(g) for g in groups.values()), key=lambda g: (-g[1], g[0] is None, g[0] or "")
    )


Scope = tuple[str | None, str | None]


def collect_stats(runner: Runner, scope: Scope = (None, None)) -> StoreStats:
    """Totals of the sessions of ``scope`` (``(app, user_id)``; ``(None, None)``: all)."""
    where = owner_clauses(S, *scope)
    params = owner_params(*scope)
    per_model = (
        select(
            S.model_id,
            func.count(),
            func.coalesce(func.sum(S.message_count), 0),
            func.coalesce(func.sum(S.total_tokens), 0),
            # Summed as NUMERIC: PostgreSQL's float8 sum raises on overflow.
            type_coerce(func.coalesce(func.sum(cast(S.total_duration_seconds, Numeric)), 0), Float),
            func.min(S.created_at),
            func.max(S.last_activity),
        )
        .where(*where)
        .group_by(S.model_id)
        .order_by(func.count().desc(), S.model_id.nulls_last())
    )
    per_status = select(S.status, func.count()).where(*where).group_by(S.status)

    def work(conn: Connection) -> StoreStats:
        try:
            rows: Iterable[Any] = conn.execute(per_model, params).all()
        except OperationalError as exc:
            if "integer overflow" not in str(exc.orig):
                raise
            rows = _sum_in_python(conn, scope)
        models = tuple(
            ModelStats(
                model_id=row[0],
                sessions=int(row[1]),
                messages=int(row[2]),
                tokens=int(row[3]),
                duration_seconds=_finite(float(row[4])),
                first_session=_time(row[5]),
                last_activity=_time(row[6]),
            )
            for row in rows
        )
        statuses = {str(status): int(count) for status, count in conn.execute(per_status, params)}
        firsts = [m.first_session for m in models if m.first_session is not None]
        lasts = [m.last_activity for m in models if m.last_activity is not None]
        return StoreStats(
            sessions=sum(m.sessions for m in models),
            messages=sum(m.messages for m in models),
            tokens=sum(m.tokens for m in models),
            duration_seconds=_finite(sum(m.duration_seconds for m in models)),
            by_status=statuses,
            by_model=models,
            first_session=min(firsts, default=None),
            last_activity=max(lasts, default=None),
        )

    return runner.read(work)
