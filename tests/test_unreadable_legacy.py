"""Legacy values the store cannot read: made readable, or quarantined with a reason.

A legacy file may hold a BLOB in a text column (a message's content or
metadata, a session's title, model id or name, a metadata key or value) and
timestamps that are not times (``2024-02-30``, hour 24, a BLOB that adoption
turns into a negative year). Once adopted, every session the store lists must
be one it can get, list, export, archive, purge, restore and sweep, and
``doctor`` must be healthy:

* a BLOB that is UTF-8 text without NUL becomes that text in place (and is
  found by search);
* any other BLOB, and any timestamp the store's reading rule refuses, moves
  its message, metadata row or session (with its messages and metadata) to
  quarantine, with a reason naming the column;
* a database adopted by an earlier version (at ``0004_lifecycle``) with such
  rows is brought into line by the next upgrade;
* the ``readable`` health check finds such rows planted in a database at head.
"""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from sessionstore import SessionStore
from sessionstore.cli import main

from .legacy import build_empty_legacy_db, legacy_connect

#: Sessions the store keeps, and what each one held.
KEPT = ("plain", "blob-text", "bad-message", "dup-key")
#: Sessions that go to quarantine, and the column their reason names.
QUARANTINED = {
    "bad-title": "sessions.title",
    "bad-model": "sessions.model_id",
    "feb-30": "sessions.created_at",
    "hour-24": "sessions.last_activity",
    "blob-time": "sessions.updated_at",
}


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout


def _session(conn: sqlite3.Connection, sid: str, **columns: object) -> None:
    values = {"model_id": "m", "created_at": "2024-01-01 10:00:00", **columns}
    names = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    conn.execute(
        f"INSERT INTO sessions (session_id, {names}) VALUES (?, {marks})", (sid, *values.values())
    )


def _message(conn: sqlite3.Connection, sid: str, seq: int, content: object, **more: object) -> None:
    values = {"timestamp": "2024-01-01 10:00:00", "metadata": None, **more}
    conn.execute(
        "INSERT INTO messages (session_id, sequence_number, role, content, timestamp, metadata)"
        " VALUES (?, ?, 'user', ?, ?, ?)",
        (sid, seq, content, values["timestamp"], values["metadata"]),
    )


def _meta(conn: sqlite3.Connection, sid: str, key: object, value: object) -> None:
    conn.execute(
        "INSERT INTO session_metadata (session_id, key, value) VALUES (?, ?, ?)", (sid, key, value)
    )


def legacy_file(path: Path) -> Path:
    build_empty_legacy_db(path)
    with contextlib.closing(legacy_connect(path)) as conn:
        _session(conn, "plain", title="Plain")
        _message(conn, "plain", 1, "hello plain")
        _meta(conn, "plain", "k", "v")
        _meta(conn, "plain", "broken", b"\xff\xfe")  # quarantined alone

        _session(conn, "blob-text", model_name=b"GPT bytes")
        _message(conn, "blob-text", 1, b"bytesword in a blob", metadata=b'{"a": 1}')
        _meta(conn, "blob-text", b"bkey", b"bvalue")
        # The legacy title trigger sets the title from the first message: replace it.
        conn.execute("UPDATE sessions SET title = ?, model_id = ? WHERE session_id = 'blob-text'",
                     (b"Blob title", b"blob-model"))  # fmt: skip

        _session(conn, "bad-message")
        _message(conn, "bad-message", 1, "kept message")
        _message(conn, "bad-message", 2, b"\xff not utf-8")
        _message(conn, "bad-message", 3, b"nul \x00 inside")
        _message(conn, "bad-message", 4, "feb 30", timestamp="2024-02-30 00:00:00")
        _message(conn, "bad-message", 5, "meta", metadata=b"\xc3\x28")

        _session(conn, "dup-key")
        _meta(conn, "dup-key", "k", "text key")
        _meta(conn, "dup-key", b"k", "blob key with the same text")

        _session(conn, "bad-title")
        _message(conn, "bad-title", 1, "first")
        conn.execute("UPDATE sessions SET title = ? WHERE session_id = 'bad-title'", (b"\xff",))
        _meta(conn, "bad-title", "k", "v")
        _session(conn, "bad-model", model_id=b"\x80\x81")
        _message(conn, "bad-model", 1, "second")
        _session(conn, "feb-30", created_at="2024-02-30 00:00:00")
        _message(conn, "feb-30", 1, "third")
        _session(conn, "hour-24", last_activity="2024-01-01 24:00:00")
        _session(conn, "blob-time", updated_at=b"2024")
    return path


def reasons(path: Path, table: str) -> list[tuple[str, str]]:
    key = "session_id" if table != "quarantined_messages" else "message_id"
    with contextlib.closing(sqlite3.connect(path)) as raw:
        raw.text_factory = lambda b: b.decode("utf-8", "backslashreplace")
        rows = raw.execute(f"SELECT {key}, reason FROM {table} ORDER BY 1, 2").fetchall()
    return [(str(k), str(r)) for k, r in rows]


def exercise(store: SessionStore, url: str, expected: set[str]) -> None:
    """Everything listed is got, exported, archived, purged, restored; sweep and doctor work."""
    listed = {s.session_id for s in store.sessions.list(limit=100)}
    assert listed == expected
    for sid in sorted(listed):
        store.sessions.get(sid)
        store.messages.history(sid)
        exported = store.export(sid)
        snap = store.lifecycle.archive(sid)
        store.lifecycle.purge(timedelta(0))
        store.lifecycle.restore(snap.snapshot_id)
        assert store.export(sid) == exported
    later = datetime.now(UTC) + timedelta(days=2)
    assert {e.session.session_id for e in store.lifecycle.expiring(timedelta(0), later)} == listed
    assert run("sweep", "--db", url, "--dry-run")[0] == 0
    swept = store.lifecycle.sweep(later)
    assert {item.session_id for item in swept.archived} == listed
    assert store.health.check(deep=True).ok
    assert run("doctor", "--db", url)[0] == 0


def test_adoption_makes_every_value_readable_or_quarantines_it(tmp_path: Path) -> None:
    path = legacy_file(tmp_path / ".ai-router-sessions.db")
    url = f"sqlite:///{path}"
    # Before adoption (legacy layout, no archived_at) doctor already reports the rows.
    code, out = run("doctor", "--db", url)
    [line] = [line for line in out.splitlines() if line.startswith("readable")]
    assert code == 1
    assert "FAIL" in line
    with SessionStore.open(url) as store:
        blob = store.sessions.get("blob-text")
        assert (blob.title, blob.model_id, blob.model_name) == (
            "Blob title",
            "blob-model",
            "GPT bytes",
        )
        [message] = store.messages.history("blob-text").items
        assert message.content == "bytesword in a blob"
        assert store.sessions.get_metadata("blob-text", "bkey") == "bvalue"
        assert [h.message.session_id for h in store.search.messages("bytesword").items] == [
            "blob-text"
        ]
        kept = [m.content for m in store.messages.history("bad-message").items]
        assert kept == ["kept message"]
        assert store.sessions.get_metadata("dup-key", "k") == "text key"
        assert store.sessions.get_metadata("plain", "broken") is None
        exercise(store, url, set(KEPT))

    sessions = dict(reasons(path, "quarantined_sessions"))
    assert set(sessions) == set(QUARANTINED)
    for sid, column in QUARANTINED.items():
        assert sessions[sid].startswith(column), sessions[sid]
    assert "'2024-02-30 00:00:00.000000'" in sessions["feb-30"]
    assert "-4707" in sessions["blob-time"]
    messages = [reason for _, reason in reasons(path, "quarantined_messages")]
    assert sorted(messages) == sorted(
        [
            "messages.content is a BLOB that is not UTF-8 text without NUL",
            "messages.content is a BLOB that is not UTF-8 text without NUL",
            "messages.timestamp is not a time: '2024-02-30 00:00:00.000000'",
            "messages.metadata is a BLOB that is not UTF-8 text without NUL",
            "its session was quarantined: " + sessions["bad-title"],
            "its session was quarantined: " + sessions["bad-model"],
            "its session was quarantined: " + sessions["feb-30"],
        ]
    )
    metadata = reasons(path, "quarantined_metadata")
    assert metadata == sorted(
        [
            ("bad-title", "its session was quarantined: " + sessions["bad-title"]),
            ("dup-key", "session_metadata.key is a BLOB whose text its session already has"),
            ("plain", "session_metadata.value is a BLOB that is not UTF-8 text without NUL"),
        ]
    )


def plant(path: Path) -> None:
    """Rows the store cannot read, written past it into a database at head."""
    with contextlib.closing(sqlite3.connect(path)) as raw, raw:
        for sid, created, archived in (
            ("p-feb-30", "2023-02-29 08:00:00.000000", None),
            ("p-archived", "2024-01-01 08:00:00.000000", b"\x01\x02"),
            ("p-blob-title", "2024-01-01 08:00:00.000000", None),
            # A time the store reads, though not in the form it writes: kept as it is.
            ("p-offset", "2024-01-01T08:00:00+02:00", None),
        ):
            raw.execute(
                "INSERT INTO sessions (session_id, model_id, created_at, updated_at,"
                " last_activity, archived_at, status) VALUES (?, 'm', ?, ?, ?, ?, ?)",
                (sid, created, created, created, archived, "archived" if archived else "active"),
            )
        raw.execute("UPDATE sessions SET title = ? WHERE session_id = 'p-blob-title'", (b"Tb",))
        raw.execute(
            "INSERT INTO messages (session_id, sequence_number, role, content, timestamp)"
            " VALUES ('p-blob-title', 1, 'user', ?, '2024-01-01 08:00:00.000000')",
            (b"\xfe",),
        )


def test_a_database_adopted_earlier_is_brought_into_line(tmp_path: Path) -> None:
    path = tmp_path / "adopted-earlier.db"
    url = f"sqlite:///{path}"
    with SessionStore.open(url) as store:
        keep = store.sessions.create("m").session_id
        store.messages.append(keep, "user", "kept")
    plant(path)
    with contextlib.closing(sqlite3.connect(path)) as raw, raw:
        raw.execute("UPDATE alembic_version SET version_num = '0004_lifecycle'")
    with SessionStore.open(url) as store:
        assert store.sessions.get("p-blob-title").title == "Tb"
        exercise(store, url, {keep, "p-blob-title", "p-offset"})
    assert reasons(path, "quarantined_sessions") == [
        ("p-archived", "sessions.archived_at is not a time: b'\\x01\\x02'"),
        ("p-feb-30", "sessions.created_at is not a time: '2023-02-29 08:00:00.000000'"),
    ]
    assert [r for _, r in reasons(path, "quarantined_messages")] == [
        "messages.content is a BLOB that is not UTF-8 text without NUL"
    ]


def test_health_finds_unreadable_rows_at_head(tmp_path: Path) -> None:
    path = tmp_path / "planted.db"
    url = f"sqlite:///{path}"
    with SessionStore.open(url) as store:
        sid = store.sessions.create("m").session_id
        store.messages.append(sid, "user", "fine")
        assert store.health.check()["readable"].ok
        plant(path)
        with contextlib.closing(sqlite3.connect(path)) as raw, raw:
            # Text that is a time but not in the store's own form is read, so not reported.
            raw.execute(
                "UPDATE sessions SET last_activity = '2024-01-01T08:00:00+02:00'"
                " WHERE session_id = ?",
                (sid,),
            )
            raw.execute(
                "UPDATE messages SET timestamp = '2024-01-01 24:00:00.000000' WHERE session_id = ?",
                (sid,),
            )
        check = store.health.check()["readable"]
        assert check.status == "failed"
        # Three sessions, the blob message and the hour-24 message.
        assert check.count == 5
        for expected in ("'p-feb-30': created_at", "'p-archived': archived_at",
                         "'p-blob-title': title"):  # fmt: skip
            assert expected in check.detail
    code, out = run("doctor", "--db", url)
    assert code == 1
    assert "readable" in out
