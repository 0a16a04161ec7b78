"""Backup and restore on PostgreSQL: the native route (pg_dump / pg_restore), wrapped.

A store's ``backup(path)`` writes a custom-format dump (checked with
``pg_restore --list``, renamed into place); ``SessionStore.restore_backup``
loads it into another database, which then holds the same sessions, messages,
metadata, snapshots and search index as the original.

The password of the URL never reaches a command line (checked on the real tools,
against a role the server makes give its password); a dump is 0600, never
replaces a file that is not a dump, never follows a link; a restore over a
database that already holds tables needs ``force``, and keeps its dump first.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from sessionstore import (
    DestinationExists,
    InvalidInput,
    RestoreRefused,
    SessionStore,
    StorageError,
)

from .pgserver import PostgresServer

pytestmark = pytest.mark.postgres


def test_backup_and_restore_into_another_database(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    source_url = postgres_server.create_database()
    with SessionStore.open(source_url) as store:
        sid = store.sessions.create("gpt-4o", title="Routers", metadata={"k": "v"}).session_id
        for i in range(30):
            store.messages.append(sid, "user" if i % 2 == 0 else "assistant", f"packet {i}")
        archived = store.sessions.create("gpt-4o").session_id
        store.messages.append(archived, "user", "kept in a snapshot")
        store.lifecycle.archive(archived)
        report = store.backup(tmp_path / "nightly.dump")
        original = store.export(sid)
    assert report.path.exists() and report.bytes > 0
    assert not list(tmp_path.glob(".*partial*"))

    target_url = postgres_server.create_database()
    SessionStore.restore_backup(report.path, target_url)
    with SessionStore.open(target_url) as restored:
        assert restored.export(sid) == original
        assert restored.sessions.get(archived).status == "archived"
        assert len(restored.lifecycle.snapshots(archived)) == 1
        assert restored.search.sessions("packet").items[0].session.session_id == sid
        assert restored.health.check().ok


def test_a_backup_path_in_a_missing_directory_is_refused(postgres_url: str, tmp_path: Path) -> None:
    with SessionStore.open(postgres_url) as store, pytest.raises(InvalidInput):
        store.backup(tmp_path / "no" / "such" / "dir.dump")


def test_restoring_something_that_is_not_a_dump_is_a_typed_error(
    postgres_url: str, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.dump"
    junk.write_bytes(b"not a dump" * 100)
    with pytest.raises(StorageError, match="pg_restore"):
        SessionStore.restore_backup(junk, postgres_url)


# --- credentials, permissions and the destination ---------------------------------------------

PASSWORD = "s3cret:with\\odd chars"


@pytest.fixture(scope="module")
def password_role(postgres_server: PostgresServer) -> Iterator[str]:
    """A role that must give its password (scram-sha-256); the server trusts everyone else."""
    role = f"pw_{os.getpid()}"
    admin = f"host=127.0.0.1 port={postgres_server.port} user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("SET password_encryption = 'scram-sha-256'")
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(PASSWORD)
            )
        )
        hba = Path(str(conn.execute("SHOW hba_file").fetchone()[0]))  # type: ignore[index]
        original = hba.read_text()
        hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n{original}")
        conn.execute("SELECT pg_reload_conf()")
    try:
        _wait_until_password_is_required(postgres_server, role)
        yield role
    finally:
        hba.write_text(original)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")


def _wait_until_password_is_required(server: PostgresServer, role: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            psycopg.connect(f"host=127.0.0.1 port={server.port} user={role} dbname=postgres "
                            "password=wrong").close()  # fmt: skip
        except psycopg.OperationalError as exc:
            assert "password authentication failed" in str(exc), exc
            return
        assert time.monotonic() < deadline, "the server never asked for the password"
        time.sleep(0.05)


def _database_owned_by(server: PostgresServer, role: str) -> str:
    name = f"pw_{os.getpid()}_{time.monotonic_ns()}"
    admin = f"host=127.0.0.1 port={server.port} user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0").format(
                sql.Identifier(name), sql.Identifier(role)
            )
        )
    password = urllib.parse.quote(PASSWORD, safe="")
    return f"postgresql+psycopg://{role}:{password}@127.0.0.1:{server.port}/{name}"


@pytest.fixture
def recorded_argv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The real pg_dump and pg_restore, behind a shim that writes down their arguments."""
    shims = tmp_path / "shims"
    shims.mkdir()
    log = tmp_path / "argv.log"
    for tool in ("pg_dump", "pg_restore"):
        real = next(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"), None) or shutil.which(tool)
        assert real is not None
        shim = shims / tool
        shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "$0 $*" >> "{log}"\nexec "{real}" "$@"\n')
        shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shims}{os.pathsep}{os.environ['PATH']}")
    return log


def test_the_password_is_never_on_a_command_line(
    postgres_server: PostgresServer, password_role: str, recorded_argv: Path, tmp_path: Path
) -> None:
    source_url = _database_owned_by(postgres_server, password_role)
    with SessionStore.open(source_url) as store:
        sid = store.sessions.create("gpt-4o").session_id
        store.messages.append(sid, "user", "behind a password")
        report = store.backup(tmp_path / "secret.dump")
    target_url = _database_owned_by(postgres_server, password_role)
    SessionStore.restore_backup(report.path, target_url)
    with SessionStore.open(target_url) as restored:
        assert restored.messages.history(sid).items[0].content == "behind a password"
    calls = recorded_argv.read_text().splitlines()
    assert len(calls) == 4  # pg_dump, pg_restore --list, then the restore's --list and load
    assert not [c for c in calls if "s3cret" in c or urllib.parse.quote(PASSWORD) in c]
    assert all(password_role in c for c in calls if "--list" not in c)
    # The password did the work: the wrong one is refused, in one typed error.
    wrong = target_url.replace(urllib.parse.quote(PASSWORD, safe=""), "wrong")
    with pytest.raises(StorageError, match="password authentication failed"):
        SessionStore.restore_backup(report.path, wrong, force=True)


def test_a_dump_is_0600_and_never_replaces_what_it_should_not(
    postgres_url: str, tmp_path: Path
) -> None:
    previous = os.umask(0o022)
    try:
        with SessionStore.open(postgres_url) as store:
            store.sessions.create("m")
            first = store.backup(tmp_path / "nightly.dump").path
            assert stat.S_IMODE(first.stat().st_mode) == 0o600
            with pytest.raises(DestinationExists, match="overwrite=True"):
                store.backup(first)
            store.backup(first, overwrite=True)
            notes = tmp_path / "notes.txt"
            notes.write_text("precious")
            with pytest.raises(DestinationExists, match="not a pg_dump file"):
                store.backup(notes, overwrite=True)
            assert notes.read_text() == "precious"
            link = tmp_path / "link.dump"
            link.symlink_to(notes)
            with pytest.raises(InvalidInput, match="symbolic link"):
                store.backup(link, overwrite=True)
    finally:
        os.umask(previous)
    assert notes.read_text() == "precious"
    assert not list(tmp_path.glob(".sessionstore-*"))


def test_restoring_over_a_database_that_holds_tables_needs_force(
    postgres_url: str, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    with SessionStore.open(postgres_url) as store:
        sid = store.sessions.create("m").session_id
        dump = store.backup(tmp_path / "one.dump").path
    target = postgres_server.create_database()
    with SessionStore.open(target) as other:
        other.sessions.create("m", session_id="already-there")
    with pytest.raises(RestoreRefused, match="--force"):
        SessionStore.restore_backup(dump, target)
    with SessionStore.open(target) as other:
        assert other.sessions.get("already-there")
    report = SessionStore.restore_backup(dump, target, force=True)
    (kept,) = report.moved_aside
    assert kept.read_bytes().startswith(b"PGDMP") and stat.S_IMODE(kept.stat().st_mode) == 0o600
    with SessionStore.open(target) as restored:
        assert restored.sessions.get(sid)


def test_cli_restore_names_the_database_not_the_dump(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from sessionstore.cli import main

    source_url = postgres_server.create_database()
    with SessionStore.open(source_url) as store:
        store.sessions.create("gpt-4o")
        dump = store.backup(tmp_path / "nightly.dump").path
    target_url = postgres_server.create_database()
    result = CliRunner().invoke(main, ["restore-backup", str(dump), "--db", target_url])
    assert result.exit_code == 0, result.output
    database = urllib.parse.urlsplit(target_url).path.lstrip("/")
    first = result.output.splitlines()[0]
    assert first.startswith("restored the database postgresql")
    assert database in first and str(dump) in first
