"""The legacy baseline: the schema of `.ai-router-sessions.db` as the old layer wrote it.

A legacy file (its tables present, no ``alembic_version``) is stamped at this
revision without running it; an empty SQLite database runs it, so fresh and
adopted databases reach ``head`` through the same later revisions.

It reproduces the legacy layout, including its faulty triggers, so that the
adoption revision after it is exercised by every fresh database too.

PostgreSQL never had a legacy layout: there this revision does nothing and the
next one creates the schema.

Revision ID: 0001_legacy_baseline
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0001_legacy_baseline"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEGACY_SCHEMA = (
    """
    CREATE TABLE sessions (
        session_id TEXT PRIMARY KEY,
        created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
        updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
        model_id TEXT NOT NULL,
        model_name TEXT,
        title TEXT,
        message_count INTEGER DEFAULT 0,
        total_tokens INTEGER DEFAULT 0,
        total_duration_seconds REAL DEFAULT 0,
        last_activity TIMESTAMP DEFAULT CURRENT_TIMESTAMP
    )
    """,
    """
    CREATE TABLE messages (
        message_id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL,
        sequence_number INTEGER NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
        content TEXT NOT NULL,
        timestamp TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
        tokens_used INTEGER,
        duration_seconds REAL,
        metadata TEXT,
        FOREIGN KEY (session_id) REFERENCES sessions (session_id) ON DELETE CASCADE,
        UNIQUE (session_id, sequence_number)
    )
    """,
    """
    CREATE TABLE session_metadata (
        metadata_id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT,
        FOREIGN KEY (session_id) REFERENCES sessions (session_id) ON DELETE CASCADE,
        UNIQUE (session_id, key)
    )
    """,
    "CREATE INDEX idx_sessions_created ON sessions (created_at DESC)",
    "CREATE INDEX idx_sessions_updated ON sessions (updated_at DESC)",
    "CREATE INDEX idx_sessions_model ON sessions (model_id)",
    "CREATE INDEX idx_sessions_activity ON sessions (last_activity DESC)",
    "CREATE INDEX idx_messages_session ON messages (session_id, sequence_number)",
    "CREATE INDEX idx_messages_timestamp ON messages (timestamp DESC)",
    "CREATE INDEX idx_messages_role ON messages (role)",
    "CREATE INDEX idx_metadata_session ON session_metadata (session_id)",
    "CREATE INDEX idx_metadata_key ON session_metadata (key)",
    """
    CREATE VIRTUAL TABLE sessions_fts USING fts5(
        session_id UNINDEXED, title, content, tokenize = 'porter unicode61'
    )
    """,
    # The legacy triggers, faults included: the count is only ever nudged,
    # and an edit or a delete wipes every index row of the session.
    """
    CREATE TRIGGER update_session_timestamp AFTER INSERT ON messages
    BEGIN
        UPDATE sessions SET updated_at = CURRENT_TIMESTAMP, last_activity = CURRENT_TIMESTAMP,
            message_count = message_count + 1
        WHERE session_id = NEW.session_id;
    END
    """,
    """
    CREATE TRIGGER decrement_message_count AFTER DELETE ON messages
    BEGIN
        UPDATE sessions SET message_count = message_count - 1
        WHERE session_id = OLD.session_id;
    END
    """,
    """
    CREATE TRIGGER sessions_fts_insert AFTER INSERT ON messages
    BEGIN
        INSERT INTO sessions_fts (session_id, title, content)
        SELECT NEW.session_id, s.title, NEW.content FROM sessions s
        WHERE s.session_id = NEW.session_id;
    END
    """,
    """
    CREATE TRIGGER sessions_fts_update AFTER UPDATE ON messages
    BEGIN
        DELETE FROM sessions_fts WHERE session_id = OLD.session_id;
        INSERT INTO sessions_fts (session_id, title, content)
        SELECT NEW.session_id, s.title, NEW.content FROM sessions s
        WHERE s.session_id = NEW.session_id;
    END
    """,
    """
    CREATE TRIGGER sessions_fts_delete AFTER DELETE ON messages
    BEGIN
        DELETE FROM sessions_fts WHERE session_id = OLD.session_id;
    END
    """,
    """
    CREATE TRIGGER auto_generate_title AFTER INSERT ON messages
    WHEN NEW.role = 'user' AND NEW.sequence_number = 1
    BEGIN
        UPDATE sessions SET title = CASE WHEN length(NEW.content) > 60
            THEN substr(NEW.content, 1, 60) || '...' ELSE NEW.content END
        WHERE session_id = NEW.session_id AND (title IS NULL OR title = '');
    END
    """,
    """
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
    """
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
)


def upgrade() -> None:
    if op.get_context().dialect.name != "sqlite":
        return
    for statement in LEGACY_SCHEMA:
        op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name != "sqlite":
        return
    # The stamp is undone either way. Tables that hold rows are a legacy file's
    # own data: they stay, and the file is a legacy file again (the next upgrade
    # adopts it, with a backup). Only the empty layout this revision made goes.
    conn = op.get_bind()
    for table in ("sessions", "messages", "session_metadata"):
        if conn.exec_driver_sql(f"SELECT EXISTS (SELECT 1 FROM {table})").scalar():
            return
    for view in ("session_stats", "recent_sessions"):
        op.execute(f"DROP VIEW IF EXISTS {view}")
    for table in ("sessions_fts", "session_metadata", "messages", "sessions"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
