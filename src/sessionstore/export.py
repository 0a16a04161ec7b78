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
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import IO, Any, Literal, Protocol

from sqlalchemy import Connection, func, insert, select, update

from .errors import InvalidInput, SessionExists, SessionNotFound
from .messages import MESSAGE_COLUMNS, message_from_db
from .models import STATUSES, Message, Session, SessionMetadata
from .records import MessageRecord, SessionRecord
from .sessions import SESSION_COLUMNS, session_from_db
from .transactions import Runner
from .validation import (
    aware_utc,
    check_duration,
    check_id,
    check_metadata_pairs,
    check_optional_text,
    check_role,
    check_text,
    check_tokens,
)

__all__ = ["EXPORT_FORMAT", "export_session", "import_session"]

EXPORT_FORMAT = "sessionstore.session"
EXPORT_VERSION = 1
Format = Literal["json", "markdown"]


class Writer(Protocol):
    """Anything with ``write(str)``: a text file, a ``StringIO``, a compressor."""

    def write(self, text: str, /) -> object: ...


_BATCH = 500
# sequence_number is a 4-byte integer on PostgreSQL; timeouts beyond a century are nonsense.
_MAX_SEQ = 2**31
_MAX_TIMEOUT = 100 * 366 * 24 * 3600

M = Message.__table__.c
S = Session.__table__.c
D = SessionMetadata.__table__.c


def _iso(value: datetime) -> str:
    return value.isoformat()


def session_document(session: SessionRecord) -> dict[str, Any]:
    doc = asdict(session)
    for key in ("created_at", "updated_at", "last_activity", "archived_at"):
        doc[key] = None if doc[key] is None else _iso(doc[key])
    for key in ("idle_timeout", "hard_timeout"):
        doc[key] = None if doc[key] is None else doc[key].total_seconds()
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
    runner.read(lambda conn: write_session(conn, session_id, format, target))
    return target.getvalue() if out is None and isinstance(target, io.StringIO) else None


def write_session(conn: Connection, session_id: str, format: Format, out: Writer) -> int:
    """Write one session as read on ``conn`` (the caller's transaction); its message count."""
    row = conn.execute(select(*SESSION_COLUMNS).where(S.session_id == session_id)).first()
    if row is None:
        raise SessionNotFound(session_id)
    session = session_from_db(row)
    metadata = dict(
        conn.execute(select(D.key, D.value).where(D.session_id == session_id).order_by(D.key)).all()
    )
    messages = _stream_messages(conn, session_id)
    if format == "json":
        return _write_json(out, session, metadata, messages)
    return _write_markdown(out, session, metadata, messages)


def _stream_messages(conn: Connection, session_id: str) -> Iterator[MessageRecord]:
    # On the statement, not the connection: the caller's later statements on the
    # same connection must not inherit a server-side cursor.
    result = conn.execute(
        select(*MESSAGE_COLUMNS)
        .where(M.session_id == session_id)
        .order_by(M.sequence_number)
        .execution_options(yield_per=_BATCH)
    )
    for row in result:
        yield message_from_db(row)


def _write_json(
    out: Writer,
    session: SessionRecord,
    metadata: Mapping[str, str | None],
    messages: Iterator[MessageRecord],
) -> int:
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
    count = 0
    for message in messages:
        out.write("," if count else "")
        out.write("\n    " + json.dumps(message_document(message), ensure_ascii=False))
        count += 1
    out.write("\n  ]\n}\n")
    return count


def _write_markdown(
    out: Writer,
    session: SessionRecord,
    metadata: Mapping[str, str | None],
    messages: Iterator[MessageRecord],
) -> int:
    out.write(f"# {session.title or 'Untitled session'}\n\n")
    out.write(f"- **Session:** `{session.session_id}`\n")
    out.write(f"- **Model:** {session.model_name or session.model_id}\n")
    out.write(f"- **Created:** {session.created_at:%Y-%m-%d %H:%M:%S} UTC\n")
    out.write(f"- **Messages:** {session.message_count}\n")
    out.write(f"- **Tokens:** {session.total_tokens}\n")
    for key, value in metadata.items():
        out.write(f"- **{key}:** {value}\n")
    out.write("\n---\n")
    count = 0
    for message in messages:
        count += 1
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
    return count


# --- import ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedSession:
    """An export document, checked: what :func:`recreate` writes back."""

    session: dict[str, Any]
    metadata: dict[str, str | None]
    messages: list[dict[str, Any]]


def parse_export(
    source: str | bytes | IO[str] | Mapping[str, Any], *, max_content_bytes: int | None = None
) -> ParsedSession:
    """Check an export document completely before anything is written."""
    doc = _load(source)
    session = _field(doc, "session", Mapping)
    metadata = _field(doc, "metadata", Mapping)
    messages = _field(doc, "messages", list)
    rows = [_message_row(item, i, max_content_bytes) for i, item in enumerate(messages)]
    sequences = [row["sequence_number"] for row in rows]
    if len(set(sequences)) != len(sequences):
        raise InvalidInput("the export repeats a sequence number")
    values = {
        "session_id": check_id("session_id", session.get("session_id")),
        "model_id": check_id("model_id", session.get("model_id")),
        "model_name": check_optional_text("model_name", session.get("model_name")),
        "title": check_optional_text("title", session.get("title")),
        "status": _status(session.get("status", "active")),
        "created_at": _time(session, "created_at"),
        "updated_at": _time(session, "updated_at"),
        "last_activity": _time(session, "last_activity"),
        "archived_at": _time(session, "archived_at") if session.get("archived_at") else None,
        "idle_timeout_seconds": _seconds(session, "idle_timeout"),
        "hard_timeout_seconds": _seconds(session, "hard_timeout"),
        "total_duration_seconds": _number(session, "total_duration_seconds"),
        "last_seq": _count(session, "last_seq"),
    }
    pairs = check_metadata_pairs(metadata)
    return ParsedSession(values, pairs, rows)


def recreate(
    conn: Connection, parsed: ParsedSession, *, session_id: str, keep_ids: bool
) -> SessionRecord:
    """Insert a parsed session on ``conn``; message ids kept only with ``keep_ids``."""
    if conn.execute(select(S.session_id).where(S.session_id == session_id)).first():
        raise SessionExists(session_id)
    values = {**parsed.session, "session_id": session_id}
    # Inserted active and with empty totals, which the triggers fill from the
    # messages; the fields a trigger also moves are set back afterwards.
    columns = {k: v for k, v in values.items() if k not in ("total_duration_seconds", "last_seq")}
    conn.execute(insert(Session).values({**columns, "status": "active", "archived_at": None}))
    if parsed.metadata:
        conn.execute(
            insert(SessionMetadata),
            [{"session_id": session_id, "key": k, "value": v} for k, v in parsed.metadata.items()],
        )
    if parsed.messages:
        rows = [{**row, "session_id": session_id} for row in parsed.messages]
        if not keep_ids:
            for message in rows:
                message.pop("message_id")
        conn.execute(insert(Message), rows)
    stored = conn.execute(
        update(Session)
        .where(S.session_id == session_id)
        .values(
            title=values["title"],
            status=values["status"],
            archived_at=values["archived_at"],
            updated_at=values["updated_at"],
            last_activity=values["last_activity"],
            # Exact as exported: a float sum depends on the order it was added in,
            # and the last sequence number handed out may belong to a deleted message.
            total_duration_seconds=values["total_duration_seconds"],
            last_seq=func.max(S.last_seq, values["last_seq"])
            if conn.dialect.name == "sqlite"
            else func.greatest(S.last_seq, values["last_seq"]),
        )
        .returning(*SESSION_COLUMNS)
    ).one()
    return session_from_db(stored)


def import_session(
    runner: Runner,
    source: str | bytes | IO[str] | Mapping[str, Any],
    *,
    session_id: str | None = None,
    max_content_bytes: int | None = None,
) -> SessionRecord:
    """Recreate a session from an export; ``session_id`` imports it under a new id."""
    parsed = parse_export(source, max_content_bytes=max_content_bytes)
    new_id = (
        parsed.session["session_id"] if session_id is None else check_id("session_id", session_id)
    )
    return runner.write(lambda conn: recreate(conn, parsed, session_id=new_id, keep_ids=False))


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
    else:
        raise InvalidInput(f"an export is JSON text, a file or a mapping, not {type(source)}")
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
    return aware_utc(name, parsed)


def _number(doc: Mapping[str, Any], name: str) -> float:
    value = check_duration(doc.get(name, 0))
    return 0.0 if value is None else value


def _count(doc: Mapping[str, Any], name: str) -> int:
    value = doc.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_SEQ:
        raise InvalidInput(f"{name} must be an integer from 0 to {_MAX_SEQ - 1}")
    return value


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


def _message_row(item: Any, index: int, max_bytes: int | None) -> dict[str, Any]:
    """One exported message, checked as :meth:`MessageRepository.append` checks it."""
    if not isinstance(item, Mapping):
        raise InvalidInput(f"message {index} is not an object")
    seq = item.get("sequence_number")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq < _MAX_SEQ:
        raise InvalidInput(f"message {index} has an invalid sequence_number {seq!r}")
    message_id = item.get("message_id")
    if message_id is not None and (
        isinstance(message_id, bool) or not isinstance(message_id, int)
        or not 0 < message_id < 2**63
    ):  # fmt: skip
        raise InvalidInput(f"message {index} has an invalid message_id {message_id!r}")
    metadata = item.get("metadata")
    client_msg_id = item.get("client_msg_id")
    return {
        "message_id": message_id,
        "sequence_number": seq,
        "role": check_role(item.get("role")),
        "content": check_text("content", item.get("content"), max_bytes=max_bytes),
        "timestamp": _time(item, "timestamp"),
        "tokens_used": check_tokens(item.get("tokens")),
        "duration_seconds": check_duration(item.get("duration")),
        "metadata": None if metadata is None else check_text("metadata", metadata),
        "client_msg_id": None
        if client_msg_id is None
        else check_id("client_msg_id", client_msg_id),
    }
