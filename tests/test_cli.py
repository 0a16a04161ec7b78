"""The command line: tables for people, JSON for scripts, clean one-line errors."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from sessionstore import SessionStore, StoreConfig
from sessionstore.cli import main
from sessionstore.downgrades import downgrade
from sessionstore.engine import build_engine
from sessionstore.migrations import head_revision

from .legacy import build_legacy_db
from .test_downgrades import revisions as all_revisions


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def seeded(url: str) -> str:
    with SessionStore.open(url) as store:
        session = store.sessions.create("gpt-4o", title="Routers")
        store.messages.append(session.session_id, "user", "How do routers work?", tokens=4)
        store.messages.append(session.session_id, "assistant", "Packets.", tokens=2)
        return session.session_id


def test_upgrade_creates_and_reports(sqlite_url: str) -> None:
    code, out, _ = run("upgrade", "--db", sqlite_url)
    assert code == 0
    assert "0002_adopt" in out and "found" in out
    code, out, _ = run("upgrade", "--db", sqlite_url, "--json")
    assert code == 0 and json.loads(out)["applied"] == []


def test_doctor_table_and_exit_status(sqlite_url: str, tmp_path: Path) -> None:
    assert run("upgrade", "--db", sqlite_url)[0] == 0
    code, out, _ = run("doctor", "--db", sqlite_url)
    assert code == 0
    assert "foreign_keys" in out and "healthy" in out
    code, out, _ = run("doctor", "--db", sqlite_url, "--json")
    assert code == 0 and json.loads(out)["ok"] is True
    # A file that is not a database: a failed check and exit status 1 or a clean error.
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    code, _, err = run("doctor", "--db", f"sqlite:///{junk}")
    assert code in (1, 2)
    assert "Traceback" not in err


def test_sessions_list_show_export_stats(sqlite_url: str) -> None:
    session_id = seeded(sqlite_url)
    code, out, _ = run("sessions", "list", "--db", sqlite_url)
    assert code == 0 and session_id in out and "Routers" in out
    code, out, _ = run("sessions", "list", "--db", sqlite_url, "--json")
    assert json.loads(out)["items"][0]["session_id"] == session_id
    code, out, _ = run("show", session_id, "--db", sqlite_url)
    assert code == 0 and "How do routers work?" in out and "[2] assistant" in out
    code, out, _ = run("export", session_id, "--db", sqlite_url, "--format", "markdown")
    assert code == 0 and out.startswith("# Routers")
    code, out, _ = run("export", session_id, "--db", sqlite_url)
    assert json.loads(out)["session"]["session_id"] == session_id
    code, out, _ = run("stats", "--db", sqlite_url)
    assert code == 0 and "gpt-4o" in out
    code, out, _ = run("stats", "--db", sqlite_url, "--json")
    assert json.loads(out)["messages"] == 2


def test_errors_are_one_clean_line(sqlite_url: str) -> None:
    seeded(sqlite_url)
    code, _, err = run("show", "no-such-session", "--db", sqlite_url)
    assert code == 2
    assert err.strip() == "error: no session with id 'no-such-session'"
    code, _, err = run("sessions", "list", "--db", sqlite_url, "--cursor", "garbage!")
    assert code == 2 and err.startswith("error: malformed cursor")


def test_db_url_from_environment(sqlite_url: str) -> None:
    session_id = seeded(sqlite_url)
    result = CliRunner(env={"SESSIONSTORE_URL": sqlite_url}).invoke(main, ["sessions", "list"])
    assert result.exit_code == 0 and session_id in result.stdout


# --- only `upgrade` creates or upgrades ------------------------------------------------------

READ_ONLY = (
    ("doctor",),
    ("sessions", "list"),
    ("show", "s1"),
    ("search", "routers"),
    ("stats",),
    ("export", "s1"),
    ("snapshots", "s1"),
)


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_read_only_commands_on_a_mistyped_path_create_nothing(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    missing = tmp_path / "typo.db"
    code, out, err = run(*args, "--db", f"sqlite:///{missing}")
    assert (code, out) == (2, "")
    assert one_line(err).startswith(f"error: no database at {missing};")
    assert sorted(tmp_path.iterdir()) == []


def revision_of(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return str(conn.execute("SELECT version_num FROM alembic_version").fetchone()[0])


@pytest.fixture
def behind_head(tmp_path: Path) -> Path:
    """A database one revision behind head, with a session in it."""
    path = tmp_path / "behind.db"
    seeded(f"sqlite:///{path}")
    engine = build_engine(StoreConfig(url=f"sqlite:///{path}"))
    try:
        downgrade(engine, "-1")
    finally:
        engine.dispose()
    assert revision_of(path) != head_revision()
    return path


def test_doctor_reports_a_schema_behind_head_as_a_failed_check(behind_head: Path) -> None:
    before = revision_of(behind_head)
    code, out, err = run("doctor", "--db", f"sqlite:///{behind_head}")
    assert code == 1 and err == ""
    [schema] = [line for line in out.splitlines() if line.startswith("schema")]
    assert "FAIL" in schema and "sessionstore upgrade" in schema and before in schema
    for other in ("integrity", "foreign_keys", "orphans", "counts", "journal", "version"):
        assert any(line.startswith(other) for line in out.splitlines()), other
    assert "UNHEALTHY" in out
    code, out, _ = run("doctor", "--db", f"sqlite:///{behind_head}", "--json")
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False
    assert next(c["name"] for c in doc["checks"] if not c["ok"]) == "schema"
    assert revision_of(behind_head) == before  # doctor did not upgrade it
    # --repair needs the current schema: refused, in one line, still not upgraded.
    code, _, err = run("doctor", "--repair", "--db", f"sqlite:///{behind_head}")
    assert code == 2 and "sessionstore upgrade" in one_line(err)
    assert revision_of(behind_head) == before


@pytest.mark.parametrize(
    "args",
    [a for a in READ_ONLY if a[0] != "doctor"]
    + [("sweep",), ("archive", "s1"), ("purge", "--older-than", "1d")],
    ids=" ".join,
)
def test_other_commands_refuse_a_schema_behind_head_in_one_line(
    behind_head: Path, args: tuple[str, ...]
) -> None:
    before = revision_of(behind_head)
    code, out, err = run(*args, "--db", f"sqlite:///{behind_head}")
    assert (code, out) == (2, "")
    assert "run `sessionstore upgrade`" in one_line(err)
    assert revision_of(behind_head) == before


def test_a_database_behind_head_can_be_backed_up_before_its_upgrade(behind_head: Path) -> None:
    before = revision_of(behind_head)
    copy = behind_head.with_name("before-upgrade.db")
    code, _, err = run("backup", str(copy), "--db", f"sqlite:///{behind_head}")
    assert code == 0, err
    assert revision_of(copy) == revision_of(behind_head) == before


def test_doctor_on_a_legacy_file_reports_it_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / ".ai-router-sessions.db"
    build_legacy_db(path, sessions=5, messages_per_session=3, seed=3)
    before = path.read_bytes()
    code, out, _ = run("doctor", "--db", f"sqlite:///{path}")
    assert code == 1
    assert "sessionstore upgrade" in next(ln for ln in out.splitlines() if ln.startswith("schema"))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no backup, no -wal


def test_the_upgrade_report_prints_the_whole_backup_path_and_revisions(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*(["a-rather-long-directory-name"] * 6))
    deep.mkdir(parents=True)
    path = deep / ".ai-router-sessions.db"
    build_legacy_db(path, sessions=3, messages_per_session=2, seed=5)
    code, out, _ = run("upgrade", "--db", f"sqlite:///{path}")
    assert code == 0
    [backup] = list(deep.glob("*.bak-legacy-*"))
    assert len(str(backup)) > 200
    assert str(backup) in out
    assert ", ".join(all_revisions()[1:]) in out  # the legacy file was stamped at 0001
    assert "..." not in out


# --- --db before or after the command ----------------------------------------------------------


def test_db_before_the_command_works_and_the_commands_own_wins(
    sqlite_url: str, tmp_path: Path
) -> None:
    session_id = seeded(sqlite_url)
    code, out, _ = run("--db", sqlite_url, "doctor")
    assert code == 0 and "healthy" in out
    code, out, _ = run("--db", sqlite_url, "sessions", "list")
    assert code == 0 and session_id in out
    other = f"sqlite:///{tmp_path / 'other.db'}"
    code, out, _ = run("--db", other, "sessions", "list", "--db", sqlite_url)
    assert code == 0 and session_id in out
    assert not (tmp_path / "other.db").exists()
    # The environment is the default of both places; an explicit --db beats it.
    result = CliRunner(env={"SESSIONSTORE_URL": other}).invoke(
        main, ["--db", sqlite_url, "show", session_id]
    )
    assert result.exit_code == 0 and "How do routers work?" in result.stdout


# --- every error is one line, exit status 2 ----------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("show",),
        ("show", "s1", "--last", "many"),
        ("sessions", "list", "--status", "asleep"),
        ("frobnicate",),
        ("--bogus", "doctor"),
        ("doctor", "--bogus"),
        ("export", "s1", "--format", "pdf"),
        ("restore-backup", "/no/such/backup.db"),
    ],
    ids=" ".join,
)
def test_usage_errors_are_one_clean_line(sqlite_url: str, args: tuple[str, ...]) -> None:
    assert run("upgrade", "--db", sqlite_url)[0] == 0
    code, out, err = run(*args)
    assert (code, out) == (2, "")
    assert "Usage:" not in one_line(err)


def test_bad_urls_and_paths_are_one_line_naming_the_path(tmp_path: Path) -> None:
    code, _, err = run("upgrade", "--db", "sqlite://relative.db")
    assert code == 2 and "sqlite:///relative.db" in one_line(err)
    code, _, err = run("upgrade", "--db", f"sqlite:///{tmp_path}")
    assert code == 2 and f"{tmp_path} is a directory" in one_line(err)
    code, _, err = run("upgrade", "--db", f"sqlite:///{tmp_path / 'no' / 'such.db'}")
    assert code == 2 and str(tmp_path / "no") in one_line(err)
    assert sorted(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_a_directory_as_the_database_is_one_line_naming_it(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    # The read-only commands open without creating (SQLite mode=rw): the same message.
    code, out, err = run("--db", f"sqlite:///{tmp_path}", *args)
    assert (code, out) == (2, "")
    assert f"{tmp_path} is a directory, not a database file" in one_line(err)
    assert sorted(tmp_path.iterdir()) == []


def test_an_error_quoting_a_path_with_line_breaks_stays_one_line(tmp_path: Path) -> None:
    for name in ("two\nlines.db", "carriage\rreturn.db", "para\u2029graph.db"):
        code, _, err = run("stats", "--db", f"sqlite:///{tmp_path / name}")
        assert code == 2
        assert one_line(err).startswith("error: no database at ")


def test_export_to_an_unusable_file_name_is_one_line(sqlite_url: str, tmp_path: Path) -> None:
    session_id = seeded(sqlite_url)
    for target in ("nul\0name.md", "\ud800.md", str(tmp_path), "x" * 300 + ".md"):
        code, out, err = run("export", session_id, "--db", sqlite_url, "-o", target)
        assert (code, out) == (2, ""), target
        assert one_line(err).startswith("error: ")
        assert "export" in err or "directory" in err, err


def test_export_never_writes_over_the_database_or_another_file(
    sqlite_url: str, tmp_path: Path
) -> None:
    """-o naming the database (or its -wal, or a link to it) once emptied the database."""
    session_id = seeded(sqlite_url)
    db = Path(sqlite_url.removeprefix("sqlite:///"))
    os.chmod(db, 0o600)
    before = db.read_bytes()
    (tmp_path / "sym.db").symlink_to(db)
    os.link(db, tmp_path / "hard.db")
    for target in (db, Path(f"{db}-wal"), tmp_path / "sym.db", tmp_path / "hard.db"):
        for force in ((), ("--force",)):
            code, out, err = run(
                "export", session_id, "--db", sqlite_url, "-o", str(target), *force
            )
            assert (code, out) == (2, ""), (target, err)
            assert "database's own file" in one_line(err)
    kept = tmp_path / "notes.txt"
    kept.write_text("keep me")
    code, _, err = run("export", session_id, "--db", sqlite_url, "-o", str(kept))
    assert code == 2 and "already exists" in one_line(err)
    assert kept.read_text() == "keep me"
    with SessionStore.open(sqlite_url) as store:
        assert store.sessions.get(session_id)
    assert db.read_bytes() == before or db.stat().st_size >= len(before)
    code, _, err = run("export", session_id, "--db", sqlite_url, "-o", str(kept), "--force")
    assert code == 0, err
    assert json.loads(kept.read_text())["session"]["session_id"] == session_id
    fresh = tmp_path / "fresh.json"
    code, _, err = run("export", session_id, "--db", sqlite_url, "-o", str(fresh))
    assert code == 0, err
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600  # the database's bits, not 0644


def test_export_of_an_unknown_session_leaves_no_empty_file(sqlite_url: str, tmp_path: Path) -> None:
    seeded(sqlite_url)
    target = tmp_path / "out.md"
    code, _, err = run("export", "nope", "--db", sqlite_url, "-o", str(target))
    assert code == 2 and one_line(err) == "error: no session with id 'nope'"
    assert not target.exists()
