"""Consistent copies of a SQLite database file.

A WAL database is three files, and copying ``.db`` alone (or copying while a
writer commits) gives a torn copy. Backups here go through SQLite's online
backup API on a dedicated connection, so writers keep writing while it runs
and the copy is one consistent snapshot. The copy is written to a temporary
name beside the destination, checked with ``PRAGMA integrity_check``,
fsynced, and only then renamed into place: a backup killed midway never
replaces a good one.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from .errors import DatabaseCorruptError, InvalidInput, StorageError, translate

__all__ = ["backup_sqlite_file", "default_backup_path", "verify_sqlite_file"]

_PAGES_PER_STEP = 1024


def default_backup_path(path: str | os.PathLike[str], label: str) -> Path:
    """``<file>.bak-<label>-<UTC time>`` beside the database."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    source = Path(path)
    return source.with_name(f"{source.name}.bak-{label}-{stamp}")


def verify_sqlite_file(path: str | os.PathLike[str]) -> None:
    """Raise :class:`DatabaseCorruptError` unless ``path`` is an intact SQLite database."""
    if not Path(path).is_file():
        raise InvalidInput(f"no database file at {os.fspath(path)!r}")
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
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
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        with (
            contextlib.closing(sqlite3.connect(os.fspath(source), timeout=busy_timeout)) as src,
            contextlib.closing(sqlite3.connect(partial)) as dst,
        ):
            src.backup(dst, pages=_PAGES_PER_STEP)
            # The copy is a standalone file: no WAL beside it to lose.
            dst.execute("PRAGMA journal_mode = DELETE")
        verify_sqlite_file(partial)
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


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
