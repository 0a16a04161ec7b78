"""A drop-in replacement for the AI router's legacy ``SessionManager``.

The legacy class opened a new ``sqlite3`` connection per call, never turned
foreign keys on for most paths and allocated sequence numbers with
``MAX(sequence_number) + 1`` outside any lock. This one keeps its public
methods — names, arguments and return shapes (dicts, lists of dicts, ids as
strings, timestamps as ``YYYY-MM-DD HH:MM:SS`` text) — and runs them on a
:class:`~sessionstore.SessionStore`, so the application switches by
changing one import::

    from sessionstore.compat import SessionManager   # was: from session_manager import ...

Roles: the store takes any role (``developer``, a framework's own), but
this layer keeps the legacy contract: ``add_message`` takes ``user``,
``assistant``, ``system`` and ``tool`` only, as the legacy table's CHECK did.
``get_session_history`` returns every message of the session, framework
items included, in the legacy shape: their role as stored and their
readable text (NUL shown as U+FFFD, what the legacy views read), without
the item's kind or payload.

Opening it adopts an existing legacy file in place (a backup is taken first).
Where the legacy code destroyed data, this keeps it: ``fix_orphaned_records``
moves orphans to quarantine instead of deleting them, and still returns how
many rows it handled.
"""

from __future__ import annotations

import json
import os
from contextlib import suppress
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Connection, bindparam, select, text

from .errors import InvalidInput, SessionNotFound, shown
from .health import quarantine_orphans
from .items import NUL, NUL_SHOWN
from .models import LEGACY_ROLES, Session, UTCDateTime
from .records import MessageRecord, SessionRecord
from .sessions import delete_session
from .store import SessionStore
from .validation import aware_utc, check_text

__all__ = ["SessionManager", "SessionNotFoundError", "create_session_manager"]

S = Session.__table__.c
LEGACY_TIME = "%Y-%m-%d %H:%M:%S"
_MAX_DAYS = 3_660_000


class SessionNotFoundError(SessionNotFound, ValueError):
    """The legacy class raised ``ValueError`` for an unknown session; this is both."""


def _sql_int(name: str, value: object) -> int:
    """An integer the legacy code passed straight to SQL: any 64-bit value, never a bool."""
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**63) <= value < 2**63:
        raise InvalidInput(f"{name} must be a 64-bit integer, not {shown(value)}")
    return value


def _database_path(value: object) -> Path:
    if not isinstance(value, str | os.PathLike):
        raise InvalidInput(f"the database path must be a str or a path, not {type(value).__name__}")
    path = os.fspath(value)
    if not isinstance(path, str):
        raise InvalidInput("the database path must be text, not bytes")
    return Path(path)


def _legacy_time(value: datetime | None) -> str | None:
    return None if value is None else value.strftime(LEGACY_TIME)


def _session_dict(record: SessionRecord) -> dict[str, Any]:
    return {
        "session_id": record.session_id,
        "created_at": _legacy_time(record.created_at),
        "updated_at": _legacy_time(record.updated_at),
        "model_id": record.model_id,
        "model_name": record.model_name,
        "title": record.title,
        "message_count": record.message_count,
        "total_tokens": record.total_tokens,
        "total_duration_seconds": record.total_duration_seconds,
        "last_activity": _legacy_time(record.last_activity),
    }


def _message_dict(record: MessageRecord) -> dict[str, Any]:
    metadata: Any = None
    if record.metadata_json:
        try:
            metadata = json.loads(record.metadata_json)
        except (ValueError, RecursionError):
            metadata = {}  # what the legacy reader did with text that is not JSON
    return {
        "message_id": record.message_id,
        "session_id": record.session_id,
        "sequence_number": record.sequence_number,
        "role": record.role,
        "content": record.content.replace(NUL, NUL_SHOWN),
        "timestamp": _legacy_time(record.timestamp),
        "tokens_used": record.tokens,
        "duration_seconds": record.duration,
        "metadata": metadata,
    }


_LIST_SQL = text(
    "SELECT * FROM recent_sessions {where} ORDER BY last_activity DESC LIMIT :limit OFFSET :offset"
)


class SessionManager:
    """The legacy API over a :class:`SessionStore` on the same SQLite file."""

    def __init__(self, db_path: str | Path, **options: Any) -> None:
        self.db_path = _database_path(db_path)
        self.store = SessionStore.open(f"sqlite:///{self.db_path}", **options)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- sessions -------------------------------------------------------------------

    def create_session(
        self, model_id: str, model_name: str | None = None, title: str | None = None
    ) -> str:
        return self.store.sessions.create(model_id, model_name=model_name, title=title).session_id

    def get_session(self, session_id: str) -> dict[str, Any] | None:
        try:
            return _session_dict(self.store.sessions.get(session_id))
        except (SessionNotFound, InvalidInput):
            return None

    def list_sessions(
        self, limit: int = 50, model_filter: str | None = None, offset: int = 0
    ) -> list[dict[str, Any]]:
        """Rows of the ``recent_sessions`` view, newest activity first (offset paging)."""
        limit = _sql_int("limit", limit)
        offset = _sql_int("offset", offset)
        if model_filter is not None:
            model_filter = check_text("model_filter", model_filter, max_bytes=64 * 1024)
        where = "WHERE model_id = :model" if model_filter else ""
        sql = text(_LIST_SQL.text.format(where=where))

        def work(conn: Connection) -> list[dict[str, Any]]:
            params = {"limit": limit, "offset": offset, "model": model_filter}
            rows = conn.execute(sql, params).mappings().all()
            return [_legacy_row(dict(row)) for row in rows]

        return self.store._runner.read(work)

    def search_sessions(self, query: str, limit: int = 20) -> list[dict[str, Any]]:
        """Sessions with a message matching every word of ``query``, newest activity first."""
        limit = _sql_int("limit", limit)
        words = check_text("query", query, max_bytes=64 * 1024).split()
        if not words:
            return []
        # Each word is quoted as an FTS5 string, so punctuation is never syntax.
        match = " ".join('"' + w.replace('"', '""') + '"' for w in words)
        sql = text(
            "SELECT s.session_id FROM sessions s WHERE s.session_id IN ("
            " SELECT m.session_id FROM messages_fts f JOIN messages m"
            " ON m.message_id = f.rowid WHERE messages_fts MATCH :match)"
            " ORDER BY s.last_activity DESC LIMIT :limit"
        )

        def work(conn: Connection) -> list[str]:
            return [row[0] for row in conn.execute(sql, {"match": match, "limit": limit})]

        found = [self.get_session(sid) for sid in self.store._runner.read(work)]
        return [session for session in found if session is not None]

    def delete_session(self, session_id: str) -> bool:
        try:
            self.store.sessions.delete(session_id)
        except (SessionNotFound, InvalidInput):
            return False
        return True

    def update_session_title(self, session_id: str, title: str) -> None:
        # The legacy UPDATE matched nothing and said nothing.
        with suppress(SessionNotFound):
            self.store.sessions.rename(session_id, title)

    def set_session_metadata(self, session_id: str, key: str, value: str) -> None:
        self.store.sessions.set_metadata(session_id, key, value)

    def get_session_metadata(self, session_id: str, key: str) -> str | None:
        try:
            return self.store.sessions.get_metadata(session_id, key)
        except SessionNotFound:
            return None

    # --- messages -------------------------------------------------------------------

    def add_message(
        self,
        session_id: str,
        role: str,
        content: str,
        tokens: int | None = None,
        duration: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(role, str) or role not in LEGACY_ROLES:
            raise InvalidInput(f"role must be one of {', '.join(LEGACY_ROLES)}, not {shown(role)}")
        self.store.messages.append(
            session_id, role, content, tokens=tokens, duration=duration, metadata=metadata
        )

    def get_session_history(self, session_id: str) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        cursor = None
        while True:
            try:
                page = self.store.messages.history(session_id, limit=1000, cursor=cursor)
            except SessionNotFound:
                return []
            messages.extend(_message_dict(m) for m in page.items)
            if page.next_cursor is None:
                return messages
            cursor = page.next_cursor

    # --- whole sessions -------------------------------------------------------------

    def export_session(self, session_id: str, format: str = "json") -> str:
        session = self.get_session(session_id)
        if session is None:
            raise SessionNotFoundError(session_id)
        messages = self.get_session_history(session_id)
        if not isinstance(format, str):
            raise InvalidInput(f"Unsupported format: {type(format).__name__}")
        if format == "json":
            return json.dumps({"session": session, "messages": messages}, indent=2, default=str)
        if format == "markdown":
            return _legacy_markdown(session, messages)
        raise InvalidInput(f"Unsupported format: {format}")

    def fix_orphaned_records(self) -> int:
        """Quarantine messages and metadata rows whose session is gone; how many were moved."""
        now = self.store._clock()

        def work(conn: Connection) -> int:
            messages, metadata = quarantine_orphans(conn, now)
            return messages + metadata

        return self.store._runner.write(work)

    def get_statistics(self) -> dict[str, Any]:
        stats = self.store.stats()

        def newest(conn: Connection) -> datetime | None:
            stmt = select(S.created_at).order_by(S.created_at.desc()).limit(1)
            return conn.execute(stmt).scalar()

        return {
            "total_sessions": stats.sessions,
            "total_messages": stats.messages,
            "total_tokens": stats.tokens,
            "model_breakdown": {m.model_id: m.sessions for m in stats.by_model},
            "last_session": _legacy_time(self.store._runner.read(newest)),
        }

    def cleanup_old_sessions(self, days: int = 30) -> int:
        """Delete sessions idle for more than ``days``; how many were deleted."""
        # Bounded before timedelta() sees it: a 400-digit int overflows a float.
        if (
            isinstance(days, bool)
            or not isinstance(days, int | float)
            or not -_MAX_DAYS <= days <= _MAX_DAYS
        ):
            raise InvalidInput(
                f"days must be a number of days within 10,000 years, not {shown(days)}"
            )
        cutoff = aware_utc("the cutoff", self.store._clock() - timedelta(days=days))
        now = self.store._clock()
        stmt = select(S.session_id).where(S.last_activity < bindparam("cutoff", type_=UTCDateTime))

        def work(conn: Connection) -> int:
            idle = conn.execute(stmt, {"cutoff": cutoff}).scalars().all()
            return sum(delete_session(conn, session_id, now) for session_id in idle)

        return self.store._runner.write(work)


def _legacy_row(row: dict[str, Any]) -> dict[str, Any]:
    """A view row with its timestamps in the legacy text form."""
    for key in ("created_at", "updated_at", "last_activity"):
        value = row.get(key)
        if isinstance(value, str) and len(value) > 19:
            row[key] = value[:19]
        elif isinstance(value, datetime):
            row[key] = value.strftime(LEGACY_TIME)
    return row


def _legacy_markdown(session: dict[str, Any], messages: list[dict[str, Any]]) -> str:
    model = session["model_name"] or session["model_id"]
    lines = [
        f"# {session['title'] or 'Untitled Session'}",
        "",
        # A session an agent framework made has no model: no line, rather than "None".
        *([f"**Model:** {model}"] if model else []),
        f"**Created:** {session['created_at']}",
        f"**Messages:** {session['message_count']}",
        f"**Tokens:** {session['total_tokens']}",
        "",
        "---",
        "",
    ]
    for message in messages:
        lines += [f"## {message['role'].upper()} ({message['timestamp']})", ""]
        lines += [message["content"], ""]
        if message.get("tokens_used"):
            lines.append(f"*Tokens: {message['tokens_used']}*")
        if message.get("duration_seconds"):
            lines.append(f"*Duration: {message['duration_seconds']:.2f}s*")
        lines.append("")
    return "\n".join(lines)


def create_session_manager(models_dir: Path) -> SessionManager:
    """The legacy helper: the manager for ``<models_dir>/.ai-router-sessions.db``."""
    return SessionManager(_database_path(models_dir) / ".ai-router-sessions.db")
