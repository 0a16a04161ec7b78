"""How the store writes files beside a database: safely, privately, one step at a time.

Every file the store writes outside the database itself (a backup, a
restored database, the copy of what a restore replaced, the pre-upgrade
backup of a legacy file, a ``pg_dump`` file) is written the same way:

* the partial copy is written inside a **private directory** made with
  :func:`tempfile.mkdtemp` in the destination's directory (mode 0700, an
  unpredictable name), so no one can plant a symbolic link where it is
  written or read it while it is incomplete;
* it gets the **permission bits** of the file it copies, or stricter, before
  it becomes visible (:func:`mode_of`);
* it is fsynced, then put in place in one step: :func:`os.link` when nothing
  may be overwritten (the check and the creation are one atomic call, and
  neither follows a link at the destination), :func:`os.replace` when the
  caller allowed it (which replaces a link, never writes through it);
* the private directories of processes that died midway are removed by the
  next operation in that directory (:func:`remove_abandoned`).

Paths arrive from callers and command lines: :func:`checked_path` turns
anything that is not a usable path (NUL, lone surrogates, bytes that are not
UTF-8, a name longer than the file system takes) into :class:`InvalidInput`,
and :func:`os_error` turns what the operating system refuses into the
package's typed errors.

:func:`step` marks each boundary between two file operations. It does
nothing; the crash tests replace it, in a child process, with one that stops
the process at the k-th boundary, for every k.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from .errors import (
    DestinationExists,
    InvalidInput,
    ReadOnlyError,
    SessionStoreError,
    StorageError,
    StorageFullError,
    StorageIOError,
)

__all__ = [
    "SQLITE_MAGIC",
    "STEP_PAGES",
    "check_destination",
    "check_directory",
    "checked_path",
    "fsync_directory",
    "fsync_file",
    "lstat",
    "mode_of",
    "os_error",
    "place",
    "private_directory",
    "read_header",
    "remove_abandoned",
    "stamp",
    "step",
]

SQLITE_MAGIC = b"SQLite format 3\x00"
#: Pages copied per step of SQLite's backup API (4 MiB at the default page size).
STEP_PAGES = 1024
#: The longest file name most file systems take, in bytes.
_NAME_MAX = 255
_PRIVATE_PREFIX = ".sessionstore-"
_PRIVATE = re.compile(r"^\.sessionstore-(\d+)-[^/]+$")
# Names the versions before private directories used for their partial copies.
_OLD_PARTIAL = re.compile(r"^\..+\.(?:partial|restoring)-(\d+)(?:-journal|-wal|-shm)?$")


def step(label: str) -> None:
    """A boundary between two file operations (see the module docstring)."""


def stamp() -> str:
    """A UTC time for file names, to the microsecond."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


# --- paths from outside ----------------------------------------------------------------


def checked_path(value: object, what: str) -> Path:
    """``value`` as an absolute path, or :class:`InvalidInput` saying why it cannot be one.

    Symbolic links are not resolved: what is at the path is checked by the caller.
    """
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{what} {value!r} is not valid UTF-8") from None
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a path, not {type(value).__name__}")
    if not value:
        raise InvalidInput(f"{what} is empty")
    if "\x00" in value:
        raise InvalidInput(f"{what} {value!r} contains a NUL character")
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates: what Python makes of bytes that are not UTF-8 in argv.
        raise InvalidInput(f"{what} {value!r} is not valid UTF-8 text") from None
    if len(encoded) >= 4096:
        raise InvalidInput(f"{what} is longer than the system allows ({len(encoded)} bytes)")
    try:
        path = Path(value).absolute()
    except OSError as exc:  # the working directory is gone
        raise os_error(exc, f"use the path {value!r}") from exc
    for part in path.parts:
        if len(part.encode("utf-8")) > _NAME_MAX:
            raise InvalidInput(
                f"{what} has a name of {len(part.encode('utf-8'))} bytes; "
                f"file names take at most {_NAME_MAX}"
            )
    return path


def check_directory(path: Path, what: str) -> None:
    """The directory that will hold ``path`` exists and is a directory."""
    parent = path.parent
    try:
        info = os.stat(parent)
    except FileNotFoundError:
        raise InvalidInput(f"the directory {str(parent)!r} for {what} does not exist") from None
    except OSError as exc:
        raise os_error(exc, f"reach the directory {str(parent)!r}") from exc
    if not stat.S_ISDIR(info.st_mode):
        raise InvalidInput(f"{str(parent)!r}, where {what} would go, is not a directory")


def lstat(path: Path) -> os.stat_result | None:
    """What is at ``path`` itself (a link is not followed), or ``None``."""
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise os_error(exc, f"look at {str(path)!r}") from exc


def read_header(path: Path, size: int = 100) -> bytes:
    """The first ``size`` bytes of the regular file at ``path``."""
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except OSError as exc:
        raise os_error(exc, f"read {str(path)!r}") from exc


def check_destination(target: Path, *, overwrite: bool, magic: bytes, kind: str) -> bool:
    """Whether a file of ``kind`` at ``target`` may be replaced; raise if something else is.

    Nothing may be there unless ``overwrite`` is given, and then only a regular
    file that starts with ``magic``: never a link, a directory or another file.
    """
    info = lstat(target)
    if info is None:
        return False
    where = str(target)
    if stat.S_ISLNK(info.st_mode):
        raise InvalidInput(f"{where} is a symbolic link; the store never writes through one")
    if stat.S_ISDIR(info.st_mode):
        raise InvalidInput(f"{where} is a directory; give the path of a file")
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInput(f"{where} is not a regular file")
    if read_header(target, len(magic)) != magic:
        raise DestinationExists(
            f"{where} already exists and is not a {kind}; it was left alone", path=where
        )
    if not overwrite:
        raise DestinationExists(
            f"{where} already exists; pass overwrite=True (`--force`) to replace that {kind}",
            path=where,
        )
    return True


#: The database file and the files SQLite keeps beside it.
SIDE_FILES = ("", "-wal", "-shm", "-journal")


def refuse_own_files(database: Path, target: Path, what: str) -> None:
    """:class:`InvalidInput` if ``target`` names the database or its -wal, -shm or -journal.

    By name and by inode, so neither a symbolic nor a hard link to one of them
    gets past. SQLite keeps the -wal and -shm beside the *resolved* database
    file, so the names are taken from both the path and its resolution.
    """
    bases = {os.path.abspath(database), os.path.realpath(database)}
    own = [Path(f"{base}{suffix}") for base in bases for suffix in SIDE_FILES]
    names = {os.path.realpath(path) for path in own} | {str(path) for path in own}
    real_target = os.path.join(os.path.realpath(target.parent), target.name)
    same = real_target in names or os.path.realpath(target) in names
    try:
        info = os.stat(target)  # through links: what a write would reach
    except OSError:
        info = None
    if info is not None and not same:
        for path in own:
            mine = lstat(path)
            if mine is not None and (mine.st_dev, mine.st_ino) == (info.st_dev, info.st_ino):
                same = True
    if same:
        raise InvalidInput(f"{what} cannot be written over the database's own file {target}")


# --- permissions -----------------------------------------------------------------------


def mode_of(*sources: Path) -> int:
    """Read/write bits no wider than any of ``sources`` (0600 when there are none)."""
    mode = 0o666 if sources else 0o600
    for source in sources:
        try:
            mode &= os.stat(source).st_mode & 0o666
        except OSError as exc:
            raise os_error(exc, f"read the permissions of {str(source)!r}") from exc
    return mode


# --- private directories and placing files ----------------------------------------------


@contextlib.contextmanager
def private_directory(directory: Path) -> Iterator[Path]:
    """A new directory only this process can use, inside ``directory``; removed on exit."""
    remove_abandoned(directory)
    step("mkdtemp")
    try:
        made = Path(tempfile.mkdtemp(prefix=f"{_PRIVATE_PREFIX}{os.getpid()}-", dir=directory))
    except OSError as exc:
        raise os_error(exc, f"write in the directory {str(directory)!r}") from exc
    try:
        yield made
    finally:
        step("cleanup")
        shutil.rmtree(made, ignore_errors=True)


def remove_abandoned(directory: Path) -> None:
    """Remove what writers killed midway left in ``directory``.

    Only directories (and, from earlier versions, partial files) named the way
    this module names them, owned by this user, of processes that no longer
    exist: the work of a live process is never touched.
    """
    try:
        names = os.listdir(directory)
    except OSError:
        return  # the caller reports an unusable directory itself
    for name in names:
        found = _PRIVATE.match(name) or _OLD_PARTIAL.match(name)
        if found is None or int(found[1]) == os.getpid() or _alive(int(found[1])):
            continue
        path = directory / name
        info = lstat(path)
        if info is None or info.st_uid != os.geteuid():
            continue
        if stat.S_ISDIR(info.st_mode):
            shutil.rmtree(path, ignore_errors=True)
        elif stat.S_ISREG(info.st_mode):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, and someone else's
    except (OverflowError, ValueError):
        return False
    return True


def place(partial: Path, target: Path, *, overwrite: bool) -> None:
    """Put the finished file ``partial`` at ``target`` in one step; fsync the directory.

    Without ``overwrite`` a file that appeared at ``target`` meanwhile (or a
    link planted there) makes :class:`DestinationExists`, and nothing changes.
    """
    step("place")
    try:
        if overwrite:
            os.replace(partial, target)
        else:
            _link_exclusive(partial, target)
    except FileExistsError:
        raise DestinationExists(
            f"{str(target)!r} appeared while it was being written; it was left alone",
            path=str(target),
        ) from None
    except OSError as exc:
        raise os_error(exc, f"write {str(target)!r}") from exc
    fsync_directory(target.parent)


def _link_exclusive(partial: Path, target: Path) -> None:
    try:
        os.link(partial, target, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
        # A file system without hard links: claim the name exclusively, then fill it.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        os.close(fd)
        os.replace(partial, target)


def fsync_file(path: Path) -> None:
    step("fsync")
    _fsync(path, os.O_RDONLY | os.O_NOFOLLOW, f"write {str(path)!r}")


def fsync_directory(path: Path) -> None:
    _fsync(path, os.O_RDONLY | os.O_DIRECTORY, f"write in the directory {str(path)!r}")


def _fsync(path: Path, flags: int, doing: str) -> None:
    try:
        fd = os.open(path, flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise os_error(exc, doing) from exc


# --- what the operating system refused ---------------------------------------------------


def os_error(exc: OSError, doing: str) -> SessionStoreError:
    """The typed error for an :class:`OSError` met while trying to ``doing``."""
    code = exc.errno
    reason = exc.strerror or type(exc).__name__
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ReadOnlyError(f"could not {doing}: {reason}")
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return StorageFullError(f"could not {doing}: {reason}; nothing was changed")
    if code in (errno.ENAMETOOLONG, errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ELOOP):
        return InvalidInput(f"could not {doing}: {reason}")
    if code == errno.EEXIST:
        return DestinationExists(f"could not {doing}: {reason}", path=str(exc.filename))
    if code == errno.EIO:
        return StorageIOError(f"could not {doing}: {reason}")
    return StorageError(f"could not {doing}: {reason}")
