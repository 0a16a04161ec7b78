"""Store statistics: totals and a per-model breakdown.

Computed from the ``sessions`` rows alone, whose counts and totals the
triggers keep exact, so the cost grows with the number of sessions and
never with the number of messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select

from .models import Session
from .prepared import from_db_time
from .transactions import Runner

__all__ = ["ModelStats", "StoreStats", "collect_stats"]

S = Session.__table__.c


@dataclass(frozen=True, slots=True)
class ModelStats:
    model_id: str
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


def collect_stats(runner: Runner) -> StoreStats:
    per_model = (
        select(
            S.model_id,
            func.count(),
            func.coalesce(func.sum(S.message_count), 0),
            func.coalesce(func.sum(S.total_tokens), 0),
            func.coalesce(func.sum(S.total_duration_seconds), 0.0),
            func.min(S.created_at),
            func.max(S.last_activity),
        )
        .group_by(S.model_id)
        .order_by(func.count().desc(), S.model_id)
    )
    per_status = select(S.status, func.count()).group_by(S.status)

    def work(conn: Connection) -> StoreStats:
        models = tuple(
            ModelStats(
                model_id=row[0],
                sessions=int(row[1]),
                messages=int(row[2]),
                tokens=int(row[3]),
                duration_seconds=float(row[4]),
                first_session=_time(row[5]),
                last_activity=_time(row[6]),
            )
            for row in conn.execute(per_model)
        )
        statuses = {str(status): int(count) for status, count in conn.execute(per_status)}
        firsts = [m.first_session for m in models if m.first_session is not None]
        lasts = [m.last_activity for m in models if m.last_activity is not None]
        return StoreStats(
            sessions=sum(m.sessions for m in models),
            messages=sum(m.messages for m in models),
            tokens=sum(m.tokens for m in models),
            duration_seconds=sum(m.duration_seconds for m in models),
            by_status=statuses,
            by_model=models,
            first_session=min(firsts, default=None),
            last_activity=max(lasts, default=None),
        )

    return runner.read(work)
