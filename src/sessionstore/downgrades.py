"""Which revisions a downgrade would undo, and whether each of them may be undone.

A downgrade is planned in full before anything changes: the target is
resolved (``base``, a revision id or a unique prefix of one, or ``-N`` for N
steps down), the revisions between the current one and the target are
listed newest first, and every one of them is asked, on the connection that
already holds the upgrade's write lock, whether it can be undone:

* a revision whose module says ``reversible = False`` cannot be undone at
  all; its ``irreversible_reason`` says why and how to go back instead (for
  ``0002_adopt``: the ``.bak-legacy-*`` copy taken before the adoption);
* a revision may define ``downgrade_refusal(connection) -> str | None``,
  which names data its downgrade would destroy and the older schema cannot
  hold (``0004_lifecycle``: sessions that exist only as snapshots).

One refusal stops the whole downgrade with :class:`MigrationError` before
any revision runs, so a downgrade either runs to its target in one
transaction or leaves the database exactly as it was.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine

from alembic import command

from . import migrations
from .engine import probe
from .errors import InvalidInput, MigrationError, SessionStoreError

__all__ = ["DowngradeReport", "downgrade", "plan_downgrade"]

_STEPS = re.compile(r"-(\d+)")


@dataclass(frozen=True, slots=True)
class DowngradeReport:
    """What a downgrade did."""

    from_revision: str
    #: ``None``: the database is back to no revision at all (``base``).
    to_revision: str | None
    #: The revisions undone, newest first.
    undone: tuple[str, ...]


def _destination(scripts: ScriptDirectory, current: str, target: str) -> str | None:
    if target == "base":
        return None
    steps = _STEPS.fullmatch(target)
    if steps is not None:
        revision: str | None = current
        for _ in range(int(steps.group(1))):
            if revision is None:
                raise MigrationError(
                    f"{target} goes below the first revision; the database is at {current!r}"
                )
            revision = _down(scripts, revision)
        return revision
    try:
        found = scripts.get_revision(target)
    except CommandError as exc:
        raise MigrationError(f"no revision {target!r}: {exc}") from exc
    if found is None:
        raise MigrationError(f"no revision {target!r}")
    return found.revision


def _down(scripts: ScriptDirectory, revision: str) -> str | None:
    script = scripts.get_revision(revision)
    assert script is not None
    down = script.down_revision
    if isinstance(down, tuple | list):  # never made: the history is one line
        raise MigrationError(f"revision {revision!r} merges branches; downgrade it with alembic")
    return down


def plan_downgrade(
    conn: Connection, scripts: ScriptDirectory, current: str | None, target: str
) -> tuple[str, ...]:
    """The revisions a downgrade from ``current`` to ``target`` undoes, newest first.

    Raises :class:`MigrationError` (and nothing has changed) when the target is not
    below ``current`` or when any of those revisions refuses to be undone.
    """
    if current is None:
        raise MigrationError("the database has no revision to downgrade from")
    destination = _destination(scripts, current, target)
    undone: list[str] = []
    revision: str | None = current
    while revision != destination:
        if revision is None:
            raise MigrationError(
                f"{target!r} is not below the database's revision {current!r}; "
                "use `sessionstore upgrade` to go up"
            )
        undone.append(revision)
        revision = _down(scripts, revision)
    for name in undone:
        script = scripts.get_revision(name)
        assert script is not None
        module = script.module
        if not getattr(module, "reversible", True):
            reason = getattr(module, "irreversible_reason", "it cannot be undone")
            raise MigrationError(
                f"refused: downgrading to {target!r} would undo {name}, and {reason}; "
                "nothing was changed"
            )
        refusal: Callable[[Connection], str | None] | None = getattr(
            module, "downgrade_refusal", None
        )
        reason = refusal(conn) if refusal is not None else None
        if reason:
            raise MigrationError(
                f"refused: undoing {name} would destroy {reason}; nothing was changed"
            )
    return tuple(undone)


def downgrade(engine: Engine, target: str) -> DowngradeReport:
    """Take the database down to ``target`` (``-1``, a revision, or ``base``).

    The whole downgrade is planned first (see the module docstring); a revision that
    refuses stops it before anything changes. A legacy file is never adopted on the way.
    """
    if not isinstance(target, str) or not target:
        raise InvalidInput(f"a downgrade target is a revision, -N or 'base', not {target!r}")
    plan: list[tuple[str, tuple[str, ...]]] = []

    def check(conn: Connection, current: str | None) -> None:
        plan.append((current or "", plan_downgrade(conn, migrations._scripts(), current, target)))

    def run(conn: Connection) -> None:
        cfg = migrations.alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, target)

    probe(engine)
    try:
        report = migrations._migrate(
            engine, run, skip_when_current=False, adopt_legacy=False, before_run=check
        )
    except SessionStoreError:
        raise
    except Exception as exc:
        raise migrations._migration_error(exc, engine, "downgrade") from exc
    start, undone = plan[0]
    return DowngradeReport(start, report.to_revision or None, undone)
