"""Consistent copies of a SQLite database file.

A WAL database is three files, and copying ``.db`` alone (or copying while a
writer commits) gives a torn copy. Backups here go through SQLite's online
backup API on a dedicated connection that first opens a read transaction and
keeps it until the copy is done: every step copies from that one snapshot,
which in WAL mode neither waits for writers nor makes them wait (without it,
a stepwise backup restarts each time a writer commits, and under load never
finishes). The copy is written in a private directory beside the destination
(see :mod:`sessionstore.files`), switched to a standalone rollback-journal
file, checked with ``PRAGMA integrity_check``, given the source's permission
bits, fsynced, and only then put in place: a backup killed midway never
leaves a partial file at the destination nor replaces a good one. An existing
file is replaced only when it is a SQLite database and the caller said so.

Restoring is :mod:`sessionstore.restore`; PostgreSQL's route is
:mod:`sessionstore.pgdump`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import files
from .errors import (
    DatabaseCorruptError,
    DatabaseInUse,
    DestinationExists,
    InvalidInput,
    SessionStoreError,
    translate,
)

__all__ = [
    "BackupReport",
    "RestoreReport",
    "backup_beside",
    "backup_sqlite_file",
    "copy_database",
    "copy_pages",
    "default_backup_path",
    "sqlite_uri",
    "verify_sqlite_file",
]

# Result codes the backup API's progress callback reports for a lock it could not take.
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6


@dataclass(frozen=True, slots=True)
class BackupReport:
    path: Path
    bytes: int
    seconds: float


@dataclass(frozen=True, slots=True)
class RestoreReport:
    target: Path
    #: Copies of what was at the target, kept beside it (nothing is deleted).
    moved_aside: tuple[Path, ...]
    #: What the target held: ``none``, ``empty``, ``healthy``, ``damaged`` or
    #: ``not a database``.
    previous: str = "none"


def default_backup_path(path: str | os.PathLike[str], label: str) -> Path:
    """``<file>.bak-<label>-<UTC time>`` beside the database."""
    source = Path(path)
    return source.with_name(f"{source.name}.bak-{label}-{files.stamp()}")


def backup_beside(
    source: str | os.PathLike[str], label: str, directory: Path | None = None
) -> Path:
    """Back ``source`` up to a new ``default_backup_path`` (in ``directory`` if given).

    Processes that back the same file up in the same microsecond each get
    their own copy: a name another one took is never reused.
    """
    for attempt in range(1, 101):
        target = default_backup_path(source, label)
        if directory is not None:
            target = directory / target.name
        if attempt > 1:
            target = target.with_name(f"{target.name}-{attempt}")
        try:
            return backup_sqlite_file(source, target)
        except DestinationExists:
            continue
    raise DestinationExists(f"no free backup name beside {str(target)!r}", path=str(target))


def sqlite_uri(path: Path, mode: str) -> str:
    """A ``file:`` URI for ``path`` that neither creates it (``ro``/``rw``) nor misreads it."""
    return "file:" + urllib.parse.quote(os.fspath(path.absolute())) + f"?mode={mode}"


def verify_sqlite_file(path: str | os.PathLike[str]) -> None:
    """Raise :class:`DatabaseCorruptError` unless ``path`` is an intact SQLite database."""
    checked = files.checked_path(path, "the database file")
    if not checked.is_file():
        raise InvalidInput(f"no database file at {str(checked)!r}")
    try:
        with contextlib.closing(sqlite3.connect(sqlite_uri(checked, "ro"), uri=True)) as conn:
            result = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    except sqlite3.Error as exc:
        raise translate(exc, path=os.fspath(checked)) from exc
    if result != ["ok"]:
        raise DatabaseCorruptError(
            f"integrity check failed: {'; '.join(result[:5])}", path=os.fspath(checked)
        )


def copy_pages(
    source: sqlite3.Connection,
    destination: sqlite3.Connection,
    label: str,
    *,
    pages: int | None = None,
    after_first: Callable[[], None] | None = None,
    where: str = "the destination",
) -> None:
    """SQLite's backup API, ``pages`` at a time, with a :func:`files.step` between steps.

    The destination is written in one write transaction, committed by the last
    step. ``after_first`` runs once the first step holds the destination's
    write lock and before anything is committed. A lock that cannot be had
    within the destination's busy timeout is :class:`DatabaseInUse`, and the
    destination is left as it was.
    """
    first = True

    def progress(status: int, remaining: int, _total: int) -> None:
        nonlocal first
        if status & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED):
            raise DatabaseInUse(
                f"another connection holds the write lock on {where}; nothing was changed. "
                "Retry when it is idle"
            )
        files.step(label)
        if first:
            first = False
            if after_first is not None and remaining > 0:
                after_first()

    files.step(label)
    source.backup(destination, pages=pages or files.STEP_PAGES, progress=progress)


def copy_database(
    source: Path,
    partial: Path,
    *,
    mode: int,
    label: str,
    busy_timeout: float = 10.0,
    read_only: bool = False,
) -> None:
    """Copy ``source`` into the new file ``partial`` (in a private directory): one snapshot,
    a standalone rollback-journal file with permission bits ``mode``."""
    try:
        with (
            contextlib.closing(
                sqlite3.connect(
                    sqlite_uri(source, "ro" if read_only else "rw"),
                    uri=True,
                    timeout=busy_timeout,
                    isolation_level=None,
                )
            ) as src,
            contextlib.closing(sqlite3.connect(partial, isolation_level=None)) as dst,
        ):
            os.chmod(partial, mode)
            # One read transaction for every step: one snapshot, never restarted by writers.
            src.execute("BEGIN")
            src.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            copy_pages(src, dst, label)
            src.execute("COMMIT")
            files.step(label)
            # The copy is a standalone file: no WAL beside it to lose.
            dst.execute("PRAGMA journal_mode = DELETE")
    except SessionStoreError:
        raise
    except sqlite3.Error as exc:
        raise translate(exc, path=os.fspath(source)) from exc
    except OSError as exc:
        raise files.os_error(exc, f"copy {str(source)!r}") from exc


def backup_sqlite_file(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    busy_timeout: float = 10.0,
) -> Path:
    """Copy the database at ``source`` to ``destination`` consistently and atomically.

    ``destination`` must not exist, unless it is a SQLite database and
    ``overwrite`` is true; a symbolic link there is never followed.
    """
    source_path = files.checked_path(source, "the database")
    target = files.checked_path(destination, "the backup path")
    files.check_directory(target, "the backup")
    files.refuse_own_files(source_path, target, "the backup")
    replacing = files.check_destination(
        target, overwrite=overwrite, magic=files.SQLITE_MAGIC, kind="SQLite database"
    )
    for suffix in ("-wal", "-journal"):
        # SQLite would replay (or roll back) it into the new file, whoever wrote it.
        if files.lstat(Path(f"{target}{suffix}")) is not None:
            raise InvalidInput(
                f"there is a {suffix[1:]} file at {target}{suffix}: the database there is "
                "open or was not closed cleanly, and SQLite would apply it to the new copy. "
                "Choose another path"
            )
    mode = files.mode_of(source_path)
    with files.private_directory(target.parent) as work:
        partial = work / "backup.db"
        copy_database(source_path, partial, mode=mode, label="backup", busy_timeout=busy_timeout)
        files.step("backup:verify")
        try:
            verify_sqlite_file(partial)
        except DatabaseCorruptError as exc:
            # The copy is as damaged as what it copied: name the database, not the copy.
            detail = str(exc).split(" (file:")[0]
            raise DatabaseCorruptError(detail, path=os.fspath(source_path)) from None
        files.fsync_file(partial)
        files.place(partial, target, overwrite=replacing)
    return target
