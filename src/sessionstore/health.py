"""Health checks, and the repairs that lose nothing.

:meth:`Health.check` runs the users' five checks on the legacy file
(``integrity_check``; foreign keys on for the store's own connections; no
orphans; every count equal to its messages; the count triggers present) and
more: the search index against the messages, the schema revision, the
journal mode and ``synchronous`` in force, the SQLite version. It never
raises for what it finds — a damaged file is a failed check in the report.

:meth:`Health.repair` fixes what can be fixed without losing data: orphans
move to quarantine, drifted counts and totals are recomputed from the
messages, the search index is rebuilt. What needs a person (a damaged file,
a missing trigger) is reported, not touched.

The counting queries here are shared with the migrations, which report the
same figures for a legacy file before they repair it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, bindparam, text

from .engine import reader, sqlite_path
from .errors import SessionStoreError, translate
from .integrity import DRIFTED_SESSIONS, ORPHANED_MESSAGES, ORPHANED_METADATA
from .migrations import check_at_head
from .models import UTCDateTime
from .transactions import Runner

__all__ = ["Check", "Health", "HealthReport", "RepairReport"]

COUNT_TRIGGERS = (
    "trg_messages_after_insert",
    "trg_messages_after_delete",
    "trg_messages_after_update_totals",
)
ORPHAN_REASON = "orphan: its session does not exist"

# External-content FTS5 keeps one docsize row per indexed message.
INDEX_MISSING = (
    "SELECT COUNT(*) FROM messages m WHERE NOT EXISTS "
    "(SELECT 1 FROM messages_fts_docsize d WHERE d.id = m.message_id)"
)
INDEX_STALE = (
    "SELECT COUNT(*) FROM messages_fts_docsize d WHERE NOT EXISTS "
    "(SELECT 1 FROM messages m WHERE m.message_id = d.id)"
)


def scalar(conn: Connection, sql: str) -> int:
    return int(conn.execute(text(sql)).scalar() or 0)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    #: How many things are wrong, for checks that count them.
    count: int = 0


@dataclass(frozen=True, slots=True)
class HealthReport:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def __getitem__(self, name: str) -> Check:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.ok)


@dataclass(frozen=True, slots=True)
class RepairReport:
    orphaned_messages_quarantined: int
    orphaned_metadata_quarantined: int
    counts_repaired: int
    index_rebuilt: bool


class Health:
    """``store.health``: what is wrong with the database, and the safe repairs."""

    def __init__(self, engine: Engine, runner: Runner, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._runner = runner
        self._clock = clock
        self._sqlite = engine.dialect.name == "sqlite"

    def check(self, *, quick: bool = False) -> HealthReport:
        """Run every check; ``quick`` uses ``quick_check`` instead of ``integrity_check``."""
        checks: list[Check] = []
        probes: list[tuple[str, Callable[[Connection], Check]]] = [
            ("integrity", lambda c: self._integrity(c, quick)),
            ("foreign_keys", self._foreign_keys),
            ("schema", self._schema),
            ("orphans", self._orphans),
            ("counts", self._counts),
            ("count_triggers", self._triggers),
            ("search_index", self._search_index),
            ("journal", self._journal),
            ("version", self._version),
        ]
        for name, probe in probes:
            try:
                with reader(self._engine).connect() as conn:
                    checks.append(probe(conn))
                    conn.rollback()
            except Exception as exc:  # a damaged file must not stop the report
                error = (
                    exc
                    if isinstance(exc, SessionStoreError)
                    else translate(exc, path=sqlite_path(self._engine))
                )
                checks.append(Check(name, False, str(error)))
            if name == "integrity" and not checks[-1].ok:
                # Nothing else can be trusted on a file that fails integrity_check.
                break
        return HealthReport(tuple(checks))

    def _integrity(self, conn: Connection, quick: bool) -> Check:
        if not self._sqlite:
            return Check("integrity", True, "PostgreSQL checks its own pages")
        pragma = "quick_check" if quick else "integrity_check"
        rows = [str(r[0]) for r in conn.exec_driver_sql(f"PRAGMA {pragma}")]
        ok = rows == ["ok"]
        return Check("integrity", ok, "ok" if ok else "; ".join(rows[:5]), 0 if ok else len(rows))

    def _foreign_keys(self, conn: Connection) -> Check:
        if not self._sqlite:
            return Check("foreign_keys", True, "always enforced by PostgreSQL")
        on = conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        return Check("foreign_keys", on, "on" if on else "OFF on the store's connections")

    def _schema(self, conn: Connection) -> Check:
        try:
            check_at_head(self._engine)
        except SessionStoreError as exc:
            return Check("schema", False, str(exc))
        return Check("schema", True, "at head")

    def _orphans(self, conn: Connection) -> Check:
        n = scalar(conn, ORPHANED_MESSAGES) + scalar(conn, ORPHANED_METADATA)
        return Check("orphans", n == 0, f"{n} rows without their session", n)

    def _counts(self, conn: Connection) -> Check:
        n = len(conn.execute(text(DRIFTED_SESSIONS)).all())
        return Check("counts", n == 0, f"{n} sessions whose count or totals drifted", n)

    def _triggers(self, conn: Connection) -> Check:
        if self._sqlite:
            sql = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        else:
            sql = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
        present = {str(r[0]) for r in conn.execute(text(sql))}
        missing = [name for name in COUNT_TRIGGERS if name not in present]
        detail = "present" if not missing else f"missing: {', '.join(missing)}"
        return Check("count_triggers", not missing, detail, len(missing))

    def _search_index(self, conn: Connection) -> Check:
        if not self._sqlite:
            return Check("search_index", True, "generated tsvector column, always in step")
        missing, stale, mismatch = _index_problems(conn)
        if mismatch is not None:
            return Check("search_index", False, f"index differs from the messages: {mismatch}", 1)
        problems = missing + stale
        detail = f"{missing} messages missing from the index, {stale} stale index rows"
        return Check("search_index", problems == 0, detail, problems)

    def _journal(self, conn: Connection) -> Check:
        if not self._sqlite:
            return Check("journal", True, "PostgreSQL write-ahead log")
        mode = str(conn.exec_driver_sql("PRAGMA journal_mode").scalar())
        sync = int(conn.exec_driver_sql("PRAGMA synchronous").scalar() or 0)
        names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
        ok = mode.lower() in ("wal", "memory") and sync >= 1
        return Check("journal", ok, f"journal_mode={mode}, synchronous={names.get(sync, sync)}")

    def _version(self, conn: Connection) -> Check:
        if self._sqlite:
            version = str(conn.exec_driver_sql("SELECT sqlite_version()").scalar())
            # FTS5 'delete' on external content and RETURNING need 3.35.
            ok = tuple(int(p) for p in version.split(".")[:2]) >= (3, 35)
            return Check("version", ok, f"SQLite {version}")
        version = str(conn.exec_driver_sql("SHOW server_version").scalar())
        return Check("version", True, f"PostgreSQL {version}")

    def repair(self) -> RepairReport:
        """Quarantine orphans, recompute drifted counts, rebuild the search index."""
        now = self._clock()

        def work(conn: Connection) -> RepairReport:
            moved_messages, moved_metadata = quarantine_orphans(conn, now)
            drifted = [row[0] for row in conn.execute(text(DRIFTED_SESSIONS))]
            for session_id in drifted:
                conn.execute(RECOUNT, {"sid": session_id})
            rebuilt = False
            if self._sqlite and _index_problems(conn) != (0, 0, None):
                conn.exec_driver_sql("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')")
                rebuilt = True
            return RepairReport(moved_messages, moved_metadata, len(drifted), rebuilt)

        return self._runner.write(work)


def _index_problems(conn: Connection) -> tuple[int, int, str | None]:
    """Messages missing from the FTS5 index, stale index rows, and (when both are
    zero) what FTS5's own integrity-check against the messages says, if it objects."""
    missing = scalar(conn, INDEX_MISSING)
    stale = scalar(conn, INDEX_STALE)
    if missing or stale:
        return missing, stale, None
    try:
        conn.exec_driver_sql(
            "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)"
        )
    except Exception as exc:
        orig = getattr(exc, "orig", exc)
        if not isinstance(orig, sqlite3.DatabaseError):
            raise
        return 0, 0, str(orig)
    return 0, 0, None


RECOUNT = text(
    """
    UPDATE sessions SET
        message_count = agg.n, total_tokens = agg.tokens, total_duration_seconds = agg.duration,
        last_seq = CASE WHEN agg.last_seq > sessions.last_seq THEN agg.last_seq
                        ELSE sessions.last_seq END
    FROM (SELECT COUNT(*) AS n, COALESCE(SUM(tokens_used), 0) AS tokens,
                 COALESCE(SUM(duration_seconds), 0) AS duration,
                 COALESCE(MAX(sequence_number), 0) AS last_seq
          FROM messages WHERE session_id = :sid) AS agg
    WHERE sessions.session_id = :sid
    """
)

_QUARANTINE_MESSAGES = text(
    "INSERT INTO quarantined_messages (message_id, session_id, sequence_number, role,"
    " content, timestamp, tokens_used, duration_seconds, metadata, reason, quarantined_at)"
    " SELECT message_id, session_id, sequence_number, role, content,"
    " CAST(timestamp AS TEXT), tokens_used, duration_seconds, metadata, :reason, :now"
    " FROM messages WHERE message_id IN :ids"
).bindparams(bindparam("now", type_=UTCDateTime), bindparam("ids", expanding=True))
_QUARANTINE_METADATA = text(
    "INSERT INTO quarantined_metadata (metadata_id, session_id, key, value, reason,"
    " quarantined_at) SELECT metadata_id, session_id, key, value, :reason, :now"
    " FROM session_metadata WHERE metadata_id IN :ids"
).bindparams(bindparam("now", type_=UTCDateTime), bindparam("ids", expanding=True))
_DELETE_MESSAGES = text("DELETE FROM messages WHERE message_id IN :ids").bindparams(
    bindparam("ids", expanding=True)
)
_DELETE_METADATA = text("DELETE FROM session_metadata WHERE metadata_id IN :ids").bindparams(
    bindparam("ids", expanding=True)
)


def quarantine_orphans(conn: Connection, now: datetime) -> tuple[int, int]:
    """Move messages and metadata rows whose session is gone into quarantine."""
    moved = []
    for find, copy, remove in (
        (ORPHANED_MESSAGES.replace("COUNT(*)", "m.message_id"), _QUARANTINE_MESSAGES,
         _DELETE_MESSAGES),
        (ORPHANED_METADATA.replace("COUNT(*)", "d.metadata_id"), _QUARANTINE_METADATA,
         _DELETE_METADATA),
    ):  # fmt: skip
        ids = [row[0] for row in conn.execute(text(find))]
        if ids:
            params = {"reason": ORPHAN_REASON, "now": now, "ids": ids}
            conn.execute(copy, params)
            conn.execute(remove, params)
        moved.append(len(ids))
    return moved[0], moved[1]
