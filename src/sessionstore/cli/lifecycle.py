"""Lifecycle commands: sweep, archive, reactivate, purge, snapshots, restore-snapshot.

Each opens an existing database at the current schema (see ``base.opened``).
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from ..records import PurgeReport, SweepReport
from ..store import SessionStore
from .base import db_option, emit_json, json_option, main, opened, table

_SPAN = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_span(text: str) -> timedelta:
    """``90s``, ``10m``, ``1h30m``, ``30d``, ``2w`` as a timedelta."""
    text = text.strip().lower()
    parts = _SPAN.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise click.BadParameter(f"{text!r} is not a duration like 90s, 10m, 1h30m or 30d")
    try:
        span = sum((timedelta(**{_UNITS[u]: float(n)}) for n, u in parts), timedelta())
    except OverflowError:
        raise click.BadParameter(f"{text!r} is longer than any date can reach") from None
    if span > timedelta(days=36_600):
        raise click.BadParameter(f"{text!r} is longer than a century")
    return span


def span_option(ctx: click.Context, param: click.Parameter, value: str | None) -> timedelta | None:
    """Click callback: a duration option's text as a timedelta."""
    return None if value is None else parse_span(value)


def _bar(label: str) -> Callable[[int, int], None]:
    """A progress callback drawing a bar on stderr once there is enough work to show."""
    state: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        if total < 20:
            return
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = click.progressbar(length=total, label=label, file=sys.stderr)
            bar.__enter__()
        bar.update(done - bar.pos)
        if done == total:
            bar.__exit__(None, None, None)

    return update


def _sweep_table(report: SweepReport) -> str:
    rows = [(i.session_id, i.reason, i.deadline, i.snapshot_id) for i in report.archived]
    return table(("session", "timed out", "deadline", "snapshot"), rows)


@main.command()
@db_option
@json_option
@click.option("--dry-run", is_flag=True, help="Report what would be archived; change nothing.")
@click.option("--every", callback=span_option, help="Keep sweeping at this interval.")
@click.option(
    "--purge-after",
    callback=span_option,
    help="Also purge sessions archived longer ago than this.",
)
def sweep(
    url: str, as_json: bool, dry_run: bool, every: timedelta | None, purge_after: timedelta | None
) -> None:
    """Archive the sessions past their idle or hard timeout (snapshot first)."""
    with opened(url) as store:
        if every is not None:
            if dry_run:
                raise click.BadParameter("--dry-run sweeps once; drop --every")
            _sweep_forever(store, every, purge_after)
            return
        report = store.lifecycle.sweep(dry_run=dry_run, progress=_bar("archiving"))
        purged = store.lifecycle.purge(purge_after) if purge_after and not dry_run else None
    if as_json:
        emit_json({"sweep": asdict(report), "purge": None if purged is None else asdict(purged)})
        return
    verb = "would archive" if dry_run else "archived"
    click.echo(_sweep_table(report))
    click.echo(f"\n{verb} {len(report.archived)} session(s)")
    if purged is not None:
        click.echo(_purged_line(purged))


def _sweep_forever(store: SessionStore, every: timedelta, purge_after: timedelta | None) -> None:
    scheduler = store.lifecycle.start_scheduler(every, purge_after=purge_after)
    click.echo(f"sweeping every {every} as {scheduler.holder}; Ctrl-C to stop", err=True)
    seen = 0
    try:
        while scheduler.running:
            time.sleep(0.5)
            if scheduler.runs != seen and scheduler.last_sweep is not None:
                seen = scheduler.runs
                report = scheduler.last_sweep
                stamp = report.now.strftime("%Y-%m-%d %H:%M:%S")
                click.echo(f"{stamp}  archived {len(report.archived)}")
    except KeyboardInterrupt:
        click.echo("stopping", err=True)
    finally:
        scheduler.stop()


@main.command()
@db_option
@json_option
@click.argument("session_id")
@click.option("--reason", default="manual", show_default=True)
def archive(url: str, as_json: bool, session_id: str, reason: str) -> None:
    """Snapshot a session and archive it."""
    with opened(url) as store:
        snapshot = store.lifecycle.archive(session_id, reason=reason)
    if as_json:
        emit_json(asdict(snapshot))
        return
    click.echo(
        f"archived {session_id}: snapshot {snapshot.snapshot_id} "
        f"({snapshot.message_count} messages, {snapshot.stored_bytes} bytes)"
    )


@main.command()
@db_option
@click.argument("session_id")
def reactivate(url: str, session_id: str) -> None:
    """Bring an archived session back."""
    with opened(url) as store:
        store.lifecycle.reactivate(session_id)
    click.echo(f"reactivated {session_id}")


@main.command("restore-snapshot")
@db_option
@json_option
@click.argument("snapshot_id", type=int)
@click.option(
    "--as",
    "new_id",
    metavar="NEW_ID",
    help="Restore a copy under this new id (for a snapshot that cannot come back over its own).",
)
def restore_snapshot(url: str, as_json: bool, snapshot_id: int, new_id: str | None) -> None:
    """Recreate a purged (or archived) session from its newest snapshot, or a copy with --as."""
    with opened(url) as store:
        session = store.lifecycle.restore(snapshot_id, session_id=new_id)
    if as_json:
        emit_json(asdict(session))
        return
    click.echo(f"restored {session.session_id} ({session.message_count} messages)")


@main.command()
@db_option
@json_option
@click.option(
    "--older-than",
    callback=span_option,
    required=True,
    help="Purge sessions archived longer ago than this, e.g. 30d.",
)
@click.option("--app", default=None, help="Only sessions of this app.")
@click.option("--user", "user_id", default=None, help="Only sessions of this user (needs --app).")
def purge(
    url: str, as_json: bool, older_than: timedelta, app: str | None, user_id: str | None
) -> None:
    """Delete long-archived sessions; their snapshots stay, so they can be restored."""
    with opened(url) as store:
        report = store.lifecycle.purge(
            older_than, progress=_bar("purging"), app=app, user_id=user_id
        )
    if as_json:
        emit_json(asdict(report))
        return
    rows = [(p.session_id, p.messages, p.snapshot_id) for p in report.purged]
    click.echo(table(("session", "messages", "snapshot"), rows))
    click.echo(f"\n{_purged_line(report)}")


_FAR = datetime(9998, 1, 1, tzinfo=UTC)


def _timeout_setting(text: str | None, option: str) -> Any:
    """``--idle``/``--hard``: ``default`` (the store's), a duration, or not given."""
    if text is None:
        return _NOT_GIVEN
    if text.strip().lower() == "default":
        return None
    try:
        return parse_span(text)
    except click.BadParameter as exc:
        raise click.BadParameter(f"{exc.message}, or 'default'", param_hint=option) from None


_NOT_GIVEN: Any = object()


@main.command()
@db_option
@json_option
@click.argument("session_id")
@click.option(
    "--idle", metavar="SPAN|default", help="Idle timeout, e.g. 30m; 'default': the store's."
)
@click.option(
    "--hard", metavar="SPAN|default", help="Hard timeout, e.g. 7d; 'default': the store's."
)
@click.option(
    "--never-expires/--expires",
    "never_expires",
    default=None,
    help="Exempt the session from every timeout, or let its timeouts apply again.",
)
def timeouts(
    url: str,
    as_json: bool,
    session_id: str,
    idle: str | None,
    hard: str | None,
    never_expires: bool | None,
) -> None:
    """Show a session's timeouts; set them with --idle, --hard, --never-expires/--expires."""
    changes: dict[str, Any] = {}
    for name, text, option in (("idle_timeout", idle, "--idle"), ("hard_timeout", hard, "--hard")):
        value = _timeout_setting(text, option)
        if value is not _NOT_GIVEN:
            changes[name] = value
    if never_expires is not None:
        changes["never_expires"] = never_expires
    with opened(url) as store:
        if changes:
            session = store.lifecycle.set_timeouts(session_id, **changes)
        else:
            session = store.sessions.get(session_id)
        defaults = store.lifecycle.app_timeouts.get(
            session.app or "", (store.lifecycle.idle_timeout, store.lifecycle.hard_timeout)
        )
        next_due = store.lifecycle.due(session, _FAR)
    if as_json:
        emit_json(
            {
                "session_id": session.session_id,
                "status": session.status,
                "idle_timeout": _seconds(session.idle_timeout),
                "hard_timeout": _seconds(session.hard_timeout),
                "default_idle_timeout": _seconds(defaults[0]),
                "default_hard_timeout": _seconds(defaults[1]),
                "never_expires": session.never_expires,
                "deadline": None if next_due is None else next_due.deadline,
                "reason": None if next_due is None else next_due.reason,
            }
        )
        return
    rows = [
        ("idle timeout", _shown_timeout(session.idle_timeout, defaults[0])),
        ("hard timeout", _shown_timeout(session.hard_timeout, defaults[1])),
        ("never expires", "yes" if session.never_expires else "no"),
        (
            "times out",
            "never"
            if next_due is None
            else f"{next_due.deadline:%Y-%m-%d %H:%M:%S} ({next_due.reason})",
        ),
    ]
    click.echo(table(("setting", "value"), rows))


def _seconds(span: timedelta | None) -> float | None:
    return None if span is None else span.total_seconds()


def _shown_timeout(own: timedelta | None, default: timedelta | None) -> str:
    if own is not None:
        return f"{own} (this session's)"
    return f"{'off' if default is None else default} (the store's default)"


def _purged_line(report: PurgeReport) -> str:
    # Freed rows mostly leave space inside pages that stay in use: the file
    # does not shrink, and a figure of 0 would read as "nothing happened".
    line = f"purged {len(report.purged)} session(s)"
    if report.bytes_freed > 0:
        line += f"; {report.bytes_freed} bytes free for reuse inside the database"
    return line


@main.command()
@db_option
@json_option
@click.argument("session_id")
def snapshots(url: str, as_json: bool, session_id: str) -> None:
    """A session's snapshots and lifecycle history."""
    with opened(url) as store:
        found = store.lifecycle.snapshots(session_id)
        events = store.lifecycle.history(session_id)
        if not found and not events:
            # Nothing recorded: a session that exists, or "no session", as `show` says.
            store.sessions.get(session_id)
    if as_json:
        emit_json({"snapshots": [asdict(s) for s in found], "history": [asdict(e) for e in events]})
        return
    click.echo(
        table(
            ("snapshot", "taken", "reason", "messages", "bytes"),
            [
                (s.snapshot_id, s.created_at, s.reason, s.message_count, s.stored_bytes)
                for s in found
            ],
        )
    )
    click.echo()
    click.echo(
        table(
            ("when", "action", "reason", "snapshot"),
            [(e.occurred_at, e.action, e.reason, e.snapshot_id) for e in events],
        )
    )
