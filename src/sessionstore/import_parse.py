"""Checking a session's JSON document completely, before anything is written.

A document (see :mod:`sessionstore.export`) is held to one of two sets of rules:

* :func:`parse_export` (``store.import_session``) holds the document to the
  rules for **new input**, as ``append`` does: ids, roles, text without NUL,
  non-negative counts, durations within ``MAX_DURATION``, the content limit.
  A document comes from outside; it may be anything.
* :func:`parse_snapshot` (``lifecycle.restore``) checks **structure** only:
  the shape of the document and that each value has a type its column holds.
  A snapshot is what the store itself held, and that includes legacy rows the
  rules refuse (an empty model id, negative or textual token counts, sequence
  number 0, a 70 KB title, a metadata key ``''``, NUL in a message on SQLite).
  Refusing them would take snapshots that never restore; they come back exactly.

Either gives a :class:`ParsedSession`, which :func:`sessionstore.imports.recreate`
writes back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from .errors import InvalidInput
from .export import EXPORT_FORMAT, EXPORT_VERSION
from .items import DEFAULT_MAX_PAYLOAD_BYTES, encode_content, encode_payload
from .models import STATUSES
from .owners import check_owner
from .statedelta import check_values, encode_value
from .validation import (
    MAX_DURATION,
    aware_utc,
    check_duration,
    check_id,
    check_kind,
    check_metadata_pairs,
    check_optional_text,
    check_role,
    check_text,
    check_tokens,
    shown,
)

__all__ = ["ParsedSession", "parse_export", "parse_snapshot"]

# sequence_number is a 4-byte integer on PostgreSQL; timeouts beyond a century are nonsense.
_MAX_SEQ = 2**31
_MAX_TIMEOUT = 100 * 366 * 24 * 3600
_INT64 = 2**63


@dataclass(frozen=True, slots=True)
class ParsedSession:
    """An export document, checked: what :func:`~sessionstore.imports.recreate` writes back."""

    session: dict[str, Any]
    metadata: dict[str, str | None]
    messages: list[dict[str, Any]]
    #: Set every column as in the document (a snapshot), rather than re-derive totals.
    exact: bool = False
    #: The session's state: keys to their values as JSON text.
    state: dict[str, str] = field(default_factory=dict)


# --- the rules for new input -----------------------------------------------------------


def parse_export(
    source: str | bytes | IO[str] | Mapping[str, Any], *, max_content_bytes: int | None = None
) -> ParsedSession:
    """Check an export document completely, as new input, before anything is written."""
    doc = _load(source)
    session = _field(doc, "session", Mapping)
    metadata = _field(doc, "metadata", Mapping)
    messages = _field(doc, "messages", list)
    rows = [_message_row(item, i, max_content_bytes) for i, item in enumerate(messages)]
    _distinct_sequences(rows)
    values = {
        "session_id": check_id("session_id", session.get("session_id")),
        "model_id": None
        if session.get("model_id") is None
        else check_id("model_id", session.get("model_id")),
        "model_name": check_optional_text("model_name", session.get("model_name")),
        "title": check_optional_text("title", session.get("title")),
        "status": _status(session.get("status", "active")),
        "created_at": _time(session, "created_at", strict=True),
        "updated_at": _time(session, "updated_at", strict=True),
        "last_activity": _time(session, "last_activity", strict=True),
        "archived_at": _time(session, "archived_at", strict=True)
        if session.get("archived_at")
        else None,
        "idle_timeout_seconds": _seconds(session, "idle_timeout"),
        "hard_timeout_seconds": _seconds(session, "hard_timeout"),
        "total_duration_seconds": _total_duration(session.get("total_duration_seconds", 0)),
        "last_seq": _count(session, "last_seq"),
    }
    values["app"], values["user_id"] = check_owner(session.get("app"), session.get("user_id"))
    values.update(_lineage(session, strict=True))
    pairs = check_metadata_pairs(metadata)
    # Optional: exports written before state existed have none.
    state = check_values("state", doc.get("state", {}), max_content_bytes, max_keys=None)
    return ParsedSession(values, pairs, rows, state=state)


def _message_row(item: Any, index: int, max_bytes: int | None) -> dict[str, Any]:
    """One exported message, checked as :meth:`MessageRepository.append` checks it."""
    if not isinstance(item, Mapping):
        raise InvalidInput(f"message {index} is not an object")
    seq = item.get("sequence_number")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq < _MAX_SEQ:
        raise InvalidInput(f"message {index} has an invalid sequence_number {shown(seq)}")
    metadata = item.get("metadata")
    client_msg_id = item.get("client_msg_id")
    # The caller's exact text when it held NUL (``content`` then shows U+FFFD).
    exact = item.get("exact_content")
    content, exact_json = encode_content(item.get("content") if exact is None else exact, max_bytes)
    return {
        "message_id": _message_id(item, index),
        "sequence_number": seq,
        "role": check_role(item.get("role")),
        "content": content,
        "exact_content": exact_json,
        "kind": check_kind(item.get("kind", "message")),
        "payload": encode_payload(item.get("payload"), DEFAULT_MAX_PAYLOAD_BYTES),
        "timestamp": _time(item, "timestamp", strict=True),
        "tokens_used": check_tokens(item.get("tokens")),
        "duration_seconds": check_duration(item.get("duration")),
        "metadata": None if metadata is None else check_text("metadata", metadata),
        "client_msg_id": None
        if client_msg_id is None
        else check_id("client_msg_id", client_msg_id),
    }


# --- structure only: a snapshot -----------------------------------------------------------


def parse_snapshot(text: str) -> ParsedSession:
    """Check a snapshot's structure: every value of a type its column holds, as stored."""
    doc = _load(text)
    session = _field(doc, "session", Mapping)
    metadata = _field(doc, "metadata", Mapping)
    messages = _field(doc, "messages", list)
    rows = [_stored_message(item, i) for i, item in enumerate(messages)]
    _distinct_sequences(rows)
    values = {
        "session_id": _need(session, "session_id", str),
        "model_id": _maybe(session, "model_id", str),
        "model_name": _maybe(session, "model_name", str),
        "title": _maybe(session, "title", str),
        "status": _status(session.get("status")),
        "created_at": _time(session, "created_at"),
        "updated_at": _time(session, "updated_at"),
        "last_activity": _time(session, "last_activity"),
        "archived_at": None
        if session.get("archived_at") is None
        else _time(session, "archived_at"),
        "idle_timeout_seconds": _maybe(session, "idle_timeout", float),
        "hard_timeout_seconds": _maybe(session, "hard_timeout", float),
        "message_count": _need(session, "message_count", int),
        "total_tokens": _need(session, "total_tokens", float),
        "total_duration_seconds": _need(session, "total_duration_seconds", float),
        "last_seq": _need(session, "last_seq", object),
        # Snapshots taken before sessions had owners have neither.
        "app": _maybe(session, "app", str),
        "user_id": _maybe(session, "user_id", str),
        **_lineage(session, strict=False),
    }
    if not values["session_id"]:
        raise InvalidInput("the snapshot's session_id is empty")
    pairs: dict[str, str | None] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not (value is None or isinstance(value, str)):
            raise InvalidInput("the snapshot's metadata must map text to text or null")
        pairs[key] = value
    return ParsedSession(values, pairs, rows, exact=True, state=_stored_state(doc.get("state", {})))


def _stored_state(state: Any) -> dict[str, str]:
    if not isinstance(state, Mapping) or not all(isinstance(key, str) for key in state):
        raise InvalidInput("the snapshot's state must map text keys to JSON values")
    return {key: encode_value(f"state[{key!r}]", value, None) for key, value in state.items()}


def _stored_message(item: Any, index: int) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise InvalidInput(f"message {index} is not an object")
    return {
        "message_id": _message_id(item, index, required=True),
        # Legacy INTEGER columns may hold text or a real: whatever was stored.
        "sequence_number": _need(item, "sequence_number", object),
        "role": _need(item, "role", str),
        "content": _need(item, "content", str),
        "timestamp": _time(item, "timestamp"),
        "tokens_used": _maybe(item, "tokens", object),
        "duration_seconds": _maybe(item, "duration", object),
        "metadata": _maybe(item, "metadata", str),
        "client_msg_id": _maybe(item, "client_msg_id", str),
        # Snapshots taken before items existed hold plain messages.
        "kind": _maybe(item, "kind", str) or "message",
        "payload": _stored_json(item.get("payload"), f"message {index}'s payload"),
        "exact_content": _stored_json(_maybe(item, "exact_content", str), "exact_content"),
    }


def _stored_json(value: Any, name: str) -> str | None:
    """A snapshot's JSON value as the compact text the store keeps (None stays None).

    A legacy payload may hold what new input may not (``1e999`` reads as infinity,
    ``NaN``): the snapshot wrote it as the json module spells it, and it is stored back
    so, or the purged session's messages could never be restored.
    """
    if value is None:
        return None
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        raise InvalidInput(f"the snapshot's {name} is malformed") from None


def _scalar(name: str, value: Any, kind: type) -> Any:
    """``value`` if a column of ``kind`` holds it (``object``: any SQL scalar)."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(value, int) and not isinstance(value, bool) and not -_INT64 <= value < _INT64:
        number = False
    ok = {
        str: isinstance(value, str),
        int: number and isinstance(value, int),
        float: number,
        object: number or isinstance(value, str),
    }[kind]
    if not ok:
        raise InvalidInput(f"the snapshot's {name} is malformed: {shown(value)}")
    return value


def _need(doc: Mapping[str, Any], name: str, kind: type) -> Any:
    return _scalar(name, doc.get(name), kind)


def _maybe(doc: Mapping[str, Any], name: str, kind: type) -> Any:
    value = doc.get(name)
    return None if value is None else _scalar(name, value, kind)


# --- shared ---------------------------------------------------------------------------------


def _load(source: str | bytes | IO[str] | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(source, Mapping):
        doc: Any = source
    elif isinstance(source, str | bytes) or hasattr(source, "read"):
        try:
            doc = json.loads(source) if isinstance(source, str | bytes) else json.load(source)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"the export is not valid JSON: {exc}") from None
        except RecursionError:
            raise InvalidInput("the export is nested too deeply to be a session") from None
        except OSError as exc:
            raise InvalidInput(f"the export could not be read: {exc}") from None
    else:
        raise InvalidInput(f"an export is JSON text, a file or a mapping, not {type(source)}")
    if not isinstance(doc, Mapping) or doc.get("format") != EXPORT_FORMAT:
        raise InvalidInput(f"not a {EXPORT_FORMAT} export (missing or wrong 'format')")
    if doc.get("version") != EXPORT_VERSION:
        raise InvalidInput(f"unsupported export version {shown(doc.get('version'))}")
    return doc


def _field(doc: Mapping[str, Any], name: str, kind: type) -> Any:
    value = doc.get(name)
    if not isinstance(value, kind):
        raise InvalidInput(f"the export's {name!r} must be a {kind.__name__}")
    return value


def _distinct_sequences(rows: list[dict[str, Any]]) -> None:
    sequences = [row["sequence_number"] for row in rows]
    if len(set(sequences)) != len(sequences):
        raise InvalidInput("the export repeats a sequence number")


def _message_id(item: Mapping[str, Any], index: int, *, required: bool = False) -> int | None:
    value = item.get("message_id")
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < _INT64:
        raise InvalidInput(f"message {index} has an invalid message_id {shown(value)}")
    return value


def _status(value: Any) -> str:
    if not isinstance(value, str) or value not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}, not {shown(value)}")
    return value


def _time(doc: Mapping[str, Any], name: str, *, strict: bool = False) -> datetime:
    """An ISO 8601 timestamp with its offset; new input must also lie in years 2 to 9998."""
    value = doc.get(name)
    try:
        parsed = datetime.fromisoformat(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be an ISO 8601 timestamp, not {shown(value)}") from None
    if parsed.tzinfo is None:
        raise InvalidInput(f"{name} must carry its UTC offset")
    if strict:
        return aware_utc(name, parsed)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"{name} is outside the datetimes there are: {value!r}") from None


def _total_duration(value: Any) -> float:
    limit = MAX_DURATION * _MAX_SEQ
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= limit:
        raise InvalidInput(
            f"total_duration_seconds must be from 0 to {limit:.3g}, not {shown(value)}"
        )
    return float(value)


def _count(doc: Mapping[str, Any], name: str) -> int:
    value = doc.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_SEQ:
        raise InvalidInput(f"{name} must be an integer from 0 to {_MAX_SEQ - 1}")
    return value


def _lineage(session: Mapping[str, Any], *, strict: bool) -> dict[str, Any]:
    """``never_expires`` and a fork's ``parent_session_id`` / ``fork_sequence``.

    Documents written before they existed have none: an expiring session, no parent.
    """
    never = session.get("never_expires", False)
    if not isinstance(never, bool):
        raise InvalidInput(f"never_expires must be true or false, not {shown(never)}")
    parent = session.get("parent_session_id")
    fork = session.get("fork_sequence")
    if strict:
        parent = None if parent is None else check_id("parent_session_id", parent)
        if fork is not None and (
            isinstance(fork, bool) or not isinstance(fork, int) or not 0 <= fork < _MAX_SEQ
        ):
            raise InvalidInput(f"fork_sequence must be an integer from 0 to {_MAX_SEQ - 1}")
    else:
        parent = _maybe(session, "parent_session_id", str)
        fork = _maybe(session, "fork_sequence", int)
    return {"never_expires": never, "parent_session_id": parent, "fork_sequence": fork}


def _seconds(doc: Mapping[str, Any], name: str) -> float | None:
    value = doc.get(name)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value <= _MAX_TIMEOUT
    ):
        raise InvalidInput(f"{name} must be a positive number of seconds (at most a century)")
    return float(value)
