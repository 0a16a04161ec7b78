"""Quarantine sessions whose id the store's id rule refuses.

The legacy layout's ``TEXT PRIMARY KEY`` admitted any id: blank, containing
NUL, not text at all (an integer or a blob), or thousands of bytes long.
Adoption (0002) kept such rows, so they were listed by ``sessions.list`` and
then refused by every call that names a session, while sweep and purge still
deleted them. The store has one id rule (text, valid UTF-8, no NUL, not
blank, at most 255 bytes; ``sessionstore.validation.check_id``), and every
session it lists must be one it can get, export, archive and restore.

This revision moves each session that breaks the rule, with its messages
and metadata, to the quarantine tables of 0002 (nothing is deleted outright;
each row says why it is there). Sessions written through the store always
obey the rule, so on PostgreSQL and on files created by the store this finds
nothing.

Downgrading is a no-op: the quarantined rows stay where they are, and 0004's
schema is unchanged by this revision.

Revision ID: 0005_unusable_ids
Revises: 0004_lifecycle
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005_unusable_ids"
down_revision: str | Sequence[str] | None = "0004_lifecycle"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The id rule as it stands at this revision, written out here: revisions are
# frozen history and never import the package.
MAX_ID_BYTES = 255
REASON = "session id breaks the id rule (blank, NUL, not text or over 255 bytes)"
PARENT = "its session was quarantined: its id breaks the id rule"


def _unusable(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return b"\x00" in raw or len(raw) > MAX_ID_BYTES or not value.strip()


def _unusable_sqlite(kind: str, raw: bytes) -> bool:
    """The same rule on SQLite's stored bytes (a text id may hold invalid UTF-8)."""
    if kind != "text":
        return True
    try:
        return _unusable(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return True


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        rows = bind.exec_driver_sql(
            "SELECT rowid, typeof(session_id), CAST(session_id AS BLOB) FROM sessions"
        ).all()
        doomed = [rid for rid, kind, raw in rows if _unusable_sqlite(kind, bytes(raw or b""))]
        now = "(strftime('%Y-%m-%d %H:%M:%f', 'now') || '000')"
        pick = "SELECT session_id FROM sessions WHERE rowid = :rid"
    else:
        ids = bind.execute(sa.text("SELECT session_id FROM sessions")).scalars().all()
        doomed = [sid for sid in ids if _unusable(sid)]
        now = "(now() AT TIME ZONE 'utc')"
        pick = "SELECT CAST(:rid AS TEXT)"
    for rid in doomed:
        params = {"rid": rid, "reason": REASON, "parent": PARENT}
        bind.execute(
            sa.text(
                f"""
                INSERT INTO quarantined_messages
                SELECT m.message_id, m.session_id, m.sequence_number, m.role, m.content,
                       CAST(m.timestamp AS TEXT), m.tokens_used, m.duration_seconds,
                       m.metadata, :parent, {now}
                FROM messages m WHERE m.session_id = ({pick})
                """
            ),
            params,
        )
        bind.execute(
            sa.text(
                f"""
                INSERT INTO quarantined_metadata
                SELECT d.metadata_id, d.session_id, d.key, d.value, :parent, {now}
                FROM session_metadata d WHERE d.session_id = ({pick})
                """
            ),
            params,
        )
        bind.execute(
            sa.text(
                f"""
                INSERT INTO quarantined_sessions (session_id, created_at, updated_at,
                    last_activity, model_id, model_name, title, message_count, total_tokens,
                    total_duration_seconds, reason, quarantined_at)
                SELECT session_id, CAST(created_at AS TEXT), CAST(updated_at AS TEXT),
                       CAST(last_activity AS TEXT), model_id, model_name, title,
                       message_count, total_tokens, total_duration_seconds, :reason, {now}
                FROM sessions WHERE session_id = ({pick})
                """
            ),
            params,
        )
        for table in ("messages", "session_metadata", "sessions"):
            bind.execute(sa.text(f"DELETE FROM {table} WHERE session_id = ({pick})"), {"rid": rid})


def downgrade() -> None:
    # Nothing to undo in the schema; the quarantined rows stay quarantined.
    pass
