"""Putting a SQLite backup back, without ever leaving the live path half-replaced.

A restore never renames files over a database that may be live. The verified
backup is staged in a private directory beside the database (see
:mod:`sessionstore.files`) and then written *into* the live database through
SQLite's online backup API, on a connection of its own. The backup API writes
the destination in one write transaction that its last step commits: in WAL
mode uncommitted frames are ignored after a crash, in rollback mode the hot
journal undoes them. So at every instant the live path holds the old database
(with its own WAL, every acknowledged write readable) or the complete restored
one, and a process that keeps its connection across the restore goes on
writing into the live file, never into one that was moved away. If another
connection holds the write lock, the restore stops with
:class:`DatabaseInUse` and changes nothing.

What was there is kept, never deleted:

* a **healthy** database, and a file that is **not a database** at all
  (perhaps an unrelated one), are replaced only with ``force=True``
  (:class:`RestoreRefused` otherwise). A healthy database's copy,
  ``<file>.replaced-<time>``, is taken through the backup API *after* the
  restore holds the write lock and before it commits, so it holds every
  write acknowledged before the restore;
* a **damaged** database is copied byte for byte (with its ``-wal``) to
  ``<file>.damaged-<time>`` and then written into like a healthy one; if
  SQLite cannot write into it at all it is replaced like a file that is not
  a database;
* a file that is **not a database** (or is empty) is copied aside and
  replaced in one :func:`os.replace`. A ``-wal``, ``-journal`` or ``-shm``
  beside it (or beside a missing database) belongs to no database: it is
  moved aside with it first, because SQLite would otherwise apply it to the
  restored file.

In WAL mode SQLite's backup API cannot change the destination's page size, so
the staged copy is first rebuilt (``VACUUM``) at the live database's page size.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import stat
from pathlib import Path

from . import files
from .backup import RestoreReport, copy_database, copy_pages, sqlite_uri, verify_sqlite_file
from .errors import (
    DatabaseCorruptError,
    DatabaseInUse,
    InvalidInput,
    NotADatabaseError,
    RestoreRefused,
    SessionStoreError,
    StoreBusyError,
    translate,
)

__all__ = ["restore_sqlite_file"]

_REQUIRED_TABLES = frozenset({"sessions", "messages"})
# In rollback mode: pages per step, and a page cache four times that (see _write_into).
_ROLLBACK_STEP_BYTES = 1 << 20
_ROLLBACK_CACHE_KIB = 4096


def restore_sqlite_file(
    backup: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    force: bool = False,
    busy_timeout: float = 2.0,
) -> RestoreReport:
    """Put a verified copy of ``backup`` at ``target`` (see the module docstring)."""
    source = files.checked_path(backup, "the backup")
    live = files.checked_path(target, "the database")
    with contextlib.suppress(OSError):
        if os.path.samefile(source, live):
            raise InvalidInput(f"the backup {source} is the database itself")
    _check_backup(source)
    files.check_directory(live, "the database")
    for suffix in ("-wal", "-shm", "-journal"):
        owner = live.with_name(live.name.removesuffix(suffix))
        if live.name.endswith(suffix) and owner.is_file():
            raise InvalidInput(f"{live} is the {suffix[1:]} file of the database {owner}")
    info = files.lstat(live)
    if info is not None:
        if stat.S_ISLNK(info.st_mode):
            raise InvalidInput(f"{live} is a symbolic link; restore to the file it points to")
        if not stat.S_ISREG(info.st_mode):
            raise InvalidInput(f"{live} is not a regular file; give the path of the database")
    previous = _classify(live, info, busy_timeout)
    if previous == "healthy" and not force:
        raise RestoreRefused(str(live), "is a healthy database (it passes its integrity check)")
    if previous == "not a database" and not force:
        raise RestoreRefused(str(live), "is not a SQLite database (it may be an unrelated file)")
    mode = files.mode_of(source, *([live] if info is not None else []))
    wal_page_size = _wal_page_size(live) if previous in ("healthy", "damaged") else None

    with files.private_directory(live.parent) as work:
        staged, pages = _stage(source, work, mode=mode, page_size=wal_page_size)
        if previous in ("healthy", "damaged"):
            kept = []
            if previous == "damaged":
                kept = _keep_raw_copy(live, work, _aside(live, "damaged"), mode, with_wal=True)
            try:
                kept += _write_into(
                    staged, live, pages, keep=previous == "healthy", mode=mode, work=work,
                    busy_timeout=busy_timeout,
                )  # fmt: skip
            except DatabaseCorruptError:
                if previous == "healthy":
                    raise
                # SQLite cannot even write into it: replace it like a file that is not one.
                kept += _replace(staged, live, previous, mode, work, copy_first=False)
        else:
            kept = _replace(staged, live, previous, mode, work, copy_first=previous != "none")
    return RestoreReport(live, tuple(kept), previous)


def _check_backup(source: Path) -> None:
    """The backup is an intact SQLite file that holds a sessionstore (or legacy) database."""
    try:
        info = os.stat(source)
    except FileNotFoundError:
        raise InvalidInput(f"no backup at {str(source)!r}") from None
    except OSError as exc:
        raise files.os_error(exc, f"read the backup {str(source)!r}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInput(f"the backup {str(source)!r} is not a regular file")
    verify_sqlite_file(source)
    try:
        with contextlib.closing(sqlite3.connect(sqlite_uri(source, "ro"), uri=True)) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    except sqlite3.Error as exc:
        raise translate(exc, path=str(source)) from exc
    if not tables >= _REQUIRED_TABLES:
        raise InvalidInput(
            f"{source} is a SQLite database but not a sessionstore backup "
            "(it has no sessions and messages tables)"
        )


def _classify(live: Path, info: os.stat_result | None, busy_timeout: float) -> str:
    """``none``, ``empty``, ``not a database``, ``damaged`` or ``healthy``."""
    if info is None:
        return "none"
    if info.st_size == 0:
        return "empty"
    if files.read_header(live, len(files.SQLITE_MAGIC)) != files.SQLITE_MAGIC:
        return "not a database"
    try:
        with contextlib.closing(
            sqlite3.connect(sqlite_uri(live, "rw"), uri=True, timeout=busy_timeout)
        ) as conn:
            result = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    except sqlite3.Error as exc:
        error = translate(exc, path=str(live))
        if isinstance(error, NotADatabaseError):
            return "not a database"
        if isinstance(error, DatabaseCorruptError):
            return "damaged"
        if isinstance(error, StoreBusyError):
            raise DatabaseInUse(
                f"another connection holds {live} locked; nothing was changed. "
                "Retry when it is idle"
            ) from exc
        raise error from exc
    return "healthy" if result == ["ok"] else "damaged"


def _wal_page_size(live: Path) -> int | None:
    """The live database's page size if it is in WAL mode (header bytes 16-19)."""
    header = files.read_header(live, 20)
    if len(header) < 20 or header[18:20] != b"\x02\x02":
        return None
    size = int.from_bytes(header[16:18], "big")
    return 65536 if size == 1 else size


def _stage(source: Path, work: Path, *, mode: int, page_size: int | None) -> tuple[Path, int]:
    """A verified copy of the backup in ``work``, at ``page_size``; and its page count."""
    staged = work / "restored.db"
    copy_database(source, staged, mode=mode, label="restore:stage", read_only=True)
    try:
        with contextlib.closing(sqlite3.connect(staged, isolation_level=None)) as conn:
            if page_size is not None and conn.execute("PRAGMA page_size").fetchone()[0] != (
                page_size
            ):
                files.step("restore:page-size")
                conn.execute(f"PRAGMA page_size = {int(page_size)}")
                conn.execute("VACUUM")
            pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
    except sqlite3.Error as exc:
        raise translate(exc, path=str(source)) from exc
    files.step("restore:verify")
    verify_sqlite_file(staged)
    files.fsync_file(staged)
    return staged, pages


def _write_into(
    staged: Path,
    live: Path,
    pages: int,
    *,
    keep: bool,
    mode: int,
    work: Path,
    busy_timeout: float,
) -> list[Path]:
    """Write the staged copy into the live database in one transaction.

    With ``keep``, a consistent copy of the live database is taken once the
    restore holds the write lock: at least two steps, so the first one has
    taken the lock and committed nothing. In WAL mode other connections may
    still read, and the copy goes through the backup API. In rollback mode
    the lock is exclusive (no reader gets in), but nothing has reached the
    file yet either: the first step is kept smaller than the page cache, so
    no page spills to the file before the commit, and the file's bytes *are*
    the committed database.
    """
    kept: list[Path] = []
    page_size = _wal_page_size(live)
    wal = page_size is not None
    if not wal:
        page_size = int.from_bytes(files.read_header(live, 18)[16:18], "big") or 1
        page_size = 65536 if page_size == 1 else page_size

    def keep_current() -> None:
        aside = live.with_name(f"{live.name}.replaced-{files.stamp()}")
        if not wal:
            kept.extend(_keep_raw_copy(live, work, aside, mode, with_wal=False))
            return
        partial = work / "replaced.db"
        copy_database(live, partial, mode=mode, label="restore:keep", busy_timeout=busy_timeout)
        files.fsync_file(partial)
        files.place(partial, aside, overwrite=False)
        kept.append(aside)

    limit = files.STEP_PAGES
    if not wal:
        limit = min(limit, max(1, _ROLLBACK_STEP_BYTES // (page_size or 4096)))
    per_step = max(1, min(limit, pages - 1))
    try:
        with (
            contextlib.closing(
                sqlite3.connect(sqlite_uri(staged, "ro"), uri=True, isolation_level=None)
            ) as src,
            contextlib.closing(
                sqlite3.connect(
                    sqlite_uri(live, "rw"), uri=True, timeout=busy_timeout, isolation_level=None
                )
            ) as dst,
        ):
            # Room for the first step's pages, so none spills to the file (see above).
            dst.execute(f"PRAGMA cache_size = -{_ROLLBACK_CACHE_KIB}")
            copy_pages(
                src, dst, "restore:write", pages=per_step,
                after_first=keep_current if keep else None, where=str(live),
            )  # fmt: skip
    except SessionStoreError:
        raise
    except sqlite3.Error as exc:
        raise translate(exc, path=str(live)) from exc
    if keep and not kept:
        raise AssertionError("the restore committed before the database was kept")
    files.fsync_directory(live.parent)
    return kept


def _aside(live: Path, tag: str) -> Path:
    return live.with_name(f"{live.name}.{tag}-{files.stamp()}")


def _keep_raw_copy(
    live: Path, work: Path, aside_base: Path, mode: int, *, with_wal: bool
) -> list[Path]:
    """Byte-for-byte copies of ``live`` (and of its ``-wal``) at ``aside_base``."""
    kept = []
    for suffix in ("", "-wal") if with_wal else ("",):
        present = Path(f"{live}{suffix}")
        if suffix and files.lstat(present) is None:
            continue
        aside = Path(f"{aside_base}{suffix}")
        partial = work / f"kept{suffix}"
        files.step("restore:keep")
        try:
            fd = os.open(present, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as reader, open(partial, "xb") as writer:
                os.chmod(partial, mode)
                shutil.copyfileobj(reader, writer, 1 << 20)
        except OSError as exc:
            raise files.os_error(exc, f"copy {str(present)!r} aside") from exc
        files.fsync_file(partial)
        files.place(partial, aside, overwrite=False)
        kept.append(aside)
    return kept


def _replace(
    staged: Path, live: Path, previous: str, mode: int, work: Path, *, copy_first: bool
) -> list[Path]:
    """Put the staged copy at ``live`` with one :func:`os.replace` (or a link if none is there)."""
    tag = {"none": "orphaned", "empty": "empty", "damaged": "damaged"}.get(
        previous, "not-a-database"
    )
    aside_base = _aside(live, tag)
    kept = _keep_raw_copy(live, work, aside_base, mode, with_wal=False) if copy_first else []
    for suffix in ("-wal", "-journal", "-shm"):
        # No database can use these once the file is replaced: SQLite would apply them to it.
        present = Path(f"{live}{suffix}")
        if files.lstat(present) is None:
            continue
        aside = Path(f"{aside_base}{suffix}")
        files.step("restore:orphan")
        try:
            os.link(present, aside, follow_symlinks=False)
            os.unlink(present)
        except OSError as exc:
            raise files.os_error(exc, f"move {str(present)!r} aside") from exc
        kept.append(aside)
    files.place(staged, live, overwrite=previous != "none")
    return kept
