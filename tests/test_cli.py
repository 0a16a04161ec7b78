"""The command line: tables for people, JSON for scripts, clean one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from sessionstore import SessionStore
from sessionstore.cli import main


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
    code, _, err = run("show", "no-such-session", "--db", sqlite_url)
    assert code == 2
    assert err.strip() == "error: no session with id 'no-such-session'"
    code, _, err = run("sessions", "list", "--db", sqlite_url, "--cursor", "garbage!")
    assert code == 2 and err.startswith("error: malformed cursor")


def test_db_url_from_environment(sqlite_url: str) -> None:
    session_id = seeded(sqlite_url)
    result = CliRunner(env={"SESSIONSTORE_URL": sqlite_url}).invoke(main, ["sessions", "list"])
    assert result.exit_code == 0 and session_id in result.stdout
