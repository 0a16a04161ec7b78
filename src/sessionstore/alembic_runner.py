"""The ``alembic`` command line's way in (called from ``alembic/env.py``).

``alembic upgrade`` takes the path of :func:`sessionstore.migrations.upgrade`
(a legacy file is backed up and adopted, every revision in one locked
transaction), ``alembic downgrade`` the path of
:func:`sessionstore.downgrades.downgrade` (planned, and refused before
anything changes), ``alembic stamp`` the same locked transaction without
adopting. Every other command (``current``, ``heads`` …) only reads: it opens
the database without creating it, adopting it or switching it to WAL.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection

from .config import StoreConfig
from .downgrades import plan_downgrade
from .engine import build_engine, probe, reader
from .errors import SessionStoreError
from .migrations import _migrate, _migration_error, _scripts

__all__ = ["run_alembic_online"]

#: The ``alembic`` commands that change a database; the others only read it.
_WRITING_COMMANDS = frozenset({"upgrade", "downgrade", "stamp"})


def run_alembic_online(
    url: str | None,
    run: Callable[[Connection], None],
    *,
    command_name: str | None = "upgrade",
    target: str | None = None,
) -> None:
    """Run ``alembic COMMAND_NAME`` (see the module docstring); ``run`` runs the revisions."""
    writing = command_name is None or command_name in _WRITING_COMMANDS
    creates = command_name in (None, "upgrade", "stamp")
    engine = build_engine(StoreConfig.from_env(url), create=creates)
    try:
        probe(engine)
        if not writing:
            with reader(engine).connect() as conn:
                run(conn)
                conn.rollback()
            return
        before_run = None
        if command_name == "downgrade" and target is not None:

            def before_run(conn: Connection, current: str | None) -> None:
                plan_downgrade(conn, _scripts(), current, target)

        what = "downgrade" if command_name == "downgrade" else "upgrade"
        try:
            _migrate(
                engine,
                run,
                skip_when_current=False,
                adopt_legacy=command_name in (None, "upgrade"),
                before_run=before_run,
            )
        except SessionStoreError:
            raise
        except Exception as exc:
            raise _migration_error(exc, engine, what) from exc
    finally:
        engine.dispose()
