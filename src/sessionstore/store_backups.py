"""The store's backups: a verified copy of the live database, and putting one back.

One part of :class:`~sessionstore.store.SessionStore`, kept apart by concept:
opening, transactions and the repositories are in :mod:`sessionstore.store`;
here the store hands a backup to the module that knows its backend
(:mod:`sessionstore.backup` for SQLite's online backup API,
:mod:`sessionstore.pgdump` for ``pg_dump`` / ``pg_restore``) and a restore to
:mod:`sessionstore.restore`, which owns the rules of replacing a database.
A backup needs an open store; a restore is a static method, since the
database it replaces may be one no store can open.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from sqlalchemy import Engine

from .backup import BackupReport, RestoreReport, backup_sqlite_file
from .config import StoreConfig
from .engine import normalize_url, sqlite_path
from .errors import InvalidInput, InvalidStateError
from .pgdump import backup_postgres, restore_postgres
from .restore import restore_sqlite_file

__all__ = ["BackupMethods"]


class BackupMethods:
    """``backup`` and ``restore_backup`` of :class:`~sessionstore.store.SessionStore`."""

    _engine: Engine
    _config: StoreConfig
    _check_open: Callable[[], None]

    def backup(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> BackupReport:
        """A consistent, verified copy of the database at ``path``, while writers keep writing.

        SQLite: the online backup API on a dedicated connection, checked with
        ``integrity_check``, fsynced and put in place with the database's permission
        bits (or stricter). PostgreSQL: ``pg_dump`` in its custom format, 0600 (restore
        it with :meth:`restore_backup`). Nothing at ``path`` is replaced unless it is
        a backup of the same kind and ``overwrite`` is true; a link there is never
        followed.
        """
        self._check_open()
        if self._engine.dialect.name == "postgresql":
            return backup_postgres(self._engine.url, path, overwrite=overwrite)
        source = sqlite_path(self._engine)
        if source is None:
            raise InvalidStateError("an in-memory database has no file to back up")
        started = time.monotonic()
        target = backup_sqlite_file(
            source,
            path,
            overwrite=overwrite,
            busy_timeout=self._config.busy_timeout.total_seconds(),
        )
        return BackupReport(target, target.stat().st_size, time.monotonic() - started)

    @staticmethod
    def restore_backup(
        backup: str | os.PathLike[str],
        target: str | os.PathLike[str],
        *,
        force: bool = False,
    ) -> RestoreReport:
        """Put a verified backup into the database ``target`` (a SQLite path or URL).

        SQLite: the backup is written *into* the live file in one transaction
        (SQLite's backup API), so the file holds the old database or the restored
        one at every instant, and stores that stay open keep working on it. A
        healthy database is replaced only with ``force=True`` (else
        :class:`RestoreRefused`); a copy of whatever was there is kept beside it and
        listed in the report. Another connection holding the write lock is
        :class:`DatabaseInUse`, and nothing changes. A ``postgresql://`` target is
        restored with ``pg_restore --clean``, the same ``force`` rule applying.
        """
        if isinstance(target, str) and target.startswith(
            ("postgresql:", "postgres:", "postgresql+")
        ):
            return restore_postgres(backup, normalize_url(target), force=force)
        if isinstance(target, str) and target.startswith("sqlite:"):
            path = normalize_url(target).database
            if not path or path == ":memory:":
                raise InvalidInput("restore_backup needs a database file, not memory")
            target = path
        return restore_sqlite_file(backup, target, force=force)
