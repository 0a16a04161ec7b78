"""Health checks that only read, and the repairs that lose nothing.

:meth:`Health.check` runs the users' five checks on the legacy file
(``integrity_check``; foreign keys on for the store's own connections; no
orphans; every count equal to its messages; the count triggers present) and
more: every stored value readable (no BLOB in a text column, every
timestamp a time), the search indexes against the messages and titles, the schema
revision, the journal mode and ``synchronous`` in force, the SQLite version.
It never raises for what it finds — a damaged file is a failed check in the
report.

Every check only reads, so it runs beside writers and on a read-only file.
The search indexes are compared row for row with what they index (FTS5
keeps one ``_docsize`` row per indexed row), which finds the rows the legacy
triggers lost or left behind. FTS5's own ``integrity-check``, which also
compares every indexed word, is a write to SQLite: it runs only when asked
for (``deep=True``, ``sessionstore doctor --deep``), and only with the write
lock.

Each check ends in one of three states: ``ok``, ``failed`` (damage found),
or ``unchecked`` (the check could not run: another connection held the lock
it needs past the busy timeout, or the file is read-only). A check that
could not run never reports damage. :attr:`HealthReport.ok` is true when no
check failed; :attr:`HealthReport.complete` when every check ran.

:meth:`Health.repair` fixes what can be fixed without losing data: orphans
move to quarantine, drifted counts and totals are recomputed from the
messages, the search indexes are rebuilt. What needs a person (a damaged
file, a missing trigger) is reported, not touched.

The counting queries here are shared with the migrations, which report the
same figures for a legacy file before they repair it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Literal

from sqlalchemy import Connection, Engine, bindparam, text

from .engine import reader, sqlite_path
from .errors import (
    ReadOnlyError,
    SessionStoreError,
    StoreBusyError,
    translate,
)
from .integrity import DRIFTED_SESSIONS, ORPHANED_MESSAGES, ORPHANED_METADATA, unreadable_rows
from .migrations import database_state, head_revision
from .models import UTCDateTime
from .transactions import Runner

__all__ = ["Check", "CheckStatus", "Health", "HealthReport", "RepairReport"]

COUNT_TRIGGERS = (
    "trg_messages_after_insert",
    "trg_messages_after_delete",
    "trg_messages_after_update_totals",
)
ORPHAN_REASON = "orphan: its session does not exist"

# External-content FTS5 keeps one docsize row per indexed row: each message (by
# message_id), each session's title (by search_key).
INDEX_MISSING = (
    "SELECT COUNT(*) FROM messages m WHERE NOT EXISTS "
    "(SELECT 1 FROM messages_fts_docsize d WHERE d.id = m.message_id)"
)
INDEX_STALE = (
    "SELECT COUNT(*) FROM messages_fts_docsize d WHERE NOT EXISTS "
    "(SELECT 1 FROM messages m WHERE m.message_id = d.id)"
)
TITLE_INDEX_MISSING = (
    "SELECT COUNT(*) FROM sessions s WHERE s.search_key IS NOT NULL AND NOT EXISTS "
    "(SELECT 1 FROM session_titles_fts_docsize d WHERE d.id = s.search_key)"
)
TITLE_INDEX_STALE = (
    "SELECT COUNT(*) FROM session_titles_fts_docsize d WHERE NOT EXISTS "
    "(SELECT 1 FROM sessions s WHERE s.search_key = d.id)"
)
#: The FTS5 tables, and what they index.
FTS_TABLES = {"messages_fts": "the messages", "session_titles_fts": "the session titles"}

CheckStatus = Literal["ok", "failed", "unchecked"]


def scalar(conn: Connection, sql: str) -> int:
    return int(conn.execute(text(sql)).scalar() or 0)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    #: ``ok``; ``failed`` (damage found); ``unchecked`` (the check could not run).
    status: CheckStatus
    detail: str
    #: How many things are wrong, for checks that count them.
    count: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True, slots=True)
class HealthReport:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """No check found damage (some may not have run: see :attr:`complete`)."""
        return not self.failed

    @property
    def complete(self) -> bool:
        """Every check ran."""
        return not self.unchecked

    @property
    def status(self) -> Literal["ok", "failed", "incomplete"]:
        if self.failed:
            return "failed"
        return "ok" if self.complete else "incomplete"

    def __getitem__(self, name: str) -> Check:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if check.status == "failed")

    @property
    def unchecked(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if check.status == "unchecked")


@dataclass(frozen=True, slots=True)
class RepairReport:
    orphaned_messages_quarantined: int
    orphaned_metadata_quarantined: int
    counts_repaired: int
    index_rebuilt: bool


def _passed(name: str, ok: bool, detail: str, count: int = 0) -> Check:
    return Check(name, "ok" if ok else "failed", detail, count)


def _could_not(error: SessionStoreError) -> bool:
    """Whether ``error`` says the check could not run, rather than that something is wrong."""
    return isinstance(error, StoreBusyError | ReadOnlyError)


def _unchecked(name: str, error: SessionStoreError) -> Check:
    why = (
        "the database is read-only"
        if isinstance(error, ReadOnlyError)
        else ("another connection held the database's lock past the busy timeout")
    )
    return Check(name, "unchecked", f"could not check: {why} ({error}); retry later")


class Health:
    """``store.health``: what is wrong with the database, and the safe repairs."""

    def __init__(self, engine: Engine, runner: Runner, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._runner = runner
        self._clock = clock
        self._sqlite = engine.dialect.name == "sqlite"

    def check(self, *, quick: bool = False, deep: bool = False) -> HealthReport:
        """Run every check, reading only.

        ``quick`` uses ``quick_check`` instead of ``integrity_check``. ``deep`` adds
        FTS5's own ``integrity-check`` of the search indexes (SQLite), which needs the
        write lock: it is ``unchecked`` when another connection keeps it or the file is
        read-only.
        """
        checks: list[Check] = []
        probes: list[tuple[str, Callable[[Connection], Check]]] = [
            ("integrity", lambda c: self._integrity(c, quick)),
            ("foreign_keys", self._foreign_keys),
            ("schema", self._schema),
            ("orphans", self._orphans),
            ("counts", self._counts),
            ("readable", self._readable),
            ("count_triggers", self._triggers),
            ("search_index", self._search_index),
            ("journal", self._journal),
            ("version", self._version),
        ]
        for name, probe in probes:
            checks.append(self._run(name, partial(self._read, probe)))
            if name == "integrity" and checks[-1].status == "failed":
                # Nothing else can be trusted on a file that fails integrity_check.
                break
        else:
            if deep and self._sqlite:
                checks.append(self._run("search_index_deep", self._deep_index))
        return HealthReport(tuple(checks))

    def _run(self, name: str, probe: Callable[[], Check]) -> Check:
        try:
            return probe()
        except Exception as exc:  # a damaged file must not stop the report
            error = (
                exc
                if isinstance(exc, SessionStoreError)
                else translate(exc, path=sqlite_path(self._engine))
            )
            if _could_not(error):
                return _unchecked(name, error)
            return Check(name, "failed", str(error))

    def _read(self, probe: Callable[[Connection], Check]) -> Check:
        """``probe`` in a read transaction of its own (deferred: it never takes a lock)."""
        with reader(self._engine).connect() as conn:
            result = probe(conn)
            conn.rollback()
        return result

    def _integrity(self, conn: Connection, quick: bool) -> Check:
        if not self._sqlite:
            return _passed("integrity", True, "PostgreSQL checks its own pages")
        pragma = "quick_check" if quick else "integrity_check"
        rows = [str(r[0]) for r in conn.exec_driver_sql(f"PRAGMA {pragma}")]
        ok = rows == ["ok"]
        return _passed("integrity", ok, "ok" if ok else "; ".join(rows[:5]), 0 if ok else len(rows))

    def _foreign_keys(self, conn: Connection) -> Check:
        if not self._sqlite:
            return _passed("foreign_keys", True, "always enforced by PostgreSQL")
        on = conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        return _passed("foreign_keys", on, "on" if on else "OFF on the store's connections")

    def _schema(self, conn: Connection) -> Check:
        # Read here, on this connection: opening the store's schema check could switch
        # the journal mode, which is a write.
        try:
            state = database_state(conn)
        except SessionStoreError as exc:
            return _passed("schema", False, str(exc))
        head = head_revision()
        if state.kind == "versioned" and state.revision == head:
            return _passed("schema", True, "at head")
        where = state.revision or state.kind
        return _passed(
            "schema",
            False,
            f"the database is at {where!r}, not at {head!r}; run `sessionstore upgrade`",
        )

    def _orphans(self, conn: Connection) -> Check:
        n = scalar(conn, ORPHANED_MESSAGES) + scalar(conn, ORPHANED_METADATA)
        return _passed("orphans", n == 0, f"{n} rows without their session", n)

    def _counts(self, conn: Connection) -> Check:
        n = len(conn.execute(text(DRIFTED_SESSIONS)).all())
        return _passed("counts", n == 0, f"{n} sessions whose count or totals drifted", n)

    def _readable(self, conn: Connection) -> Check:
        if not self._sqlite:
            return _passed("readable", True, "PostgreSQL's typed columns hold only text and times")
        found = unreadable_rows(conn)
        detail = f"{len(found)} rows hold values the store cannot read"
        if found:
            detail += ": " + "; ".join(found[:3]) + ("; ..." if len(found) > 3 else "")
        return _passed("readable", not found, detail, len(found))

    def _triggers(self, conn: Connection) -> Check:
        if self._sqlite:
            sql = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        else:
            sql = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
        present = {str(r[0]) for r in conn.execute(text(sql))}
        missing = [name for name in COUNT_TRIGGERS if name not in present]
        detail = "present" if not missing else f"missing: {', '.join(missing)}"
        return _passed("count_triggers", not missing, detail, len(missing))

    def _search_index(self, conn: Connection) -> Check:
        if not self._sqlite:
            return _passed("search_index", True, "generated tsvector columns, always in step")
        missing, stale, titles = _index_rows(conn)
        problems = missing + stale + titles
        detail = f"{missing} messages missing from the index, {stale} stale index rows"
        if titles:
            detail += f", {titles} session titles out of step with their index"
        return _passed("search_index", problems == 0, detail, problems)

    def _journal(self, conn: Connection) -> Check:
        if not self._sqlite:
            return _passed("journal", True, "PostgreSQL write-ahead log")
        mode = str(conn.exec_driver_sql("PRAGMA journal_mode").scalar())
        sync = int(conn.exec_driver_sql("PRAGMA synchronous").scalar() or 0)
        names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
        detail = f"journal_mode={mode}, synchronous={names.get(sync, sync)}"
        if mode.lower() != "wal" and _header_says_wal(conn):
            # An immutable connection reports "delete" whatever the file is: the file's
            # own header says what it is.
            mode, detail = "wal", f"{detail}; the file itself is in WAL mode"
        ok = mode.lower() in ("wal", "memory") and sync >= 1
        return _passed("journal", ok, detail)

    def _version(self, conn: Connection) -> Check:
        if self._sqlite:
            version = str(conn.exec_driver_sql("SELECT sqlite_version()").scalar())
            # FTS5 'delete' on external content and RETURNING need 3.35.
            ok = tuple(int(p) for p in version.split(".")[:2]) >= (3, 35)
            return _passed("version", ok, f"SQLite {version}")
        version = str(conn.exec_driver_sql("SHOW server_version").scalar())
        return _passed("version", True, f"PostgreSQL {version}")

    def _deep_index(self) -> Check:
        """FTS5's integrity-check of each index against what it indexes, with the write
        lock (which it needs), in a transaction that is rolled back."""
        with self._engine.connect() as conn:
            conn.begin()  # BEGIN IMMEDIATE: waits for the lock up to the busy timeout
            try:
                objections = _fts_objections(conn)
            finally:
                conn.rollback()
        detail = "; ".join(objections.values()) or "every indexed word matches what it indexes"
        return _passed("search_index_deep", not objections, detail, len(objections))

    def repair(self) -> RepairReport:
        """Quarantine orphans, recompute drifted counts, rebuild the search index."""
        now = self._clock()

        def work(conn: Connection) -> RepairReport:
            moved_messages, moved_metadata = quarantine_orphans(conn, now)
            drifted = [row[0] for row in conn.execute(text(DRIFTED_SESSIONS))]
            for session_id in drifted:
                conn.execute(RECOUNT, {"sid": session_id})
            rebuilt = False
            if self._sqlite:
                # With the write lock held, FTS5's own integrity-check can run here too.
                missing, stale, titles = _index_rows(conn)
                objections = _fts_objections(conn)
                off = {"messages_fts": missing + stale, "session_titles_fts": titles}
                for table in FTS_TABLES:
                    if off[table] or table in objections:
                        conn.exec_driver_sql(f"INSERT INTO {table} ({table}) VALUES ('rebuild')")
                        rebuilt = True
            return RepairReport(moved_messages, moved_metadata, len(drifted), rebuilt)

        return self._runner.write(work)


def _header_says_wal(conn: Connection) -> bool:
    """Whether the main database file's header marks it as WAL (read and write versions
    2, bytes 18 and 19), read from the file without writing anything."""
    files = {str(row[1]): str(row[2]) for row in conn.exec_driver_sql("PRAGMA database_list")}
    path = files.get("main", "")
    try:
        with open(path, "rb") as handle:
            header = handle.read(20)
    except OSError:
        return False
    return len(header) == 20 and header[18] == header[19] == 2


def _index_rows(conn: Connection) -> tuple[int, int, int]:
    """Read only: messages missing from the FTS5 index, stale index rows, and title
    index rows out of step (missing or stale)."""
    titles = scalar(conn, TITLE_INDEX_MISSING) + scalar(conn, TITLE_INDEX_STALE)
    return scalar(conn, INDEX_MISSING), scalar(conn, INDEX_STALE), titles


def _fts_objections(conn: Connection) -> dict[str, str]:
    """What FTS5's own ``integrity-check`` says against each index that objects (a write:
    the caller holds the write lock). A lock or a read-only file is raised, never taken
    for damage."""
    objections = {}
    for table, indexed in FTS_TABLES.items():
        try:
            conn.exec_driver_sql(
                f"INSERT INTO {table} ({table}, rank) VALUES ('integrity-check', 1)"
            )
        except Exception as exc:
            orig = getattr(exc, "orig", exc)
            if not isinstance(orig, sqlite3.DatabaseError):
                raise
            name = getattr(orig, "sqlite_errorname", "") or ""
            if not name.startswith(("SQLITE_CORRUPT", "SQLITE_ERROR")):
                raise  # busy, read-only, I/O: could not check, not damage
            objections[table] = f"the index of {indexed} differs from them: {orig}"
    return objections


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
