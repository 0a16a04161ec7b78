"""The session repository: create, read, list, rename, delete (metadata: :mod:`.session_metadata`).

Sessions are listed newest activity first with keyset pagination on
``(last_activity, session_id)``: the cursor carries the last row's key and
the next page starts strictly after it, through
``ix_sessions_last_activity_session_id`` (or the model/status variants), so
page 500 costs what page 1 costs and rows added meanwhile never shift a page.

The repository never commits: its :class:`~sessionstore.transactions.Runner`
owns the transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    func,
    insert,
    select,
    update,
)

from . import forks
from .errors import InvalidInput, SessionExists, SessionNotFound, shown
from .ids import lock_id, require_free
from .models import Session, SessionMetadata
from .owners import (
    Owner,
    check_owner,
    narrow,
    owner_clauses,
    owner_params,
    require_owned,
    scope_params,
)
from .prepared import to_db_time
from .records import Page, SessionRecord
from .session_metadata import MetadataMethods
from .session_sql import (
    _EXISTS,
    _GET,
    MAX_TIMEOUT,
    SESSION_COLUMNS,
    S,
    _create_statement,
    _get_owned,
    _list_statement,
    _span,
    check_never_expires,
    check_status,
    check_timeout,
    delete_session,
    dialect_insert,
    lock_session,
    new_session_id,
    require_session,
    require_writable,
    session_from_db,
    sessions_from_db,
)
from .transactions import Raw, Runner
from .validation import (
    check_id,
    check_limit,
    check_metadata_pairs,
    check_optional_text,
    decode_cursor,
    encode_cursor,
)

# The session row's helpers live in session_sql; re-exported for the modules that use them.
__all__ = [
    "MAX_TIMEOUT",
    "SESSION_COLUMNS",
    "SessionRepository",
    "check_never_expires",
    "check_status",
    "check_timeout",
    "delete_session",
    "dialect_insert",
    "lock_session",
    "require_session",
    "require_writable",
    "session_from_db",
]

_CURSOR = "sessions"

_RENAME = (
    update(Session)
    .where(S.session_id == bindparam("sid"))
    .values(title=bindparam("title"), updated_at=bindparam("now"))
    .returning(*SESSION_COLUMNS)
)


class SessionRepository(MetadataMethods):
    """``store.sessions``: the collection of sessions (of one owner, in a scoped view)."""

    def __init__(
        self, runner: Runner, clock: Callable[[], datetime], *, owner: Owner | None = None
    ) -> None:
        self._runner = runner
        self._clock = clock
        self._owner = owner

    def create(
        self,
        model_id: str | None = None,
        *,
        model_name: str | None = None,
        title: str | None = None,
        session_id: str | None = None,
        metadata: Mapping[str, str | None] | None = None,
        idle_timeout: timedelta | None = None,
        hard_timeout: timedelta | None = None,
        app: str | None = None,
        user_id: str | None = None,
        never_expires: bool = False,
    ) -> SessionRecord:
        """A new, empty, active session; :class:`SessionExists` if the id is taken.

        ``app`` and ``user_id`` name its owner (a ``user_id`` needs an ``app``). In a
        scoped view (``store.for_user``) the view's owner is stamped; an ``app`` or
        ``user_id`` other than the view's is :class:`InvalidInput`. Session ids are
        one namespace for every owner: an id another owner holds is taken too.

        An id whose purged session still has snapshots is retired
        (:class:`SessionIdRetired`): a new session under it would hand out the
        old one's sequence numbers again.

        ``idle_timeout`` and ``hard_timeout`` override the store's defaults for
        this session (see :mod:`sessionstore.lifecycle`); ``never_expires=True``
        exempts it from every timeout, its own and the store's.
        """
        # None: a session without a model id (agent frameworks know none).
        model_id = None if model_id is None else check_id("model_id", model_id)
        model_name = check_optional_text("model_name", model_name)
        title = check_optional_text("title", title)
        chosen = session_id is not None
        session_id = new_session_id() if session_id is None else check_id("session_id", session_id)
        pairs = check_metadata_pairs(metadata)
        idle = check_timeout("idle_timeout", idle_timeout)
        hard = check_timeout("hard_timeout", hard_timeout)
        never = check_never_expires(never_expires)
        app, user_id = self._stamp(app, user_id)
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
            app=app,
            user_id=user_id,
            never_expires=never,
        )

        if not chosen and not pairs:
            # The common case (a fresh uuid, no metadata): one prepared INSERT on
            # the driver connection, without building and compiling a statement.
            values = {
                "session_id": session_id, "model_id": model_id, "model_name": model_name,
                "title": title, "idle": idle, "hard": hard, "app": app, "user_id": user_id,
                "never": never,
            }  # fmt: skip

            def fast(raw: Raw) -> SessionRecord:
                params = {**values, "now": to_db_time(now, raw.dialect.name)}
                if raw.first(_create_statement(raw.dialect.name), params) is None:
                    raise SessionExists(session_id)
                return record

            return self._runner.fast_write(fast)

        def work(conn: Connection) -> SessionRecord:
            if chosen:
                # A chosen id may be retired (a purged session's snapshots still
                # hold it); a fresh uuid never is.
                lock_id(conn, session_id)
                require_free(conn, session_id, self._owner)
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
                    app=app,
                    user_id=user_id,
                    never_expires=never,
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

        owner = self._owner
        if owner is not None:
            prepared = _get_owned(owner)
            params = {"session_id": session_id, **scope_params(owner)}
        else:
            prepared, params = _GET, {"session_id": session_id}

        def work(raw: Raw) -> SessionRecord:
            row = raw.first(prepared, params)
            if row is None:
                raise SessionNotFound(session_id)
            return session_from_db(row)

        return self._runner.fast_read(work)

    def fork(
        self,
        session_id: str,
        through_sequence: int,
        *,
        new_session_id: str | None = None,
        title: str | None = None,
    ) -> SessionRecord:
        """A new active session holding messages 1..``through_sequence`` (see :mod:`.forks`).

        It takes the parent's metadata, state, owner, model, title (unless given)
        and timeouts, and records ``parent_session_id`` and ``fork_sequence``.
        """
        return forks.fork(
            self._runner,
            self._clock,
            session_id,
            through_sequence,
            new_session_id=new_session_id,
            title=title,
            owner=self._owner,
        )

    def exists(self, session_id: str) -> bool:
        session_id = check_id("session_id", session_id)

        def work(conn: Connection) -> bool:
            try:
                require_owned(conn, session_id, self._owner)
            except SessionNotFound:
                return False
            return conn.execute(_EXISTS, {"session_id": session_id}).first() is not None

        return self._runner.read(work)

    def _owner_args(self, app: object, user_id: object) -> tuple[str | None, str | None]:
        """The caller's ``app``/``user_id``, checked like ids. In the admin view a
        ``user_id`` needs an ``app``; in a scoped view the app is the view's."""
        if self._owner is None:
            return check_owner(app, user_id)
        return (
            None if app is None else check_id("app", app),
            None if user_id is None else check_id("user_id", user_id),
        )

    def _stamp(self, app: object, user_id: object) -> tuple[str | None, str | None]:
        """The owner a new session gets: the caller's, within the view's scope."""
        checked_app, checked_user = self._owner_args(app, user_id)
        owner = self._owner
        if owner is None:
            return checked_app, checked_user
        if checked_app is not None and checked_app != owner.app:
            raise InvalidInput(f"this view belongs to app {owner.app!r}, not {shown(checked_app)}")
        if owner.user_id is None:
            return owner.app, checked_user
        if checked_user is not None and checked_user != owner.user_id:
            raise InvalidInput(
                f"this view belongs to user {owner.user_id!r}, not {shown(checked_user)}"
            )
        return owner.app, owner.user_id

    def _filter(self, app: object, user_id: object) -> tuple[str | None, str | None] | None:
        """The owner filter of a listing (``None``: outside the scope, nothing matches)."""
        return narrow(self._owner, *self._owner_args(app, user_id))

    def list(
        self,
        *,
        limit: int = 20,
        cursor: str | None = None,
        model_id: str | None = None,
        status: str | None = None,
        app: str | None = None,
        user_id: str | None = None,
    ) -> Page[SessionRecord]:
        """Sessions, newest activity first, one keyset page at a time.

        ``app`` / ``user_id`` keep one owner's sessions (a ``user_id`` needs an
        ``app``), paged on ``ix_sessions_app_user_id_last_activity``: one user's page
        costs the same however many sessions the store holds. A scoped view lists
        its owner's sessions only.
        """
        limit = check_limit(limit)
        if model_id is not None:
            model_id = check_id("model_id", model_id)
        status = check_status(status)
        scope = self._filter(app, user_id)
        if scope is None:
            if cursor is not None:
                decode_cursor(cursor, _CURSOR, (model_id, status, app, user_id), datetime, str)
            return Page((), None)
        app, user_id = scope
        bound: tuple[Any, ...] = (model_id, status)
        if app is not None:
            bound = (model_id, status, app, user_id)
        after = None if cursor is None else decode_cursor(cursor, _CURSOR, bound, datetime, str)
        stmt = _list_statement(
            model_id is not None,
            status is not None,
            after is not None,
            (app is not None, user_id is not None),
        )
        params: dict[str, Any] = {"limit": limit + 1, "model_id": model_id, "status": status}
        params.update(owner_params(app, user_id))
        if after is not None:
            params["after_activity"] = to_db_time(after[0], self._runner.dialect)
            params["after_id"] = after[1]

        def work(raw: Raw) -> Page[SessionRecord]:
            rows = raw.all(stmt, params)
            items = tuple(sessions_from_db(rows[:limit] if len(rows) > limit else rows))
            next_cursor = None
            if len(rows) > limit:
                last = items[-1]
                next_cursor = encode_cursor(_CURSOR, bound, last.last_activity, last.session_id)
            return Page(items, next_cursor)

        return self._runner.fast_read(work)

    def count(
        self,
        *,
        model_id: str | None = None,
        status: str | None = None,
        app: str | None = None,
        user_id: str | None = None,
    ) -> int:
        """How many sessions :meth:`list` would page through with the same filters."""
        stmt = select(func.count()).select_from(Session)
        if model_id is not None:
            stmt = stmt.where(S.model_id == check_id("model_id", model_id))
        status = check_status(status)
        if status is not None:
            stmt = stmt.where(S.status == status)
        scope = self._filter(app, user_id)
        if scope is None:
            return 0
        stmt = stmt.where(*owner_clauses(S, *scope))
        params = owner_params(*scope)
        return self._runner.read(lambda conn: int(conn.execute(stmt, params).scalar() or 0))

    def rename(self, session_id: str, title: str | None) -> SessionRecord:
        session_id = check_id("session_id", session_id)
        title = check_optional_text("title", title)
        now = self._clock()

        def work(conn: Connection) -> SessionRecord:
            require_writable(conn, session_id, self._owner)
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
            if not delete_session(conn, session_id, now, self._owner):
                raise SessionNotFound(session_id)

        self._runner.write(work)
