"""The session repository: create, read, list, rename, delete, and session metadata.

Sessions are listed newest activity first with keyset pagination on
``(last_activity, session_id)``: the cursor carries the last row's key and
the next page starts strictly after it, through
``ix_sessions_last_activity_session_id`` (or the model/status variants), so
page 500 costs what page 1 costs and rows added meanwhile never shift a page.

The repository never commits: its :class:`~sessionstore.transactions.Runner`
owns the transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    delete,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from .errors import InvalidInput, SessionArchived, SessionExists, SessionNotFound, shown
from .ids import lock_id, newest_snapshot, record_event, require_free
from .models import STATUSES, Session, SessionMetadata
from .prepared import Prepared, from_db_time, to_db_time
from .records import Page, SessionRecord
from .transactions import Raw, Runner
from .validation import (
    check_id,
    check_limit,
    check_metadata_pairs,
    check_optional_text,
    decode_cursor,
    encode_cursor,
)

__all__ = ["SessionRepository"]

S = Session.__table__.c
D = SessionMetadata.__table__.c

# Column order is SessionRecord's field order: rows become records by position.
SESSION_COLUMNS = (
    S.session_id,
    S.model_id,
    S.model_name,
    S.title,
    S.status,
    S.created_at,
    S.updated_at,
    S.last_activity,
    S.message_count,
    S.total_tokens,
    S.total_duration_seconds,
    S.last_seq,
    S.idle_timeout_seconds,
    S.hard_timeout_seconds,
    S.archived_at,
)
_CURSOR = "sessions"

_GET = Prepared(select(*SESSION_COLUMNS).where(S.session_id == bindparam("session_id")))
_EXISTS = select(S.status).where(S.session_id == bindparam("session_id"))
_RENAME = (
    update(Session)
    .where(S.session_id == bindparam("sid"))
    .values(title=bindparam("title"), updated_at=bindparam("now"))
    .returning(*SESSION_COLUMNS)
)
_DELETE = (
    delete(Session)
    .where(S.session_id == bindparam("session_id"))
    .returning(S.session_id, S.message_count, S.last_seq)
)
_METADATA = select(D.key, D.value).where(D.session_id == bindparam("session_id")).order_by(D.key)
_METADATA_ONE = select(D.value).where(
    D.session_id == bindparam("session_id"), D.key == bindparam("key")
)
_DELETE_METADATA = delete(SessionMetadata).where(
    D.session_id == bindparam("session_id"), D.key == bindparam("key")
)


def dialect_insert(dialect: str, table: Any) -> sqlite.Insert | postgresql.Insert:
    """``INSERT`` with ``ON CONFLICT`` support for the dialect in use."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def require_session(conn: Connection, session_id: str) -> str:
    """The session's status; :class:`SessionNotFound` when it does not exist."""
    status = conn.execute(_EXISTS, {"session_id": session_id}).scalar()
    if status is None:
        raise SessionNotFound(session_id)
    return str(status)


def require_writable(conn: Connection, session_id: str) -> None:
    """Lock the session's row for this transaction; :class:`SessionArchived` if archived.

    An archived session is read-only, its title, metadata and timeouts
    included: its snapshot is what a purge keeps and a restore brings back, so
    a change made after it would be silently undone.
    """
    status = conn.execute(_EXISTS.with_for_update(), {"session_id": session_id}).scalar()
    if status is None:
        raise SessionNotFound(session_id)
    if status == "archived":
        raise SessionArchived(session_id)


def check_status(status: object) -> str | None:
    if status is None:
        return None
    if not isinstance(status, str) or status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}, not {shown(status)}")
    return status


def _span(seconds: float | None) -> timedelta | None:
    return None if seconds is None else timedelta(seconds=seconds)


def session_from_db(row: Any) -> SessionRecord:
    """A record from a row of SESSION_COLUMNS, read through the driver or SQLAlchemy.

    Timestamps may come as stored (text, naive UTC) or already converted; the
    REAL total may come back as an int when it happens to be whole.
    """
    return SessionRecord(
        row[0], row[1], row[2], row[3], row[4], from_db_time(row[5]), from_db_time(row[6]),
        from_db_time(row[7]), row[8], row[9], float(row[10]), row[11], _span(row[12]),
        _span(row[13]), None if row[14] is None else from_db_time(row[14]),
    )  # fmt: skip


MAX_TIMEOUT = timedelta(days=36_600)  # a century: any deadline stays a valid datetime


def check_timeout(name: str, value: object) -> float | None:
    """A timeout override in seconds: a positive timedelta, or None for the default."""
    if value is None:
        return None
    if not isinstance(value, timedelta) or not timedelta(0) < value <= MAX_TIMEOUT:
        raise InvalidInput(
            f"{name} must be a positive timedelta of at most a century, or None; not {shown(value)}"
        )
    return value.total_seconds()


def delete_session(conn: Connection, session_id: str, now: datetime) -> bool:
    """Delete one session under its id's lock; whether it existed.

    Every deletion of a session goes through here (``sessions.delete``, the
    legacy manager's cleanup), so that one with snapshots leaves its last
    sequence number in the history, as a purge does: no older snapshot is
    then restored over the id as if those numbers had never been given.
    """
    lock_id(conn, session_id)
    row = conn.execute(_DELETE, {"session_id": session_id}).first()
    if row is None:
        return False
    snapshot_id = newest_snapshot(conn, session_id)
    if snapshot_id is not None:
        details = {"messages": row.message_count, "last_seq": row.last_seq}
        record_event(conn, session_id, "purge", "delete", snapshot_id, now, details)
    return True


class SessionRepository:
    """``store.sessions``: the collection of sessions."""

    def __init__(self, runner: Runner, clock: Callable[[], datetime]) -> None:
        self._runner = runner
        self._clock = clock

    def create(
        self,
        model_id: str,
        *,
        model_name: str | None = None,
        title: str | None = None,
        session_id: str | None = None,
        metadata: Mapping[str, str | None] | None = None,
        idle_timeout: timedelta | None = None,
        hard_timeout: timedelta | None = None,
    ) -> SessionRecord:
        """A new, empty, active session; :class:`SessionExists` if the id is taken.

        An id whose purged session still has snapshots is retired
        (:class:`SessionIdRetired`): a new session under it would hand out the
        old one's sequence numbers again.

        ``idle_timeout`` and ``hard_timeout`` override the store's defaults for
        this session (see :mod:`sessionstore.lifecycle`).
        """
        model_id = check_id("model_id", model_id)
        model_name = check_optional_text("model_name", model_name)
        title = check_optional_text("title", title)
        chosen = session_id is not None
        session_id = str(uuid.uuid4()) if session_id is None else check_id("session_id", session_id)
        pairs = check_metadata_pairs(metadata)
        idle = check_timeout("idle_timeout", idle_timeout)
        hard = check_timeout("hard_timeout", hard_timeout)
        now = self._clock()
        record = SessionRecord(
            session_id=session_id,
            model_id=model_id,
            model_name=model_name,
            title=title,
            status="active",
            created_at=now,
            updated_at=now,
            last_activity=now,
            message_count=0,
            total_tokens=0,
            total_duration_seconds=0.0,
            last_seq=0,
            idle_timeout=_span(idle),
            hard_timeout=_span(hard),
        )

        def work(conn: Connection) -> SessionRecord:
            if chosen:
                # A chosen id may be retired (a purged session's snapshots still
                # hold it); a fresh uuid never is.
                lock_id(conn, session_id)
                require_free(conn, session_id)
            stmt = (
                dialect_insert(conn.dialect.name, Session)
                .values(
                    session_id=session_id,
                    model_id=model_id,
                    model_name=model_name,
                    title=title,
                    status="active",
                    created_at=now,
                    updated_at=now,
                    last_activity=now,
                    idle_timeout_seconds=idle,
                    hard_timeout_seconds=hard,
                )
                .on_conflict_do_nothing(index_elements=[S.session_id])
                .returning(S.session_id)
            )
            if conn.execute(stmt).first() is None:
                raise SessionExists(session_id)
            if pairs:
                conn.execute(
                    insert(SessionMetadata),
                    [{"session_id": session_id, "key": k, "value": v} for k, v in pairs.items()],
                )
            return record

        return self._runner.write(work)

    def get(self, session_id: str) -> SessionRecord:
        session_id = check_id("session_id", session_id)

        def work(raw: Raw) -> SessionRecord:
            row = raw.first(_GET, {"session_id": session_id})
            if row is None:
                raise SessionNotFound(session_id)
            return session_from_db(row)

        return self._runner.fast_read(work)

    def exists(self, session_id: str) -> bool:
        session_id = check_id("session_id", session_id)
        return self._runner.read(
            lambda conn: conn.execute(_EXISTS, {"session_id": session_id}).first() is not None
        )

    def list(
        self,
        *,
        limit: int = 20,
        cursor: str | None = None,
        model_id: str | None = None,
        status: str | None = None,
    ) -> Page[SessionRecord]:
        """Sessions, newest activity first, one keyset page at a time."""
        limit = check_limit(limit)
        if model_id is not None:
            model_id = check_id("model_id", model_id)
        status = check_status(status)
        bound = (model_id, status)
        after = None if cursor is None else decode_cursor(cursor, _CURSOR, bound, datetime, str)
        stmt = _list_statement(model_id is not None, status is not None, after is not None)
        params: dict[str, Any] = {"limit": limit + 1, "model_id": model_id, "status": status}
        if after is not None:
            params["after_activity"] = to_db_time(after[0], self._runner.dialect)
            params["after_id"] = after[1]

        def work(raw: Raw) -> Page[SessionRecord]:
            rows = raw.all(stmt, params)
            items = tuple(session_from_db(row) for row in rows[:limit])
            next_cursor = None
            if len(rows) > limit:
                last = items[-1]
                next_cursor = encode_cursor(_CURSOR, bound, last.last_activity, last.session_id)
            return Page(items, next_cursor)

        return self._runner.fast_read(work)

    def count(self, *, model_id: str | None = None, status: str | None = None) -> int:
        stmt = select(func.count()).select_from(Session)
        if model_id is not None:
            stmt = stmt.where(S.model_id == check_id("model_id", model_id))
        status = check_status(status)
        if status is not None:
            stmt = stmt.where(S.status == status)
        return self._runner.read(lambda conn: int(conn.execute(stmt).scalar() or 0))

    def rename(self, session_id: str, title: str | None) -> SessionRecord:
        session_id = check_id("session_id", session_id)
        title = check_optional_text("title", title)
        now = self._clock()

        def work(conn: Connection) -> SessionRecord:
            require_writable(conn, session_id)
            row = conn.execute(_RENAME, {"sid": session_id, "title": title, "now": now}).first()
            if row is None:
                raise SessionNotFound(session_id)
            return session_from_db(row)

        return self._runner.write(work)

    def delete(self, session_id: str) -> None:
        """Delete the session; its messages and metadata go with it.

        Its snapshots stay (as after a purge). The deletion is then recorded in
        the session's history as a purge with reason ``"delete"``, with the last
        sequence number handed out, so that no older snapshot is restored over
        the id as if those numbers had never been given.
        """
        session_id = check_id("session_id", session_id)
        now = self._clock()

        def work(conn: Connection) -> None:
            if not delete_session(conn, session_id, now):
                raise SessionNotFound(session_id)

        self._runner.write(work)

    def set_metadata(self, session_id: str, key: str, value: str | None) -> None:
        session_id = check_id("session_id", session_id)
        # The key is checked before it becomes a dict key: ``{}`` is not hashable.
        pairs = check_metadata_pairs({check_id("metadata key", key): value})

        def work(conn: Connection) -> None:
            require_writable(conn, session_id)
            stmt = dialect_insert(conn.dialect.name, SessionMetadata).values(
                [{"session_id": session_id, "key": k, "value": v} for k, v in pairs.items()]
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[D.session_id, D.key], set_={"value": stmt.excluded.value}
                )
            )

        self._runner.write(work)

    def delete_metadata(self, session_id: str, key: str) -> bool:
        session_id = check_id("session_id", session_id)
        key = check_id("metadata key", key)

        def work(conn: Connection) -> bool:
            require_writable(conn, session_id)
            result = conn.execute(_DELETE_METADATA, {"session_id": session_id, "key": key})
            return bool(result.rowcount)

        return self._runner.write(work)

    def get_metadata(self, session_id: str, key: str, default: str | None = None) -> str | None:
        session_id = check_id("session_id", session_id)
        key = check_id("metadata key", key)

        def work(conn: Connection) -> str | None:
            row = conn.execute(_METADATA_ONE, {"session_id": session_id, "key": key}).first()
            if row is None:
                require_session(conn, session_id)
                return default
            return row[0]  # type: ignore[no-any-return]

        return self._runner.read(work)

    def metadata(self, session_id: str) -> dict[str, str | None]:
        session_id = check_id("session_id", session_id)

        def work(conn: Connection) -> dict[str, str | None]:
            rows = conn.execute(_METADATA, {"session_id": session_id}).all()
            if not rows:
                require_session(conn, session_id)
            return dict(rows)

        return self._runner.read(work)


_LIST_CACHE: dict[tuple[bool, bool, bool], Prepared] = {}


def _list_statement(by_model: bool, by_status: bool, after: bool) -> Prepared:
    """One prepared statement per filter combination."""
    key = (by_model, by_status, after)
    prepared = _LIST_CACHE.get(key)
    if prepared is None:
        stmt = select(*SESSION_COLUMNS)
        if by_model:
            stmt = stmt.where(S.model_id == bindparam("model_id"))
        if by_status:
            stmt = stmt.where(S.status == bindparam("status"))
        if after:
            stmt = stmt.where(
                tuple_(S.last_activity, S.session_id)
                < tuple_(
                    bindparam("after_activity", type_=S.last_activity.type),
                    bindparam("after_id"),
                )
            )
        stmt = stmt.order_by(S.last_activity.desc(), S.session_id.desc()).limit(bindparam("limit"))
        prepared = _LIST_CACHE[key] = Prepared(stmt)
    return prepared
