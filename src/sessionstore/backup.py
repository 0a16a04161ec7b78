"""Consistent copies of a SQLite database file.

A WAL database is three files, and copying ``.db`` alone (or copying while a
writer commits) gives a torn copy. Backups here go through SQLite's online
backup API on a dedicated connection, in one step: the copy is the snapshot
of one read transaction, which in WAL mode neither waits for writers nor
makes them wait (a stepwise backup would restart every time a writer
commits, and never finish under load). The copy is written to a temporary
name beside the destination, checked with ``PRAGMA integrity_check``,
fsynced, and only then renamed into place: a backup killed midway never
replaces a good one.

Restoring moves the damaged file and its ``-wal``/``-shm`` aside (nothing is
deleted) and puts a verified copy of the backup in its place, the same way.

PostgreSQL has its own route, wrapped here: ``pg_dump --format=custom`` to a
temporary file, checked with ``pg_restore --list``, renamed into place; and
``pg_restore --clean`` back.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import subprocess
import time
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .errors import DatabaseCorruptError, InvalidInput, StorageError, translate

__all__ = [
    "BackupReport",
    "RestoreReport",
    "backup_postgres",
    "backup_sqlite_file",
    "default_backup_path",
    "restore_postgres",
    "restore_sqlite_file",
    "verify_sqlite_file",
]


@dataclass(frozen=True, slots=True)
class BackupReport:
    path: Path
    bytes: int
    seconds: float


@dataclass(frozen=True, slots=True)
class RestoreReport:
    target: Path
    #: Where the files that were in the way went (nothing is deleted).
    moved_aside: tuple[Path, ...]


def default_backup_path(path: str | os.PathLike[str], label: str) -> Path:
    """``<file>.bak-<label>-<UTC time>`` beside the database."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    source = Path(path)
    return source.with_name(f"{source.name}.bak-{label}-{stamp}")


def verify_sqlite_file(path: str | os.PathLike[str]) -> None:
    """Raise :class:`DatabaseCorruptError` unless ``path`` is an intact SQLite database."""
    if not Path(path).is_file():
        raise InvalidInput(f"no database file at {os.fspath(path)!r}")
    uri = "file:" + urllib.parse.quote(os.fspath(Path(path).absolute())) + "?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
            result = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    except sqlite3.Error as exc:
        raise translate(exc, path=os.fspath(path)) from exc
    if result != ["ok"]:
        raise DatabaseCorruptError(
            f"integrity check failed: {'; '.join(result[:5])}", path=os.fspath(path)
        )


def backup_sqlite_file(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    busy_timeout: float = 10.0,
) -> Path:
    """Copy the database at ``source`` to ``destination`` consistently and atomically."""
    target = Path(destination).absolute()
    if not target.parent.is_dir():
        raise InvalidInput(f"the directory {str(target.parent)!r} for the backup does not exist")
    if target.resolve() == Path(source).resolve():
        raise InvalidInput("the backup cannot overwrite the database it copies")
    _remove_abandoned(target.parent)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        with (
            contextlib.closing(sqlite3.connect(os.fspath(source), timeout=busy_timeout)) as src,
            contextlib.closing(sqlite3.connect(partial)) as dst,
        ):
            src.backup(dst)
            # The copy is a standalone file: no WAL beside it to lose.
            dst.execute("PRAGMA journal_mode = DELETE")
        try:
            verify_sqlite_file(partial)
        except DatabaseCorruptError as exc:
            # The copy is as damaged as what it copied: name the database, not the copy.
            detail = str(exc).split(" (file:")[0]
            raise DatabaseCorruptError(detail, path=os.fspath(source)) from None
        _fsync(partial)
        os.replace(partial, target)
        _fsync(target.parent)
    except sqlite3.Error as exc:
        raise translate(exc, path=os.fspath(source)) from exc
    except OSError as exc:
        raise StorageError(f"could not write the backup {str(target)!r}: {exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return target


def restore_sqlite_file(
    backup: str | os.PathLike[str], target: str | os.PathLike[str]
) -> RestoreReport:
    """Put a verified copy of ``backup`` at ``target``; what was there is moved aside.

    No store may have ``target`` open meanwhile: close it first.
    """
    verify_sqlite_file(backup)
    target_path = Path(target).absolute()
    if not target_path.parent.is_dir():
        raise InvalidInput(f"the directory {str(target_path.parent)!r} does not exist")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    _remove_abandoned(target_path.parent)
    partial = target_path.with_name(f".{target_path.name}.restoring-{os.getpid()}")
    try:
        shutil.copyfile(backup, partial)
        _fsync(partial)
        verify_sqlite_file(partial)
        moved = []
        for suffix in ("", "-wal", "-shm"):
            present = Path(f"{target_path}{suffix}")
            if present.exists():
                aside = Path(f"{target_path}.damaged-{stamp}{suffix}")
                os.replace(present, aside)
                moved.append(aside)
        os.replace(partial, target_path)
        _fsync(target_path.parent)
    except OSError as exc:
        raise StorageError(f"could not restore {str(target_path)!r}: {exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return RestoreReport(target_path, tuple(moved))


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
            return str(candidate)
        raise StorageError(f"{name} was not found: install the PostgreSQL client tools")
    return found


def _pg_run(command: list[str]) -> None:
    try:
        subprocess.run(command, check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or exc.stdout or "").strip().splitlines()
        raise StorageError(
            f"{Path(command[0]).name} failed: {detail[-1] if detail else exc}"
        ) from exc


def backup_postgres(url: str, destination: str | os.PathLike[str]) -> BackupReport:
    """``pg_dump`` the database at ``url`` (a libpq URL) into ``destination``, atomically."""
    started = time.monotonic()
    target = Path(destination).absolute()
    if not target.parent.is_dir():
        raise InvalidInput(f"the directory {str(target.parent)!r} for the backup does not exist")
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        _pg_run([_pg_tool("pg_dump"), "--format=custom", f"--file={partial}", url])
        _pg_run([_pg_tool("pg_restore"), "--list", str(partial)])
        _fsync(partial)
        os.replace(partial, target)
        _fsync(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return BackupReport(target, target.stat().st_size, time.monotonic() - started)


def restore_postgres(backup: str | os.PathLike[str], url: str) -> RestoreReport:
    """``pg_restore --clean`` a ``pg_dump`` custom-format file into the database at ``url``."""
    _pg_run([_pg_tool("pg_restore"), "--list", os.fspath(backup)])
    _pg_run([_pg_tool("pg_restore"), "--clean", "--if-exists", "--no-owner",
             "--single-transaction", f"--dbname={url}", os.fspath(backup)])  # fmt: skip
    return RestoreReport(Path(os.fspath(backup)), ())


_ABANDONED = re.compile(r"^\..+\.(?:partial|restoring)-(\d+)(?:-journal|-wal|-shm)?$")


def _remove_abandoned(directory: Path) -> None:
    """Delete the temporary copies that backups or restores killed midway left here.

    Only files named the way this module names them, and only those of
    processes that no longer exist; the copy being written now is never one.
    """
    for stale in directory.glob(".*"):
        found = _ABANDONED.match(stale.name)
        if found is None or int(found[1]) == os.getpid():
            continue
        try:
            os.kill(int(found[1]), 0)
        except ProcessLookupError:
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        except PermissionError:
            pass  # alive, and someone else's


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
