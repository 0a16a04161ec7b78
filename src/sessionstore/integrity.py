"""The queries that find damage: orphans, drifted counts, values the store cannot read.

Shared by the health check (on a current database) and the migrations (on a
legacy file, to report what the upgrade will repair); both layouts have
these columns under the same names.

:func:`unreadable_rows` finds, on SQLite, the rows holding a BLOB or TEXT
that is not UTF-8 in a text column, a sequence number (``last_seq``
included) that is not an integer, or a timestamp
:func:`~sessionstore.prepared.from_db_time` refuses: one pass per table in
SQL, with only the rows not in the store's own form parsed in Python. Text
is tested as its bytes by a Python function the scan registers on the
connection (the driver cannot read TEXT that is not UTF-8, and SQLite has no
test for it): about ten times cheaper than any exact ``GLOB`` prefilter.
"""

from __future__ import annotations

import sqlite3
from typing import cast

from sqlalchemy import Connection

from .errors import DatabaseCorruptError
from .prepared import from_db_time

__all__ = ["DRIFTED_SESSIONS", "ORPHANED_MESSAGES", "ORPHANED_METADATA", "unreadable_rows"]

ORPHANED_MESSAGES = (
    "SELECT COUNT(*) FROM messages m WHERE NOT EXISTS "
    "(SELECT 1 FROM sessions s WHERE s.session_id = m.session_id)"
)
ORPHANED_METADATA = (
    "SELECT COUNT(*) FROM session_metadata d WHERE NOT EXISTS "
    "(SELECT 1 FROM sessions s WHERE s.session_id = d.session_id)"
)
# Sessions whose stored count or totals differ from what their messages add up to.
DRIFTED_SESSIONS = """
    SELECT s.session_id FROM sessions s
    LEFT JOIN (SELECT session_id, COUNT(*) AS n, SUM(COALESCE(tokens_used, 0)) AS tokens,
                      SUM(COALESCE(duration_seconds, 0)) AS duration
               FROM messages GROUP BY session_id) agg ON agg.session_id = s.session_id
    WHERE COALESCE(s.message_count, -1) != COALESCE(agg.n, 0)
       OR COALESCE(s.total_tokens, -1) != COALESCE(agg.tokens, 0)
       OR ABS(COALESCE(s.total_duration_seconds, -1) - COALESCE(agg.duration, 0)) > 1e-6
"""

#: What the store reads as text, as an integer or as a time, per table: key, text
#: columns, integer columns, timestamps (those that may be NULL in ``NULLABLE_TIMES``).
READ_SCANS = (
    ("sessions", "session_id", ("model_id", "model_name", "title"), ("last_seq",),
     ("created_at", "updated_at", "last_activity", "archived_at")),
    ("messages", "message_id", ("content", "metadata"), ("sequence_number",), ("timestamp",)),
    ("session_metadata", "metadata_id", ("key", "value"), (), ()),
)  # fmt: skip
NULLABLE_TIMES = {"archived_at"}
_D = "[0-9]"
STORE_TIME = f"{_D * 4}-{_D * 2}-{_D * 2} {_D * 2}:{_D * 2}:{_D * 2}.{_D * 6}"
#: The SQL function, registered by the scan, that tells bytes which are not UTF-8.
NOT_UTF8 = "sessionstore_not_utf8"


def unreadable_rows(conn: Connection) -> list[str]:
    """Read only: each row (``"<table> <key>: <columns>"``) the store cannot read."""
    return [problem for scan in READ_SCANS for problem in _unreadable(conn, *scan)]


def _store_time(column: str) -> str:
    """SQL: ``column`` is a real time in the form the store writes (most rows: no Python)."""
    day = f"substr({column}, 1, 10)"
    return (
        f"(typeof({column}) = 'text' AND {column} GLOB '{STORE_TIME}'"
        f" AND substr({column}, 1, 4) <> '0000' AND (substr({column}, 6, 2) BETWEEN '01'"
        f" AND '12' AND substr({column}, 9, 2) BETWEEN '01' AND '28'"
        f" OR date({day}, '+0 days') = {day}) AND substr({column}, 12, 2) < '24'"
        f" AND substr({column}, 15, 2) < '60' AND substr({column}, 18, 2) < '60')"
    )


def _not_utf8(raw: bytes | None) -> int:
    """Whether stored bytes do not decode as UTF-8, as the driver needs to read them."""
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


def _unreadable(
    conn: Connection,
    table: str,
    key: str,
    texts: tuple[str, ...],
    integers: tuple[str, ...],
    times: tuple[str, ...],
) -> list[str]:
    """Read only, one pass over ``table``: its rows holding a BLOB or TEXT that is not
    UTF-8 in a text column, a non-integer in an integer column, or a timestamp
    ``from_db_time`` refuses. Only rows not in the store's own form are parsed."""
    # A database behind the schema (doctor reports it) may lack a column, or the table.
    present = {str(row[1]) for row in conn.exec_driver_sql(f"PRAGMA table_info({table})")}
    texts = tuple(c for c in texts if c in present)
    integers = tuple(c for c in integers if c in present)
    times = tuple(c for c in times if c in present)
    if not texts + integers + times:
        return []
    # Text is read as its bytes: the driver cannot decode TEXT that is not UTF-8.
    # A connection in use holds its driver's (sqlite3) connection.
    driver = cast(sqlite3.Connection, conn.connection.driver_connection)
    driver.create_function(NOT_UTF8, 1, _not_utf8, deterministic=True)
    cols = [
        f"typeof({c}), CASE WHEN typeof({c}) = 'text' THEN CAST({c} AS BLOB) END" for c in texts
    ]
    cols += [f"typeof({c})" for c in integers]
    cols += [
        f"typeof({c}), CASE WHEN typeof({c}) = 'text' THEN CAST({c} AS BLOB) ELSE {c} END"
        for c in times
    ]
    where = [f"(typeof({c}) = 'blob' OR {_text_not_utf8(c)})" for c in texts]
    where += [f"typeof({c}) <> 'integer'" for c in integers]
    where += [
        f"NOT ({c} IS NULL OR {_store_time(c)})" if c in NULLABLE_TIMES else f"NOT {_store_time(c)}"
        for c in times
    ]
    # The key too is read as bytes: a legacy session id may be TEXT that is not UTF-8.
    shown = f"CAST(quote({key}) AS BLOB)"
    sql = f"SELECT {shown}, {', '.join(cols)} FROM {table} WHERE {' OR '.join(where)}"
    found = []
    for row in conn.exec_driver_sql(sql):
        bad = [
            c
            for i, c in enumerate(texts)
            if row[1 + 2 * i] == "blob" or (row[1 + 2 * i] == "text" and not _utf8(row[2 + 2 * i]))
        ]
        ints = row[1 + 2 * len(texts) : 1 + 2 * len(texts) + len(integers)]
        bad += [c for c, kind in zip(integers, ints, strict=True) if kind != "integer"]
        stamps = row[1 + 2 * len(texts) + len(integers) :]
        for i, column in enumerate(times):
            kind, value = stamps[2 * i], stamps[2 * i + 1]
            if not (kind == "null" and column in NULLABLE_TIMES) and not _is_time(kind, value):
                bad.append(column)
        if bad:
            name = bytes(row[0]).decode("utf-8", "backslashreplace")
            found.append(f"{table} {name}: {', '.join(bad)}")
    return found


def _utf8(raw: object) -> bool:
    """Whether stored text's bytes decode as UTF-8, as the driver needs to read them."""
    try:
        bytes(raw).decode("utf-8")  # type: ignore[call-overload]
    except UnicodeDecodeError:
        return False
    return True


def _is_time(kind: str, value: object) -> bool:
    """Whether the store reads ``value`` (stored as SQLite type ``kind``) as a time."""
    if kind == "text":
        try:
            value = bytes(value).decode("utf-8") if isinstance(value, bytes) else value
        except UnicodeDecodeError:
            return False
    elif kind not in ("integer", "real"):
        return False
    try:
        from_db_time(value)
    except DatabaseCorruptError:
        return False
    return True
