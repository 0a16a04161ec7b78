"""A damaged SQLite file: detected, reported with a typed error, restored from a backup.

A store of 5 sessions x 60 messages (one session archived, so a snapshot
exists too) is backed up with ``store.backup`` and closed; then the file is
damaged in one of four ways: the 16-byte header, a leaf page of the
``messages`` table, a leaf page of the ``(session_id, sequence_number)``
index that every history read walks, or the file cut to half its length
(pages found with the ``dbstat`` virtual table, else the root page from
``sqlite_master``). For each, what is proved:

* opening the store, or reading every session's history and searching, raises
  :class:`DatabaseCorruptError` whose message names the file and says how to
  restore it (``sessionstore restore-backup``), and whose ``path`` is the file;
* ``store.health.check()`` (full and quick) reports a failed ``integrity``
  check without raising — through the store when it opens, else through a
  store built on an engine without preparing the schema;
* ``SessionStore.restore_backup`` puts the backup back: the logical dump of
  every table equals the dump taken before the damage, the API reads back
  every message, and the damaged file was moved aside byte for byte.

Also pinned: ``SessionStore.open(url, upgrade=False)`` on a damaged file gives
the typed error too, and ``store.backup`` of a damaged file names the damaged
database, not its temporary copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from sessionstore import (
    DatabaseCorruptError,
    NewMessage,
    NotADatabaseError,
    RestoreRefused,
    SessionStore,
    SessionStoreError,
)

from .conftest import logical_dump

pytestmark = pytest.mark.reliability

Expected = dict[str, list[tuple[int, str, str]]]
MESSAGE_TABLE = "messages"
HISTORY_INDEX = "sqlite_autoindex_messages_1"  # UNIQUE (session_id, sequence_number)


def populate(url: str) -> Expected:
    expected: Expected = {}
    with SessionStore.open(url) as store:
        for i in range(5):
            meta = {"n": str(i)}
            sid = store.sessions.create("m", title=f"session {i}", metadata=meta).session_id
            batch = [
                NewMessage("user" if j % 2 == 0 else "assistant",
                           f"message {i}-{j} lorem ipsum " + "dolor sit amet " * 30)
                for j in range(60)
            ]  # fmt: skip
            stored = store.messages.append_many(sid, batch)
            expected[sid] = [(m.sequence_number, m.role, m.content) for m in stored]
        store.lifecycle.archive(next(iter(expected)))
    return expected


def leaf_pages(path: Path, name: str) -> list[int]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        try:
            rows = conn.execute(
                "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno",
                (name,),
            ).fetchall()
        except sqlite3.OperationalError:  # no dbstat in this build: the root page
            rows = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (name,))
            rows = rows.fetchall()
    return [int(row[0]) for row in rows]


def page_size(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("PRAGMA page_size").fetchone()[0])


def smash_page(path: Path, name: str) -> str:
    pages = leaf_pages(path, name)
    assert len(pages) > 1, f"{name} fits on one page; the test needs more data"
    target = pages[len(pages) // 2]
    size = page_size(path)
    noise = random.Random(target).randbytes(size)
    with path.open("r+b") as f:
        f.seek((target - 1) * size)
        f.write(noise)
    return f"leaf page {target} (one of {len(pages)}) of {name}"


def damage_header(path: Path) -> str:
    with path.open("r+b") as f:
        f.write(b"not a database!!")
    return "the 16-byte header"


def truncate(path: Path) -> str:
    size = path.stat().st_size
    os.truncate(path, size // 2)
    return f"cut from {size} to {size // 2} bytes"


DAMAGES: dict[str, Callable[[Path], str]] = {
    "header": damage_header,
    "table_page": lambda path: smash_page(path, MESSAGE_TABLE),
    "index_page": lambda path: smash_page(path, HISTORY_INDEX),
    "truncate": truncate,
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_everything(store: SessionStore, expected: Expected) -> None:
    for sid in expected:
        store.messages.history(sid, limit=1000)
    store.sessions.list(limit=1000)
    store.search.messages("lorem", limit=1000)


def assert_names_the_file(error: DatabaseCorruptError, path: Path) -> None:
    assert error.path == str(path)
    assert str(path) in str(error)
    if isinstance(error, NotADatabaseError):
        # The path may name an unrelated file: no advice to restore a backup over it.
        assert "is not a SQLite database" in str(error)
        assert "restore-backup" not in str(error)
    else:
        assert "restore-backup" in str(error)


@pytest.fixture
def damaged_setup(tmp_path: Path) -> tuple[Path, Path, Expected]:
    path = tmp_path / "sessions.db"
    expected = populate(f"sqlite:///{path}")
    backup = tmp_path / "backup.db"
    with SessionStore.open(f"sqlite:///{path}") as store:
        store.backup(backup)
    assert not Path(f"{path}-wal").exists()  # checkpointed on close: the file is everything
    return path, backup, expected


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damage_is_detected_reported_and_restored(
    damaged_setup: tuple[Path, Path, Expected], damage: str
) -> None:
    path, backup, expected = damaged_setup
    url = f"sqlite:///{path}"
    before = logical_dump(url)
    what = DAMAGES[damage](path)
    damaged_hash = sha256(path)

    # Opening, or reading everything, gives the typed error naming the file.
    where = "open"
    try:
        store = SessionStore.open(url)
    except DatabaseCorruptError as exc:
        error = exc
        engine = create_engine(url)
        try:
            unprepared = SessionStore(engine)
            reports = [unprepared.health.check(), unprepared.health.check(quick=True)]
        finally:
            engine.dispose()
    else:
        where = "read"
        try:
            reports = [store.health.check(), store.health.check(quick=True)]
            with pytest.raises(DatabaseCorruptError) as caught:
                read_everything(store, expected)
            error = caught.value
        finally:
            store.close()
    assert_names_the_file(error, path)
    for report in reports:
        assert not report.ok
        assert not report["integrity"].ok, report["integrity"]
    print(f"\n{damage}: {what}; DatabaseCorruptError at {where}; "
          f"integrity check: {reports[0]['integrity'].detail[:90]}")  # fmt: skip

    # Restore: identical data, the damaged file kept aside byte for byte. A file whose
    # header is gone cannot be told from an unrelated one: that takes force=True.
    if damage == "header":
        with pytest.raises(RestoreRefused, match="--force"):
            SessionStore.restore_backup(backup, url)
        assert sha256(path) == damaged_hash
    restored = SessionStore.restore_backup(backup, url, force=damage == "header")
    assert restored.target == path
    assert len(restored.moved_aside) >= 1
    aside = restored.moved_aside[0]
    assert aside.exists() and aside != path
    assert sha256(aside) == damaged_hash
    assert logical_dump(url) == before
    with SessionStore.open(url) as store:
        assert store.health.check().ok
        for sid, rows in expected.items():
            stored = store.messages.history(sid, limit=1000).items
            assert [(m.sequence_number, m.role, m.content) for m in stored] == rows
        assert store.sessions.count() == len(expected)
        assert store.sessions.count(status="archived") == 1


def test_a_damaged_backup_is_refused_and_the_target_left_alone(
    damaged_setup: tuple[Path, Path, Expected],
) -> None:
    path, backup, _ = damaged_setup
    url = f"sqlite:///{path}"
    before = logical_dump(url)
    smash_page(backup, MESSAGE_TABLE)
    with pytest.raises(DatabaseCorruptError) as caught:
        SessionStore.restore_backup(backup, url)
    assert_names_the_file(caught.value, backup)
    assert logical_dump(url) == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["backup.db", "sessions.db"]


@pytest.mark.parametrize("damage", ["header", "truncate"])
def test_open_without_upgrade_gives_the_typed_error(
    damaged_setup: tuple[Path, Path, Expected], damage: str
) -> None:
    path, _, _ = damaged_setup
    DAMAGES[damage](path)
    try:
        SessionStore.open(f"sqlite:///{path}", upgrade=False).close()
    except SessionStoreError as exc:
        assert isinstance(exc, DatabaseCorruptError), repr(exc)
        assert_names_the_file(exc, path)
    except Exception as exc:
        raise AssertionError(f"{type(exc).__module__}.{type(exc).__name__} escaped") from exc
    else:
        raise AssertionError("a damaged file opened without an error")


def test_backup_of_a_damaged_file_names_the_damaged_file(
    damaged_setup: tuple[Path, Path, Expected],
) -> None:
    path, _, _ = damaged_setup
    smash_page(path, MESSAGE_TABLE)
    target = path.parent / "second-backup.db"
    with (
        SessionStore.open(f"sqlite:///{path}") as store,
        pytest.raises(DatabaseCorruptError) as caught,
    ):
        store.backup(target)
    print(f"\nbackup of a damaged file: {caught.value}")
    assert not target.exists()
    assert_names_the_file(caught.value, path)
