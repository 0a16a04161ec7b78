"""Agent state: JSON values by key at three scopes, merged in the database.

Agent frameworks keep a state document beside the conversation. Google ADK
keeps it at three scopes, and so does the store:

* **session** state (``session_state``): the session's own. It goes where the
  session goes: export, snapshot, restore, fork, delete, purge;
* **user** state (``user_state``), keyed by the owner ``(app, user_id)``:
  shared by every session of that user;
* **app** state (``app_state``), keyed by ``app``: shared by every session of
  the app.

**Storage.** One row per key; the value is JSON text (compact,
``ensure_ascii=False``, so NUL is stored as the escape ``\\u0000`` on both
backends). An update is a *delta*: the keys it sets and the keys it removes.
It is written as one ``INSERT … ON CONFLICT (…) DO UPDATE SET value =
excluded.value`` (an ``executemany``) per scope plus one ``DELETE`` for the
removed keys, all in one transaction. The database merges: the document is
never read to be written back, so two writers of different keys never lose
each other's keys; of two writers of one key, the later commit wins.

**Rules** for keys and values, and the :class:`StateDelta` callers pass, are
in :mod:`sessionstore.statedelta`: everything is checked before a
transaction begins, so a refused change writes nothing.

**Sessions.** Session state follows the session's rules: an archived session
is read-only (:class:`~sessionstore.errors.SessionArchived`), and in a scoped
view (``store.for_user(app, user_id)``) another owner's session is
:class:`~sessionstore.errors.SessionNotFound`. A delta that carries user or
app keys for a session resolves them through the session's owner; a session
without one cannot take them. ``messages.append(..., state_delta=...)``
applies a :class:`StateDelta` in the transaction that stores the message:
both commit, or neither does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, text

from .errors import InvalidInput, SessionArchived, SessionNotFound
from .models import AppState, Session, SessionState, UserState
from .owners import Owner, owner_clauses, owner_params
from .sessions import dialect_insert
from .statedelta import (
    MAX_DELTA_KEYS,
    MAX_DEPTH,
    RESERVED_PREFIXES,
    CheckedDelta,
    ScopeDelta,
    StateDelta,
    check_scope,
    check_state_delta,
    decode_value,
    encode_value,
    take_list,
)
from .transactions import Runner
from .validation import MAX_PAGE, check_id, shown

__all__ = [
    "MAX_DELTA_KEYS",
    "MAX_DEPTH",
    "RESERVED_PREFIXES",
    "CheckedDelta",
    "StateDelta",
    "StateRepository",
    "apply_state_delta",
    "check_state_delta",
    "decode_value",
    "encode_value",
    "lock_user_state",
    "read_session_state",
]

SS = SessionState.__table__.c
US = UserState.__table__.c
AS = AppState.__table__.c
S = Session.__table__.c

# PostgreSQL: writers of one user's (one app's) state take turns on a
# transaction-scoped advisory lock, so two deltas that touch the same keys in
# different orders never deadlock. The session scope needs none: its writers
# already hold the session's row lock. (SQLite: BEGIN IMMEDIATE serializes all.)
_USER_LOCK_SPACE = 0x5E55_0002
_APP_LOCK_SPACE = 0x5E55_0003
_ADVISORY = text("SELECT pg_advisory_xact_lock(:space, :key)")


# --- writing ---------------------------------------------------------------------------------


def _advisory(conn: Connection, space: int, *parts: str) -> None:
    if conn.dialect.name != "postgresql":
        return
    joined = "\x00".join(parts).encode("utf-8")  # NUL never occurs in an id
    key = int.from_bytes(hashlib.blake2b(joined, digest_size=4).digest(), "big", signed=True)
    conn.execute(_ADVISORY, {"space": space, "key": key})


_STATEMENTS: dict[tuple[str, str], tuple[Any, Any]] = {}


def _statements(dialect: str, model: Any, keys: tuple[str, ...]) -> tuple[Any, Any]:
    """The scope's upsert and delete, built once per dialect (building one costs more
    than running it)."""
    cached = _STATEMENTS.get((dialect, model.__tablename__))
    if cached is None:
        columns = model.__table__.c
        upsert = dialect_insert(dialect, model)
        upsert = upsert.on_conflict_do_update(
            index_elements=[*keys, "key"], set_={"value": upsert.excluded.value}
        )
        remove = delete(model).where(
            *(columns[name] == bindparam(name) for name in keys),
            columns.key.in_(bindparam("keys", expanding=True)),
        )
        cached = _STATEMENTS[(dialect, model.__tablename__)] = (upsert, remove)
    return cached


def _upsert(conn: Connection, model: Any, keys: dict[str, str], rows: ScopeDelta) -> None:
    """One ``INSERT … ON CONFLICT DO UPDATE`` for the set keys, one ``DELETE`` for the rest."""
    upsert, remove = _statements(conn.dialect.name, model, tuple(keys))
    if rows.values:
        # Sorted: two writers that meet on several keys lock them in one order.
        conn.execute(
            upsert, [{**keys, "key": k, "value": v} for k, v in sorted(rows.values.items())]
        )
    if rows.remove:
        conn.execute(remove, {**keys, "keys": sorted(rows.remove)})


def write_session_scope(conn: Connection, session_id: str, rows: ScopeDelta) -> None:
    if rows:
        _upsert(conn, SessionState, {"session_id": session_id}, rows)


def lock_user_state(conn: Connection, app: str, user_id: str) -> None:
    """Take the user's state lock until the transaction ends (PostgreSQL; SQLite: a no-op).

    Writers of the user's state hold it; erasing the user takes it too, so that it
    waits for a write under way instead of missing its rows.
    """
    _advisory(conn, _USER_LOCK_SPACE, app, user_id)


def write_user_scope(conn: Connection, app: str, user_id: str, rows: ScopeDelta) -> None:
    if rows:
        lock_user_state(conn, app, user_id)
        _upsert(conn, UserState, {"app": app, "user_id": user_id}, rows)


def write_app_scope(conn: Connection, app: str, rows: ScopeDelta) -> None:
    if rows:
        _advisory(conn, _APP_LOCK_SPACE, app)
        _upsert(conn, AppState, {"app": app}, rows)


_SESSION_OWNER = select(S.app, S.user_id).where(S.session_id == bindparam("sid"))


def apply_state_delta(conn: Connection, session_id: str, delta: CheckedDelta) -> None:
    """Write a checked delta for the session, on the caller's transaction.

    The caller has locked the session's row and made sure it is active and in
    its scope (``messages.append`` does, before it stores the message). User
    and app keys go to the session's owner; a session without one refuses them,
    before anything is written.
    """
    app: str | None = None
    user_id: str | None = None
    if delta.user or delta.app:
        row = conn.execute(_SESSION_OWNER, {"sid": session_id}).first()
        if row is not None:
            app, user_id = row.app, row.user_id
    # Refused before anything is written: a caller's transaction that catches the
    # error and commits must not keep half of the delta.
    if delta.user and (app is None or user_id is None):
        raise InvalidInput(
            f"session {shown(session_id)} has no user (user_id), so it has no user "
            "state to change; create it with app= and user_id="
        )
    if delta.app and app is None:
        raise InvalidInput(
            f"session {shown(session_id)} has no app, so it has no app state to "
            "change; create it with app="
        )
    write_session_scope(conn, session_id, delta.session)
    if delta.user and app is not None and user_id is not None:
        write_user_scope(conn, app, user_id, delta.user)
    if delta.app and app is not None:
        write_app_scope(conn, app, delta.app)


def insert_session_state(conn: Connection, session_id: str, values: Mapping[str, str]) -> None:
    """Insert a new session's state rows (import, restore): keys to JSON text."""
    if values:
        conn.execute(
            insert(SessionState),
            [{"session_id": session_id, "key": k, "value": v} for k, v in values.items()],
        )


# --- reading ---------------------------------------------------------------------------------


_SESSION_ROWS = select(SS.key, SS.value).where(SS.session_id == bindparam("sid")).order_by(SS.key)
_USER_ROWS = (
    select(US.key, US.value)
    .where(US.app == bindparam("app"), US.user_id == bindparam("user_id"))
    .order_by(US.key)
)
_APP_ROWS = select(AS.key, AS.value).where(AS.app == bindparam("app")).order_by(AS.key)


_MANY_ROWS = (
    select(SS.session_id, SS.key, SS.value)
    .where(SS.session_id.in_(bindparam("ids", expanding=True)))
    .order_by(SS.session_id, SS.key)
)
#: Ids bound in one statement: well under every backend's limit on parameters.
_IDS_PER_STATEMENT = 500


def _check_ids(value: object) -> list[str]:
    """Session ids: at most MAX_PAGE, each checked, repeats dropped."""
    taken = take_list("session_ids", value, MAX_PAGE, "session ids")
    return list(dict.fromkeys(check_id("session_id", sid) for sid in taken))


def _decoded(rows: Iterable[Any]) -> dict[str, Any]:
    return {key: decode_value(key, value) for key, value in rows}


def read_session_state(conn: Connection, session_id: str) -> dict[str, Any]:
    """The session's state, keys in order, as read on ``conn`` (export, snapshot)."""
    return _decoded(conn.execute(_SESSION_ROWS, {"sid": session_id}))


def _read_user(conn: Connection, app: str, user_id: str) -> dict[str, Any]:
    return _decoded(conn.execute(_USER_ROWS, {"app": app, "user_id": user_id}))


def _read_app(conn: Connection, app: str) -> dict[str, Any]:
    return _decoded(conn.execute(_APP_ROWS, {"app": app}))


# --- the repository --------------------------------------------------------------------------


class StateRepository:
    """``store.state``: session, user and app state (see the module's documentation)."""

    def __init__(
        self, runner: Runner, *, owner: Owner | None = None, max_value_bytes: int | None = None
    ) -> None:
        self._runner = runner
        self._owner = owner
        self._max_bytes = max_value_bytes
        columns = [S.status, S.app, S.user_id]
        clauses = owner_clauses(S, owner.app, owner.user_id) if owner is not None else []
        self._session = select(*columns).where(S.session_id == bindparam("sid"), *clauses)
        self._locked = self._session.with_for_update()
        self._many = select(S.session_id).where(
            S.session_id.in_(bindparam("ids", expanding=True)), *clauses
        )
        self._params = owner_params(owner.app, owner.user_id) if owner is not None else {}

    # --- the session's own ---------------------------------------------------------------

    def get(self, session_id: str) -> dict[str, Any]:
        """The session's state: a new dict of its keys and values (``{}`` when it has none)."""
        session_id = check_id("session_id", session_id)

        def work(conn: Connection) -> dict[str, Any]:
            self._find(conn, session_id, lock=False)
            return read_session_state(conn, session_id)

        return self._runner.read(work)

    def get_many(self, session_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The state of several sessions (a listing's page), in one read transaction.

        ``{session_id: state}`` in the order given, for at most 1,000 ids. An id
        with no session (in a scoped view: no session of this owner) is left out.
        """
        ids = _check_ids(session_ids)

        def work(conn: Connection) -> dict[str, dict[str, Any]]:
            found: set[str] = set()
            states: dict[str, dict[str, Any]] = {}
            for start in range(0, len(ids), _IDS_PER_STATEMENT):
                chunk = ids[start : start + _IDS_PER_STATEMENT]
                found.update(conn.execute(self._many, {"ids": chunk, **self._params}).scalars())
                for sid, key, value in conn.execute(_MANY_ROWS, {"ids": chunk}):
                    states.setdefault(sid, {})[key] = decode_value(key, value)
            return {sid: states.get(sid, {}) for sid in ids if sid in found}

        return self._runner.read(work)

    def update(
        self, session_id: str, delta: Mapping[str, Any], *, remove: Iterable[str] = ()
    ) -> None:
        """Set the keys of ``delta`` and remove the keys of ``remove``, atomically.

        Keys not named stay as they are. An archived session is read-only
        (:class:`SessionArchived`).
        """
        session_id = check_id("session_id", session_id)
        rows = check_scope("delta", delta, remove, self._max_bytes)

        def work(conn: Connection) -> None:
            status = self._find(conn, session_id, lock=True).status
            if status != "active":
                raise SessionArchived(session_id)
            write_session_scope(conn, session_id, rows)

        self._runner.write(work)

    def merged(self, session_id: str) -> dict[str, Any]:
        """ADK's view of the session's state: its own keys, ``user:`` and ``app:`` keys.

        The app's keys prefixed ``app:``, the owner's ``user:``, then the
        session's own (which never begin with a prefix), read in one transaction.
        """
        session_id = check_id("session_id", session_id)

        def work(conn: Connection) -> dict[str, Any]:
            found = self._find(conn, session_id, lock=False)
            merged: dict[str, Any] = {}
            if found.app is not None:
                merged.update({f"app:{k}": v for k, v in _read_app(conn, found.app).items()})
                if found.user_id is not None:
                    user = _read_user(conn, found.app, found.user_id)
                    merged.update({f"user:{k}": v for k, v in user.items()})
            merged.update(read_session_state(conn, session_id))
            return merged

        return self._runner.read(work)

    # --- shared by a user's sessions, or an app's -----------------------------------------

    def get_user(self, app: str, user_id: str) -> dict[str, Any]:
        """The state shared by every session of ``user_id`` in ``app``."""
        app, user_id = self._user(app, user_id)
        return self._runner.read(lambda conn: _read_user(conn, app, user_id))

    def get_app(self, app: str) -> dict[str, Any]:
        """The state shared by every session of ``app``."""
        app = self._app(app)
        return self._runner.read(lambda conn: _read_app(conn, app))

    def update_user(
        self, app: str, user_id: str, delta: Mapping[str, Any], *, remove: Iterable[str] = ()
    ) -> None:
        """Set and remove keys of the user's state, atomically (as :meth:`update`)."""
        app, user_id = self._user(app, user_id)
        rows = check_scope("delta", delta, remove, self._max_bytes)
        self._runner.write(lambda conn: write_user_scope(conn, app, user_id, rows))

    def update_app(self, app: str, delta: Mapping[str, Any], *, remove: Iterable[str] = ()) -> None:
        """Set and remove keys of the app's state, atomically (as :meth:`update`)."""
        app = self._app(app)
        rows = check_scope("delta", delta, remove, self._max_bytes)
        self._runner.write(lambda conn: write_app_scope(conn, app, rows))

    # --- scope -------------------------------------------------------------------------------

    def _find(self, conn: Connection, session_id: str, *, lock: bool) -> Any:
        """The session's (status, app, user_id), in this view's scope; its row locked if asked."""
        stmt = self._locked if lock else self._session
        row = conn.execute(stmt, {"sid": session_id, **self._params}).first()
        if row is None:
            raise SessionNotFound(session_id)
        return row

    def _app(self, app: object) -> str:
        checked = check_id("app", app)
        if self._owner is not None and checked != self._owner.app:
            raise InvalidInput(
                f"this view belongs to app {shown(self._owner.app)}; {self._outside}"
            )
        return checked

    def _user(self, app: object, user_id: object) -> tuple[str, str]:
        checked_app = self._app(app)
        checked_user = check_id("user_id", user_id)
        owner = self._owner
        if owner is not None and not owner.holds(checked_app, checked_user):
            raise InvalidInput(
                f"this view belongs to user {shown(owner.user_id)} of app {shown(owner.app)}; "
                f"{self._outside}"
            )
        return checked_app, checked_user

    _outside = "another owner's state is outside it (use the store itself, or that owner's view)"
