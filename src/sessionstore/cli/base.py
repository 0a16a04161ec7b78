"""The command line's group and the pieces every command uses.

``--db URL`` before the command or after it (the command's own wins), ``--json``
where people would otherwise read a table, one clean line and exit status 2
for every error: a library error, a usage error, a bad option value.

Only ``sessionstore upgrade`` creates or upgrades a database. Every other
command opens an existing one (``create=False``) without touching its schema
(``upgrade=False``): a mistyped path is an error naming the path, and a
database behind the current schema is an error naming ``sessionstore
upgrade`` (``doctor`` reports it as a failed check instead).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Literal, NoReturn, TypeVar

import click

from ..config import DEFAULT_URL, URL_ENV
from ..errors import SessionStoreError
from ..store import SessionStore

__all__ = [
    "db_option",
    "emit_json",
    "fail",
    "json_option",
    "main",
    "opened",
    "table",
]

F = TypeVar("F", bound=Callable[..., Any])


def _db_url(ctx: click.Context, _param: click.Parameter, value: str | None) -> str:
    """The command's ``--db``, else the one given before the command, else the environment."""
    if value is not None:
        return value
    given = ctx.find_root().params.get("url")
    return str(given or os.environ.get(URL_ENV) or DEFAULT_URL)


def db_option(func: F) -> F:
    return click.option(
        "--db",
        "url",
        default=None,
        callback=_db_url,
        help=f"Database URL (default: --db before the command, ${URL_ENV}, else {DEFAULT_URL}).",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(func)


Schema = Literal["upgrade", "current", "any"]


@contextmanager
def opened(url: str, schema: Schema = "current") -> Iterator[SessionStore]:
    """The store at ``url``, closed on exit.

    ``current`` (every command but two): the database must exist and be at the
    current schema; nothing is created or upgraded. ``upgrade`` (``sessionstore
    upgrade``): created, adopted or upgraded. ``any`` (``doctor``): it must exist,
    at whatever schema, which the caller reports.
    """
    if schema == "upgrade":
        store = SessionStore.open(url)
    else:
        current = schema == "current"
        store = SessionStore.open(url, create=False, upgrade=False, check_schema=current)
    with store:
        yield store


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, clip: bool = True) -> str:
    """A plain-text table with aligned columns (long cells clipped unless ``clip=False``)."""
    cells = [[_cell(v, clip) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)), line]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    if not cells:
        out.append("(none)")
    return "\n".join(text.rstrip() for text in out)


def _cell(value: Any, clip: bool = True) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.2f}"
    text = printable(str(value))
    return text if len(text) <= 60 or not clip else text[:57] + "..."


def printable(text: str) -> str:
    """``text`` on one line: line breaks and other control characters shown escaped.

    A stored title or message may hold any character; a raw line separator in a
    cell (``\\n``, ``\\r``, ``\\x1c``, ``\\u2028`` ...) would break the table's rows.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=_json_default, ensure_ascii=False))


# Every character str.splitlines() breaks at: a message quoting a caller's path
# or URL must not run over a second line.
_LINE_BREAKS = str.maketrans({c: repr(c)[1:-1] for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"})


def fail(message: str) -> NoReturn:
    """Print one clean error line and exit with status 2."""
    click.echo(f"error: {message.translate(_LINE_BREAKS)}", err=True)
    sys.exit(2)


class CleanErrors(click.Group):
    """Every error becomes one line and exit status 2, never a traceback or a usage block."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SessionStoreError as exc:
            fail(str(exc))

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            exc.show()  # `sessionstore` alone: the help, as click prints it
            sys.exit(2)
        except click.UsageError as exc:
            where = f"; see `{exc.ctx.command_path} --help`" if exc.ctx is not None else ""
            fail(exc.format_message().rstrip(".") + where)
        except click.ClickException as exc:
            fail(exc.format_message())
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=CleanErrors)
@click.version_option(package_name="sessionstore")
@click.option(
    "--db",
    "url",
    envvar=URL_ENV,
    default=None,
    help=f"Database URL for the command (or set {URL_ENV}; default {DEFAULT_URL}).",
)
def main(url: str | None) -> None:
    """Conversation history for LLM applications, stored in SQL."""
