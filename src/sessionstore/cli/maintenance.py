"""Commands that look after the database: upgrade, doctor, backup, restore-backup."""

from __future__ import annotations

import sys
from dataclasses import asdict

import click
from sqlalchemy.engine import make_url

from ..store import SessionStore
from .base import db_option, emit_json, json_option, main, opened, table


@main.command()
@db_option
@json_option
def upgrade(url: str, as_json: bool) -> None:
    """Create the database, adopt a legacy file in place, or bring it to the current schema.

    The only command that creates or upgrades a database; the others refuse one
    that is missing or behind.
    """
    with opened(url, "upgrade") as store:
        report = store.upgrade_report
    assert report is not None
    if as_json:
        emit_json(asdict(report))
        return
    rows = [
        ("found", report.found),
        ("from revision", report.from_revision or "-"),
        ("to revision", report.to_revision),
        ("revisions applied", ", ".join(report.applied) or "none (already current)"),
        ("backup", report.backup_path or "-"),
        ("orphaned messages quarantined", report.orphaned_messages_quarantined),
        ("orphaned metadata quarantined", report.orphaned_metadata_quarantined),
        ("counts repaired", report.counts_repaired),
        ("index rows missing before", report.index_rows_missing),
        ("index rows rebuilt", report.index_rows_rebuilt),
        ("metadata kept as non-JSON text", len(report.invalid_json_message_ids)),
    ]
    # Never clipped: the backup path is the one thing the user must be able to copy.
    click.echo(table(("upgrade", "result"), rows, clip=False))


@main.command()
@db_option
@json_option
@click.option("--quick", is_flag=True, help="quick_check instead of a full integrity_check.")
@click.option("--repair", is_flag=True, help="Fix what can be fixed without losing data.")
@click.option(
    "--deep", is_flag=True, help="Also FTS5's own integrity-check (waits for the write lock)."
)
def doctor(url: str, as_json: bool, quick: bool, repair: bool, deep: bool) -> None:
    """Check the database, reading only; exit status 1 when a check finds damage, 3 when
    none does but some could not run (busy, read-only), 0 when all ran and passed.

    Never creates or upgrades: a database behind the current schema is a failed
    check (repairs need the current schema, so --repair refuses it).
    """
    with opened(url, "current" if repair else "any") as store:
        repaired = store.health.repair() if repair else None
        report = store.health.check(quick=quick, deep=deep)
        location = store.path or store.engine.url.render_as_string(hide_password=True)
    if as_json:
        emit_json(
            {
                "ok": report.ok,
                "status": report.status,
                "checks": [{**asdict(c), "ok": c.ok} for c in report.checks],
                "repair": None if repaired is None else asdict(repaired),
            }
        )
    else:
        click.echo(f"database: {location}\n")
        shown = {"ok": "ok", "failed": "FAIL", "unchecked": "could not check"}
        rows = [(c.name, shown[c.status], c.detail) for c in report.checks]
        # Details are not clipped: they say what to run.
        click.echo(table(("check", "status", "detail"), rows, clip=False))
        if repaired is not None:
            click.echo(f"\nrepaired: {asdict(repaired)}")
        verdict = {
            "ok": "healthy",
            "failed": "UNHEALTHY",
            "incomplete": "no damage found, "
            f"but {len(report.unchecked)} check(s) could not run; retry later",
        }
        click.echo(f"\n{verdict[report.status]}")
    if report.status != "ok":
        sys.exit(1 if report.status == "failed" else 3)


@main.command()
@db_option
@json_option
@click.option("--force", is_flag=True, help="Replace a backup already at PATH.")
@click.argument("path")
def backup(url: str, as_json: bool, force: bool, path: str) -> None:
    """Write a consistent, verified copy of the database to PATH (while others keep writing).

    PATH must not exist; with --force, a database already there is replaced.
    """
    # At whatever schema it is: a copy taken before `sessionstore upgrade` is the point.
    with opened(url, "any") as store:
        report = store.backup(path, overwrite=force)
    if as_json:
        emit_json(asdict(report))
        return
    click.echo(f"backed up to {report.path} ({report.bytes} bytes, {report.seconds:.2f}s)")


@main.command("restore-backup")
@db_option
@json_option
@click.option("--force", is_flag=True, help="Replace a healthy database too.")
@click.argument("path")
def restore_backup(url: str, as_json: bool, force: bool, path: str) -> None:
    """Put the backup at PATH into the database; a copy of what was there is kept.

    A healthy database is replaced only with --force. A damaged one, or a file
    that is not a database, is copied aside first.
    """
    report = SessionStore.restore_backup(path, url, force=force)
    if as_json:
        emit_json(asdict(report))
        return
    if url.startswith(("postgresql", "postgres:")):
        where = f"the database {make_url(url).render_as_string(hide_password=True)}"
    else:
        where = str(report.target)
    click.echo(f"restored {where} from {path}")
    for aside in report.moved_aside:
        click.echo(f"  kept a copy of the previous file ({report.previous}) at {aside}")
