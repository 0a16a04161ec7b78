"""Who a session belongs to: the :class:`Owner` scope, and the predicates that enforce it.

A session may belong to an ``app`` (a namespace) and, within it, a
``user_id``; both are ``NULL`` for legacy and unowned sessions, and a
``user_id`` needs an ``app``. The repositories take an optional
:class:`Owner`:

* ``None`` (``store.sessions``, ``store.messages`` …): the **admin** view. It
  sees every session, owned or not, and filters by owner only when asked
  (``sessions.list(app=..., user_id=...)``).
* ``Owner(app, user_id)`` (``store.for_user(app, user_id)``): one user's
  view. Every statement that names a session first checks, in the same
  transaction, that the session is that user's (:func:`require_owned`, or
  :func:`guarded` around a repository's work); a session of anyone else is
  :class:`~sessionstore.errors.SessionNotFound` with the text a missing one
  gets. Listings, search, stats and the lifecycle's scans carry the same
  predicate in their SQL; ``create`` stamps the owner.
* ``Owner(app, None)`` (``store.for_user(app, None)``): the app's view: every
  session of that app, whichever user (or none) it belongs to, and nothing of
  other apps.

On PostgreSQL a scoped view also sets ``sessionstore.app`` and
``sessionstore.user_id`` for each of its transactions (``set_config(...,
true)``), which the opt-in row-level security policies of
:mod:`sessionstore.rls` read: with them on, the database itself filters
every statement, hand-written SQL on the connection included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Connection, bindparam, select

from .errors import InvalidInput, MessageNotFound, SessionNotFound, SnapshotNotFound
from .models import Message, Session, Snapshot
from .prepared import Prepared
from .transactions import Raw
from .validation import check_id

__all__ = [
    "Owner",
    "check_owner",
    "guarded",
    "guarded_message",
    "narrow",
    "owner_clauses",
    "owner_filter",
    "owner_params",
    "require_message_owned",
    "require_owned",
    "require_snapshot_owned",
    "scope_params",
]

T = TypeVar("T")
Db = TypeVar("Db", Connection, Raw)

S = Session.__table__.c
M = Message.__table__.c
N = Snapshot.__table__.c


@dataclass(frozen=True, slots=True)
class Owner:
    """A scope: one user of an app, or (``user_id=None``) every session of an app."""

    app: str
    #: ``None``: the whole app, every user's sessions and the app's unowned ones.
    user_id: str | None = None

    def __post_init__(self) -> None:
        check_id("app", self.app)
        if self.user_id is not None:
            check_id("user_id", self.user_id)

    @property
    def shape(self) -> str:
        """``"user"`` or ``"app"``: which predicate a statement needs (for statement caches)."""
        return "app" if self.user_id is None else "user"

    def holds(self, app: str | None, user_id: str | None) -> bool:
        """Whether a row owned by ``(app, user_id)`` is inside this scope."""
        if app != self.app:
            return False
        return self.user_id is None or user_id == self.user_id


def check_owner(app: object, user_id: object) -> tuple[str | None, str | None]:
    """An ``(app, user_id)`` pair a caller passed, checked like ids; a user needs an app."""
    checked_app = None if app is None else check_id("app", app)
    checked_user = None if user_id is None else check_id("user_id", user_id)
    if checked_user is not None and checked_app is None:
        raise InvalidInput("user_id needs an app: pass app= too (a user belongs to an app)")
    return checked_app, checked_user


def narrow(
    owner: Owner | None, app: str | None, user_id: str | None
) -> tuple[str | None, str | None] | None:
    """The owner filter of a listing: the caller's ``app``/``user_id`` within the scope.

    ``None`` when they ask for something outside the scope (nothing can match:
    the listing is empty, as for an owner with no sessions).
    """
    if owner is None:
        return app, user_id
    if app is not None and app != owner.app:
        return None
    if owner.user_id is not None:
        if user_id is not None and user_id != owner.user_id:
            return None
        return owner.app, owner.user_id
    return owner.app, user_id


def owner_clauses(columns: Any, app: str | None, user_id: str | None) -> list[ColumnElement[bool]]:
    """``app = :owner_app [AND user_id = :owner_user]`` on a table with owner columns.

    Values are bound as ``owner_app`` / ``owner_user`` (see :func:`owner_params`), so
    one compiled statement serves every owner.
    """
    clauses: list[ColumnElement[bool]] = []
    if app is not None:
        clauses.append(columns.app == bindparam("owner_app"))
    if user_id is not None:
        clauses.append(columns.user_id == bindparam("owner_user"))
    return clauses


def owner_filter(columns: Any, app: str | None, user_id: str | None) -> list[ColumnElement[bool]]:
    """:func:`owner_clauses` with the values bound in place, for one-off statements."""
    clauses: list[ColumnElement[bool]] = []
    if app is not None:
        clauses.append(columns.app == app)
    if user_id is not None:
        clauses.append(columns.user_id == user_id)
    return clauses


def owner_params(app: str | None, user_id: str | None) -> dict[str, Any]:
    return {"owner_app": app, "owner_user": user_id}


def scope_params(owner: Owner) -> dict[str, Any]:
    return owner_params(owner.app, owner.user_id)


_GUARDS: dict[tuple[str, str], Prepared] = {}


def _guard(kind: str, owner: Owner) -> Prepared:
    """The statement that finds one row of ``kind`` inside the scope (one per shape)."""
    key = (kind, owner.shape)
    prepared = _GUARDS.get(key)
    if prepared is None:
        if kind == "session":
            stmt = select(S.status).where(
                S.session_id == bindparam("key"), *owner_clauses(S, owner.app, owner.user_id)
            )
        elif kind == "message":
            stmt = (
                select(M.session_id)
                .join_from(Message, Session, S.session_id == M.session_id)
                .where(
                    M.message_id == bindparam("key"), *owner_clauses(S, owner.app, owner.user_id)
                )
            )
        else:
            stmt = select(N.session_id).where(
                N.snapshot_id == bindparam("key"), *owner_clauses(N, owner.app, owner.user_id)
            )
        prepared = _GUARDS[key] = Prepared(stmt)
    return prepared


def _found(db: Connection | Raw, kind: str, key: object, owner: Owner) -> bool:
    prepared = _guard(kind, owner)
    params = {"key": key, **scope_params(owner)}
    if isinstance(db, Raw):
        return db.first(prepared, params) is not None
    return db.execute(prepared.statement, params).first() is not None


def require_owned(db: Connection | Raw, session_id: str, owner: Owner | None) -> None:
    """:class:`SessionNotFound` unless the session is inside the scope (``None``: any).

    Called first, in the transaction of the statement that names the session,
    so that a session of another owner fails exactly as a missing one does:
    same error, same text, before anything about it (its status, its rows) is
    looked at.
    """
    if owner is not None and not _found(db, "session", session_id, owner):
        raise SessionNotFound(session_id)


def require_message_owned(db: Connection | Raw, message_id: int, owner: Owner | None) -> None:
    """:class:`MessageNotFound` unless the message's session is inside the scope."""
    if owner is not None and not _found(db, "message", message_id, owner):
        raise MessageNotFound(message_id)


def require_snapshot_owned(db: Connection | Raw, snapshot_id: int, owner: Owner | None) -> None:
    """:class:`SnapshotNotFound` unless the snapshot was taken of a session in the scope."""
    if owner is not None and not _found(db, "snapshot", snapshot_id, owner):
        raise SnapshotNotFound(snapshot_id)


def guarded(owner: Owner | None, session_id: str, work: Callable[[Db], T]) -> Callable[[Db], T]:
    """``work`` preceded, in its transaction, by :func:`require_owned` (unchanged unscoped)."""
    if owner is None:
        return work

    def run(db: Db) -> T:
        require_owned(db, session_id, owner)
        return work(db)

    return run


def guarded_message(
    owner: Owner | None, message_id: int, work: Callable[[Db], T]
) -> Callable[[Db], T]:
    """``work`` preceded, in its transaction, by :func:`require_message_owned`."""
    if owner is None:
        return work

    def run(db: Db) -> T:
        require_message_owned(db, message_id, owner)
        return work(db)

    return run
