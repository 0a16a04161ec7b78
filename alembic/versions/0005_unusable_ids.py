"""Quarantine, or make readable, the values the store cannot read.

The legacy layout's columns have no types SQLite enforces, and adoption
(0002) kept what they held. Three kinds of value survived it that the store
cannot read:

* a session id the id rule refuses (blank, containing NUL, not text, over
  255 bytes; ``sessionstore.validation.check_id``): such sessions were listed
  by ``sessions.list`` and then refused by every call that names one;
* a BLOB in a text column (``sessions.model_id/model_name/title``,
  ``messages.content/metadata``, ``session_metadata.key/value``): export and
  archive failed on it;
* a timestamp that is not a time (``2024-02-30 ...``, hour 24, a BLOB that
  adoption turned into a negative year) in ``sessions.created_at``,
  ``updated_at``, ``last_activity``, ``archived_at`` or ``messages.timestamp``:
  listing, sweeping and expiring failed for the whole database; so did an
  offset time that leaves the calendar once converted to UTC
  (``0001-01-01T00:00:00+05:00``);
* TEXT that is not UTF-8 (in the same text columns): listing failed for the
  whole database, since the driver cannot decode it;
* a ``messages.sequence_number`` that is not an integer (``'draft'``, a
  real): adoption made it the session's ``last_seq`` (text sorts above
  integers in ``MAX``), so an append computed ``'draft' + 1 = 1`` and handed
  out a sequence number twice or failed on every call.

This revision repairs what it can without guessing and quarantines the rest
in the tables of 0002 (nothing is deleted outright; each row says why it is
there):

* a BLOB that is UTF-8 text without NUL is the text it spells: it becomes
  that TEXT in place (search indexes follow through their triggers);
* any other BLOB in a text column, and TEXT that is not UTF-8, moves its row
  to quarantine: a message to ``quarantined_messages``, a metadata row to
  ``quarantined_metadata``, a session with its messages and metadata to
  ``quarantined_sessions`` (so is a metadata key whose text would duplicate a
  key its session already has);
* a message whose sequence number is not an integer moves to quarantine, the
  reason naming the value; then each session whose ``last_seq`` is not an
  integer gets the highest integer sequence number its messages, kept or
  quarantined, ever had (0 if none), so no number is handed out twice;
* a timestamp the store's reading rule refuses moves its session (with its
  messages and metadata) or its message to quarantine, the reason naming the
  column and the value. No time is invented in its place: a made-up time
  would silently reorder a conversation or make a sweep archive it.

The reading rule (``sessionstore.prepared.from_db_time``) is written out
here, since revisions are frozen history and never import the package: ISO
text, with or without an offset, or Unix seconds; ``NULL`` only where the
column allows it (``archived_at``). Values in the form the store writes are
tested in SQL, in one pass per table; only the others are parsed in Python.
TEXT is tested as its bytes by a Python function registered on the
connection for this pass (SQLite has no test for UTF-8; an exact ``GLOB``
prefilter costs ten times as much).

Sessions written through the store always obey these rules, and on
PostgreSQL the typed columns cannot hold such values, so there only the id
rule is checked, and on files created by the store this finds nothing.

Downgrading is a no-op: the quarantined rows stay where they are, the
converted values stay text, and 0004's schema is unchanged by this revision.

Revision ID: 0005_unusable_ids
Revises: 0004_lifecycle
Create Date: 2026-11-29
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa

from alembic import op

revision: str = "0005_unusable_ids"
down_revision: str | Sequence[str] | None = "0004_lifecycle"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The id rule as it stands at this revision, written out here: revisions are
# frozen history and never import the package.
MAX_ID_BYTES = 255
REASON = "session id breaks the id rule (blank, NUL, not text or over 255 bytes)"
PARENT = "its session was quarantined: its id breaks the id rule"

#: Per table: its key, its text columns, its integer columns, its timestamp columns
#: (and which may be NULL).
TABLES = {
    "sessions": ("rowid", ("model_id", "model_name", "title"), (),
                 ("created_at", "updated_at", "last_activity", "archived_at")),
    "messages": ("message_id", ("content", "metadata"), ("sequence_number",), ("timestamp",)),
    "session_metadata": ("metadata_id", ("key", "value"), (), ()),
}  # fmt: skip
NULLABLE_TIMES = {"archived_at"}
_D = "[0-9]"
CANONICAL = f"{_D * 4}-{_D * 2}-{_D * 2} {_D * 2}:{_D * 2}:{_D * 2}.{_D * 6}"
#: The SQL function, registered for the scan, that tells bytes which are not UTF-8.
NOT_UTF8 = "sessionstore_0005_not_utf8"


def _not_utf8(raw: bytes | None) -> int:
    if raw is None:
        return 0
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return 1
    return 0


def _text_not_utf8(column: str) -> str:
    """SQL: ``column`` is TEXT whose bytes are not UTF-8."""
    return f"(typeof({column}) = 'text' AND {NOT_UTF8}(CAST({column} AS BLOB)))"


def _written_by_store(column: str) -> str:
    """SQL: ``column`` is a real time in the form the store writes (no Python needed)."""
    day = f"substr({column}, 1, 10)"
    return (
        f"(typeof({column}) = 'text' AND {column} GLOB '{CANONICAL}'"
        f" AND substr({column}, 1, 4) <> '0000'"
        f" AND (substr({column}, 6, 2) BETWEEN '01' AND '12'"
        f"      AND substr({column}, 9, 2) BETWEEN '01' AND '28'"
        f"      OR date({day}, '+0 days') = {day})"
        f" AND substr({column}, 12, 2) < '24' AND substr({column}, 15, 2) < '60'"
        f" AND substr({column}, 18, 2) < '60')"
    )


def _unusable(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return b"\x00" in raw or len(raw) > MAX_ID_BYTES or not value.strip()


def _unusable_sqlite(kind: str, raw: bytes) -> bool:
    """The same rule on SQLite's stored bytes (a text id may hold invalid UTF-8)."""
    if kind != "text":
        return True
    try:
        return _unusable(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return True


def _is_time(value: object) -> bool:
    """``from_db_time``'s rule: ISO text (offset optional) or Unix seconds."""
    try:
        if isinstance(value, str):
            try:
                datetime.fromisoformat(value + "+00:00")
            except ValueError:
                parsed = datetime.fromisoformat(value.strip())
                if parsed.tzinfo is not None:
                    # The store reads an offset time as UTC: it must stay in the calendar.
                    parsed.astimezone(UTC)
            return True
        if isinstance(value, int | float) and not isinstance(value, bool):
            datetime.fromtimestamp(value, UTC)
            return True
    except (ValueError, OverflowError, OSError):
        pass
    return False


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _stored(kind: str, raw: object) -> object:
    """A value read as ``CAST(x AS BLOB)`` when text, back as Python reads it."""
    if kind == "text" and isinstance(raw, bytes):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw  # not text Python can read: no rule accepts bytes
    return bytes(raw) if kind == "blob" and raw is not None else raw


def _verdict(
    table: str,
    columns: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]],
    values: Sequence[object],
) -> tuple[str | None, dict[str, str]]:
    """Why the row must go to quarantine (or None), and the BLOBs that become text."""
    texts, integers, times = columns
    converted: dict[str, str] = {}
    for i, column in enumerate(texts):
        kind, raw = values[2 * i], values[2 * i + 1]
        if kind == "text":
            try:
                bytes(raw).decode("utf-8")
            except UnicodeDecodeError:
                return f"{table}.{column} is text that is not UTF-8", {}
            continue
        if kind != "blob":
            continue
        try:
            decoded = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            decoded = "\x00"
        if "\x00" in decoded:
            return f"{table}.{column} is a BLOB that is not UTF-8 text without NUL", {}
        converted[column] = decoded
    for i, column in enumerate(integers, start=len(texts)):
        kind = values[2 * i]
        if kind != "integer":
            value = _stored(str(kind), values[2 * i + 1])
            return f"{table}.{column} is not an integer: {_shown(value)}", {}
    for i, column in enumerate(times, start=len(texts) + len(integers)):
        kind, value = values[2 * i], _stored(str(values[2 * i]), values[2 * i + 1])
        if kind == "null" and column in NULLABLE_TIMES:
            continue
        if not _is_time(value):
            return f"{table}.{column} is not a time: {_shown(value)}", {}
    return None, converted


def _unreadable_rows(
    bind: sa.Connection, table: str
) -> list[tuple[object, str | None, dict[str, str]]]:
    """Each row of ``table`` holding a value the store cannot read: its key, why it must
    be quarantined (or None) and the BLOBs to turn into text."""
    key, texts, integers, times = TABLES[table]
    # Text is read as its bytes: the driver cannot decode TEXT that is not UTF-8.
    shown = [
        f"typeof({c}), CASE WHEN typeof({c}) = 'text' THEN CAST({c} AS BLOB) ELSE {c} END"
        for c in texts + integers + times
    ]
    where = [f"(typeof({c}) = 'blob' OR {_text_not_utf8(c)})" for c in texts]
    where += [f"typeof({c}) <> 'integer'" for c in integers]
    where += [
        f"NOT ({c} IS NULL OR {_written_by_store(c)})"
        if c in NULLABLE_TIMES
        else f"NOT {_written_by_store(c)}"
        for c in times
    ]
    bind.connection.driver_connection.create_function(NOT_UTF8, 1, _not_utf8, deterministic=True)
    rows = bind.exec_driver_sql(
        f"SELECT {key}, {', '.join(shown)} FROM {table} WHERE {' OR '.join(where)}"
    ).all()
    found = []
    for row in rows:
        why, converted = _verdict(table, (texts, integers, times), row[1:])
        found.append((row[0], why, converted))
    return found


def _quarantine_session(
    bind: sa.Connection, rid: object, reason: str, parent: str, sqlite: bool
) -> None:
    """Move a session (``rid``: its rowid on SQLite, its id on PostgreSQL) with its
    messages and metadata (``parent`` says why) to quarantine."""
    if sqlite:
        now = "(strftime('%Y-%m-%d %H:%M:%f', 'now') || '000')"
        pick = "SELECT session_id FROM sessions WHERE rowid = :rid"
        as_text = "{}"  # keep the stored value as it is, BLOB included
    else:
        now = "(now() AT TIME ZONE 'utc')"
        pick = "SELECT CAST(:rid AS TEXT)"
        as_text = "CAST({} AS TEXT)"
    params = {"rid": rid, "reason": reason, "parent": parent}
    bind.execute(
        sa.text(
            f"""
            INSERT INTO quarantined_messages
            SELECT m.message_id, m.session_id, m.sequence_number, m.role, m.content,
                   {as_text.format("m.timestamp")}, m.tokens_used, m.duration_seconds,
                   m.metadata, :parent, {now}
            FROM messages m WHERE m.session_id = ({pick})
            """
        ),
        params,
    )
    bind.execute(
        sa.text(
            f"""
            INSERT INTO quarantined_metadata
            SELECT d.metadata_id, d.session_id, d.key, d.value, :parent, {now}
            FROM session_metadata d WHERE d.session_id = ({pick})
            """
        ),
        params,
    )
    times = ", ".join(as_text.format(c) for c in ("created_at", "updated_at", "last_activity"))
    bind.execute(
        sa.text(
            f"""
            INSERT INTO quarantined_sessions (session_id, created_at, updated_at,
                last_activity, model_id, model_name, title, message_count, total_tokens,
                total_duration_seconds, reason, quarantined_at)
            SELECT session_id, {times}, model_id, model_name, title,
                   message_count, total_tokens, total_duration_seconds, :reason, {now}
            FROM sessions WHERE session_id = ({pick})
            """
        ),
        params,
    )
    for table in ("messages", "session_metadata", "sessions"):
        bind.execute(sa.text(f"DELETE FROM {table} WHERE session_id = ({pick})"), {"rid": rid})


NOW = "(strftime('%Y-%m-%d %H:%M:%f', 'now') || '000')"
MOVE_MESSAGE = f"""
    INSERT INTO quarantined_messages
    SELECT message_id, session_id, sequence_number, role, content, timestamp, tokens_used,
           duration_seconds, metadata, :reason, {NOW}
    FROM messages WHERE message_id = :key
"""
MOVE_METADATA = f"""
    INSERT INTO quarantined_metadata
    SELECT metadata_id, session_id, key, value, :reason, {NOW}
    FROM session_metadata WHERE metadata_id = :key
"""
# A session whose last_seq is not an integer (adopted from a message's text sequence
# number) restarts from the highest integer its messages, kept or quarantined, ever had,
# and never below a real last_seq rounded up: no number is handed out twice.
SETTLE_LAST_SEQ = """
    UPDATE sessions SET last_seq = MAX(
        COALESCE((SELECT MAX(m.sequence_number) FROM messages m
                  WHERE m.session_id = sessions.session_id
                    AND typeof(m.sequence_number) = 'integer'), 0),
        COALESCE((SELECT MAX(q.sequence_number) FROM quarantined_messages q
                  WHERE q.session_id = sessions.session_id
                    AND typeof(q.sequence_number) = 'integer'), 0),
        CASE WHEN typeof(last_seq) = 'real' AND last_seq BETWEEN 0 AND 9e18
             THEN CAST(last_seq AS INTEGER) + (last_seq > CAST(last_seq AS INTEGER))
             ELSE 0 END)
    WHERE typeof(last_seq) <> 'integer'
"""
DUPLICATE_KEY = (
    "SELECT 1 FROM session_metadata d JOIN session_metadata o"
    " ON o.session_id = d.session_id AND o.metadata_id <> d.metadata_id"
    " WHERE d.metadata_id = :key AND o.key = :text"
)


def _repair_sqlite(bind: sa.Connection) -> None:
    """BLOBs that are text become text; rows holding what the store cannot read move to
    quarantine. Sessions first, so a message is judged only if its session stays."""
    for table in ("sessions", "messages", "session_metadata"):
        key = TABLES[table][0]
        for row_key, found, converted in _unreadable_rows(bind, table):
            why = found
            if table == "session_metadata" and "key" in converted:
                taken = bind.execute(
                    sa.text(DUPLICATE_KEY), {"key": row_key, "text": converted["key"]}
                ).first()
                if taken is not None:
                    why = "session_metadata.key is a BLOB whose text its session already has"
            if why is None:
                if not converted:
                    continue  # a time the store reads, only not in the form it writes
                # Parameters named after the columns cannot clash with ``_row``.
                sets = ", ".join(f"{column} = :{column}" for column in converted)
                bind.execute(
                    sa.text(f"UPDATE {table} SET {sets} WHERE {key} = :_row"),
                    {**converted, "_row": row_key},
                )
            elif table == "sessions":
                parent = f"its session was quarantined: {why}"
                _quarantine_session(bind, row_key, why, parent, sqlite=True)
            else:
                move = MOVE_MESSAGE if table == "messages" else MOVE_METADATA
                bind.execute(sa.text(move), {"key": row_key, "reason": why})
                bind.execute(sa.text(f"DELETE FROM {table} WHERE {key} = :key"), {"key": row_key})
    bind.execute(sa.text(SETTLE_LAST_SEQ))


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    if sqlite:
        rows = bind.exec_driver_sql(
            "SELECT rowid, typeof(session_id), CAST(session_id AS BLOB) FROM sessions"
        ).all()
        doomed = [rid for rid, kind, raw in rows if _unusable_sqlite(kind, bytes(raw or b""))]
    else:
        ids = bind.execute(sa.text("SELECT session_id FROM sessions")).scalars().all()
        doomed = [sid for sid in ids if _unusable(sid)]
    for rid in doomed:
        _quarantine_session(bind, rid, REASON, PARENT, sqlite)
    if sqlite:
        # PostgreSQL's typed columns hold only text and real times.
        _repair_sqlite(bind)


def downgrade() -> None:
    # Nothing to undo in the schema; the quarantined rows stay quarantined.
    pass
