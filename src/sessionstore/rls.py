"""PostgreSQL row-level security, opt-in: the database itself keeps owners apart.

A scoped view (:mod:`sessionstore.scoped`) checks ownership in every
statement it runs. Row-level security adds a second wall that holds even
for SQL the store never wrote: with it enabled (``store.enable_row_level_security()``
or ``sessionstore rls enable``), every table that holds an owner's data gets
a policy keyed on two settings of the transaction:

* ``sessionstore.app`` and ``sessionstore.user_id``, which a scoped view sets
  at the start of each of its transactions with ``set_config(..., true)``
  (:func:`scope_connection`): they end with the transaction, so a pooled
  connection never carries them to the next one.
* **unset or empty** (the store itself, tools, migrations): the admin view,
  every row, as before.
* ``app`` set, ``user_id`` empty: every row of that app; both set: only that
  user's rows.

``sessions``, ``user_state``, ``session_snapshots`` and ``lifecycle_events``
are matched on their own ``app``/``user_id`` columns, ``app_state`` on its
``app``; ``messages``, ``session_metadata`` and ``session_state`` through an
``EXISTS`` on their session. The policies check writes too (``WITH CHECK``),
and ``FORCE ROW LEVEL SECURITY`` applies them to the tables' owner as well.
PostgreSQL never applies them to a superuser or to a role with
``BYPASSRLS``: an application that relies on them must connect as an
ordinary role.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from .errors import InvalidStateError
from .owners import Owner
from .prepared import Prepared
from .transactions import Raw

__all__ = [
    "POLICY",
    "RLS_TABLES",
    "RlsStatus",
    "disable",
    "enable",
    "require_postgres",
    "scope_connection",
    "scope_raw",
    "status",
    "unscoped",
]

POLICY = "sessionstore_owner"
_APP = "current_setting('sessionstore.app', true)"
_USER = "current_setting('sessionstore.user_id', true)"
_UNSCOPED = f"coalesce({_APP}, '') = ''"


def _owned(alias: str) -> str:
    """Rows whose ``app``/``user_id`` fall inside the transaction's scope."""
    return (
        f"({_UNSCOPED} OR ({alias}.app = {_APP}"
        f" AND (coalesce({_USER}, '') = '' OR {alias}.user_id = {_USER})))"
    )


def _through_session(table: str) -> str:
    return (
        f"({_UNSCOPED} OR EXISTS (SELECT 1 FROM sessions s"
        f" WHERE s.session_id = {table}.session_id AND {_owned('s')}))"
    )


#: Each table that holds an owner's rows, and the condition its policy enforces.
RLS_TABLES: dict[str, str] = {
    "sessions": _owned("sessions"),
    "messages": _through_session("messages"),
    "session_metadata": _through_session("session_metadata"),
    "session_state": _through_session("session_state"),
    "user_state": _owned("user_state"),
    "app_state": f"({_UNSCOPED} OR app_state.app = {_APP})",
    "session_snapshots": _owned("session_snapshots"),
    "lifecycle_events": _owned("lifecycle_events"),
}

_SCOPE = text(
    "SELECT set_config('sessionstore.app', :app, true), "
    "set_config('sessionstore.user_id', :user_id, true)"
)
_SCOPE_FAST = Prepared(_SCOPE)


_CURRENT = text(
    "SELECT current_setting('sessionstore.app', true), "
    "current_setting('sessionstore.user_id', true)"
)


@contextmanager
def unscoped(conn: Connection) -> Iterator[None]:
    """The block reads as the admin, then the transaction's scope is put back.

    For the one question a view must ask of the whole store: whether a session id
    is free. Ids are one namespace for every owner (see :mod:`sessionstore.ids`),
    and the policies would otherwise hide another owner's session or snapshot that
    holds the id. Only the answer leaves the block (the id is taken), never a row.
    """
    if conn.dialect.name != "postgresql":
        yield
        return
    app, user_id = conn.execute(_CURRENT).one()
    if not app:
        yield
        return
    conn.execute(_SCOPE, {"app": "", "user_id": ""})
    try:
        yield
    except BaseException:
        with suppress(DBAPIError):  # a failed statement: the transaction is lost anyway
            conn.execute(_SCOPE, {"app": app, "user_id": user_id or ""})
        raise
    conn.execute(_SCOPE, {"app": app, "user_id": user_id or ""})


def _settings(owner: Owner) -> dict[str, str]:
    return {"app": owner.app, "user_id": owner.user_id or ""}


def scope_connection(conn: Connection, owner: Owner) -> None:
    """Set the owner's settings for the rest of the transaction on ``conn``."""
    conn.execute(_SCOPE, _settings(owner))


def scope_raw(raw: Raw, owner: Owner) -> None:
    """:func:`scope_connection` on a driver connection of the hot path."""
    raw.first(_SCOPE_FAST, _settings(owner))


@dataclass(frozen=True, slots=True)
class RlsStatus:
    """Whether row-level security is on, table by table."""

    #: Table name to (row security enabled, forced, our policy present).
    tables: dict[str, tuple[bool, bool, bool]]

    @property
    def enabled(self) -> bool:
        return all(all(flags) for flags in self.tables.values())


def require_postgres(dialect: str) -> None:
    if dialect != "postgresql":
        raise InvalidStateError(
            "row-level security is a PostgreSQL feature; on SQLite, scoped views "
            "(store.for_user) are the boundary, and whoever can open the file can read it all"
        )


def enable(conn: Connection) -> RlsStatus:
    """Create the policies and turn row-level security on, forced (the caller commits)."""
    require_postgres(conn.dialect.name)
    for table, condition in RLS_TABLES.items():
        conn.execute(text(f"DROP POLICY IF EXISTS {POLICY} ON {table}"))
        conn.execute(
            text(f"CREATE POLICY {POLICY} ON {table} USING {condition} WITH CHECK {condition}")
        )
        conn.execute(text(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"))
        conn.execute(text(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY"))
    return status(conn)


def disable(conn: Connection) -> RlsStatus:
    """Drop the policies and turn row-level security off again (the caller commits)."""
    require_postgres(conn.dialect.name)
    for table in RLS_TABLES:
        conn.execute(text(f"DROP POLICY IF EXISTS {POLICY} ON {table}"))
        conn.execute(text(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY"))
        conn.execute(text(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY"))
    return status(conn)


def status(conn: Connection) -> RlsStatus:
    """Row-level security on each of :data:`RLS_TABLES` (all off on SQLite)."""
    if conn.dialect.name != "postgresql":
        return RlsStatus(dict.fromkeys(RLS_TABLES, (False, False, False)))
    rows = conn.execute(
        text(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,"
            " EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid"
            " AND p.polname = :policy)"
            " FROM pg_class c WHERE c.relname = ANY(:tables)"
            " AND c.relnamespace = to_regnamespace(current_schema())::oid"
        ),
        {"policy": POLICY, "tables": list(RLS_TABLES)},
    ).all()
    found = {row[0]: (bool(row[1]), bool(row[2]), bool(row[3])) for row in rows}
    return RlsStatus({table: found.get(table, (False, False, False)) for table in RLS_TABLES})
