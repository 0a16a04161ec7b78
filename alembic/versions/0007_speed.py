"""Fewer session indexes that an append rewrites.

Every append moves its session's ``last_activity``, so every index of
``sessions`` that holds ``last_activity`` gets one entry deleted and one
inserted: one more page (one more WAL frame on SQLite, one more index
tuple and no HOT update on PostgreSQL) per append, for each such index.
Five of them held it. Appends only ever go to *active* sessions, so:

* the status-led indexes (``status, last_activity``; ``model_id, status,
  last_activity``; ``status, archived_at``) become partial indexes over
  archived sessions only (``WHERE status = 'archived'``), which no append
  touches: a list of archived sessions, and the purge's walk by archive
  time, still search an ordered index; a list of active sessions walks the
  activity index (or the model's) and skips the archived ones it meets,
  which sit at the old end of the activity order;
* the model and owner indexes become partial over the rows that have a
  model id / an owner (``WHERE model_id IS NOT NULL`` / ``WHERE app IS NOT
  NULL``): a filter ``model_id = ?`` or ``app = ?`` implies them, and the
  sessions agent frameworks create (no model id, often no owner) no longer
  pay for them.

An append to a session with a model id and no owner now rewrites two
session indexes instead of five; one without either, one. Nothing is
stored differently; downgrading puts the old indexes back.

One index is added, on messages: the system and developer prompts of each
session (partial, so user and assistant appends never touch it), which a
token window reads to pin the first prompt in one step.

Revision ID: 0007_speed
Revises: 0006_items_owners_state
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0007_speed"
down_revision: str | Sequence[str] | None = "0006_items_owners_state"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ARCHIVED = sa.text("status = 'archived'")
SYSTEM = sa.text("role IN ('system', 'developer')")


def _partial(name: str, columns: list[str], where: sa.TextClause) -> None:
    op.create_index(name, "sessions", columns, sqlite_where=where, postgresql_where=where)


def upgrade() -> None:
    for name in (
        "ix_sessions_status_last_activity",
        "ix_sessions_model_id_status_last_activity",
        "ix_sessions_status_archived_at",
        "ix_sessions_model_id_last_activity",
        "ix_sessions_app_user_id_last_activity",
    ):
        op.drop_index(name, table_name="sessions")
    _partial(
        "ix_sessions_model_id_last_activity",
        ["model_id", "last_activity", "session_id"],
        sa.text("model_id IS NOT NULL"),
    )
    _partial(
        "ix_sessions_app_user_id_last_activity",
        ["app", "user_id", "last_activity", "session_id"],
        sa.text("app IS NOT NULL"),
    )
    _partial("ix_sessions_archived_last_activity", ["last_activity", "session_id"], ARCHIVED)
    _partial(
        "ix_sessions_archived_model_id_last_activity",
        ["model_id", "last_activity", "session_id"],
        ARCHIVED,
    )
    _partial("ix_sessions_archived_archived_at", ["archived_at", "session_id"], ARCHIVED)
    # A token window pins the session's first system prompt: found here in one
    # step, where the sequence index would walk a session that has none to its end.
    # User and assistant appends never touch it.
    op.create_index(
        "ix_messages_session_id_system",
        "messages",
        ["session_id", "sequence_number"],
        sqlite_where=SYSTEM,
        postgresql_where=SYSTEM,
    )


def downgrade() -> None:
    op.drop_index("ix_messages_session_id_system", table_name="messages")
    for name in (
        "ix_sessions_archived_archived_at",
        "ix_sessions_archived_model_id_last_activity",
        "ix_sessions_archived_last_activity",
        "ix_sessions_app_user_id_last_activity",
        "ix_sessions_model_id_last_activity",
    ):
        op.drop_index(name, table_name="sessions")
    op.create_index(
        "ix_sessions_app_user_id_last_activity",
        "sessions",
        ["app", "user_id", "last_activity", "session_id"],
    )
    op.create_index(
        "ix_sessions_model_id_last_activity",
        "sessions",
        ["model_id", "last_activity", "session_id"],
    )
    op.create_index("ix_sessions_status_archived_at", "sessions", ["status", "archived_at"])
    op.create_index(
        "ix_sessions_model_id_status_last_activity",
        "sessions",
        ["model_id", "status", "last_activity", "session_id"],
    )
    op.create_index(
        "ix_sessions_status_last_activity", "sessions", ["status", "last_activity", "session_id"]
    )
