"""ADK's objects in the store's shapes: events as messages, state as scopes, sessions.

* an event is a message of kind :data:`KIND` (``"event"``): the payload is
  ``event.model_dump(mode="json", exclude_none=True)``, read back with
  ``Event.model_validate_json`` (so bytes, sets and nested models come back
  ``==``); the content is :func:`readable_text`, what search and export see;
* ADK's flat state (``app:``, ``user:``, ``temp:`` prefixes) becomes a
  :class:`~sessionstore.StateDelta` (:func:`state_delta`), and the store's
  scopes become ADK's merged view again (:func:`prefixed`);
* a :class:`~sessionstore.records.SessionRecord` becomes an ADK ``Session``
  carrying, as its storage marker, the sequence number of its last message
  (:func:`session_from_record`, :func:`seen_sequence`): what the stale-writer
  check of :mod:`sessionstore.integrations.adk` compares.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidInput, shown
from ..records import MessageRecord, SessionRecord
from ..statedelta import StateDelta
from . import require

require("google.adk", extra="adk", what="Google ADK (google-adk)")

from google.adk.events.event import Event  # noqa: E402
from google.adk.sessions.session import Session  # noqa: E402
from google.genai import types  # noqa: E402
from pydantic_core import to_jsonable_python  # noqa: E402

__all__ = [
    "KIND",
    "clean_id",
    "event_from_message",
    "instant",
    "marker",
    "prefixed",
    "readable_text",
    "seen_sequence",
    "session_from_record",
    "state_delta",
    "update_time",
]

#: The kind of the messages that hold ADK events.
KIND = "event"
_MARKER = "sessionstore:"


def instant(name: str, seconds: float) -> datetime:
    """ADK's time (seconds since the epoch, a float) as a UTC datetime.

    ADK takes any float; one no datetime can hold (NaN, or beyond the years 1
    to 9999) is :class:`InvalidInput`, before anything is read or written.
    """
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, ValueError, OSError):
        raise InvalidInput(
            f"{name} must be a time in seconds since the epoch within the years 1 to 9999,"
            f" not {shown(seconds)}"
        ) from None


def _part_text(part: types.Part) -> str:
    """What a reader (search, export) sees of one part."""
    if part.text is not None:
        return part.text
    if part.function_call is not None:
        args = to_jsonable_python(part.function_call.args or {}, fallback=str)
        return f"{part.function_call.name}({_json(args)})"
    if part.function_response is not None:
        body = to_jsonable_python(part.function_response.response or {}, fallback=str)
        return f"{part.function_response.name} -> {_json(body)}"
    if part.inline_data is not None:
        size = len(part.inline_data.data or b"")
        return f"[{part.inline_data.mime_type or 'data'}, {size} bytes]"
    if part.file_data is not None:
        return f"[{part.file_data.file_uri}]"
    if part.executable_code is not None:
        return part.executable_code.code or ""
    if part.code_execution_result is not None:
        return part.code_execution_result.output or ""
    return ""


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def readable_text(event: Event) -> str:
    """The readable text of an event: its parts, one line each (function calls as ``f({...})``)."""
    if event.content is None or not event.content.parts:
        return ""
    return "\n".join(text for text in map(_part_text, event.content.parts) if text)


def event_from_message(record: MessageRecord) -> Event:
    """The event a message holds; a plain message (another writer's) as a text event."""
    if record.kind == KIND and record.payload_json is not None:
        return Event.model_validate_json(record.payload_json)
    return Event(
        id=record.client_msg_id or f"message-{record.message_id}",
        author=record.role,
        content=types.Content(
            role="user" if record.role == "user" else "model",
            parts=[types.Part(text=record.content)],
        ),
        timestamp=record.timestamp.timestamp(),
    )


def state_delta(state: dict[str, Any] | None) -> StateDelta:
    """ADK's flat state split by scope (``temp:`` dropped); JSON-less values become text.

    ADK's own services store a value JSON cannot hold (a callable) as its text
    rather than refusing the event; so does this one.
    """
    return StateDelta.from_prefixed(to_jsonable_python(state or {}, fallback=str))


def session_from_record(
    record: SessionRecord, state: dict[str, Any], events: list[Event]
) -> Session:
    session = Session(
        id=record.session_id,
        app_name=record.app or "",
        user_id=record.user_id or "",
        state=state,
        events=events,
        last_update_time=update_time(record, events[-1] if events else None),
    )
    session._storage_update_marker = marker(record)
    return session


def update_time(record: SessionRecord, newest: Event | None) -> float:
    """ADK's ``last_update_time``: the later of the session's activity and its newest event.

    The store keeps ``last_activity`` at its own clock (a caller's future
    timestamp must not keep a session from going idle); ADK reports the time
    of the event it stored last, whatever that event says.
    """
    activity = record.last_activity.timestamp()
    return activity if newest is None else max(activity, newest.timestamp)


def clean_id(session_id: str | None) -> str | None:
    """ADK's rule: whitespace around an id is not part of it, and a blank id is none."""
    if session_id is None:
        return None
    return session_id.strip() or None


def marker(record: SessionRecord) -> str:
    """The storage marker of a session as ``record`` shows it: its last sequence number."""
    return f"{_MARKER}{record.last_seq}"


def seen_sequence(session: Session) -> int | None:
    """The last sequence number a session read here saw; ``None`` for one made elsewhere."""
    stored = session._storage_update_marker
    if stored is None or not stored.startswith(_MARKER):
        return None
    number = stored.removeprefix(_MARKER)
    return int(number) if number.isdecimal() else None


def prefixed(prefix: str, state: dict[str, Any]) -> dict[str, Any]:
    return {prefix + key: value for key, value in state.items()}
