"""PostgreSQL backups: ``pg_dump`` and ``pg_restore``, wrapped.

A backup is ``pg_dump --format=custom`` into a private directory beside the
destination (see :mod:`sessionstore.files`), checked with ``pg_restore
--list``, made readable by its owner only (0600: it holds the whole
database), fsynced and put in place; an existing file is replaced only when
it is a ``pg_dump`` file and the caller said so. A restore is ``pg_restore
--clean --single-transaction``; a database that already holds tables is
replaced only with ``force=True``, and then only after its own dump has been
written beside the backup (nothing is deleted).

The password never appears on a command line, where any local user could
read it from ``/proc``: the tools get the URL without it, and the password in
a passfile (0600, in a private directory, named by ``PGPASSFILE``) that is
removed when the tool exits. ``--no-password`` makes them fail instead of
prompting when no password works.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import URL, create_engine, text
from sqlalchemy.pool import NullPool

from . import files
from .backup import BackupReport, RestoreReport
from .engine import normalize_url
from .errors import InvalidInput, RestoreRefused, StorageError, translate

__all__ = ["backup_postgres", "restore_postgres"]

_DUMP_MAGIC = b"PGDMP"


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
            return str(candidate)
        raise StorageError(f"{name} was not found: install the PostgreSQL client tools")
    return found


@contextlib.contextmanager
def _credentials(url: str | URL) -> Iterator[tuple[str, dict[str, str]]]:
    """The libpq URL without its password, and the environment that supplies it."""
    parsed = normalize_url(url)
    query = dict(parsed.query)
    password = parsed.password or query.pop("password", None)
    # URL.set() keeps a value given as None: build the URL without the password instead.
    libpq = URL.create(
        "postgresql",
        username=parsed.username,
        host=parsed.host,
        port=parsed.port,
        database=parsed.database,
        query=query,
    )
    env = dict(os.environ)
    if password is None:
        yield libpq.render_as_string(hide_password=False), env
        return
    secret = password if isinstance(password, str) else str(password[0])
    private = Path(tempfile.mkdtemp(prefix="sessionstore-pg-"))
    try:
        passfile = private / "pgpass"
        escaped = secret.replace("\\", "\\\\").replace(":", "\\:")
        fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"*:*:*:*:{escaped}\n")
        env["PGPASSFILE"] = str(passfile)
        env.pop("PGPASSWORD", None)
        yield libpq.render_as_string(hide_password=False), env
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _pg_run(command: list[str], env: dict[str, str]) -> None:
    files.step(f"pg:{Path(command[0]).name}")
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or exc.stdout or "").strip().splitlines()
        raise StorageError(
            f"{Path(command[0]).name} failed: {detail[-1] if detail else exc}"
        ) from exc
    except OSError as exc:
        raise files.os_error(exc, f"run {command[0]}") from exc


def backup_postgres(
    url: str | URL, destination: str | os.PathLike[str], *, overwrite: bool = False
) -> BackupReport:
    """``pg_dump`` the database at ``url`` into ``destination``, atomically."""
    started = time.monotonic()
    target = files.checked_path(destination, "the backup path")
    files.check_directory(target, "the backup")
    replacing = files.check_destination(
        target, overwrite=overwrite, magic=_DUMP_MAGIC, kind="pg_dump file"
    )
    with _credentials(url) as (libpq, env), files.private_directory(target.parent) as work:
        partial = work / "backup.dump"
        _pg_run([_pg_tool("pg_dump"), "--no-password", "--format=custom",
                 f"--file={partial}", libpq], env)  # fmt: skip
        _pg_run([_pg_tool("pg_restore"), "--list", str(partial)], env)
        try:
            os.chmod(partial, 0o600)
        except OSError as exc:
            raise files.os_error(exc, f"write {str(target)!r}") from exc
        files.fsync_file(partial)
        files.place(partial, target, overwrite=replacing)
    return BackupReport(target, target.stat().st_size, time.monotonic() - started)


def restore_postgres(
    backup: str | os.PathLike[str], url: str | URL, *, force: bool = False
) -> RestoreReport:
    """``pg_restore --clean`` a ``pg_dump`` custom-format file into the database at ``url``."""
    source = files.checked_path(backup, "the backup")
    if not source.is_file():
        raise InvalidInput(f"no backup file at {str(source)!r}")
    with _credentials(url) as (libpq, env):
        _pg_run([_pg_tool("pg_restore"), "--list", str(source)], env)
        kept: tuple[Path, ...] = ()
        previous = "empty"
        if _holds_tables(url):
            previous = "healthy"
            if not force:
                raise RestoreRefused(normalize_url(url).render_as_string(hide_password=True))
            name = normalize_url(url).database or "database"
            aside = source.with_name(f"{name}.replaced-{files.stamp()}.dump")
            kept = (backup_postgres(url, aside).path,)
        _pg_run([_pg_tool("pg_restore"), "--no-password", "--clean", "--if-exists",
                 "--no-owner", "--single-transaction", f"--dbname={libpq}", str(source)],
                env)  # fmt: skip
    return RestoreReport(source, kept, previous)


def _holds_tables(url: str | URL) -> bool:
    engine = create_engine(normalize_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            count = conn.execute(
                text(
                    "SELECT COUNT(*) FROM information_schema.tables "
                    "WHERE table_schema = current_schema()"
                )
            ).scalar()
    except Exception as exc:
        raise translate(exc) from exc
    finally:
        engine.dispose()
    return bool(count)
