"""Adopt the legacy layout: quarantine orphans, rebuild the tables, repair counts, re-index.

On SQLite this turns the legacy baseline (a real legacy file, or the empty
one revision 0001 made) into the current layout, in one transaction:

1. orphaned messages and metadata rows (their session is gone: the legacy
   layer never turned foreign keys on) move to ``quarantined_messages`` and
   ``quarantined_metadata`` with the reason and the time; nothing is deleted;
2. ``sessions``, ``messages`` and ``session_metadata`` are rebuilt with real
   constraints, the ``tool`` role, ``last_seq``, ``status`` and
   ``client_msg_id``; timestamps are normalised to one sortable text form;
   every count and total is recomputed from the messages themselves;
3. the legacy triggers (a count that only drifts, an FTS index wiped on every
   edit) are replaced by O(1) count triggers and an external-content FTS5
   index kept in sync with the FTS5 ``'delete'`` command, rebuilt from every
   message;
4. the views other programs read are re-created exactly as they were;
5. ``PRAGMA foreign_key_check`` must come back empty before the caller commits.

The table rebuild drops ``sessions``: with foreign keys on, that drop would
cascade into the messages. The caller (``sessionstore.migrations``) turns
them off before ``BEGIN``, where the pragma still works, and this revision
refuses to run if they are on.

On PostgreSQL (no legacy layout) it creates the same tables, with plpgsql
count triggers and a generated ``tsvector`` column under a GIN index (the
``sessionstore_search`` configuration: English stemming, accents folded).

Revision ID: 0002_adopt
Revises: 0001_legacy_baseline
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0002_adopt"
down_revision: str | Sequence[str] | None = "0001_legacy_baseline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Read by sessionstore's downgrade planner, which refuses before anything changes.
reversible = False
irreversible_reason = (
    "it cannot be undone in place (it quarantined orphans, rebuilt the tables and "
    "recomputed every count); go back by restoring the copy taken before the upgrade, "
    "the <database>.bak-legacy-<time> file beside it, with `sessionstore restore-backup`"
)

ROLES = "('user', 'assistant', 'system', 'tool')"
SQLITE_NOW = "(strftime('%Y-%m-%d %H:%M:%f', 'now') || '000')"
POSTGRES_NOW = "(now() AT TIME ZONE 'utc')"
_D = "[0-9]"
# GLOB pattern of the canonical text form, YYYY-MM-DD HH:MM:SS.ffffff.
CANONICAL = f"{_D * 4}-{_D * 2}-{_D * 2} {_D * 2}:{_D * 2}:{_D * 2}.{_D * 6}"
ORPHAN = "orphan: its session does not exist"

LEGACY_COLUMNS = {
    "sessions": {
        "session_id", "created_at", "updated_at", "last_activity", "model_id", "model_name",
        "title", "message_count", "total_tokens", "total_duration_seconds",
    },
    "messages": {
        "message_id", "session_id", "sequence_number", "role", "content", "timestamp",
        "tokens_used", "duration_seconds", "metadata",
    },
    "session_metadata": {"metadata_id", "session_id", "key", "value"},
}  # fmt: skip

# What other programs read; re-created only where a database lacks them (the
# legacy file's own definitions are kept as they are).
VIEWS = {
    "recent_sessions": """
        CREATE VIEW recent_sessions AS
        SELECT s.session_id, s.title, s.model_id, s.model_name, s.message_count,
               s.total_tokens, s.total_duration_seconds, s.created_at, s.updated_at,
               s.last_activity,
               (SELECT m.content FROM messages m
                 WHERE m.session_id = s.session_id AND m.role = 'user'
                 ORDER BY m.sequence_number ASC LIMIT 1) AS first_prompt,
               (SELECT m.content FROM messages m
                 WHERE m.session_id = s.session_id
                 ORDER BY m.sequence_number DESC LIMIT 1) AS last_message
        FROM sessions s
        ORDER BY s.last_activity DESC
    """,
    "session_stats": """
        CREATE VIEW session_stats AS
        SELECT model_id,
               COUNT(*) AS session_count,
               SUM(message_count) AS total_messages,
               SUM(total_tokens) AS total_tokens,
               AVG(total_duration_seconds) AS avg_duration,
               MIN(created_at) AS first_session,
               MAX(last_activity) AS last_session
        FROM sessions
        GROUP BY model_id
    """,
}

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Real = sa.Float().with_variant(sa.REAL(), "sqlite")


def _create_tables(suffix: str, now: str) -> None:
    """The current tables; ``suffix`` names them apart while the old ones still exist."""
    ts = sa.TIMESTAMP()
    op.create_table(
        "sessions" + suffix,
        sa.Column("session_id", sa.Text(), nullable=False),
        sa.Column("created_at", ts, nullable=False, server_default=sa.text(now)),
        sa.Column("updated_at", ts, nullable=False, server_default=sa.text(now)),
        sa.Column("last_activity", ts, nullable=False, server_default=sa.text(now)),
        sa.Column("model_id", sa.Text(), nullable=False),
        sa.Column("model_name", sa.Text()),
        sa.Column("title", sa.Text()),
        sa.Column("message_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("total_tokens", Id, nullable=False, server_default="0"),
        sa.Column("total_duration_seconds", Real, nullable=False, server_default="0"),
        sa.Column("last_seq", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("status", sa.Text(), nullable=False, server_default="active"),
        sa.PrimaryKeyConstraint("session_id", name="pk_sessions"),
        sa.CheckConstraint("status IN ('active', 'archived')", name="ck_sessions_status"),
        sa.CheckConstraint("message_count >= 0", name="ck_sessions_message_count"),
    )
    op.create_table(
        "messages" + suffix,
        sa.Column("message_id", Id, nullable=False, autoincrement=True),
        sa.Column("session_id", sa.Text(), nullable=False),
        sa.Column("sequence_number", sa.Integer(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("timestamp", ts, nullable=False, server_default=sa.text(now)),
        sa.Column("tokens_used", Id),
        sa.Column("duration_seconds", Real),
        sa.Column("metadata", sa.Text()),
        sa.Column("client_msg_id", sa.Text()),
        sa.PrimaryKeyConstraint("message_id", name="pk_messages"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.session_id"],
            name="fk_messages_session_id_sessions",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "session_id", "sequence_number", name="uq_messages_session_id_sequence_number"
        ),
        sa.CheckConstraint(f"role IN {ROLES}", name="ck_messages_role"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "session_metadata" + suffix,
        sa.Column("metadata_id", Id, nullable=False, autoincrement=True),
        sa.Column("session_id", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text()),
        sa.PrimaryKeyConstraint("metadata_id", name="pk_session_metadata"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.session_id"],
            name="fk_session_metadata_session_id_sessions",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("session_id", "key", name="uq_session_metadata_session_id_key"),
        sqlite_autoincrement=True,
    )


def _create_quarantine_tables() -> None:
    ts = sa.TIMESTAMP()
    op.create_table(
        "quarantined_sessions",
        sa.Column("quarantine_id", Id, nullable=False, autoincrement=True),
        sa.Column("session_id", sa.Text()),
        sa.Column("created_at", sa.Text()),
        sa.Column("updated_at", sa.Text()),
        sa.Column("last_activity", sa.Text()),
        sa.Column("model_id", sa.Text()),
        sa.Column("model_name", sa.Text()),
        sa.Column("title", sa.Text()),
        sa.Column("message_count", sa.Integer()),
        sa.Column("total_tokens", Id),
        sa.Column("total_duration_seconds", Real),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("quarantined_at", ts, nullable=False),
        sa.PrimaryKeyConstraint("quarantine_id", name="pk_quarantined_sessions"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "quarantined_messages",
        sa.Column("message_id", Id, nullable=False, autoincrement=False),
        sa.Column("session_id", sa.Text()),
        sa.Column("sequence_number", sa.Integer()),
        sa.Column("role", sa.Text()),
        sa.Column("content", sa.Text()),
        sa.Column("timestamp", sa.Text()),
        sa.Column("tokens_used", Id),
        sa.Column("duration_seconds", Real),
        sa.Column("metadata", sa.Text()),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("quarantined_at", ts, nullable=False),
        sa.PrimaryKeyConstraint("message_id", name="pk_quarantined_messages"),
    )
    op.create_table(
        "quarantined_metadata",
        sa.Column("metadata_id", Id, nullable=False, autoincrement=False),
        sa.Column("session_id", sa.Text()),
        sa.Column("key", sa.Text()),
        sa.Column("value", sa.Text()),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("quarantined_at", ts, nullable=False),
        sa.PrimaryKeyConstraint("metadata_id", name="pk_quarantined_metadata"),
    )


def _create_indexes() -> None:
    op.create_index(
        "ix_sessions_last_activity_session_id", "sessions", ["last_activity", "session_id"]
    )
    op.create_index(
        "ix_sessions_model_id_last_activity",
        "sessions",
        ["model_id", "last_activity", "session_id"],
    )
    op.create_index(
        "ix_sessions_status_last_activity", "sessions", ["status", "last_activity", "session_id"]
    )
    # Both filters at once: without it a rare model's active sessions are found
    # by walking every active session.
    op.create_index(
        "ix_sessions_model_id_status_last_activity",
        "sessions",
        ["model_id", "status", "last_activity", "session_id"],
    )
    op.create_index("ix_sessions_created_at", "sessions", ["created_at"])
    op.create_index(
        "uq_messages_session_id_client_msg_id",
        "messages",
        ["session_id", "client_msg_id"],
        unique=True,
        sqlite_where=sa.text("client_msg_id IS NOT NULL"),
        postgresql_where=sa.text("client_msg_id IS NOT NULL"),
    )


# --- SQLite ---------------------------------------------------------------------

SQLITE_TRIGGERS = (
    # One row in, one O(1) update of its session: the count, the totals, the
    # highest sequence number, the activity time, and the title from the first
    # user message (what the legacy title trigger did).
    """
    CREATE TRIGGER trg_messages_after_insert AFTER INSERT ON messages
    BEGIN
        UPDATE sessions SET
            message_count = message_count + 1,
            total_tokens = total_tokens + COALESCE(NEW.tokens_used, 0),
            total_duration_seconds = total_duration_seconds + COALESCE(NEW.duration_seconds, 0),
            last_seq = MAX(last_seq, NEW.sequence_number),
            last_activity = MAX(last_activity, NEW.timestamp),
            updated_at = MAX(updated_at, NEW.timestamp),
            title = CASE
                WHEN NEW.role = 'user' AND (title IS NULL OR title = '') THEN
                    CASE WHEN length(NEW.content) > 60
                         THEN substr(NEW.content, 1, 60) || '...' ELSE NEW.content END
                ELSE title END
        WHERE session_id = NEW.session_id;
        INSERT INTO messages_fts (rowid, content) VALUES (NEW.message_id, NEW.content);
    END
    """,
    """
    CREATE TRIGGER trg_messages_after_delete AFTER DELETE ON messages
    BEGIN
        UPDATE sessions SET
            message_count = message_count - 1,
            total_tokens = total_tokens - COALESCE(OLD.tokens_used, 0),
            total_duration_seconds = total_duration_seconds - COALESCE(OLD.duration_seconds, 0)
        WHERE session_id = OLD.session_id;
        INSERT INTO messages_fts (messages_fts, rowid, content)
            VALUES ('delete', OLD.message_id, OLD.content);
    END
    """,
    # An edit replaces exactly one document in the index.
    """
    CREATE TRIGGER trg_messages_after_update_content AFTER UPDATE OF message_id, content
    ON messages
    BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, content)
            VALUES ('delete', OLD.message_id, OLD.content);
        INSERT INTO messages_fts (rowid, content) VALUES (NEW.message_id, NEW.content);
    END
    """,
    # A message moved between sessions, or whose tokens or duration changed,
    # leaves its old session's totals and joins its new one's.
    """
    CREATE TRIGGER trg_messages_after_update_totals
    AFTER UPDATE OF session_id, tokens_used, duration_seconds ON messages
    BEGIN
        UPDATE sessions SET
            message_count = message_count - 1,
            total_tokens = total_tokens - COALESCE(OLD.tokens_used, 0),
            total_duration_seconds = total_duration_seconds - COALESCE(OLD.duration_seconds, 0)
        WHERE session_id = OLD.session_id;
        UPDATE sessions SET
            message_count = message_count + 1,
            total_tokens = total_tokens + COALESCE(NEW.tokens_used, 0),
            total_duration_seconds = total_duration_seconds + COALESCE(NEW.duration_seconds, 0),
            last_seq = MAX(last_seq, NEW.sequence_number)
        WHERE session_id = NEW.session_id;
    END
    """,
)


def _canonical(column: str, fallback: str) -> str:
    """SQL turning a legacy timestamp into ``YYYY-MM-DD HH:MM:SS.ffffff`` UTC text."""
    return (
        f"COALESCE(CASE"
        f" WHEN {column} GLOB '{CANONICAL}' THEN {column}"
        f" WHEN typeof({column}) IN ('integer', 'real')"
        f" THEN strftime('%Y-%m-%d %H:%M:%f', {column}, 'unixepoch') || '000'"
        f" ELSE strftime('%Y-%m-%d %H:%M:%f', {column}) || '000' END, {fallback})"
    )


def _upgrade_sqlite() -> None:
    bind = op.get_bind()
    if bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError(
            "0002_adopt rebuilds tables and must run with foreign keys off: "
            "with them on, dropping the old sessions table cascades into the messages. "
            "Run it through `sessionstore upgrade` or `alembic upgrade`, which turn them off."
        )
    for table, expected in LEGACY_COLUMNS.items():
        found = {row[1] for row in bind.exec_driver_sql(f"PRAGMA table_info({table})")}
        unknown = found - expected
        if unknown or not found:
            raise RuntimeError(
                f"table {table} has columns {sorted(found)}, not the legacy layout "
                f"{sorted(expected)}; nothing was changed"
            )

    # Views and triggers name the tables being rebuilt; keep the views' own SQL.
    views = bind.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'view' ORDER BY rowid"
    ).all()
    for name, _ in views:
        op.execute(f'DROP VIEW "{name}"')
    triggers = bind.exec_driver_sql(
        "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        " AND tbl_name IN ('sessions', 'messages', 'session_metadata')"
    ).scalars()
    for name in list(triggers):
        op.execute(f'DROP TRIGGER "{name}"')
    op.execute("DROP TABLE IF EXISTS sessions_fts")

    _create_quarantine_tables()
    # A legacy TEXT PRIMARY KEY admits NULL: such a row cannot be kept as a session.
    op.execute(
        f"""
        INSERT INTO quarantined_sessions (session_id, created_at, updated_at, last_activity,
            model_id, model_name, title, message_count, total_tokens, total_duration_seconds,
            reason, quarantined_at)
        SELECT session_id, created_at, updated_at, last_activity, model_id, model_name, title,
               message_count, total_tokens, total_duration_seconds,
               'session without an id', {SQLITE_NOW}
        FROM sessions WHERE session_id IS NULL
        """
    )
    op.execute(
        f"""
        INSERT INTO quarantined_messages
        SELECT m.message_id, m.session_id, m.sequence_number, m.role, m.content,
               m.timestamp, m.tokens_used, m.duration_seconds, m.metadata,
               '{ORPHAN}', {SQLITE_NOW}
        FROM messages m
        WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.session_id = m.session_id)
        """
    )
    op.execute(
        f"""
        INSERT INTO quarantined_metadata
        SELECT d.metadata_id, d.session_id, d.key, d.value, '{ORPHAN}', {SQLITE_NOW}
        FROM session_metadata d
        WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.session_id = d.session_id)
        """
    )
    # AUTOINCREMENT promised never to reuse an id; keep that promise across the
    # rebuild, including for the ids now in quarantine.
    sequences = dict(
        bind.exec_driver_sql(
            "SELECT name, seq FROM sqlite_sequence WHERE name IN ('messages', 'session_metadata')"
        ).all()
    )

    _create_tables("_new", SQLITE_NOW)
    created = _canonical("s.created_at", SQLITE_NOW)
    op.execute(
        f"""
        INSERT INTO sessions_new (session_id, created_at, updated_at, last_activity, model_id,
            model_name, title, message_count, total_tokens, total_duration_seconds, last_seq,
            status)
        SELECT s.session_id, {created},
               {_canonical("s.updated_at", created)},
               {_canonical("s.last_activity", created)},
               s.model_id, s.model_name, s.title,
               COALESCE(agg.n, 0), COALESCE(agg.tokens, 0), COALESCE(agg.duration, 0.0),
               COALESCE(agg.last_seq, 0), 'active'
        FROM sessions s
        LEFT JOIN (SELECT session_id, COUNT(*) AS n, SUM(COALESCE(tokens_used, 0)) AS tokens,
                          SUM(COALESCE(duration_seconds, 0)) AS duration,
                          MAX(sequence_number) AS last_seq
                   FROM messages GROUP BY session_id) agg ON agg.session_id = s.session_id
        WHERE s.session_id IS NOT NULL
        """
    )
    op.execute(
        f"""
        INSERT INTO messages_new (message_id, session_id, sequence_number, role, content,
            timestamp, tokens_used, duration_seconds, metadata, client_msg_id)
        SELECT m.message_id, m.session_id, m.sequence_number, m.role, m.content,
               {_canonical("m.timestamp", "s.created_at")},
               m.tokens_used, m.duration_seconds, m.metadata, NULL
        FROM messages m JOIN sessions_new s ON s.session_id = m.session_id
        ORDER BY m.message_id
        """
    )
    op.execute(
        """
        INSERT INTO session_metadata_new (metadata_id, session_id, key, value)
        SELECT d.metadata_id, d.session_id, d.key, d.value
        FROM session_metadata d
        WHERE EXISTS (SELECT 1 FROM sessions_new s WHERE s.session_id = d.session_id)
        ORDER BY d.metadata_id
        """
    )
    for table in ("messages", "session_metadata", "sessions"):
        op.execute(f"DROP TABLE {table}")
    for table in ("sessions", "messages", "session_metadata"):
        op.execute(f"ALTER TABLE {table}_new RENAME TO {table}")
    for table, seq in sequences.items():
        bind.exec_driver_sql(
            "UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = ?", (seq, table)
        )
        bind.exec_driver_sql(
            "INSERT INTO sqlite_sequence (name, seq) SELECT ?, ?"
            " WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = ?)",
            (table, seq, table),
        )

    _create_indexes()
    op.execute(
        """
        CREATE VIRTUAL TABLE messages_fts USING fts5(
            content,
            content = 'messages',
            content_rowid = 'message_id',
            tokenize = 'porter unicode61 remove_diacritics 2'
        )
        """
    )
    op.execute("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')")
    for trigger in SQLITE_TRIGGERS:
        op.execute(trigger)

    found = {name for name, _ in views}
    for name, sql in views:
        op.execute(sql)
        try:
            bind.exec_driver_sql(f'SELECT * FROM "{name}" LIMIT 0').all()
        except sa.exc.DBAPIError as exc:
            raise RuntimeError(
                f"the view {name!r} no longer works on the new layout ({exc.orig}); "
                "drop or rewrite it and upgrade again — nothing was changed"
            ) from None
    for name, sql in VIEWS.items():
        if name not in found:
            op.execute(sql)

    problems = bind.exec_driver_sql("PRAGMA foreign_key_check").all()
    if problems:
        raise RuntimeError(f"foreign key check failed after the rebuild: {problems[:5]}")


# --- PostgreSQL ---------------------------------------------------------------------

POSTGRES_FUNCTIONS = (
    """
    CREATE FUNCTION sessionstore_messages_after_insert() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE sessions SET
            message_count = message_count + 1,
            total_tokens = total_tokens + COALESCE(NEW.tokens_used, 0),
            total_duration_seconds = total_duration_seconds + COALESCE(NEW.duration_seconds, 0),
            last_seq = GREATEST(last_seq, NEW.sequence_number),
            last_activity = GREATEST(last_activity, NEW.timestamp),
            updated_at = GREATEST(updated_at, NEW.timestamp),
            title = CASE
                WHEN NEW.role = 'user' AND (title IS NULL OR title = '') THEN
                    CASE WHEN length(NEW.content) > 60
                         THEN substr(NEW.content, 1, 60) || '...' ELSE NEW.content END
                ELSE title END
        WHERE session_id = NEW.session_id;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION sessionstore_messages_after_delete() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE sessions SET
            message_count = message_count - 1,
            total_tokens = total_tokens - COALESCE(OLD.tokens_used, 0),
            total_duration_seconds = total_duration_seconds - COALESCE(OLD.duration_seconds, 0)
        WHERE session_id = OLD.session_id;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION sessionstore_messages_after_update() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE sessions SET
            message_count = message_count - 1,
            total_tokens = total_tokens - COALESCE(OLD.tokens_used, 0),
            total_duration_seconds = total_duration_seconds - COALESCE(OLD.duration_seconds, 0)
        WHERE session_id = OLD.session_id;
        UPDATE sessions SET
            message_count = message_count + 1,
            total_tokens = total_tokens + COALESCE(NEW.tokens_used, 0),
            total_duration_seconds = total_duration_seconds + COALESCE(NEW.duration_seconds, 0),
            last_seq = GREATEST(last_seq, NEW.sequence_number)
        WHERE session_id = NEW.session_id;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER trg_messages_after_insert AFTER INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION sessionstore_messages_after_insert()
    """,
    """
    CREATE TRIGGER trg_messages_after_delete AFTER DELETE ON messages
    FOR EACH ROW EXECUTE FUNCTION sessionstore_messages_after_delete()
    """,
    """
    CREATE TRIGGER trg_messages_after_update_totals
    AFTER UPDATE OF session_id, tokens_used, duration_seconds ON messages
    FOR EACH ROW EXECUTE FUNCTION sessionstore_messages_after_update()
    """,
)


def _upgrade_postgresql() -> None:
    _create_tables("", POSTGRES_NOW)
    _create_quarantine_tables()
    _create_indexes()
    # The search index: a stored tsvector kept by PostgreSQL itself, under GIN.
    # English stemming with accents folded, as FTS5's remove_diacritics does.
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
    op.execute("CREATE TEXT SEARCH CONFIGURATION sessionstore_search (COPY = english)")
    op.execute(
        "ALTER TEXT SEARCH CONFIGURATION sessionstore_search"
        " ALTER MAPPING FOR hword, hword_part, word WITH unaccent, english_stem"
    )
    # A tsvector holds at most 1 MB: the first 250,000 characters of a message are
    # indexed, far beyond any prompt, and a longer message is still stored whole.
    op.execute(
        "ALTER TABLE messages ADD COLUMN search_vector tsvector GENERATED ALWAYS AS"
        " (to_tsvector('sessionstore_search', left(content, 250000))) STORED"
    )
    op.execute("CREATE INDEX ix_messages_search_vector ON messages USING gin (search_vector)")
    for statement in POSTGRES_FUNCTIONS:
        op.execute(statement)
    for sql in VIEWS.values():
        op.execute(sql)


def upgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        _upgrade_sqlite()
    else:
        _upgrade_postgresql()


def downgrade() -> None:
    # Never reached from sessionstore or its alembic environment: they read
    # ``reversible`` and refuse before any revision runs.
    raise RuntimeError(f"0002_adopt cannot be downgraded: {irreversible_reason}")
