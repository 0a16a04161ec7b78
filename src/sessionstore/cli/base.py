"""The command line's group and the pieces every command uses.

``--db URL`` on every command, ``--json`` where people would otherwise read a
table, one clean line and exit status 2 for a library error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

import click

from ..config import DEFAULT_URL, URL_ENV
from ..errors import SessionStoreError
from ..store import SessionStore

__all__ = ["db_option", "emit_json", "json_option", "main", "opened", "table"]

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
