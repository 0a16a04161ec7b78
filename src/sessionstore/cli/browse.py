"""Commands that read conversations: sessions list, show, export, stats, search."""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import Any

import click

from ..export import Format
from ..records import SessionRecord
from ..search import MARK_END, MARK_START, Mode
from .base import (
    db_option,
    emit_json,
    json_option,
    main,
    opened,
    printable,
    table,
)


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
@click.option("--app", default=None, help="Only sessions of this app.")
@click.option("--user", "user_id", default=None, help="Only sessions of this user (needs --app).")
def list_sessions(
    url: str,
    as_json: bool,
    limit: int,
    cursor: str | None,
    model_id: str | None,
    status: str | None,
    app: str | None,
    user_id: str | None,
) -> None:
    """Sessions, newest activity first."""
    with opened(url) as store:
        page = store.sessions.list(
            limit=limit,
            cursor=cursor,
            model_id=model_id,
            status=status,
            app=app,
            user_id=user_id,
        )
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
@click.option("--output", "-o", default="-", help="File to write (default: standard output).")
@click.option("--force", is_flag=True, help="Replace the output file if it exists.")
def export(url: str, session_id: str, fmt: str, output: str, force: bool) -> None:
    """Export one whole session (streamed, for sessions of any size).

    A file given with -o is written whole or not at all, with the database's
    permission bits; an existing one is replaced only with --force.
    """
    form: Format = "json" if fmt == "json" else "markdown"
    with opened(url) as store:
        if output == "-":
            # "No session" before anything reaches standard output.
            store.sessions.get(session_id)
            store.export(session_id, form, out=sys.stdout)
        else:
            store.export_file(session_id, output, form, overwrite=force)


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


def score(rank: float) -> str:
    """A relevance people can read: the engine's rank (lower is better, at most 0 on both
    backends) turned round, so higher is better, to three significant digits."""
    return f"{-rank + 0.0:.3g}"  # + 0.0: never "-0"


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
    """Find sessions (each once, by its best message) or messages by their words.

    The score is the engine's relevance for this query, higher is better (it is
    not comparable between queries); --json gives the raw rank (lower is better).
    """
    mode: Mode = "advanced" if advanced else "plain"
    rows: list[tuple[Any, ...]]
    with opened(url) as store:
        if every_message:
            found = store.search.messages(
                query, session_id=session_id, limit=limit, cursor=cursor, mode=mode
            )
            rows = [
                (
                    h.message.session_id,
                    h.message.sequence_number,
                    h.message.role,
                    score(h.rank),
                    h.snippet,
                )
                for h in found.items
            ]
            headers: tuple[str, ...] = ("session", "#", "role", "score", "snippet")
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
                    score(h.rank),
                    h.snippet,
                )
                for h in hits.items
            ]
            headers = ("session", "title", "#", "score", "snippet")
            payload = [asdict(h) for h in hits.items]
            next_cursor = hits.next_cursor
    if as_json:
        emit_json({"items": payload, "next_cursor": next_cursor})
        return
    lines = table(headers, [(*row[:-1], "") for row in rows]).splitlines()
    if not rows:
        click.echo("\n".join(lines))  # the headers, then "(none)"
    else:
        # The snippet goes in last, highlighted (its colour codes would upset the
        # widths), from the column where its header starts.
        start = len(lines[0]) - len(headers[-1])
        click.echo("\n".join(lines[:2]))
        for line, row in zip(lines[2:], rows, strict=True):
            click.echo(line.ljust(start) + highlighted(printable(str(row[-1]))))
    if next_cursor:
        click.echo(f"\nnext page: --cursor {next_cursor}")
