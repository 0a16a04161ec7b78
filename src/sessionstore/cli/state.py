"""``sessionstore state SESSION_ID``: a session's state, one key a row."""

from __future__ import annotations

import json
from typing import Any

import click

from .base import db_option, emit_json, json_option, main, opened, table

_SCOPES = (("app:", "app"), ("user:", "user"))


def _row(key: str, value: Any) -> tuple[str, str, str]:
    """(scope, key without its scope prefix, the value as compact JSON)."""
    for prefix, scope in _SCOPES:
        if key.startswith(prefix):
            key, name = key[len(prefix) :], scope
            break
    else:
        name = "session"
    return name, key, json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@main.command("state")
@db_option
@json_option
@click.argument("session_id")
@click.option(
    "--own", is_flag=True, help="Only the session's own keys, not its user's and its app's."
)
def state(url: str, as_json: bool, session_id: str, own: bool) -> None:
    """A session's state: its own keys, and those of its user and its app.

    The JSON form is the view agent frameworks (Google ADK) read: user keys
    prefixed ``user:``, app keys ``app:``.
    """
    with opened(url) as store:
        values = store.state.get(session_id) if own else store.state.merged(session_id)
    if as_json:
        emit_json(values)
        return
    click.echo(table(("scope", "key", "value"), [_row(k, v) for k, v in values.items()]))
