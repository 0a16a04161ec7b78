"""The migrations themselves: every starting point, failures, kills, and the schema they make.

* a fresh database (SQLite file, PostgreSQL) goes to ``head`` through both
  revisions, and a second upgrade changes nothing (same logical dump);
* databases that are not ours (unrelated tables, an unknown revision, a legacy
  file opened with ``upgrade=False``) are refused with
  :class:`SchemaMismatchError` and left exactly as they were (journal mode
  included: no switch to WAL before the refusal);
* an adoption that fails midway (a column the adoption does not know; a legacy
  session row without an id, which fails the copy after the old triggers,
  views and index were already dropped) raises :class:`MigrationError` and
  leaves the exact legacy dump; once the cause is removed a re-run succeeds;
* an upgrade SIGKILLed at random moments in a child process leaves a file
  that passes ``integrity_check`` and is either exactly legacy or fully at
  head, never in between, and a later upgrade succeeds;
* three processes adopting the same legacy file at once adopt it once, and
  every one of them succeeds;
* revision 0002 run through Alembic on a connection with foreign keys on
  refuses before touching anything (the drop of ``sessions`` would cascade);
* the count triggers at head keep ``message_count``, ``total_tokens``,
  ``total_duration_seconds`` and ``last_seq`` right under raw SQL;
* the ORM models match the migrated schema (Alembic's ``compare_metadata``,
  search machinery aside; server defaults differ, a known discrepancy marked
  xfail);
* ``alembic upgrade head`` on the command line adopts a legacy file the same
  way (``-x url=`` and ``SESSIONSTORE_URL``), and ``alembic current`` does not
  change a legacy file;
* the legacy baseline revision recreates the legacy layout of
  ``tests/legacy_schema.sql`` on an empty file.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import re
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from alembic import command
from sessionstore import (
    MigrationError,
    SchemaMismatchError,
    SessionStore,
    SessionStoreError,
    StoreConfig,
    migrations,
)
from sessionstore.engine import build_engine
from sessionstore.migrations import LEGACY_BASELINE, alembic_config, head_revision
from sessionstore.models import Base

from .legacy import (
    LegacyFacts,
    build_empty_legacy_db,
    build_legacy_db,
    copy_legacy,
    legacy_connect,
    logical_dump,
    shared_legacy_db,
)

ROOT = Path(__file__).resolve().parents[1]
ALEMBIC = ROOT / ".venv" / "bin" / "alembic"
KILL_TRIALS = 10


def connect(path: Path) -> contextlib.closing[sqlite3.Connection]:
    return contextlib.closing(sqlite3.connect(path))


def all_revisions() -> tuple[str, ...]:
    script = ScriptDirectory.from_config(alembic_config())
    return tuple(reversed([rev.revision for rev in script.walk_revisions()]))


def table_names(path: Path) -> set[str]:
    with connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def backups_of(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.bak-*"))


@contextlib.contextmanager
def engine_for(url: str) -> Iterator[Engine]:
    engine = build_engine(StoreConfig.from_env(url))
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def master(tmp_path_factory: pytest.TempPathFactory) -> LegacyFacts:
    return shared_legacy_db(tmp_path_factory.getbasetemp() / "legacy-master")


@pytest.fixture(scope="session")
def master_dump(master: LegacyFacts) -> list[str]:
    return logical_dump(master.path)


@pytest.fixture
def small_legacy(tmp_path: Path) -> LegacyFacts:
    return build_legacy_db(
        tmp_path / ".ai-router-sessions.db", sessions=20, messages_per_session=6, seed=7
    )


# --- fresh databases and second runs ------------------------------------------------------


def _catalog(engine: Engine) -> list[tuple[Any, ...]]:
    """What a PostgreSQL database holds: columns, indexes, triggers, views, the revision."""
    with engine.connect() as conn:
        rows = [
            tuple(r)
            for r in conn.execute(
                sa.text(
                    "SELECT table_name, column_name, data_type, is_nullable, column_default"
                    " FROM information_schema.columns WHERE table_schema = 'public'"
                    " UNION ALL SELECT tablename, indexname, indexdef, '', '' FROM pg_indexes"
                    " WHERE schemaname = 'public'"
                    " UNION ALL SELECT tgname, '', '', '', '' FROM pg_trigger"
                    " WHERE NOT tgisinternal"
                    " UNION ALL SELECT version_num, '', '', '', '' FROM alembic_version"
                    " ORDER BY 1, 2, 3"
                )
            )
        ]
        conn.rollback()
    return rows


def test_a_fresh_database_goes_to_head_and_a_second_run_changes_nothing(
    backend_url: str,
) -> None:
    with engine_for(backend_url) as engine:
        report = migrations.upgrade(engine)
        assert report.found == "empty"
        assert report.from_revision is None
        assert report.to_revision == head_revision()
        assert report.applied == all_revisions()
        assert report.applied[0] == LEGACY_BASELINE
        assert report.backup_path is None
        assert (report.orphaned_messages_quarantined, report.counts_repaired) == (0, 0)
        sqlite_file = engine.dialect.name == "sqlite"
        path = Path(str(engine.url.database))
        before = logical_dump(path) if sqlite_file else _catalog(engine)

        again = migrations.upgrade(engine)
        assert again.found == "versioned"
        assert again.from_revision == head_revision()
        assert again.applied == ()
        assert not again.changed
        assert (logical_dump(path) if sqlite_file else _catalog(engine)) == before
        store = SessionStore(engine)
        health = store.health.check()
        assert health.ok, health.failed


def test_a_second_upgrade_of_an_adopted_file_changes_nothing(small_legacy: LegacyFacts) -> None:
    with engine_for(f"sqlite:///{small_legacy.path}") as engine:
        first = migrations.upgrade(engine)
        assert first.found == "legacy"
        before = logical_dump(small_legacy.path)
        backups = backups_of(small_legacy.path)
        second = migrations.upgrade(engine)
    assert (second.found, second.applied, second.backup_path) == ("versioned", (), None)
    assert logical_dump(small_legacy.path) == before
    assert backups_of(small_legacy.path) == backups


# --- databases that are not ours -----------------------------------------------------------


@pytest.mark.parametrize(
    "ddl",
    [
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)",
        # Half a legacy layout is not a legacy layout.
        "CREATE TABLE messages (message_id INTEGER PRIMARY KEY, content TEXT)",
    ],
    ids=["unrelated", "messages-only"],
)
def test_a_database_of_something_else_is_refused_and_left_alone(tmp_path: Path, ddl: str) -> None:
    path = tmp_path / "other.db"
    with connect(path) as conn:
        conn.execute(ddl)
        conn.execute(f"INSERT INTO {ddl.split()[2]} VALUES (1, 'keep me')")
        conn.commit()
    before = logical_dump(path)
    with pytest.raises(SchemaMismatchError, match="neither a sessionstore schema"):
        SessionStore.open(f"sqlite:///{path}")
    assert logical_dump(path) == before
    # Not even switched to WAL: nothing beside the file, its journal mode as it was.
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    with connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)


def test_an_unknown_revision_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    url = f"sqlite:///{path}"
    with SessionStore.open(url):
        pass
    with connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099_from_the_future'")
        conn.commit()
    before = logical_dump(path)
    with pytest.raises(SchemaMismatchError, match="0099_from_the_future"):
        SessionStore.open(url)
    with pytest.raises(SchemaMismatchError, match="0099_from_the_future"):
        SessionStore.open(url, upgrade=False)
    assert logical_dump(path) == before


def test_a_legacy_file_opened_without_upgrade_is_refused_untouched(
    small_legacy: LegacyFacts,
) -> None:
    before = logical_dump(small_legacy.path)
    with pytest.raises(SchemaMismatchError, match="legacy"):
        SessionStore.open(f"sqlite:///{small_legacy.path}", upgrade=False)
    assert logical_dump(small_legacy.path) == before
    assert backups_of(small_legacy.path) == []


# --- an upgrade that fails midway ------------------------------------------------------------

CAUSES = {
    # 0002 refuses an unknown column after the legacy stamp was written.
    "unknown-column": (
        "ALTER TABLE sessions ADD COLUMN archived INTEGER DEFAULT 0",
        "ALTER TABLE sessions DROP COLUMN archived",
    ),
    # A view of the caller's own on the legacy search table cannot be re-created once
    # that table is replaced: the failure comes at the very end, after the tables were
    # rebuilt, the orphans quarantined and the index rebuilt.
    "view-on-the-legacy-index": (
        "CREATE VIEW my_search AS SELECT session_id, content FROM sessions_fts",
        "DROP VIEW my_search",
    ),
}


def test_a_session_row_without_an_id_is_quarantined(small_legacy: LegacyFacts) -> None:
    """TEXT PRIMARY KEY admits NULL in SQLite: such a row cannot stay, and is kept aside."""
    path = small_legacy.path
    with contextlib.closing(legacy_connect(path)) as conn:
        conn.execute(
            "INSERT INTO sessions (session_id, model_id, title) VALUES (NULL, 'gpt-4o', 'lost?')"
        )
    with SessionStore.open(f"sqlite:///{path}") as store:
        assert store.health.check().ok
    with contextlib.closing(sqlite3.connect(path)) as conn:
        kept = conn.execute("SELECT model_id, title, reason FROM quarantined_sessions").fetchall()
        assert conn.execute("SELECT COUNT(*) FROM sessions WHERE session_id IS NULL").fetchone()
    assert kept == [("gpt-4o", "lost?", "session without an id")]


@pytest.mark.parametrize("cause", sorted(CAUSES))
def test_a_failed_adoption_rolls_back_to_the_exact_legacy_file(
    small_legacy: LegacyFacts, cause: str
) -> None:
    path = small_legacy.path
    url = f"sqlite:///{path}"
    inject, remove = CAUSES[cause]
    with contextlib.closing(legacy_connect(path)) as conn:
        conn.execute(inject)
    before = logical_dump(path)

    with engine_for(url) as engine:
        store = SessionStore(engine)
        with pytest.raises(MigrationError, match="rolled back") as failure:
            store.upgrade()
        assert isinstance(failure.value, SessionStoreError)
        # The pool gets its connection back with foreign keys on again.
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            conn.rollback()
    assert logical_dump(path) == before
    names = table_names(path)
    assert "alembic_version" not in names
    assert not {n for n in names if n.startswith("quarantined") or n.endswith("_new")}
    with connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]

    with contextlib.closing(legacy_connect(path)) as conn:
        conn.execute(remove)
    with SessionStore.open(url) as store:
        report = store.upgrade_report
        assert report is not None and report.found == "legacy"
        assert report.orphaned_messages_quarantined == len(small_legacy.orphan_messages)
        health = store.health.check()
        assert health.ok, health.failed
    with connect(path) as conn:
        ids = {r[0] for r in conn.execute("SELECT message_id FROM messages")}
    assert ids == set(small_legacy.messages)


# --- an upgrade killed midway ------------------------------------------------------------------


def _upgrade_in_child(url: str) -> None:
    with engine_for(url) as engine:
        migrations.upgrade(engine)


def _state_after_kill(facts: LegacyFacts, master_dump: list[str]) -> str:
    """``legacy`` or ``head``; fails on anything in between."""
    with connect(facts.path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        if "alembic_version" not in names:
            state = "legacy"
        else:
            assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [
                (head_revision(),)
            ]
            assert "sessions_fts" not in names
            assert {"messages_fts", "quarantined_messages", "quarantined_metadata"} <= names
            assert conn.execute("SELECT COUNT(*) FROM messages").fetchone() == (
                len(facts.messages),
            )
            assert conn.execute("SELECT COUNT(*) FROM quarantined_messages").fetchone() == (
                len(facts.orphan_messages),
            )
            state = "head"
    if state == "legacy":
        assert logical_dump(facts.path) == master_dump
    return state


def test_an_upgrade_killed_at_any_moment_leaves_legacy_or_head(
    tmp_path: Path, master: LegacyFacts, master_dump: list[str]
) -> None:
    fork = multiprocessing.get_context("fork")
    rng = random.Random(4242)

    # How long a whole upgrade takes in a child, to aim the kills inside it.
    calibration = copy_legacy(master, tmp_path / "calibration" / ".ai-router-sessions.db")
    clock = time.perf_counter()
    child = fork.Process(target=_upgrade_in_child, args=(f"sqlite:///{calibration.path}",))
    child.start()
    child.join(60)
    duration = time.perf_counter() - clock
    assert child.exitcode == 0
    assert _state_after_kill(calibration, master_dump) == "head"

    outcomes = []
    for trial in range(KILL_TRIALS):
        facts = copy_legacy(master, tmp_path / f"trial-{trial}" / ".ai-router-sessions.db")
        url = f"sqlite:///{facts.path}"
        child = fork.Process(target=_upgrade_in_child, args=(url,))
        child.start()
        time.sleep(rng.uniform(0.0, duration))
        child.kill()
        child.join(30)
        state = _state_after_kill(facts, master_dump)
        # Killed inside the upgrade's transaction: the backup before it was complete.
        if state == "legacy" and backups_of(facts.path):
            state = "legacy, killed in the transaction"
        outcomes.append(state)
        # Whatever the kill left, the next upgrade finishes the job.
        with engine_for(url) as engine:
            migrations.upgrade(engine)
            health = SessionStore(engine).health.check()
            assert health.ok, (trial, state, health.failed)
        assert _state_after_kill(facts, master_dump) == "head"
    # Most kills land before the commit, and several inside the transaction itself:
    # the test really interrupted upgrades, not just started or finished them.
    assert outcomes.count("legacy, killed in the transaction") >= 2, outcomes


def test_adoptions_in_the_same_microsecond_keep_each_backup(
    small_legacy: LegacyFacts, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process's backup already holds the name this adoption would take.
    from sessionstore import files

    monkeypatch.setattr(files, "stamp", lambda: "20261129T000000000000Z")
    path = small_legacy.path
    taken = path.with_name(f"{path.name}.bak-legacy-20261129T000000000000Z")
    taken.write_bytes(b"another process's backup")
    with engine_for(f"sqlite:///{path}") as engine:
        report = migrations.upgrade(engine)
    assert report.backup_path == taken.with_name(f"{taken.name}-2")
    assert taken.read_bytes() == b"another process's backup"
    with connect(report.backup_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def _report_in_child(url: str, results: Any) -> None:
    with engine_for(url) as engine:
        report = migrations.upgrade(engine)
    results.put((report.found, report.applied))


def test_processes_adopting_the_same_file_at_once_adopt_it_once(
    tmp_path: Path, master: LegacyFacts
) -> None:
    facts = copy_legacy(master, tmp_path / ".ai-router-sessions.db")
    url = f"sqlite:///{facts.path}"
    fork = multiprocessing.get_context("fork")
    results = fork.Queue()
    children = [fork.Process(target=_report_in_child, args=(url, results)) for _ in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
    assert [child.exitcode for child in children] == [0, 0, 0]
    reports = sorted(results.get(timeout=5) for _ in children)
    assert [applied for _, applied in reports].count(()) == 2
    assert tuple(all_revisions()[1:]) in [applied for _, applied in reports]
    with SessionStore.open(url, upgrade=False) as store:
        health = store.health.check()
        assert health.ok, health.failed
    with connect(facts.path) as conn:
        ids = {r[0] for r in conn.execute("SELECT message_id FROM messages")}
        quarantined = {r[0] for r in conn.execute("SELECT message_id FROM quarantined_messages")}
    assert ids == set(facts.messages)
    assert quarantined == facts.orphan_message_ids


# --- the cascade guard ---------------------------------------------------------------------------


def test_adoption_refuses_to_run_with_foreign_keys_on(small_legacy: LegacyFacts) -> None:
    path = small_legacy.path
    before = logical_dump(path)
    every_message = len(small_legacy.messages) + len(small_legacy.orphan_messages)
    with engine_for(f"sqlite:///{path}") as engine, engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        conn.rollback()
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        with conn.begin() as transaction:
            command.stamp(cfg, LEGACY_BASELINE)
            with pytest.raises(RuntimeError, match="foreign keys"):
                command.upgrade(cfg, "head")
            # Refused before anything was dropped: every message still there.
            assert conn.exec_driver_sql("SELECT COUNT(*) FROM messages").scalar() == every_message
            assert (
                conn.exec_driver_sql(
                    "SELECT COUNT(*) FROM sqlite_master WHERE name = 'sessions_fts'"
                ).scalar()
                == 1
            )
            transaction.rollback()
    assert logical_dump(path) == before


# --- the count triggers at head -----------------------------------------------------------------


def _totals(conn: sa.Connection, sid: str) -> tuple[int, int, float, int]:
    row = conn.execute(
        sa.text(
            "SELECT message_count, total_tokens, total_duration_seconds, last_seq"
            " FROM sessions WHERE session_id = :sid"
        ),
        {"sid": sid},
    ).one()
    real = conn.execute(
        sa.text(
            "SELECT COUNT(*), COALESCE(SUM(tokens_used), 0), COALESCE(SUM(duration_seconds), 0)"
            " FROM messages WHERE session_id = :sid"
        ),
        {"sid": sid},
    ).one()
    # The stored figures always equal what the messages add up to.
    assert (row[0], row[1]) == (real[0], real[1])
    assert row[2] == pytest.approx(real[2], abs=1e-9)
    return (int(row[0]), int(row[1]), round(float(row[2]), 9), int(row[3]))


def test_count_triggers_keep_counts_and_totals_right_under_raw_sql(backend_url: str) -> None:
    insert = sa.text(
        "INSERT INTO messages (session_id, sequence_number, role, content, tokens_used,"
        " duration_seconds) VALUES (:sid, :seq, :role, :content, :tokens, :duration)"
    )
    update = "UPDATE messages SET {} WHERE session_id = :sid AND sequence_number = :seq"
    with SessionStore.open(backend_url) as store:
        a = store.sessions.create("gpt-4o").session_id
        b = store.sessions.create("gpt-4o").session_id
        engine = store.engine

        def run(sql: str | sa.TextClause, params: dict[str, Any]) -> None:
            with engine.begin() as conn:
                conn.execute(sa.text(sql) if isinstance(sql, str) else sql, params)

        def totals(sid: str) -> tuple[int, int, float, int]:
            with engine.connect() as conn:
                found = _totals(conn, sid)
                conn.rollback()
            return found

        for seq, role, tokens, duration in (
            (1, "user", 10, None),
            (2, "assistant", 20, 1.5),
            (3, "assistant", None, 2.25),
            (4, "user", 5, None),
        ):
            params = {"sid": a, "seq": seq, "role": role, "content": f"m{seq}"}
            run(insert, {**params, "tokens": tokens, "duration": duration})
        assert totals(a) == (4, 35, 3.75, 4)

        run("DELETE FROM messages WHERE session_id = :sid AND sequence_number = 2", {"sid": a})
        assert totals(a) == (3, 15, 2.25, 4)  # last_seq is never handed back

        run(update.format("tokens_used = 100"), {"sid": a, "seq": 3})
        assert totals(a) == (3, 115, 2.25, 4)
        run(update.format("duration_seconds = 0.5"), {"sid": a, "seq": 1})
        assert totals(a) == (3, 115, 2.75, 4)

        # Moving a message between sessions moves its count and totals with it.
        run(update.format("session_id = :to"), {"sid": a, "seq": 4, "to": b})
        assert totals(a) == (2, 110, 2.75, 4)
        assert totals(b) == (1, 5, 0.0, 4)
        run(
            update.format("session_id = :to, tokens_used = 1, sequence_number = 9"),
            {"sid": a, "seq": 3, "to": b},
        )
        assert totals(a) == (1, 10, 0.5, 4)
        assert totals(b) == (2, 6, 2.25, 9)

        # Several rows in one statement: one trigger run per row.
        run(
            "UPDATE messages SET tokens_used = COALESCE(tokens_used, 0) + 1"
            " WHERE session_id = :sid",
            {"sid": b},
        )
        assert totals(b) == (2, 8, 2.25, 9)
        run(update.format("content = 'edited'"), {"sid": a, "seq": 1})
        assert totals(a) == (1, 10, 0.5, 4)
        run("DELETE FROM messages WHERE session_id = :sid", {"sid": b})
        assert totals(b) == (0, 0, 0.0, 9)

        # The store's own appends carry on from last_seq.
        assert store.messages.append(b, "user", "next").sequence_number == 10
        assert store.messages.append(a, "user", "next").sequence_number == 5
        health = store.health.check()
        assert health.ok, health.failed


# --- the models against the migrated schema ----------------------------------------------------


# The search machinery lives only in the migrations (models.py says so): FTS5 tables and
# their shadow tables on SQLite with the integer key the title index hangs on, generated
# tsvector columns under GIN on PostgreSQL. Named one by one, so anything new shows up.
SEARCH_TABLES = ("messages_fts", "session_titles_fts")
SEARCH_COLUMNS = {"search_vector", "title_vector", "search_key"}
SEARCH_INDEXES = {"ix_messages_search_vector", "ix_sessions_title_vector", "uq_sessions_search_key"}


def _ours(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    if name is None:
        return True
    if type_ == "table":
        return not (name.startswith(SEARCH_TABLES) or name == "alembic_version")
    if type_ == "column":
        return name not in SEARCH_COLUMNS
    return not (type_ == "index" and name in SEARCH_INDEXES)


def _differences(url: str, **options: Any) -> list[Any]:
    with SessionStore.open(url) as store, store.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_object": _ours, "compare_type": True, **options}
        )
        found = list(compare_metadata(context, Base.metadata))
        conn.rollback()
    return found


def test_the_models_match_the_migrated_schema(backend_url: str) -> None:
    assert _differences(backend_url) == []


def test_the_models_match_the_migrated_server_defaults(backend_url: str) -> None:
    assert _differences(backend_url, compare_server_default=True) == []


# --- the alembic command line ------------------------------------------------------------------


@pytest.mark.parametrize("how", ["-x url", "SESSIONSTORE_URL"])
def test_alembic_upgrade_head_on_the_command_line_adopts_a_legacy_file(
    tmp_path: Path, master: LegacyFacts, master_dump: list[str], how: str
) -> None:
    facts = copy_legacy(master, tmp_path / ".ai-router-sessions.db")
    url = f"sqlite:///{facts.path}"
    env = {k: v for k, v in os.environ.items() if k != "SESSIONSTORE_URL"}
    args = [str(ALEMBIC), "upgrade", "head"]
    if how == "-x url":
        args[1:1] = ["-x", f"url={url}"]
    else:
        env["SESSIONSTORE_URL"] = url
    done = subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr

    backups = backups_of(facts.path)
    assert len(backups) == 1
    assert re.search(r"\.bak-legacy-\d{8}T\d{12}Z$", backups[0].name)
    assert logical_dump(backups[0]) == master_dump
    with SessionStore.open(url, upgrade=False) as store:
        health = store.health.check()
        assert health.ok, health.failed
    with connect(facts.path) as conn:
        rows = {
            r[0]: r
            for r in conn.execute(
                "SELECT message_id, session_id, sequence_number, role, content FROM messages"
            )
        }
        quarantined = {r[0] for r in conn.execute("SELECT message_id FROM quarantined_messages")}
    assert rows == {k: m.row()[:5] for k, m in facts.messages.items()}
    assert quarantined == facts.orphan_message_ids


@pytest.mark.parametrize("damaged", [True, False], ids=["damaged", "empty"])
def test_alembic_current_on_a_legacy_file_changes_nothing(tmp_path: Path, damaged: bool) -> None:
    path = tmp_path / ".ai-router-sessions.db"
    if damaged:
        build_legacy_db(path, sessions=20, messages_per_session=6, seed=7)
    else:
        build_empty_legacy_db(path)
    before = logical_dump(path)
    env = {k: v for k, v in os.environ.items() if k != "SESSIONSTORE_URL"}
    done = subprocess.run(
        [str(ALEMBIC), "-x", f"url=sqlite:///{path}", "current"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert LEGACY_BASELINE not in done.stdout  # nothing is stamped: there is no revision
    assert logical_dump(path) == before
    assert backups_of(path) == []


def alembic(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SESSIONSTORE_URL"}
    return subprocess.run(
        [str(ALEMBIC), "-x", f"url={url}", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_alembic_current_prints_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'chat.db'}"
    SessionStore.open(url).close()
    done = alembic("current", url=url)
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == (f"{head_revision()} (head)\n", "")
    # On a mistyped path: one FAILED line naming it, and no file created.
    missing = tmp_path / "typo.db"
    done = alembic("current", url=f"sqlite:///{missing}")
    assert done.returncode != 0 and not missing.exists()
    assert done.stdout.strip().startswith(f"FAILED: no database at {missing}")
    assert "Traceback" not in done.stderr and done.stdout.count("\n") == 1


def test_alembic_downgrade_steps_down_cleanly_and_refuses_what_it_cannot_undo(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'chat.db'}"
    with SessionStore.open(url) as store:
        session_id = store.sessions.create("m", title="kept").session_id
        store.messages.append(session_id, "user", "kept too")
    revisions = all_revisions()
    done = alembic("downgrade", "-1", url=url)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    # One line of progress, none of the per-connection chatter.
    [line] = done.stderr.splitlines()
    assert line.startswith(f"INFO  [alembic.runtime.migration] Running downgrade {revisions[-1]}")
    assert alembic("current", url=url).stdout.strip() == revisions[-2]

    before = logical_dump(tmp_path / "chat.db")
    done = alembic("downgrade", "base", url=url)
    assert done.returncode != 0
    [line] = done.stdout.strip().splitlines()
    assert line.startswith("FAILED: refused: downgrading to 'base' would undo 0002_adopt")
    assert "bak-legacy" in line and line.endswith("nothing was changed")
    assert "Traceback" not in done.stderr and "Running downgrade" not in done.stderr
    assert logical_dump(tmp_path / "chat.db") == before
    assert alembic("current", url=url).stdout.strip() == revisions[-2]

    done = alembic("upgrade", "head", url=url)
    assert done.returncode == 0, done.stderr
    with SessionStore.open(url, upgrade=False) as store:
        assert [m.content for m in store.messages.recent(session_id, 5)] == ["kept too"]


# --- the legacy baseline -----------------------------------------------------------------------


def _normalized(sql: str | None) -> str:
    text = re.sub(r"\s+", " ", sql or "").strip()
    return re.sub(r"\s*([(),])\s*", r"\1", text)


def _layout(path: Path) -> dict[str, Any]:
    with connect(path) as conn:
        objects = sorted(
            (kind, name, table, _normalized(sql))
            for kind, name, table, sql in conn.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_master"
                " WHERE name NOT IN ('alembic_version', 'sqlite_sequence')"
                " AND name NOT LIKE 'sqlite_autoindex%'"
            )
        )
        tables = [o[1] for o in objects if o[0] == "table"]
        indexes = [o[1] for o in objects if o[0] == "index"]
        columns = {t: conn.execute(f'PRAGMA table_xinfo("{t}")').fetchall() for t in tables}
        index_columns = {i: conn.execute(f'PRAGMA index_xinfo("{i}")').fetchall() for i in indexes}
        keys = {t: conn.execute(f'PRAGMA foreign_key_list("{t}")').fetchall() for t in tables}
    return {"objects": objects, "columns": columns, "indexes": index_columns, "keys": keys}


def test_the_baseline_revision_creates_the_legacy_layout(tmp_path: Path) -> None:
    path = tmp_path / "baseline.db"
    url = f"sqlite:///{path}"
    with engine_for(url) as engine:
        report = migrations.upgrade(engine, LEGACY_BASELINE)
    assert report.found == "empty"
    assert report.applied == (LEGACY_BASELINE,)
    assert report.to_revision == LEGACY_BASELINE

    reference = build_empty_legacy_db(tmp_path / "reference.db")
    got, expected = _layout(path), _layout(reference)
    assert {o[1] for o in got["objects"]} >= {
        "sessions", "messages", "session_metadata", "sessions_fts", "recent_sessions",
        "session_stats", "sessions_fts_update", "sessions_fts_delete", "idx_messages_session",
    }  # fmt: skip
    assert got == expected

    # And from there to head, the way a legacy file goes.
    with SessionStore.open(url) as store:
        onward = store.upgrade_report
        assert onward is not None
        assert (onward.found, onward.from_revision) == ("versioned", LEGACY_BASELINE)
        assert onward.applied == all_revisions()[1:]
        health = store.health.check()
        assert health.ok, health.failed
