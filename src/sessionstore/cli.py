"""The ``sessionstore`` command line: a thin layer over the library.

Every command takes ``--db URL`` (default ``$SESSIONSTORE_URL``, else
``./.ai-router-sessions.db``). Results people scan are tables; ``--json``
prints the same data for scripts. Library errors become one clean line on
stderr and exit status 2; ``doctor`` exits 1 when a check fails.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any, TypeVar

import click

from .config import DEFAULT_URL, URL_ENV
from .errors import SessionStoreError
from .lifecycle import SweepReport
from .records import SessionRecord
from .search import MARK_END, MARK_START, Mode
from .store import SessionStore

__all__ = ["main"]

F = TypeVar("F", bound=Callable[..., Any])


def db_option(func: F) -> F:
    return click.option(
        "--db",
        "url",
        envvar=URL_ENV,
        default=DEFAULT_URL,
        show_default=True,
        help=f"Database URL (or set {URL_ENV}).",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(func)


@contextmanager
def opened(url: str) -> Iterator[SessionStore]:
    """The store at ``url``, brought to the current schema, closed on exit."""
    with SessionStore.open(url) as store:
        yield store


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table with aligned columns."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)), line]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    if not cells:
        out.append("(none)")
    return "\n".join(text.rstrip() for text in out)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.2f}"
    text = str(value).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=_json_default, ensure_ascii=False))


class CleanErrors(click.Group):
    """Library errors become one line and exit status 2, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SessionStoreError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=CleanErrors)
@click.version_option(package_name="sessionstore")
def main() -> None:
    """Conversation history for LLM applications, stored in SQL."""


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


@main.group()
def sessions() -> None:
    """Browse sessions."""


@sessions.command("list")
@db_option
@json_option
@click.option("--limit", default=20, show_default=True, help="Sessions per page (1-1000).")
@click.option("--cursor", default=None, help="The next_cursor of the previous page.")
@click.option("--model", "model_id", default=None, help="Only sessions of this model.")
@click.option("--status", default=None, type=click.Choice(["active", "archived"]))
def list_sessions(
    url: str,
    as_json: bool,
    limit: int,
    cursor: str | None,
    model_id: str | None,
    status: str | None,
) -> None:
    """Sessions, newest activity first."""
    with opened(url) as store:
        page = store.sessions.list(limit=limit, cursor=cursor, model_id=model_id, status=status)
    if as_json:
        emit_json({"items": [asdict(s) for s in page.items], "next_cursor": page.next_cursor})
        return
    click.echo(
        table(
            ("session", "model", "title", "msgs", "tokens", "status", "last activity"),
            [_session_row(s) for s in page.items],
        )
    )
    if page.next_cursor:
        click.echo(f"\nnext page: --cursor {page.next_cursor}")


def _session_row(s: SessionRecord) -> tuple[Any, ...]:
    return (
        s.session_id,
        s.model_id,
        s.title,
        s.message_count,
        s.total_tokens,
        s.status,
        s.last_activity,
    )


@main.command()
@db_option
@json_option
@click.argument("session_id")
@click.option("--last", "last", default=None, type=int, help="Only the last N messages.")
def show(url: str, as_json: bool, session_id: str, last: int | None) -> None:
    """One conversation, readable."""
    with opened(url) as store:
        session = store.sessions.get(session_id)
        if last is not None:
            messages = store.messages.recent(session_id, last)
        else:
            messages = []
            cursor = None
            while True:
                page = store.messages.history(session_id, limit=1000, cursor=cursor)
                messages.extend(page.items)
                if (cursor := page.next_cursor) is None:
                    break
    if as_json:
        emit_json({"session": asdict(session), "messages": [asdict(m) for m in messages]})
        return
    click.secho(session.title or "Untitled session", bold=True)
    click.echo(
        f"{session.session_id} · {session.model_name or session.model_id} · "
        f"{session.message_count} messages · {session.total_tokens} tokens · "
        f"{session.status}"
    )
    colors = {"user": "cyan", "assistant": "green", "system": "yellow", "tool": "magenta"}
    for message in messages:
        stamp = message.timestamp.strftime("%Y-%m-%d %H:%M:%S")
        click.echo()
        click.secho(
            f"[{message.sequence_number}] {message.role} · {stamp}",
            fg=colors.get(message.role),
            bold=True,
        )
        click.echo(message.content)


@main.command()
@db_option
@click.argument("session_id")
@click.option(
    "--format", "fmt", type=click.Choice(["json", "markdown"]), default="json", show_default=True
)
@click.option(
    "--output",
    "-o",
    type=click.File("w", encoding="utf-8"),
    default="-",
    help="File to write (default: standard output).",
)
def export(url: str, session_id: str, fmt: str, output: Any) -> None:
    """Export one whole session (streamed, for sessions of any size)."""
    with opened(url) as store:
        store.export(session_id, "json" if fmt == "json" else "markdown", out=output)


@main.command()
@db_option
@json_option
def stats(url: str, as_json: bool) -> None:
    """Totals and a per-model breakdown."""
    with opened(url) as store:
        result = store.stats()
    if as_json:
        emit_json(asdict(result))
        return
    click.echo(
        table(
            ("sessions", "messages", "tokens", "duration (s)", "active", "archived"),
            [
                (
                    result.sessions,
                    result.messages,
                    result.tokens,
                    result.duration_seconds,
                    result.by_status.get("active", 0),
                    result.by_status.get("archived", 0),
                )
            ],
        )
    )
    click.echo()
    rows = [
        (m.model_id, m.sessions, m.messages, m.tokens, m.duration_seconds, m.last_activity)
        for m in result.by_model
    ]
    click.echo(
        table(("model", "sessions", "messages", "tokens", "duration (s)", "last activity"), rows)
    )


def highlighted(snippet: str) -> str:
    """A snippet with its marked terms in bold colour (plain where colour is off)."""
    out = []
    rest = snippet
    while MARK_START in rest:
        before, _, after = rest.partition(MARK_START)
        term, _, rest = after.partition(MARK_END)
        out.append(before + click.style(term, fg="yellow", bold=True))
    out.append(rest)
    return "".join(out).replace("\n", " ")


@main.command()
@db_option
@json_option
@click.argument("query")
@click.option("--limit", default=20, show_default=True, help="Hits per page (1-1000).")
@click.option("--cursor", default=None, help="The next_cursor of the previous page.")
@click.option("--model", "model_id", default=None, help="Only sessions of this model.")
@click.option("--status", default=None, type=click.Choice(["active", "archived"]))
@click.option("--recent", is_flag=True, help="Newest activity first instead of best match.")
@click.option("--messages", "every_message", is_flag=True, help="Every matching message.")
@click.option("--session", "session_id", default=None, help="With --messages: one session.")
@click.option("--advanced", is_flag=True, help="The engine's own query syntax.")
def search(
    url: str,
    as_json: bool,
    query: str,
    limit: int,
    cursor: str | None,
    model_id: str | None,
    status: str | None,
    recent: bool,
    every_message: bool,
    session_id: str | None,
    advanced: bool,
) -> None:
    """Find sessions (each once, by its best message) or messages by their words."""
    mode: Mode = "advanced" if advanced else "plain"
    rows: list[tuple[Any, ...]]
    with opened(url) as store:
        if every_message:
            found = store.search.messages(
                query, session_id=session_id, limit=limit, cursor=cursor, mode=mode
            )
            rows = [
                (h.message.session_id, h.message.sequence_number, h.message.role, h.rank, h.snippet)
                for h in found.items
            ]
            headers: tuple[str, ...] = ("session", "#", "role", "rank", "snippet")
            payload = [asdict(h) for h in found.items]
            next_cursor = found.next_cursor
        else:
            hits = store.search.sessions(
                query,
                limit=limit,
                cursor=cursor,
                model_id=model_id,
                status=status,
                order="recent" if recent else "relevance",
                mode=mode,
            )
            rows = [
                (
                    h.session.session_id,
                    h.session.title,
                    "title" if h.in_title else h.sequence_number,
                    h.rank,
                    h.snippet,
                )
                for h in hits.items
            ]
            headers = ("session", "title", "#", "rank", "snippet")
            payload = [asdict(h) for h in hits.items]
            next_cursor = hits.next_cursor
    if as_json:
        emit_json({"items": payload, "next_cursor": next_cursor})
        return
    lines = table(headers, [(*row[:-1], "") for row in rows]).splitlines()
    click.echo("\n".join(lines[:2]))
    for line, row in zip(lines[2:], rows, strict=False):
        click.echo(line.rstrip() + " " + highlighted(str(row[-1])))
    if next_cursor:
        click.echo(f"\nnext page: --cursor {next_cursor}")


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
        click.echo(f"purged {len(purged.purged)} session(s), freed {purged.bytes_freed} bytes")


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
def restore_snapshot(url: str, as_json: bool, snapshot_id: int) -> None:
    """Recreate a purged (or archived) session from one of its snapshots."""
    with opened(url) as store:
        session = store.lifecycle.restore(snapshot_id)
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
def purge(url: str, as_json: bool, older_than: timedelta) -> None:
    """Delete long-archived sessions; their snapshots stay, so they can be restored."""
    with opened(url) as store:
        report = store.lifecycle.purge(older_than, progress=_bar("purging"))
    if as_json:
        emit_json(asdict(report))
        return
    rows = [(p.session_id, p.messages, p.snapshot_id) for p in report.purged]
    click.echo(table(("session", "messages", "snapshot"), rows))
    click.echo(f"\npurged {len(report.purged)} session(s), freed {report.bytes_freed} bytes")


@main.command()
@db_option
@json_option
@click.argument("session_id")
def snapshots(url: str, as_json: bool, session_id: str) -> None:
    """A session's snapshots and lifecycle history."""
    with opened(url) as store:
        found = store.lifecycle.snapshots(session_id)
        events = store.lifecycle.history(session_id)
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
