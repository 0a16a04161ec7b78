"""Export a whole session as JSON or Markdown, and import JSON back.

Exports stream: the session is read inside one read transaction (one
consistent snapshot, even while other writers append) and written message
by message to the caller's file object, so a session larger than memory
exports in constant memory.

The JSON document round-trips through :func:`import_session`::

    {"format": "sessionstore.session", "version": 1,
     "session": {...}, "metadata": {...}, "messages": [{...}, ...]}

Timestamps are ISO 8601 with their UTC offset. Import recreates the session
with its id (or a new one), sequence numbers, roles, content, timestamps,
per-message metadata and client ids; the session's counts and totals are
re-derived from the messages by the same triggers that keep them for
appends, then its own fields are set as exported.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from datetime import datetime
from typing import IO, Any, Literal

from sqlalchemy import Connection, insert, select, update

from .errors import InvalidInput, SessionExists, SessionNotFound
from .messages import MESSAGE_COLUMNS, to_message
from .models import ROLES, STATUSES, Message, Session, SessionMetadata
from .records import MessageRecord, SessionRecord
from .sessions import SESSION_COLUMNS, to_session
from .transactions import Runner
from .validation import check_id

__all__ = ["EXPORT_FORMAT", "export_session", "import_session"]

EXPORT_FORMAT = "sessionstore.session"
EXPORT_VERSION = 1
Format = Literal["json", "markdown"]
_BATCH = 500

M = Message.__table__.c
S = Session.__table__.c
D = SessionMetadata.__table__.c


def _iso(value: datetime) -> str:
    return value.isoformat()


def session_document(session: SessionRecord) -> dict[str, Any]:
    doc = asdict(session)
    for key in ("created_at", "updated_at", "last_activity"):
        doc[key] = _iso(doc[key])
    return doc


def message_document(message: MessageRecord) -> dict[str, Any]:
    return {
        "message_id": message.message_id,
        "sequence_number": message.sequence_number,
        "role": message.role,
        "content": message.content,
        "timestamp": _iso(message.timestamp),
        "tokens": message.tokens,
        "duration": message.duration,
        "metadata": message.metadata_json,
        "client_msg_id": message.client_msg_id,
    }


def export_session(
    runner: Runner, session_id: str, format: Format = "json", out: IO[str] | None = None
) -> str | None:
    """Write the session to ``out`` (or return it as a string when ``out`` is None)."""
    session_id = check_id("session_id", session_id)
    if format not in ("json", "markdown"):
        raise InvalidInput(f"format must be 'json' or 'markdown', not {format!r}")
    target = io.StringIO() if out is None else out

    def work(conn: Connection) -> None:
        row = conn.execute(select(*SESSION_COLUMNS).where(S.session_id == session_id)).first()
        if row is None:
            raise SessionNotFound(session_id)
        session = to_session(row)
        metadata = dict(
            conn.execute(
                select(D.key, D.value).where(D.session_id == session_id).order_by(D.key)
            ).all()
        )
        messages = _stream_messages(conn, session_id)
        if format == "json":
            _write_json(target, session, metadata, messages)
        else:
            _write_markdown(target, session, metadata, messages)

    runner.read(work)
    return target.getvalue() if isinstance(target, io.StringIO) and out is None else None


def _stream_messages(conn: Connection, session_id: str) -> Iterator[MessageRecord]:
    result = conn.execution_options(yield_per=_BATCH).execute(
        select(*MESSAGE_COLUMNS).where(M.session_id == session_id).order_by(M.sequence_number)
    )
    for row in result:
        yield to_message(row)


def _write_json(
    out: IO[str],
    session: SessionRecord,
    metadata: Mapping[str, str | None],
    messages: Iterator[MessageRecord],
) -> None:
    head = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "session": session_document(session),
        "metadata": dict(metadata),
    }
    # Written by hand around the message list so that no more than one
    # message is ever held as a document.
    out.write(json.dumps(head, ensure_ascii=False, indent=2)[:-2])
    out.write(',\n  "messages": [')
    for index, message in enumerate(messages):
        out.write("," if index else "")
        out.write("\n    " + json.dumps(message_document(message), ensure_ascii=False))
    out.write("\n  ]\n}\n")


def _write_markdown(
    out: IO[str],
    session: SessionRecord,
    metadata: Mapping[str, str | None],
    messages: Iterator[MessageRecord],
) -> None:
    out.write(f"# {session.title or 'Untitled session'}\n\n")
    out.write(f"- **Session:** `{session.session_id}`\n")
    out.write(f"- **Model:** {session.model_name or session.model_id}\n")
    out.write(f"- **Created:** {session.created_at:%Y-%m-%d %H:%M:%S} UTC\n")
    out.write(f"- **Messages:** {session.message_count}\n")
    out.write(f"- **Tokens:** {session.total_tokens}\n")
    for key, value in metadata.items():
        out.write(f"- **{key}:** {value}\n")
    out.write("\n---\n")
    for message in messages:
        out.write(f"\n## {message.role.upper()} · #{message.sequence_number} · ")
        out.write(f"{message.timestamp:%Y-%m-%d %H:%M:%S} UTC\n\n")
        out.write(message.content.rstrip("\n") + "\n")
        details = []
        if message.tokens is not None:
            details.append(f"{message.tokens} tokens")
        if message.duration is not None:
            details.append(f"{message.duration:.2f}s")
        if details:
            out.write(f"\n*{', '.join(details)}*\n")


# --- import ------------------------------------------------------------------------


def import_session(
    runner: Runner,
    source: str | bytes | IO[str] | Mapping[str, Any],
    *,
    session_id: str | None = None,
) -> SessionRecord:
    """Recreate a session from an export; ``session_id`` imports it under a new id."""
    doc = _load(source)
    session = _field(doc, "session", Mapping)
    metadata = _field(doc, "metadata", Mapping)
    messages = _field(doc, "messages", list)
    new_id = check_id("session_id", session_id or session.get("session_id"))
    rows = [_message_row(new_id, item, index) for index, item in enumerate(messages)]
    sequences = [row["sequence_number"] for row in rows]
    if len(set(sequences)) != len(sequences):
        raise InvalidInput("the export repeats a sequence number")
    values = {
        "session_id": new_id,
        "model_id": check_id("model_id", session.get("model_id")),
        "model_name": _optional_str(session, "model_name"),
        "title": _optional_str(session, "title"),
        "status": _status(session.get("status", "active")),
        "created_at": _time(session, "created_at"),
        "updated_at": _time(session, "updated_at"),
        "last_activity": _time(session, "last_activity"),
    }
    pairs = {check_id("metadata key", k): _optional_value(v) for k, v in metadata.items()}

    def work(conn: Connection) -> SessionRecord:
        exists = conn.execute(select(S.session_id).where(S.session_id == new_id)).first()
        if exists is not None:
            raise SessionExists(new_id)
        # Inserted active so the trigger accepts its messages; the exported
        # status is applied with the other fields below.
        conn.execute(insert(Session).values({**values, "status": "active"}))
        if pairs:
            conn.execute(
                insert(SessionMetadata),
                [{"session_id": new_id, "key": k, "value": v} for k, v in pairs.items()],
            )
        if rows:
            conn.execute(insert(Message), rows)
        # The triggers re-derived counts and totals from the rows; the fields a
        # trigger also touches (activity, title) are set back to what was exported.
        row = conn.execute(
            update(Session)
            .where(S.session_id == new_id)
            .values(
                title=values["title"],
                status=values["status"],
                updated_at=values["updated_at"],
                last_activity=values["last_activity"],
            )
            .returning(*SESSION_COLUMNS)
        ).one()
        return to_session(row)

    return runner.write(work)


def _load(source: str | bytes | IO[str] | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(source, Mapping):
        doc: Any = source
    else:
        try:
            doc = json.loads(source) if isinstance(source, str | bytes) else json.load(source)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"the export is not valid JSON: {exc}") from None
    if not isinstance(doc, Mapping) or doc.get("format") != EXPORT_FORMAT:
        raise InvalidInput(f"not a {EXPORT_FORMAT} export (missing or wrong 'format')")
    if doc.get("version") != EXPORT_VERSION:
        raise InvalidInput(f"unsupported export version {doc.get('version')!r}")
    return doc


def _field(doc: Mapping[str, Any], name: str, kind: type) -> Any:
    value = doc.get(name)
    if not isinstance(value, kind):
        raise InvalidInput(f"the export's {name!r} must be a {kind.__name__}")
    return value


def _optional_str(doc: Mapping[str, Any], name: str) -> str | None:
    value = doc.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{name} must be text or null")
    return value


def _optional_value(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InvalidInput("session metadata values must be text or null")
    return value


def _status(value: Any) -> str:
    if value not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}, not {value!r}")
    return str(value)


def _time(doc: Mapping[str, Any], name: str) -> datetime:
    value = doc.get(name)
    try:
        parsed = datetime.fromisoformat(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be an ISO 8601 timestamp, not {value!r}") from None
    if parsed.tzinfo is None:
        raise InvalidInput(f"{name} must carry its UTC offset")
    return parsed


def _message_row(session_id: str, item: Any, index: int) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise InvalidInput(f"message {index} is not an object")
    role = item.get("role")
    if role not in ROLES:
        raise InvalidInput(f"message {index} has an invalid role {role!r}")
    content = item.get("content")
    if not isinstance(content, str):
        raise InvalidInput(f"message {index} has no text content")
    seq = item.get("sequence_number")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise InvalidInput(f"message {index} has an invalid sequence_number {seq!r}")
    tokens = item.get("tokens")
    if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int)):
        raise InvalidInput(f"message {index} has invalid tokens {tokens!r}")
    duration = item.get("duration")
    if duration is not None and (
        isinstance(duration, bool) or not isinstance(duration, int | float)
    ):
        raise InvalidInput(f"message {index} has an invalid duration {duration!r}")
    metadata = item.get("metadata")
    client_msg_id = item.get("client_msg_id")
    if metadata is not None and not isinstance(metadata, str):
        raise InvalidInput(f"message {index} metadata must be the stored JSON text")
    if client_msg_id is not None and not isinstance(client_msg_id, str):
        raise InvalidInput(f"message {index} client_msg_id must be text")
    return {
        "session_id": session_id,
        "sequence_number": seq,
        "role": role,
        "content": content,
        "timestamp": _time(item, "timestamp"),
        "tokens_used": tokens,
        "duration_seconds": None if duration is None else float(duration),
        "metadata": metadata,
        "client_msg_id": client_msg_id,
    }
