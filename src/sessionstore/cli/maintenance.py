"""Commands that look after the database: upgrade, doctor, backup, restore-backup."""

from __future__ import annotations

import sys
from dataclasses import asdict

import click

from ..store import SessionStore
from .base import db_option, emit_json, json_option, main, opened, table


@main.command()
@db_option
@json_option
def upgrade(url: str, as_json: bool) -> None:
    """Create the database, adopt a legacy file in place, or bring it to the current schema."""
    with opened(url) as store:
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
    click.echo(table(("upgrade", "result"), rows))


@main.command()
@db_option
@json_option
@click.option("--quick", is_flag=True, help="quick_check instead of a full integrity_check.")
@click.option("--repair", is_flag=True, help="Fix what can be fixed without losing data.")
def doctor(url: str, as_json: bool, quick: bool, repair: bool) -> None:
    """Check the database; exit status 1 when any check fails."""
    with opened(url) as store:
        repaired = store.health.repair() if repair else None
        report = store.health.check(quick=quick)
        location = store.path or store.engine.url.render_as_string(hide_password=True)
    if as_json:
        emit_json(
            {
                "ok": report.ok,
                "checks": [asdict(c) for c in report.checks],
                "repair": None if repaired is None else asdict(repaired),
            }
        )
    else:
        click.echo(f"database: {location}\n")
        rows = [(c.name, "ok" if c.ok else "FAIL", c.detail) for c in report.checks]
        click.echo(table(("check", "status", "detail"), rows))
        if repaired is not None:
            click.echo(f"\nrepaired: {asdict(repaired)}")
        click.echo(f"\n{'healthy' if report.ok else 'UNHEALTHY'}")
    if not report.ok:
        sys.exit(1)


@main.command()
@db_option
@json_option
@click.argument("path", type=click.Path(dir_okay=False))
def backup(url: str, as_json: bool, path: str) -> None:
    """Write a consistent, verified copy of the database to PATH (while others keep writing)."""
    with opened(url) as store:
        report = store.backup(path)
    if as_json:
        emit_json(asdict(report))
        return
    click.echo(f"backed up to {report.path} ({report.bytes} bytes, {report.seconds:.2f}s)")


@main.command("restore-backup")
@db_option
@json_option
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def restore_backup(url: str, as_json: bool, path: str) -> None:
    """Replace the database with the backup at PATH; the old files are moved aside."""
    report = SessionStore.restore_backup(path, url)
    if as_json:
        emit_json(asdict(report))
        return
    click.echo(f"restored {report.target} from {path}")
    for aside in report.moved_aside:
        click.echo(f"  kept the previous file as {aside}")
