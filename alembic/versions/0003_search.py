"""Search: session titles join the full-text index.

Messages are indexed since 0002 (FTS5 external content on SQLite, a stored
``tsvector`` under GIN on PostgreSQL). This revision makes session titles
searchable too, so a session whose title matches is found even when no
message does.

SQLite: an external-content FTS5 table over ``sessions``. Its rowid must be
an integer that never changes, and ``sessions`` has a text key (its implicit
rowid may be renumbered by ``VACUUM``), so each session gets a
``search_key``: the next integer, from a unique index, assigned when the row
is inserted. Triggers keep the index in step with inserts, title changes and
deletes, using the FTS5 ``'delete'`` command — only when the title really
changes (every append names ``title`` in its session update, mostly to leave
it as it is).

PostgreSQL: a generated ``title_vector`` under a GIN index.

Revision ID: 0003_search
Revises: 0002_adopt
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003_search"
down_revision: str | Sequence[str] | None = "0002_adopt"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_UPGRADE = (
    "ALTER TABLE sessions ADD COLUMN search_key INTEGER",
    # Today's rowids are distinct; from here on the key never changes, whatever
    # VACUUM does to the rowids. The unique index makes MAX() below one probe.
    "UPDATE sessions SET search_key = rowid",
    "CREATE UNIQUE INDEX uq_sessions_search_key ON sessions (search_key)",
    """
    CREATE TRIGGER trg_sessions_search_key AFTER INSERT ON sessions
    WHEN NEW.search_key IS NULL
    BEGIN
        UPDATE sessions
        SET search_key = (SELECT COALESCE(MAX(search_key), 0) + 1 FROM sessions)
        WHERE session_id = NEW.session_id;
    END
    """,
    """
    CREATE VIRTUAL TABLE session_titles_fts USING fts5(
        title,
        content = 'sessions',
        content_rowid = 'search_key',
        tokenize = 'porter unicode61 remove_diacritics 2'
    )
    """,
    "INSERT INTO session_titles_fts (session_titles_fts) VALUES ('rebuild')",
    # The key is assigned by the trigger above, after the row exists: index the
    # title once the key is there.
    """
    CREATE TRIGGER trg_sessions_title_index AFTER UPDATE OF search_key ON sessions
    WHEN OLD.search_key IS NULL AND NEW.search_key IS NOT NULL
    BEGIN
        INSERT INTO session_titles_fts (rowid, title) VALUES (NEW.search_key, NEW.title);
    END
    """,
    """
    CREATE TRIGGER trg_sessions_title_update AFTER UPDATE OF title ON sessions
    WHEN NEW.search_key IS NOT NULL AND OLD.title IS NOT NEW.title
    BEGIN
        INSERT INTO session_titles_fts (session_titles_fts, rowid, title)
            VALUES ('delete', OLD.search_key, OLD.title);
        INSERT INTO session_titles_fts (rowid, title) VALUES (NEW.search_key, NEW.title);
    END
    """,
    """
    CREATE TRIGGER trg_sessions_title_delete AFTER DELETE ON sessions
    WHEN OLD.search_key IS NOT NULL
    BEGIN
        INSERT INTO session_titles_fts (session_titles_fts, rowid, title)
            VALUES ('delete', OLD.search_key, OLD.title);
    END
    """,
)

POSTGRES_UPGRADE = (
    "ALTER TABLE sessions ADD COLUMN title_vector tsvector"
    " GENERATED ALWAYS AS (to_tsvector('sessionstore_search', coalesce(title, ''))) STORED",
    "CREATE INDEX ix_sessions_title_vector ON sessions USING gin (title_vector)",
)


def upgrade() -> None:
    statements = SQLITE_UPGRADE if op.get_context().dialect.name == "sqlite" else POSTGRES_UPGRADE
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        for trigger in (
            "trg_sessions_title_delete",
            "trg_sessions_title_update",
            "trg_sessions_title_index",
            "trg_sessions_search_key",
        ):
            op.execute(f"DROP TRIGGER {trigger}")
        op.execute("DROP TABLE session_titles_fts")
        op.execute("DROP INDEX uq_sessions_search_key")
        op.execute("ALTER TABLE sessions DROP COLUMN search_key")
    else:
        op.execute("DROP INDEX ix_sessions_title_vector")
        op.execute("ALTER TABLE sessions DROP COLUMN title_vector")
