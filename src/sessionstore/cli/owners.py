"""Owner commands: erase a user, and PostgreSQL row-level security."""

from __future__ import annotations

import sys
from dataclasses import asdict

import click

from ..rls import RlsStatus
from .base import db_option, emit_json, fail, json_option, main, opened, table


@main.command("erase-user")
@db_option
@json_option
@click.option("--yes", is_flag=True, help="Erase without asking first.")
@click.argument("app")
@click.argument("user_id", metavar="USER")
def erase_user(url: str, as_json: bool, yes: bool, app: str, user_id: str) -> None:
    """Delete everything of USER of APP, in one transaction, and list what went.

    Sessions, messages, metadata, state, snapshots, lifecycle events and search
    index entries. Backups and exported files still hold what they held: see
    the README.
    """
    if not yes and not sys.stdin.isatty():
        fail("erasing needs a yes: pass --yes (nothing was erased)")
    with opened(url) as store:
        if not yes:
            count = store.sessions.count(app=app, user_id=user_id)
            if not click.confirm(
                f"Erase user {user_id!r} of app {app!r} ({count} sessions) for good?",
                err=True,
            ):
                fail("nothing was erased (pass --yes to erase without asking)")
        report = store.erase_user(app, user_id)
    if as_json:
        emit_json({**asdict(report), "total": report.total})
        return
    rows = [(name.replace("_", " "), count) for name, count in report.tables.items()]
    click.echo(table(("removed", "rows"), rows))
    click.echo(f"\nerased user {user_id!r} of app {app!r}: {report.total} rows")


@main.group()
def rls() -> None:
    """PostgreSQL row-level security for scoped views (opt-in)."""


def _status_table(status: RlsStatus, as_json: bool) -> None:
    if as_json:
        emit_json({"enabled": status.enabled, "tables": {
            name: {"enabled": flags[0], "forced": flags[1], "policy": flags[2]}
            for name, flags in status.tables.items()
        }})  # fmt: skip
        return
    shown = {True: "yes", False: "no"}
    rows = [(name, *(shown[f] for f in flags)) for name, flags in status.tables.items()]
    click.echo(table(("table", "row security", "forced", "policy"), rows))
    click.echo(f"\nrow-level security is {'on' if status.enabled else 'off'}")


@rls.command("enable")
@db_option
@json_option
def rls_enable(url: str, as_json: bool) -> None:
    """Create the owner policies and turn row-level security on."""
    with opened(url) as store:
        _status_table(store.enable_row_level_security(), as_json)


@rls.command("disable")
@db_option
@json_option
def rls_disable(url: str, as_json: bool) -> None:
    """Drop the owner policies and turn row-level security off."""
    with opened(url) as store:
        _status_table(store.disable_row_level_security(), as_json)


@rls.command("status")
@db_option
@json_option
def rls_status(url: str, as_json: bool) -> None:
    """Whether row-level security is on, table by table."""
    with opened(url) as store:
        _status_table(store.row_level_security(), as_json)
