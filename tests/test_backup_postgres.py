"""Backup and restore on PostgreSQL: the native route (pg_dump / pg_restore), wrapped.

A store's ``backup(path)`` writes a custom-format dump (checked with
``pg_restore --list``, renamed into place); ``SessionStore.restore_backup``
loads it into another database, which then holds the same sessions, messages,
metadata, snapshots and search index as the original.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sessionstore import InvalidInput, SessionStore, StorageError

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
