"""Alembic environment for sessionstore.

Two ways in, one path:

* from code (``SessionStore.upgrade()``, the ``sessionstore upgrade`` command,
  the tests): the caller has already opened the transaction, turned foreign
  keys off on SQLite, and stamped a legacy file; it passes its connection in
  ``config.attributes["connection"]`` and this file only runs the revisions
  on it;
* from the ``alembic`` command line: this file hands the work to
  :func:`sessionstore.alembic_runner.run_alembic_online`, which does what
  ``SessionStore.upgrade()`` does (detect, back up, stamp, one transaction,
  foreign-key check), plans a downgrade in full before running it, opens the
  database read-only for ``alembic current``, and calls back
  :func:`run_revisions` on its connection. Its errors end the command with
  alembic's one ``FAILED:`` line, not a traceback.
"""

import logging
from logging.config import fileConfig

from alembic.util import CommandError
from sqlalchemy.engine import Connection

from alembic import context

config = context.config


class _OnlyProgress(logging.Filter):
    """Keep "Running upgrade a -> b"; drop the lines every connection repeats."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Context impl", "Will assume"))


def run_revisions(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=None,
        # Revisions spell their SQLite table rebuilds out in full; batch mode
        # is still there for later revisions that want it.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    # The caller's transaction is already open, so this does not commit: every
    # revision of one upgrade lands together or not at all.
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    from sessionstore.migrations import resolve_url

    context.configure(
        url=resolve_url(context.get_x_argument(as_dictionary=True).get("url")),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_command_line() -> None:
    if config.config_file_name is not None:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    logging.getLogger("alembic.runtime.migration").addFilter(_OnlyProgress())
    from sessionstore.alembic_runner import run_alembic_online
    from sessionstore.errors import SessionStoreError

    command = getattr(getattr(config, "cmd_opts", None), "cmd", None)
    try:
        run_alembic_online(
            url=context.get_x_argument(as_dictionary=True).get("url"),
            run=run_revisions,
            command_name=command[0].__name__ if command else None,
            target=getattr(config.cmd_opts, "revision", None) if command else None,
        )
    except SessionStoreError as exc:
        # alembic prints a CommandError as one "FAILED: ..." line and exits non-zero.
        raise CommandError(str(exc)) from None


connection = config.attributes.get("connection")
if context.is_offline_mode():
    run_offline()
elif connection is not None:
    run_revisions(connection)
else:
    run_command_line()
