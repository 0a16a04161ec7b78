"""Items, owners and state: what agent frameworks store in a session.

messages
* ``kind`` (``'message'`` for every existing row): the item kind, an open set
  (``message``, ``function_call``, ``reasoning``, ``event``, …);
* ``payload``: the framework's item as compact JSON text (TEXT on both
  backends: JSONB would refuse ``\\u0000`` and reorder keys);
* ``exact_content``: the caller's exact text as a JSON string literal, only
  when it held NUL (``content`` then holds it with U+FFFD in place of NUL);
* the role CHECK no longer lists four roles: any role of 1 to 64 characters
  (the store validates the rest);
* ``ix_messages_session_id_timestamp`` for reads by time.

sessions
* ``app`` and ``user_id``: the owner (both NULL for unowned sessions; a
  ``user_id`` needs an ``app``), under ``ix_sessions_app_user_id_last_activity``;
* ``model_id`` may be NULL (frameworks know no model id);
* ``parent_session_id`` and ``fork_sequence``: where a fork came from (no
  foreign key: the parent may be purged later);
* ``never_expires``: a session no timeout archives (distinct from NULL
  timeouts, which mean the store's defaults).

state: ``session_state``, ``user_state`` and ``app_state``, one row per key,
values as JSON text.

``session_snapshots`` and ``lifecycle_events`` gain ``app`` and ``user_id``,
so that a user's erasure finds them after the session is purged.

On SQLite the two loosened constraints (the role CHECK, ``NOT NULL`` on
``model_id``) are removed by editing the tables' SQL in ``sqlite_master``
under ``PRAGMA writable_schema``, the procedure SQLite's documentation gives
for removing CHECK and NOT NULL constraints ("ALTER TABLE", other kinds of
table schema changes): the rows on disk do not change, so nothing is
rebuilt, the rowids the full-text index hangs on stay, and every trigger and
view stays as it is. The schema version is then bumped, so every connection
reads the new SQL, and ``PRAGMA integrity_check`` of both tables must pass
before the transaction commits. The edit is one exact text replacement,
found exactly once, or the revision refuses and changes nothing.

Downgrading is possible while nothing uses what this revision adds (see
:func:`downgrade_refusal`); the loosened constraints are put back the same way.

Revision ID: 0006_items_owners_state
Revises: 0005_unusable_ids
Create Date: 2026-11-29
"""

import json
import re
import zlib
from collections.abc import Iterator, Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0006_items_owners_state"
down_revision: str | Sequence[str] | None = "0005_unusable_ids"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEGACY_ROLES = ("user", "assistant", "system", "tool")
OLD_ROLE_CHECK = "CHECK (role IN ('user', 'assistant', 'system', 'tool'))"
NEW_ROLE_CHECK = "CHECK (length(role) BETWEEN 1 AND 64)"
# ``model_id TEXT NOT NULL`` as SQLAlchemy (0002) and the legacy layout wrote it.
_MODEL_ID_NOT_NULL = re.compile(r"(\bmodel_id\s+TEXT)\s+NOT\s+NULL\b", re.IGNORECASE)
_MODEL_ID_NULLABLE = re.compile(r"(\bmodel_id\s+TEXT)(\s*,)", re.IGNORECASE)


def _add_columns() -> None:
    op.add_column(
        "messages",
        sa.Column("kind", sa.Text(), nullable=False, server_default=sa.text("'message'")),
    )
    op.add_column("messages", sa.Column("payload", sa.Text()))
    op.add_column("messages", sa.Column("exact_content", sa.Text()))
    op.create_index(
        "ix_messages_session_id_timestamp",
        "messages",
        ["session_id", "timestamp", "sequence_number"],
    )
    op.add_column("sessions", sa.Column("app", sa.Text()))
    # A column CHECK naming another column: SQLite and PostgreSQL both accept it
    # on ADD COLUMN, and it holds for every existing row (both NULL).
    op.execute(
        "ALTER TABLE sessions ADD COLUMN user_id TEXT"
        " CONSTRAINT ck_sessions_owner CHECK (user_id IS NULL OR app IS NOT NULL)"
    )
    op.add_column("sessions", sa.Column("parent_session_id", sa.Text()))
    op.add_column("sessions", sa.Column("fork_sequence", sa.Integer()))
    op.add_column(
        "sessions",
        sa.Column("never_expires", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_index(
        "ix_sessions_app_user_id_last_activity",
        "sessions",
        ["app", "user_id", "last_activity", "session_id"],
    )
    for table in ("session_snapshots", "lifecycle_events"):
        op.add_column(table, sa.Column("app", sa.Text()))
        op.add_column(table, sa.Column("user_id", sa.Text()))
        op.create_index(f"ix_{table}_app_user_id", table, ["app", "user_id"])


def _create_state_tables() -> None:
    op.create_table(
        "session_state",
        sa.Column("session_id", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "key", name="pk_session_state"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.session_id"],
            name="fk_session_state_session_id_sessions",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "user_state",
        sa.Column("app", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("app", "user_id", "key", name="pk_user_state"),
    )
    op.create_table(
        "app_state",
        sa.Column("app", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("app", "key", name="pk_app_state"),
    )


# --- SQLite: constraints removed (and put back) in the tables' SQL ---------------------------


def _table_sql(bind: sa.Connection, table: str) -> str:
    sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).scalar()
    if not isinstance(sql, str):
        raise RuntimeError(f"table {table} not found; nothing was changed")
    return sql


def _replace_once(sql: str, pattern: re.Pattern[str], repl: str, table: str, what: str) -> str:
    new, count = pattern.subn(repl, sql)
    if count != 1:
        raise RuntimeError(
            f"the SQL of table {table} holds {what} {count} times, not once; nothing was changed"
        )
    return new


def _rewrite_sqlite(*, loosen: bool) -> None:
    """Remove (``loosen``) or restore the role CHECK and ``NOT NULL`` on ``model_id``."""
    bind = op.get_bind()
    old, new = (OLD_ROLE_CHECK, NEW_ROLE_CHECK) if loosen else (NEW_ROLE_CHECK, OLD_ROLE_CHECK)
    messages = _replace_once(
        _table_sql(bind, "messages"), re.compile(re.escape(old)), new, "messages", old
    )
    if loosen:
        sessions = _replace_once(
            _table_sql(bind, "sessions"), _MODEL_ID_NOT_NULL, r"\1", "sessions",
            "model_id TEXT NOT NULL",
        )  # fmt: skip
    else:
        sessions = _replace_once(
            _table_sql(bind, "sessions"), _MODEL_ID_NULLABLE, r"\1 NOT NULL\2", "sessions",
            "a nullable model_id",
        )  # fmt: skip
    version = int(bind.exec_driver_sql("PRAGMA schema_version").scalar() or 0)
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    try:
        for table, sql in (("messages", messages), ("sessions", sessions)):
            bind.exec_driver_sql(
                "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?",
                (sql, table),
            )
        # Every connection (this one too) re-reads the schema at its next statement.
        bind.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    finally:
        bind.exec_driver_sql("PRAGMA writable_schema = OFF")
    for table in ("messages", "sessions"):
        problems = [row[0] for row in bind.exec_driver_sql(f"PRAGMA integrity_check({table})")]
        if problems != ["ok"]:
            raise RuntimeError(
                f"integrity check of {table} failed after the schema edit: {problems[:5]}; "
                "nothing was changed"
            )


# --- PostgreSQL ---------------------------------------------------------------------------


def _rewrite_postgresql(*, loosen: bool) -> None:
    check = NEW_ROLE_CHECK if loosen else OLD_ROLE_CHECK
    op.execute(
        "ALTER TABLE messages DROP CONSTRAINT ck_messages_role,"
        f" ADD CONSTRAINT ck_messages_role {check}"
    )
    op.execute(f"ALTER TABLE sessions ALTER COLUMN model_id {'DROP' if loosen else 'SET'} NOT NULL")


def upgrade() -> None:
    _add_columns()
    _create_state_tables()
    if op.get_context().dialect.name == "sqlite":
        _rewrite_sqlite(loosen=True)
    else:
        _rewrite_postgresql(loosen=True)


# --- downgrade ------------------------------------------------------------------------------

_IN_USE = {
    "messages of a kind other than 'message'": "SELECT COUNT(*) FROM messages"
    " WHERE kind <> 'message'",
    "messages with a payload": "SELECT COUNT(*) FROM messages WHERE payload IS NOT NULL",
    "messages holding NUL": "SELECT COUNT(*) FROM messages WHERE exact_content IS NOT NULL",
    "messages with a role other than user, assistant, system or tool": "SELECT COUNT(*)"
    " FROM messages WHERE role NOT IN ('user', 'assistant', 'system', 'tool')",
    "sessions without a model id": "SELECT COUNT(*) FROM sessions WHERE model_id IS NULL",
    "sessions with an owner (app, user_id)": "SELECT COUNT(*) FROM sessions"
    " WHERE app IS NOT NULL OR user_id IS NOT NULL",
    "forked sessions": "SELECT COUNT(*) FROM sessions"
    " WHERE parent_session_id IS NOT NULL OR fork_sequence IS NOT NULL",
    "sessions that never expire": "SELECT COUNT(*) FROM sessions WHERE never_expires",
    "session state values": "SELECT COUNT(*) FROM session_state",
    "user state values": "SELECT COUNT(*) FROM user_state",
    "app state values": "SELECT COUNT(*) FROM app_state",
    "snapshots with an owner": "SELECT COUNT(*) FROM session_snapshots"
    " WHERE app IS NOT NULL OR user_id IS NOT NULL",
    "lifecycle events with an owner": "SELECT COUNT(*) FROM lifecycle_events"
    " WHERE app IS NOT NULL OR user_id IS NOT NULL",
}
# What a session document (an export, a snapshot's body) holds beyond the older schema.
_SESSION_ADDED = ("app", "user_id", "parent_session_id", "fork_sequence")
_MESSAGE_ADDED = ("payload", "exact_content")


def _snapshot_documents(connection: sa.Connection) -> Iterator[tuple[int, object]]:
    rows = connection.execute(sa.text("SELECT snapshot_id, payload FROM session_snapshots"))
    for snapshot_id, payload in rows:
        try:
            yield snapshot_id, json.loads(zlib.decompress(payload).decode("utf-8"))
        except (zlib.error, UnicodeDecodeError, ValueError):
            continue  # a damaged snapshot restores at no revision; not this one's to judge


def _uses_additions(doc: object) -> bool:
    """Whether a snapshot's session holds what an older release would silently drop."""
    if not isinstance(doc, dict):
        return False
    session = doc.get("session")
    if isinstance(session, dict) and (
        any(session.get(name) is not None for name in _SESSION_ADDED)
        or session.get("never_expires") is True
        or ("model_id" in session and session["model_id"] is None)
    ):
        return True
    if doc.get("state"):
        return True
    for message in doc.get("messages") or ():
        if not isinstance(message, dict):
            continue
        if any(message.get(name) is not None for name in _MESSAGE_ADDED):
            return True
        if message.get("kind", "message") != "message":
            return True
        if message.get("role") not in LEGACY_ROLES:
            return True
    return False


def downgrade_refusal(connection: sa.Connection) -> str | None:
    """Read by sessionstore's downgrade planner: what the older schema cannot hold."""
    found = []
    for what, query in _IN_USE.items():
        count = connection.execute(sa.text(query)).scalar()
        if count:
            found.append(f"{count} {what}")
    snapshots = [sid for sid, doc in _snapshot_documents(connection) if _uses_additions(doc)]
    if snapshots:
        found.append(f"{len(snapshots)} snapshots holding items, owners, forks or state")
    if not found:
        return None
    return (
        ", ".join(found) + "; the older schema cannot hold them. Remove them (or keep this "
        "revision; a backup taken now restores them)"
    )


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        _rewrite_sqlite(loosen=False)
    else:
        _rewrite_postgresql(loosen=False)
    op.drop_table("app_state")
    op.drop_table("user_state")
    op.drop_table("session_state")
    for table in ("lifecycle_events", "session_snapshots"):
        op.drop_index(f"ix_{table}_app_user_id", table_name=table)
        op.drop_column(table, "user_id")
        op.drop_column(table, "app")
    op.drop_index("ix_sessions_app_user_id_last_activity", table_name="sessions")
    for name in ("never_expires", "fork_sequence", "parent_session_id", "user_id", "app"):
        op.drop_column("sessions", name)
    op.drop_index("ix_messages_session_id_timestamp", table_name="messages")
    for name in ("exact_content", "payload", "kind"):
        op.drop_column("messages", name)
