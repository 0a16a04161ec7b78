"""The files backup and restore write: where, with which permissions, and what they refuse.

* Permissions: from a 0600 database (umask 022) the backup, the restored
  database and the copies kept beside it are all 0600.
* The destination: an existing file is never replaced unless it is a
  database and the caller said so (``overwrite=True``, ``--force``); a
  symbolic link there is never followed, even with ``--force``; links
  planted at the names earlier versions used for partial copies are ignored.
* Restore: a healthy database is replaced only with ``force`` (and its copy
  is kept); a damaged one or a file that is not a database is copied aside
  first; a database whose write lock another connection holds is refused
  with :class:`DatabaseInUse`; a WAL database of another page size and a
  rollback-journal database are restored into as well.
* Hostile paths, through the API and the command line: each is a typed error
  (exit status 2 and one line), and nothing on disk changes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import stat
import subprocess
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner

from sessionstore import (
    DatabaseInUse,
    DestinationExists,
    InvalidInput,
    NotADatabaseError,
    RestoreRefused,
    SessionStore,
    SessionStoreError,
)
from sessionstore.cli import main

Rows = list[tuple[str, int, str]]


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def rows(path: Path) -> Rows:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(
            "SELECT session_id, sequence_number, content FROM messages ORDER BY 1, 2"
        ).fetchall()


def populate(path: Path, tag: str, messages: int = 5) -> None:
    with SessionStore.open(f"sqlite:///{path}") as store:
        sid = store.sessions.create("m", session_id=tag).session_id
        for i in range(messages):
            store.messages.append(sid, "user", f"{tag} {i}")


def listing(directory: Path) -> dict[str, bytes | str]:
    """Every entry of ``directory`` with its bytes (or where its link points)."""
    out: dict[str, bytes | str] = {}
    for entry in sorted(directory.iterdir()):
        if entry.is_symlink():
            out[entry.name] = f"-> {os.readlink(entry)}"
        elif entry.is_file():
            out[entry.name] = entry.read_bytes()
        else:
            out[entry.name] = "dir"
    return out


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def live(tmp_path: Path) -> Path:
    path = tmp_path / "live.db"
    populate(path, "old")
    return path


@pytest.fixture
def backup(tmp_path: Path) -> Path:
    source = tmp_path / "source" / "other.db"
    source.parent.mkdir()
    populate(source, "new", messages=8)
    target = tmp_path / "backup.db"
    with SessionStore.open(f"sqlite:///{source}") as store:
        store.backup(target)
    shutil.rmtree(source.parent)
    return target


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- permissions ----------------------------------------------------------------------------


def test_every_file_written_from_a_0600_database_is_0600(
    tmp_path: Path, live: Path, backup: Path, umask_022: None
) -> None:
    live.chmod(0o600)
    backup.chmod(0o600)
    with SessionStore.open(f"sqlite:///{live}") as store:
        copy = store.backup(tmp_path / "copy.db").path
    assert mode(copy) == 0o600
    restored = SessionStore.restore_backup(backup, tmp_path / "restored.db")
    assert mode(restored.target) == 0o600
    report = SessionStore.restore_backup(backup, live, force=True)
    assert mode(live) == 0o600 and [mode(p) for p in report.moved_aside] == [0o600]
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 10)
    junk.chmod(0o600)
    report = SessionStore.restore_backup(backup, junk, force=True)
    assert mode(junk) == 0o600 and [mode(p) for p in report.moved_aside] == [0o600]
    # A database restored in place keeps its own bits; what is written is never wider
    # than the backup or the database.
    wide = tmp_path / "wide.db"
    shutil.copyfile(copy, wide)
    wide.chmod(0o644)
    kept = SessionStore.restore_backup(backup, wide, force=True).moved_aside[0]
    assert (mode(wide), mode(kept)) == (0o644, 0o600)


def test_a_legacy_files_pre_upgrade_backup_keeps_its_permissions(
    tmp_path: Path, umask_022: None
) -> None:
    from .legacy import build_legacy_db

    path = tmp_path / "legacy.db"
    build_legacy_db(path, sessions=3, messages_per_session=2, seed=1)
    path.chmod(0o600)
    with SessionStore.open(f"sqlite:///{path}") as store:
        assert store.upgrade_report is not None and store.upgrade_report.backup_path
        assert mode(store.upgrade_report.backup_path) == 0o600


# --- the destination of a backup ------------------------------------------------------------


def test_backup_refuses_what_is_at_the_destination_unless_told(tmp_path: Path, live: Path) -> None:
    notes = tmp_path / "keep.txt"
    notes.write_text("precious")
    with SessionStore.open(f"sqlite:///{live}") as store:
        for overwrite in (False, True):
            with pytest.raises(DestinationExists, match="not a SQLite database"):
                store.backup(notes, overwrite=overwrite)
        assert notes.read_text() == "precious"
        first = store.backup(tmp_path / "nightly.db").path
        store.messages.append("old", "user", "later")
        with pytest.raises(DestinationExists, match="overwrite=True"):
            store.backup(first)
        assert len(rows(first)) == 5
        store.backup(first, overwrite=True)
        assert len(rows(first)) == 6
    code, _, err = run("backup", str(first), "--db", f"sqlite:///{live}")
    assert code == 2 and "--force" in err and len(err.strip().splitlines()) == 1
    code, out, _ = run("backup", str(first), "--force", "--db", f"sqlite:///{live}")
    assert code == 0 and str(first) in out


def test_backup_never_follows_a_symbolic_link(tmp_path: Path, live: Path) -> None:
    victim = tmp_path / "victim.db"
    shutil.copyfile(live, victim)
    before = victim.read_bytes()
    link = tmp_path / "link.db"
    link.symlink_to(victim)
    dangling = tmp_path / "dangling.db"
    dangling.symlink_to(tmp_path / "nowhere.db")
    with SessionStore.open(f"sqlite:///{live}") as store:
        for target in (link, dangling):
            for overwrite in (False, True):
                with pytest.raises(InvalidInput, match="symbolic link"):
                    store.backup(target, overwrite=overwrite)
    assert victim.read_bytes() == before and not (tmp_path / "nowhere.db").exists()
    assert link.is_symlink() and dangling.is_symlink()


def test_links_planted_at_predictable_temporary_names_are_ignored(
    tmp_path: Path, live: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    pid = os.getpid()
    for name in (f".copy.db.partial-{pid}", f".live.db.restoring-{pid}",
                 f".sessionstore-{pid}-x"):  # fmt: skip
        (tmp_path / name).symlink_to(victim)
    with SessionStore.open(f"sqlite:///{live}") as store:
        copy = store.backup(tmp_path / "copy.db").path
    SessionStore.restore_backup(copy, live, force=True)
    assert victim.read_text() == "untouched"
    assert not copy.is_symlink() and rows(copy) == rows(live)


# --- restore --------------------------------------------------------------------------------


def test_restore_refuses_a_healthy_database_without_force(
    tmp_path: Path, live: Path, backup: Path
) -> None:
    before = listing(tmp_path)
    with pytest.raises(RestoreRefused, match="force"):
        SessionStore.restore_backup(backup, live)
    code, out, err = run("restore-backup", str(backup), "--db", f"sqlite:///{live}")
    assert (code, out) == (2, "") and "--force" in err and str(live) in err
    assert len(err.strip().splitlines()) == 1
    assert listing(tmp_path) == before
    code, out, _ = run("restore-backup", str(backup), "--force", "--db", f"sqlite:///{live}")
    assert code == 0 and "healthy" in out
    kept = next(tmp_path.glob("live.db.replaced-*"))
    assert str(kept) in out
    assert rows(live) == rows(backup)
    assert [r[2] for r in rows(kept)] == [f"old {i}" for i in range(5)]


def test_restore_replaces_a_damaged_database_or_a_foreign_file_and_says_where_it_went(
    tmp_path: Path, live: Path, backup: Path
) -> None:
    with closing(sqlite3.connect(live)) as conn:
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'messages'").fetchone()
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    with open(live, "r+b") as handle:  # smash the messages table's root page
        handle.seek((root[0] - 1) * size)
        handle.write(b"\xff" * size)
    damaged = live.read_bytes()
    code, out, err = run("restore-backup", str(backup), "--db", f"sqlite:///{live}")
    assert code == 0, err
    kept = next(tmp_path.glob("live.db.damaged-*"))
    assert "damaged" in out and str(kept) in out and kept.read_bytes() == damaged
    with SessionStore.open(f"sqlite:///{live}") as store:
        assert store.health.check().ok
    assert rows(live) == rows(backup)

    foreign = tmp_path / "notes.db"
    foreign.write_text("my notes")
    # The message a foreign file gets names it and advises no restore over it.
    with pytest.raises(NotADatabaseError) as caught:
        SessionStore.open(f"sqlite:///{foreign}")
    assert str(foreign) in str(caught.value) and "restore-backup" not in str(caught.value)
    assert "not a SQLite database" in str(caught.value)
    code, _, err = run("sessions", "list", "--db", f"sqlite:///{foreign}")
    assert code == 2 and str(foreign) in err and "restore-backup" not in err
    with pytest.raises(RestoreRefused, match="not a SQLite database"):
        SessionStore.restore_backup(backup, foreign)
    assert foreign.read_text() == "my notes"
    report = SessionStore.restore_backup(backup, foreign, force=True)
    assert report.previous == "not a database"
    assert [p.read_text() for p in report.moved_aside] == ["my notes"]


def test_restore_is_refused_while_another_connection_holds_the_write_lock(
    tmp_path: Path, live: Path, backup: Path
) -> None:
    before = listing(tmp_path)
    with SessionStore.open(f"sqlite:///{live}") as store, store.transaction() as tx:
        tx.messages.append("old", "user", "uncommitted")
        with pytest.raises(DatabaseInUse, match="write lock"):
            SessionStore.restore_backup(backup, live, force=True)
    after = listing(tmp_path)
    assert after.keys() == before.keys()  # no copy kept, no temporary directory left
    assert [r[2] for r in rows(live)][-1] == "uncommitted"  # the holder committed afterwards


def test_restore_into_a_wal_database_of_another_page_size(tmp_path: Path, backup: Path) -> None:
    live = tmp_path / "big-pages.db"
    with closing(sqlite3.connect(live)) as conn:
        conn.execute("PRAGMA page_size = 8192")
        conn.execute("VACUUM")
    populate(live, "old")
    with closing(sqlite3.connect(backup)) as conn:
        assert conn.execute("PRAGMA page_size").fetchone()[0] == 4096
    reader = SessionStore.open(f"sqlite:///{live}")  # a store that stays open across it
    SessionStore.restore_backup(backup, live, force=True)
    with closing(sqlite3.connect(live)) as conn:
        assert conn.execute("PRAGMA page_size").fetchone()[0] == 8192
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert rows(live) == rows(backup)
    assert [m.content for m in reader.messages.history("new", limit=20).items][-1] == "new 7"
    reader.close()


def test_restore_into_a_rollback_journal_database(tmp_path: Path, backup: Path) -> None:
    live = tmp_path / "plain.db"
    populate(tmp_path / "seed.db", "old")
    with SessionStore.open(f"sqlite:///{tmp_path / 'seed.db'}") as store:
        store.backup(live)  # a backup is a rollback-journal file
    SessionStore.restore_backup(backup, live, force=True)
    assert rows(live) == rows(backup)
    with SessionStore.open(f"sqlite:///{live}") as store:
        assert store.health.check().ok


def test_restore_refuses_backups_that_are_not_sessionstore_databases(
    tmp_path: Path, live: Path
) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    other = tmp_path / "other.db"
    with closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE t (x)")
    junk = tmp_path / "junk.db"
    junk.write_text("junk")
    before = listing(tmp_path)
    for source, error in ((empty, InvalidInput), (other, InvalidInput), (junk, NotADatabaseError),
                          (live, InvalidInput)):  # fmt: skip
        with pytest.raises(error):
            SessionStore.restore_backup(source, live, force=True)
    assert listing(tmp_path) == before


# --- hostile paths --------------------------------------------------------------------------


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """A directory this process cannot write in (root ignores modes: mark it immutable)."""
    if os.geteuid() != 0:
        directory.chmod(0o500)
        try:
            yield
        finally:
            directory.chmod(0o700)
        return
    if (
        shutil.which("chattr") is None
        or subprocess.run(
            ["chattr", "+i", str(directory)], check=False, capture_output=True
        ).returncode
    ):
        pytest.skip("running as root on a file system without chattr +i")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)


def hostile_paths(tmp_path: Path, live: Path) -> dict[str, object]:
    (tmp_path / "notes.txt").write_text("text")
    (tmp_path / "a-directory").mkdir()
    (tmp_path / "link.db").symlink_to(tmp_path / "notes.txt")
    return {
        "nul": str(tmp_path / "a\x00b.db"),
        "lone surrogate": str(tmp_path / "\ud800.db"),
        "undecodable argv": str(tmp_path / "\udcff.db"),
        "non-utf8 bytes": os.fsencode(tmp_path) + b"/\xff\xfe.db",
        "300-byte name": str(tmp_path / ("n" * 300)),
        "directory": str(tmp_path / "a-directory"),
        "missing directory": str(tmp_path / "missing" / "x.db"),
        "symlink": str(tmp_path / "link.db"),
        "text file": str(tmp_path / "notes.txt"),
        "the database": str(live),
        "its -wal": f"{live}-wal",
        "not a path": 12,
        "empty": "",
    }


def test_hostile_backup_and_restore_paths_are_typed_errors_and_change_nothing(
    tmp_path: Path, live: Path, backup: Path
) -> None:
    paths = hostile_paths(tmp_path, live)
    before, live_rows = listing(tmp_path), rows(live)
    escaped = []
    with SessionStore.open(f"sqlite:///{live}") as store:
        for name, path in paths.items():
            for call in (
                store.backup,
                lambda p: store.backup(p, overwrite=True),  # type: ignore[arg-type]
                lambda p: SessionStore.restore_backup(p, live, force=True),  # type: ignore[arg-type]
                lambda p: SessionStore.restore_backup(backup, p),  # type: ignore[arg-type]
            ):
                try:
                    call(path)
                except SessionStoreError:
                    pass
                except Exception as exc:
                    escaped.append(f"{name}: {type(exc).__name__}: {exc}")
                else:
                    escaped.append(f"{name}: accepted")
        assert escaped == []
    assert rows(live) == live_rows
    after = listing(tmp_path)
    after.pop("live.db-wal", None), before.pop("live.db-wal", None)
    after.pop("live.db-shm", None), before.pop("live.db-shm", None)
    assert {k: v for k, v in after.items() if k != "live.db"} == {
        k: v for k, v in before.items() if k != "live.db"
    }


def test_a_read_only_directory_is_a_typed_error(tmp_path: Path, live: Path, backup: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    with read_only(locked), SessionStore.open(f"sqlite:///{live}") as store:
        with pytest.raises(SessionStoreError, match="locked"):
            store.backup(locked / "copy.db")
        with pytest.raises(SessionStoreError, match="locked"):
            SessionStore.restore_backup(backup, locked / "restored.db")
    assert list(locked.iterdir()) == []


@pytest.mark.parametrize("name", ["nul", "undecodable argv", "300-byte name", "directory",
                                  "missing directory", "symlink", "text file", "the database",
                                  "its -wal", "empty"])  # fmt: skip
def test_hostile_paths_on_the_command_line_are_one_line_and_exit_2(
    tmp_path: Path, live: Path, backup: Path, name: str
) -> None:
    path = hostile_paths(tmp_path, live)[name]
    assert isinstance(path, str)
    before = listing(tmp_path)
    url = f"sqlite:///{live}"
    for args in (("backup", path), ("backup", path, "--force"),
                 ("restore-backup", path, "--force"), ("restore-backup", str(backup))):  # fmt: skip
        db = url if args[0] == "backup" or args[1] == path else f"sqlite:///{path}"
        code, out, err = run(*args, "--db", db)
        assert (code, out) == (2, ""), (args, out, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert listing(tmp_path).keys() == before.keys()


def _hot_journal(directory: Path) -> bytes:
    """The bytes of a hot ``-journal`` left by a writer killed midway through a transaction."""
    db = directory / "crashed.db"
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.executemany("INSERT INTO t VALUES (?)", [("x" * 1000,)] * 200)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child dies inside its transaction
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("PRAGMA cache_size = 1")  # the change spills to the file before the commit
        conn.execute("BEGIN")
        conn.execute("UPDATE t SET x = 'y'")
        os._exit(0)
    os.waitpid(pid, 0)
    journal = Path(f"{db}-journal")
    assert journal.stat().st_size > 0
    return journal.read_bytes()


def test_a_stale_wal_or_journal_is_never_applied_to_a_new_copy(
    tmp_path: Path, live: Path, backup: Path
) -> None:
    stale = _hot_journal(tmp_path)
    target = tmp_path / "copy.db"
    for suffix in ("-journal", "-wal"):
        Path(f"{target}{suffix}").write_bytes(stale)
        with SessionStore.open(f"sqlite:///{live}") as store, pytest.raises(InvalidInput):
            store.backup(target)
        Path(f"{target}{suffix}").unlink()
        assert not target.exists()
    # A restore to a path where only a hot journal is left moves it aside first.
    restored = tmp_path / "restored.db"
    Path(f"{restored}-journal").write_bytes(stale)
    report = SessionStore.restore_backup(backup, restored)
    assert [p.read_bytes() for p in report.moved_aside] == [stale]
    assert not Path(f"{restored}-journal").exists()
    with closing(sqlite3.connect(restored)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert rows(restored) == rows(backup)
