"""Lifecycle: timeouts per session, snapshots, an audit trail, and a lease for sweepers.

* ``sessions`` gains ``idle_timeout_seconds`` and ``hard_timeout_seconds``
  (per-session overrides of the store's defaults; NULL means the default)
  and ``archived_at``.
* ``session_snapshots`` holds a compressed copy of a whole session (its row,
  metadata and messages), taken before it is archived. It has no foreign key
  to ``sessions`` on purpose: a snapshot outlives the purge of its session,
  which is what makes a purged session restorable.
* ``lifecycle_events`` records every lifecycle action (archive, reactivate,
  purge, restore, snapshot pruning) with its reason and snapshot.
* ``lifecycle_leases`` lets several processes run the sweeper against one
  database while only one of them sweeps at a time.

Revision ID: 0004_lifecycle
Revises: 0003_search
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0004_lifecycle"
down_revision: str | Sequence[str] | None = "0003_search"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Real = sa.Float().with_variant(sa.REAL(), "sqlite")
ACTIONS = "('archive', 'reactivate', 'purge', 'restore', 'prune_snapshot')"


def upgrade() -> None:
    op.add_column("sessions", sa.Column("idle_timeout_seconds", Real))
    op.add_column("sessions", sa.Column("hard_timeout_seconds", Real))
    op.add_column("sessions", sa.Column("archived_at", sa.TIMESTAMP()))
    op.create_index("ix_sessions_status_archived_at", "sessions", ["status", "archived_at"])
    op.create_table(
        "session_snapshots",
        sa.Column("snapshot_id", Id, nullable=False, autoincrement=True),
        sa.Column("session_id", sa.Text(), nullable=False),
        sa.Column("created_at", sa.TIMESTAMP(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("format", sa.Text(), nullable=False),
        sa.Column("message_count", sa.Integer(), nullable=False),
        sa.Column("raw_bytes", Id, nullable=False),
        sa.Column("stored_bytes", Id, nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("snapshot_id", name="pk_session_snapshots"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_session_snapshots_session_id_snapshot_id",
        "session_snapshots",
        ["session_id", "snapshot_id"],
    )
    op.create_table(
        "lifecycle_events",
        sa.Column("event_id", Id, nullable=False, autoincrement=True),
        sa.Column("session_id", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("snapshot_id", Id),
        sa.Column("occurred_at", sa.TIMESTAMP(), nullable=False),
        sa.Column("details", sa.Text()),
        sa.PrimaryKeyConstraint("event_id", name="pk_lifecycle_events"),
        sa.CheckConstraint(f"action IN {ACTIONS}", name="ck_lifecycle_events_action"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_lifecycle_events_session_id_event_id", "lifecycle_events", ["session_id", "event_id"]
    )
    op.create_table(
        "lifecycle_leases",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.TIMESTAMP(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_lifecycle_leases"),
    )


def downgrade_refusal(connection: sa.Connection) -> str | None:
    """Read by sessionstore's downgrade planner: what the downgrade would destroy
    that the older schema cannot hold (a purged session lives only in its snapshots)."""
    purged = connection.execute(
        sa.text(
            "SELECT COUNT(DISTINCT session_id) FROM session_snapshots"
            " WHERE session_id NOT IN (SELECT session_id FROM sessions)"
        )
    ).scalar()
    if not purged:
        return None
    return (
        f"{purged} purged session(s) that exist only as snapshots; restore them first "
        "(`sessionstore restore-snapshot`) or keep this revision"
    )


def downgrade() -> None:
    # Snapshots of sessions that still exist and the audit trail go with their
    # tables; the sessions and messages themselves stay (archived ones archived).
    op.drop_table("lifecycle_leases")
    op.drop_index("ix_lifecycle_events_session_id_event_id", table_name="lifecycle_events")
    op.drop_table("lifecycle_events")
    op.drop_index("ix_session_snapshots_session_id_snapshot_id", table_name="session_snapshots")
    op.drop_table("session_snapshots")
    op.drop_index("ix_sessions_status_archived_at", table_name="sessions")
    op.drop_column("sessions", "archived_at")
    op.drop_column("sessions", "hard_timeout_seconds")
    op.drop_column("sessions", "idle_timeout_seconds")
