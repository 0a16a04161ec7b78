"""Bringing any database to the schema this code expects, with Alembic, from code.

One path serves every starting point:

* an empty database runs every revision from the legacy baseline on;
* a legacy ``.ai-router-sessions.db`` (its tables, no ``alembic_version``)
  is first copied to a consistent backup beside it, then stamped at the
  legacy baseline, then upgraded;
* a database already at ``head`` is left alone: a second run changes nothing;
* anything else raises :class:`SchemaMismatchError` saying what was found.

Every revision of one upgrade runs in a single ``BEGIN IMMEDIATE``
transaction (SQLite DDL is transactional once the driver stops managing
transactions, see ``engine.py``), with foreign keys switched off *before*
``BEGIN`` (the pragma is a no-op inside a transaction) so table rebuilds do
not cascade, and ``PRAGMA foreign_key_check`` run before the commit. An
upgrade that fails or is killed midway leaves the previous revision in place.

Downgrades take the same path in the other direction
(:func:`sessionstore.downgrades.downgrade`), planned in full under the write
lock before any revision runs.

``alembic upgrade head`` from the command line arrives here too, through
``alembic/env.py`` and :mod:`sessionstore.alembic_runner`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from alembic import command

from . import files
from .backup import backup_beside
from .config import StoreConfig
from .engine import ensure_wal, probe, reader, sqlite_path
from .errors import (
    ConstraintViolation,
    MigrationError,
    SchemaMismatchError,
    SessionStoreError,
    StorageError,
    translate,
)
from .integrity import DRIFTED_SESSIONS, ORPHANED_MESSAGES, ORPHANED_METADATA

__all__ = [
    "LEGACY_BASELINE",
    "DatabaseState",
    "UpgradeReport",
    "alembic_config",
    "database_state",
    "head_revision",
    "resolve_url",
    "upgrade",
]

LEGACY_BASELINE = "0001_legacy_baseline"
LEGACY_TABLES = frozenset({"sessions", "messages"})
# Tables a legacy file may hold beside its own: FTS5 shadow tables and SQLite's.
_IGNORED_PREFIXES = ("sqlite_", "sessions_fts")

StateKind = Literal["empty", "legacy", "versioned"]


@dataclass(frozen=True, slots=True)
class DatabaseState:
    kind: StateKind
    revision: str | None
    tables: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UpgradeReport:
    """What an upgrade found and did."""

    #: ``empty``, ``legacy`` or ``versioned``: what the database was before.
    found: StateKind
    from_revision: str | None
    to_revision: str
    applied: tuple[str, ...] = ()
    #: The consistent copy taken before a legacy file was touched.
    backup_path: Path | None = None
    orphaned_messages_quarantined: int = 0
    orphaned_metadata_quarantined: int = 0
    #: Sessions whose message count or totals did not match their messages.
    counts_repaired: int = 0
    #: Messages the legacy search index had lost, now indexed again.
    index_rows_missing: int = 0
    index_rows_rebuilt: int = 0
    #: Messages whose ``metadata`` is not valid JSON: kept as text, listed here.
    invalid_json_message_ids: tuple[int, ...] = field(default=())

    @property
    def changed(self) -> bool:
        return bool(self.applied)


def resolve_url(url: str | None = None) -> str:
    return StoreConfig.from_env(url).url


def _script_location() -> str:
    packaged = resources.files("sessionstore") / "_alembic"
    if packaged.is_dir():
        return str(packaged)
    # A source checkout (or an editable install): the top-level alembic/ folder.
    checkout = Path(__file__).resolve().parents[2] / "alembic"
    if checkout.is_dir():
        return str(checkout)
    raise MigrationError("the migration scripts are missing from this installation")


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", _script_location())
    cfg.set_main_option("path_separator", "os")
    return cfg


@lru_cache(maxsize=1)
def _scripts() -> ScriptDirectory:
    """The migration scripts, read once per process: they do not change while it runs."""
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    head = _scripts().get_current_head()
    if head is None:
        raise MigrationError("the migration scripts have no head revision")
    return head


def _known_revisions() -> set[str]:
    return {rev.revision for rev in _scripts().walk_revisions()}


def database_state(conn: Connection) -> DatabaseState:
    tables = tuple(sorted(inspect(conn).get_table_names()))
    if "alembic_version" in tables:
        revision = MigrationContext.configure(conn).get_current_revision()
        if revision is not None and revision not in _known_revisions():
            raise SchemaMismatchError(
                f"the database is at revision {revision!r}, which this version of "
                f"sessionstore does not know (its head is {head_revision()!r}); "
                "install the sessionstore release that wrote it"
            )
        if revision is not None:
            return DatabaseState("versioned", revision, tables)
    # No revision (never stamped, or downgraded to base): what do the tables say?
    own = [t for t in tables if not t.startswith(_IGNORED_PREFIXES) and t != "alembic_version"]
    if not own:
        return DatabaseState("empty", None, tables)
    if set(own) >= LEGACY_TABLES and conn.dialect.name == "sqlite":
        return DatabaseState("legacy", None, tables)
    raise SchemaMismatchError(
        f"the database holds tables {', '.join(own)}, which are neither a sessionstore "
        "schema nor the legacy .ai-router-sessions.db layout; point the store at an "
        "empty database or at the right file"
    )


@contextmanager
def _foreign_keys_off(conn: Connection) -> Iterator[None]:
    """Foreign keys off for the duration, set outside any transaction."""
    if conn.dialect.name != "sqlite":
        yield
        return
    raw = conn.connection.dbapi_connection
    assert raw is not None
    raw.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        try:
            raw.execute("PRAGMA foreign_keys = ON")
        except Exception:
            # Never hand a connection without foreign keys back to the pool.
            conn.invalidate()
            raise


@dataclass(frozen=True, slots=True)
class _Census:
    orphaned_messages: int
    orphaned_metadata: int
    drifted: int
    index_missing: int
    invalid_json: tuple[int, ...]


def _legacy_census(conn: Connection) -> _Census:
    """What is wrong with a database at the legacy baseline, before it is repaired."""

    def scalar(sql: str) -> int:
        return int(conn.execute(text(sql)).scalar() or 0)

    orphaned_messages = scalar(ORPHANED_MESSAGES)
    has_metadata = "session_metadata" in inspect(conn).get_table_names()
    orphaned_metadata = scalar(ORPHANED_METADATA) if has_metadata else 0
    drifted = len(conn.execute(text(DRIFTED_SESSIONS)).all())
    index_missing = 0
    if "sessions_fts" in inspect(conn).get_table_names():
        index_missing = scalar(
            """
            SELECT COALESCE(SUM(MAX(0, live.n - COALESCE(fts.n, 0))), 0)
            FROM (SELECT m.session_id, COUNT(*) AS n FROM messages m
                  JOIN sessions s ON s.session_id = m.session_id GROUP BY m.session_id) live
            LEFT JOIN (SELECT session_id, COUNT(*) AS n FROM sessions_fts
                       GROUP BY session_id) fts ON fts.session_id = live.session_id
            """
        )
    invalid_json = tuple(
        int(row[0])
        for row in conn.execute(
            text(
                "SELECT m.message_id FROM messages m JOIN sessions s"
                " ON s.session_id = m.session_id"
                " WHERE m.metadata IS NOT NULL AND NOT json_valid(m.metadata)"
                " ORDER BY m.message_id"
            )
        )
    )
    return _Census(orphaned_messages, orphaned_metadata, drifted, index_missing, invalid_json)


def _stamp_legacy(conn: Connection) -> None:
    context = MigrationContext.configure(conn)
    context.stamp(_scripts(), LEGACY_BASELINE)


def _migrate(
    engine: Engine,
    run: Callable[[Connection], None],
    *,
    skip_when_current: bool,
    backup_dir: Path | None = None,
    adopt_legacy: bool = True,
    before_run: Callable[[Connection, str | None], None] | None = None,
) -> UpgradeReport:
    head = head_revision()
    path = sqlite_path(engine)
    with reader(engine).connect() as conn:
        before = database_state(conn)
        conn.rollback()
    if skip_when_current and before.kind == "versioned" and before.revision == head:
        ensure_wal(engine)
        return UpgradeReport(found=before.kind, from_revision=head, to_revision=head)

    backup_path = None
    if before.kind == "legacy" and path is not None and adopt_legacy:
        backup_path = backup_beside(path, "legacy", backup_dir)
    # The file is ours (or empty): now it may be switched to WAL, outside any transaction.
    files.step("upgrade:wal")
    ensure_wal(engine)

    with engine.connect() as conn, _foreign_keys_off(conn), conn.begin():
        # Look again under the write lock: another process may have got here first.
        state = database_state(conn)
        if state.kind == "legacy" and adopt_legacy:
            files.step("upgrade:stamp")
            _stamp_legacy(conn)
        start = MigrationContext.configure(conn).get_current_revision()
        census = None
        if before_run is not None:
            before_run(conn, start)
        if start == LEGACY_BASELINE and state.kind != "empty":
            census = _legacy_census(conn)
        files.step("upgrade:migrate")
        run(conn)
        end = MigrationContext.configure(conn).get_current_revision()
        if conn.dialect.name == "sqlite" and end != start:
            problems = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
            if problems:
                raise MigrationError(
                    f"foreign key check failed, upgrade rolled back: {problems[:5]}"
                )
        indexed = 0
        if end in (None, LEGACY_BASELINE):
            census = None  # nothing was adopted: a downgrade, or a stamp at the baseline
        if census is not None:
            indexed = int(conn.execute(text("SELECT COUNT(*) FROM messages")).scalar() or 0)
        files.step("upgrade:commit")
    files.step("upgrade:done")

    applied = _revisions_between(start, end)
    return UpgradeReport(
        found=before.kind,
        from_revision=None if before.kind != "versioned" else start,
        to_revision=end or "",
        applied=applied,
        backup_path=backup_path,
        orphaned_messages_quarantined=census.orphaned_messages if census else 0,
        orphaned_metadata_quarantined=census.orphaned_metadata if census else 0,
        counts_repaired=census.drifted if census else 0,
        index_rows_missing=census.index_missing if census else 0,
        index_rows_rebuilt=indexed,
        invalid_json_message_ids=census.invalid_json if census else (),
    )


def _revisions_between(start: str | None, end: str | None) -> tuple[str, ...]:
    """The revisions applied going from ``start`` up to ``end``, oldest first (none
    when ``end`` is not above ``start``: a downgrade reports what it undid itself)."""
    walked: list[str] = []
    revision = end
    while revision is not None and revision != start:
        walked.append(revision)
        script = _scripts().get_revision(revision)
        down = script.down_revision if script is not None else None
        revision = down if isinstance(down, str) else None
    if revision != start:
        return ()
    return tuple(reversed(walked))


def upgrade(
    engine: Engine, target: str = "head", *, backup_dir: Path | None = None
) -> UpgradeReport:
    """Bring the database behind ``engine`` to ``target`` (see the module docstring)."""

    def run(conn: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, target)

    # A server or file that cannot be reached is said so, not blamed on the upgrade.
    probe(engine)
    try:
        return _migrate(engine, run, skip_when_current=target == "head", backup_dir=backup_dir)
    except SessionStoreError:
        raise
    except Exception as exc:
        raise _migration_error(exc, engine) from exc


def _migration_error(exc: Exception, engine: Engine, what: str = "upgrade") -> SessionStoreError:
    translated = translate(exc, path=sqlite_path(engine))
    if type(translated) in (StorageError, ConstraintViolation):
        # The driver's own words, without the statement SQLAlchemy appends.
        return MigrationError(
            f"the {what} failed and was rolled back; the database is unchanged: {translated}"
        )
    return translated


def check_at_head(engine: Engine) -> None:
    """Raise :class:`SchemaMismatchError` unless the database is at ``head``."""
    head = head_revision()
    try:
        with reader(engine).connect() as conn:
            state = database_state(conn)
            conn.rollback()
    except SessionStoreError:
        raise
    except Exception as exc:
        raise translate(exc, path=sqlite_path(engine)) from exc
    if state.kind != "versioned" or state.revision != head:
        where = state.revision or state.kind
        raise SchemaMismatchError(
            f"the database is at {where!r}, not at {head!r}; run `sessionstore upgrade` "
            "(or open the store with upgrade=True)"
        )
    ensure_wal(engine)
