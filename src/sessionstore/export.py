"""Export a whole session as JSON or Markdown.

Exports stream: the session is read inside one read transaction (one
consistent snapshot, even while other writers append: on PostgreSQL a
``REPEATABLE READ`` one, ``transactions.one_snapshot``) and written message
by message to the caller's file object, so a session larger than memory
exports in constant memory.

The JSON document (:mod:`sessionstore.export_json`, which also writes
lifecycle snapshots) round-trips through
:func:`sessionstore.imports.import_session`. Timestamps are ISO 8601 with
their UTC offset; every value is written as stored.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Literal, Protocol, TypeVar

from sqlalchemy import Connection, select

from . import files
from .errors import InvalidInput, SessionNotFound, StorageIOError, shown
from .export_json import (
    DOCUMENT_TAIL,
    EXPORT_FORMAT,
    EXPORT_VERSION,
    MESSAGE_ROWS,
    MESSAGE_SEPARATOR,
    document_head,
    message_line,
)
from .messages import MESSAGE_COLUMNS, message_from_db
from .models import Message, Session, SessionMetadata
from .owners import Owner, guarded
from .records import MessageRecord, SessionRecord
from .sessions import SESSION_COLUMNS, session_from_db
from .state import read_session_state
from .transactions import Runner, one_snapshot
from .validation import check_id

__all__ = ["EXPORT_FORMAT", "EXPORT_VERSION", "export_session", "write_session"]

Format = Literal["json", "markdown"]
T = TypeVar("T")


class Writer(Protocol):
    """Anything with ``write(str)``: a text file, a ``StringIO``, a compressor."""

    def write(self, text: str, /) -> object: ...


_BATCH = 500

M = Message.__table__.c
S = Session.__table__.c
D = SessionMetadata.__table__.c


def export_session(
    runner: Runner,
    session_id: str,
    format: Format = "json",
    out: IO[str] | None = None,
    *,
    owner: Owner | None = None,
) -> str | None:
    """Write the session to ``out`` (or return it as a string when ``out`` is None).

    With an ``owner`` (a scoped view), a session outside it is :class:`SessionNotFound`.
    """
    session_id = check_id("session_id", session_id)
    if not isinstance(format, str) or format not in ("json", "markdown"):
        raise InvalidInput(f"format must be 'json' or 'markdown', not {shown(format)}")
    if out is None:
        buffer = io.StringIO()
        runner.read(
            _one_snapshot(
                guarded(
                    owner, session_id, lambda conn: write_session(conn, session_id, format, buffer)
                )
            )
        )
        return buffer.getvalue()
    if isinstance(out, str | bytes) or not callable(getattr(out, "write", None)):
        raise InvalidInput(
            f"out must be a text file object (open(path, 'w')), not {type(out).__name__}; "
            "leave it out to get the export back as a string"
        )
    if getattr(out, "closed", False) is True:
        raise InvalidInput("out is closed; open the file again, or leave out to get a string")
    target = _Checked(out)
    runner.read(
        _one_snapshot(
            guarded(owner, session_id, lambda conn: write_session(conn, session_id, format, target))
        )
    )
    return None


def export_to_path(
    runner: Runner,
    session_id: str,
    path: object,
    format: Format = "json",
    *,
    database: Path | None = None,
    overwrite: bool = False,
    owner: Owner | None = None,
) -> Path:
    """Write the session to the file at ``path``, whole or not at all.

    The export is written in a private directory beside ``path`` with the
    database's permission bits (0600 without a file), then put in place in one
    step, the way backups are (see :mod:`sessionstore.files`): an existing file
    is replaced only with ``overwrite``, a link there is never written through,
    and the database's own files are refused.
    """
    session_id = check_id("session_id", session_id)
    if not isinstance(format, str) or format not in ("json", "markdown"):
        raise InvalidInput(f"format must be 'json' or 'markdown', not {shown(format)}")
    target = files.checked_path(path, "the export path")
    files.check_directory(target, "the export")
    if database is not None:
        files.refuse_own_files(database, target, "the export")
    replacing = files.check_destination(target, overwrite=overwrite, magic=b"", kind="file")
    mode = files.mode_of(database) if database is not None else 0o600
    with files.private_directory(target.parent) as work:
        partial = work / "export"
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
            with open(fd, "w", encoding="utf-8", newline="") as out:
                runner.read(
                    _one_snapshot(
                        guarded(
                            owner,
                            session_id,
                            lambda conn: write_session(conn, session_id, format, _Checked(out)),
                        )
                    )
                )
        except OSError as exc:
            raise files.os_error(exc, f"write the export {str(target)!r}") from exc
        files.fsync_file(partial)
        files.place(partial, target, overwrite=replacing)
    return target


class _Checked:
    """The caller's file object, its failures turned into the package's errors."""

    def __init__(self, out: Writer) -> None:
        self._out = out

    def write(self, text: str, /) -> object:
        try:
            return self._out.write(text)
        except TypeError:
            raise InvalidInput("out must be opened in text mode ('w'), not binary") from None
        except UnicodeEncodeError as exc:
            raise InvalidInput(
                f"out cannot encode the session's text ({exc.encoding}); open it with "
                "encoding='utf-8'"
            ) from None
        except OSError as exc:
            raise StorageIOError(f"writing the export failed: {exc}") from None


def write_session(conn: Connection, session_id: str, format: Format, out: Writer) -> int:
    """Write one session as read on ``conn`` (the caller's transaction); its message count."""
    row = conn.execute(select(*SESSION_COLUMNS).where(S.session_id == session_id)).first()
    if row is None:
        raise SessionNotFound(session_id)
    session = session_from_db(row)
    metadata = dict(
        conn.execute(select(D.key, D.value).where(D.session_id == session_id).order_by(D.key)).all()
    )
    if format == "json":
        state = read_session_state(conn, session_id)
        return _write_json(out, document_head(session, metadata, state), _rows(conn, session_id))
    return _write_markdown(out, session, metadata, _stream_messages(conn, session_id))


def _one_snapshot(work: Callable[[Connection], T]) -> Callable[[Connection], T]:
    """``work`` in a transaction that reads one state (its keyset batches, its owner check)."""

    def run(conn: Connection) -> T:
        one_snapshot(conn)
        return work(conn)

    return run


def _rows(conn: Connection, session_id: str) -> Iterator[Any]:
    """The session's rows of ``MESSAGE_ROWS`` in order, as the driver returns them.

    Read in keyset batches of ``_BATCH`` inside the caller's read transaction
    (one snapshot), so no more than a batch is ever held and no server-side
    cursor is left open on the connection.
    """
    after = None
    while True:
        statement = select(*MESSAGE_ROWS).where(M.session_id == session_id)
        if after is not None:
            statement = statement.where(M.sequence_number > after)
        result = conn.execute(statement.order_by(M.sequence_number).limit(_BATCH))
        try:
            rows = result.cursor.fetchall()
        finally:
            result.close()
        yield from rows
        if len(rows) < _BATCH:
            return
        after = rows[-1][2]


def _stream_messages(conn: Connection, session_id: str) -> Iterator[tuple[MessageRecord, str]]:
    """Each message with its stored ``content`` (NUL shown as U+FFFD where it held one)."""
    result = conn.execute(
        select(*MESSAGE_COLUMNS)
        .where(M.session_id == session_id)
        .order_by(M.sequence_number)
        .execution_options(yield_per=_BATCH)
    )
    for row in result:
        yield message_from_db(row), row.content


def _write_json(out: Writer, head: str, rows: Iterator[Any]) -> int:
    """The document, one message line at a time: no more than a batch of rows is ever held."""
    out.write(head)
    count = 0
    for row in rows:
        out.write(MESSAGE_SEPARATOR if count else "\n    ")
        out.write(message_line(row))
        count += 1
    out.write(DOCUMENT_TAIL)
    return count


def _write_markdown(
    out: Writer,
    session: SessionRecord,
    metadata: Mapping[str, str | None],
    messages: Iterator[tuple[MessageRecord, str]],
) -> int:
    out.write(f"# {session.title or 'Untitled session'}\n\n")
    out.write(f"- **Session:** `{session.session_id}`\n")
    model = session.model_name or session.model_id
    if model:  # a session without a model (agent frameworks know none) gets no line
        out.write(f"- **Model:** {model}\n")
    out.write(f"- **Created:** {session.created_at:%Y-%m-%d %H:%M:%S} UTC\n")
    out.write(f"- **Messages:** {session.message_count}\n")
    out.write(f"- **Tokens:** {session.total_tokens}\n")
    for key, value in metadata.items():
        out.write(f"- **{key}:** {value}\n")
    out.write("\n---\n")
    count = 0
    for message, stored in messages:
        count += 1
        out.write(f"\n## {message.role.upper()} · #{message.sequence_number} · ")
        out.write(f"{message.timestamp:%Y-%m-%d %H:%M:%S} UTC\n\n")
        out.write(stored.rstrip("\n") + "\n")
        details = []
        if message.tokens is not None:
            details.append(f"{message.tokens} tokens")
        duration: Any = message.duration  # a legacy row may hold text here
        if isinstance(duration, int | float):
            details.append(f"{duration:.2f}s")
        elif duration is not None:
            details.append(f"{duration}s")
        if details:
            out.write(f"\n*{', '.join(details)}*\n")
    return count
