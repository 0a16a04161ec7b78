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

import sqlalchemy as sa
from click.testing import CliRunner

from sessionstore import SessionStore
from sessionstore.cli import main
from sessionstore.downgrades import downgrade
from sessionstore.integrity import unreadable_rows

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


def _message(
    conn: sqlite3.Connection, sid: str, seq: object, content: object, **more: object
) -> None:
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


def back_to_0004(url: str) -> None:
    """The database as the release before revision 0005 left it."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        downgrade(engine, "0004_lifecycle")
    finally:
        engine.dispose()


def test_a_database_adopted_earlier_is_brought_into_line(tmp_path: Path) -> None:
    path = tmp_path / "adopted-earlier.db"
    url = f"sqlite:///{path}"
    with SessionStore.open(url) as store:
        keep = store.sessions.create("m").session_id
        store.messages.append(keep, "user", "kept")
    back_to_0004(url)
    plant(path)
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


#: TEXT whose bytes are not UTF-8 (``title\xff``), as a legacy writer could store it.
BAD_TEXT = b"title\xff"
#: Offset times that leave the calendar once converted to UTC.
TOO_EARLY = "0001-01-01T00:00:00+05:00"
TOO_LATE = "9999-12-31T23:59:59-01:00"
#: How a session id that is TEXT but not UTF-8 reads back from quarantine.
BAD_ID = "id\\xff"
#: Sessions of the second legacy file that go to quarantine, and their reasons.
QUARANTINED_SHAPES = {
    "t-title": "sessions.title is text that is not UTF-8",
    "t-model-id": "sessions.model_id is text that is not UTF-8",
    "t-model-name": "sessions.model_name is text that is not UTF-8",
    # Adoption converts it to UTC text (year 0), which is no time either.
    "t-early": "sessions.created_at is not a time: '0000-12-31 19:00:00.000000'",
    # Its id is TEXT that is not UTF-8 too (doctor must name it before adoption).
    BAD_ID: "session id breaks the id rule (blank, NUL, not text or over 255 bytes)",
}
#: Its sessions the store keeps.
KEPT_SHAPES = {"seq-draft", "seq-mixed", "t-parts", "unicode"}


def _ledger(path: Path) -> dict[str, int]:
    """Rows per kind, kept plus quarantined: adoption must not lose any."""
    with contextlib.closing(sqlite3.connect(path)) as raw:
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        counts = {}
        for kind in ("sessions", "messages", "metadata"):
            live = "session_metadata" if kind == "metadata" else kind
            counts[kind] = raw.execute(f"SELECT COUNT(*) FROM {live}").fetchone()[0]
            if f"quarantined_{kind}" in tables:
                counts[kind] += raw.execute(f"SELECT COUNT(*) FROM quarantined_{kind}").fetchone()[
                    0
                ]
    return counts


def shapes_file(path: Path) -> Path:
    """A legacy file holding text sequence numbers, TEXT that is not UTF-8 and offset times
    past the calendar in UTC."""
    build_empty_legacy_db(path)
    with contextlib.closing(legacy_connect(path)) as conn:
        _session(conn, "seq-draft")
        _message(conn, "seq-draft", "draft", "a draft")
        _session(conn, "seq-mixed")
        _message(conn, "seq-mixed", 1, "one")
        _message(conn, "seq-mixed", 4, "four")
        _message(conn, "seq-mixed", "draft", "text seq")
        _message(conn, "seq-mixed", 2.5, "real seq")
        _message(conn, "seq-mixed", 9.5, "real seq above the rest")

        for sid, column in (("t-title", "title"), ("t-model-id", "model_id"),
                            ("t-model-name", "model_name")):  # fmt: skip
            _session(conn, sid)
            _message(conn, sid, 1, f"message of {sid}")
            _meta(conn, sid, "k", "v")
            conn.execute(
                f"UPDATE sessions SET {column} = CAST(? AS TEXT) WHERE session_id = ?",
                (BAD_TEXT, sid),
            )
        conn.execute(
            "INSERT INTO sessions (session_id, model_id, created_at, title)"
            " VALUES (CAST(? AS TEXT), 'm', '2024-01-01 10:00:00', CAST(? AS TEXT))",
            (b"id\xff", BAD_TEXT),
        )
        _session(conn, "t-early", created_at=TOO_EARLY)
        _message(conn, "t-early", 1, "early")

        _session(conn, "t-parts", title="Parts")
        _message(conn, "t-parts", 1, "kept part")
        for seq, column in ((2, "content"), (3, "metadata")):
            conn.execute(
                "INSERT INTO messages (session_id, sequence_number, role, content, timestamp)"
                " VALUES ('t-parts', ?, 'assistant', 'x', '2024-01-01 10:00:00')",
                (seq,),
            )
            conn.execute(
                f"UPDATE messages SET {column} = CAST(? AS TEXT) WHERE sequence_number = ?"
                " AND session_id = 't-parts'",
                (BAD_TEXT, seq),
            )
        # Adoption itself re-times a message whose time it cannot convert (its session's).
        _message(conn, "t-parts", 5, "too late", timestamp=TOO_LATE)
        _meta(conn, "t-parts", "good", "value")
        conn.execute(
            "INSERT INTO session_metadata (session_id, key, value)"
            " VALUES ('t-parts', 'bad value', CAST(? AS TEXT)), ('t-parts', CAST(? AS TEXT), 'v')",
            (BAD_TEXT, b"key\xc3"),
        )
        # Valid UTF-8 beyond ASCII, and a NUL, are text the store reads: kept as they are.
        _session(conn, "unicode", title="café ✓ 会话")
        _message(conn, "unicode", 1, "naïve \U0001f600")
        _message(conn, "unicode", 2, "nul \x00 inside")
        _meta(conn, "unicode", "clé", "välue")
    return path


def _appends_are_fresh(store: SessionStore, sid: str, above: int) -> None:
    """Append, delete, append: each a new integer above ``above`` and every earlier one."""
    first = store.messages.append(sid, "user", "after adoption")
    store.messages.delete(first.message_id)
    second = store.messages.append(sid, "user", "after the delete")
    assert isinstance(first.sequence_number, int)
    assert above < first.sequence_number < second.sequence_number
    seqs = [m.sequence_number for m in store.messages.history(sid, limit=100).items]
    assert all(isinstance(s, int) for s in seqs)
    assert len(seqs) == len(set(seqs))
    assert second.sequence_number == max(seqs)


def test_text_sequence_numbers_text_not_utf8_and_offset_overflow_are_quarantined(
    tmp_path: Path,
) -> None:
    path = shapes_file(tmp_path / ".ai-router-sessions.db")
    url = f"sqlite:///{path}"
    before = _ledger(path)
    code, out = run("doctor", "--db", url)
    [line] = [line for line in out.splitlines() if line.startswith("readable")]
    assert code == 1
    assert "FAIL" in line
    with SessionStore.open(url) as store:
        assert _ledger(path) == before
        assert {s.session_id for s in store.sessions.list(limit=100)} == KEPT_SHAPES
        assert store.health.check(deep=True).ok
        assert store.sessions.get("seq-mixed").message_count == 2
        # Kept seqs 1 and 4; the quarantined reals never count as acknowledged integers.
        _appends_are_fresh(store, "seq-mixed", 4)
        _appends_are_fresh(store, "seq-draft", 0)
        kept = [m.content for m in store.messages.history("t-parts").items]
        assert kept == ["kept part", "too late"]
        assert store.sessions.get_metadata("t-parts", "good") == "value"
        assert store.sessions.get_metadata("t-parts", "bad value") is None
        unicode = store.sessions.get("unicode")
        assert unicode.title == "café ✓ 会话"
        contents = [m.content for m in store.messages.history("unicode").items]
        assert contents == ["naïve \U0001f600", "nul \x00 inside"]
        assert store.sessions.get_metadata("unicode", "clé") == "välue"
        assert store.health.check()["counts"].ok
        exercise(store, url, KEPT_SHAPES)
    assert _ledger(path) == {k: v + (2 if k == "messages" else 0) for k, v in before.items()}

    sessions = dict(reasons(path, "quarantined_sessions"))
    assert sessions == QUARANTINED_SHAPES
    messages = [reason for _, reason in reasons(path, "quarantined_messages")]
    assert sorted(messages) == sorted(
        [
            "messages.sequence_number is not an integer: 'draft'",
            "messages.sequence_number is not an integer: 'draft'",
            "messages.sequence_number is not an integer: 2.5",
            "messages.sequence_number is not an integer: 9.5",
            "messages.content is text that is not UTF-8",
            "messages.metadata is text that is not UTF-8",
        ]
        + [
            f"its session was quarantined: {why}"
            for sid, why in QUARANTINED_SHAPES.items()
            if sid != BAD_ID
        ]
    )
    metadata = reasons(path, "quarantined_metadata")
    assert sorted(r for _, r in metadata) == sorted(
        [
            "session_metadata.value is text that is not UTF-8",
            "session_metadata.key is text that is not UTF-8",
        ]
        + [
            f"its session was quarantined: {QUARANTINED_SHAPES[s]}"
            for s in ("t-title", "t-model-id", "t-model-name")
        ]
    )


def plant_shapes(path: Path, sid: str) -> None:
    """A text sequence number, TEXT that is not UTF-8 and an offset time past the calendar,
    written past the store into a database at head (``sid`` is a session it keeps)."""
    with contextlib.closing(sqlite3.connect(path)) as raw, raw:
        # The insert trigger carries the text into last_seq, as adoption did.
        raw.execute(
            "INSERT INTO messages (session_id, sequence_number, role, content, timestamp)"
            " VALUES (?, 'draft', 'user', 'draft', '2024-01-01 08:00:00.000000')",
            (sid,),
        )
        raw.execute(
            "INSERT INTO messages (session_id, sequence_number, role, content, timestamp)"
            " VALUES (?, 7, 'user', CAST(? AS TEXT), '2024-01-01 08:00:00.000000')",
            (sid, BAD_TEXT),
        )
        raw.execute(
            "INSERT INTO messages (session_id, sequence_number, role, content, timestamp)"
            " VALUES (?, 8, 'user', 'too early', ?)",
            (sid, TOO_EARLY),
        )
        raw.execute(
            "INSERT INTO session_metadata (session_id, key, value)"
            " VALUES (?, 'k', CAST(? AS TEXT))",
            (sid, BAD_TEXT),
        )
        for other, title, created in (
            ("p-text-title", BAD_TEXT, "2024-01-01 08:00:00.000000"),
            ("p-too-late", b"Late", TOO_LATE),
        ):
            raw.execute(
                "INSERT INTO sessions (session_id, model_id, title, created_at, updated_at,"
                " last_activity, status) VALUES (?, 'm', CAST(? AS TEXT), ?, ?, ?, 'active')",
                (other, title, created, created, created),
            )


def test_a_database_adopted_earlier_loses_these_shapes_too(tmp_path: Path) -> None:
    path = tmp_path / "adopted-earlier.db"
    url = f"sqlite:///{path}"
    with SessionStore.open(url) as store:
        keep = store.sessions.create("m").session_id
        store.messages.append(keep, "user", "kept")
        store.messages.append(keep, "user", "kept too")
    back_to_0004(url)
    plant_shapes(path, keep)
    with contextlib.closing(sqlite3.connect(path)) as raw, raw:
        assert raw.execute(
            "SELECT typeof(last_seq) FROM sessions WHERE session_id = ?", (keep,)
        ).fetchone() == ("text",)
    before = _ledger(path)
    with SessionStore.open(url) as store:
        assert _ledger(path) == before
        assert store.health.check(deep=True).ok
        assert store.sessions.get(keep).message_count == 2
        # The quarantined messages held 7 and 8: no later append may reuse them.
        _appends_are_fresh(store, keep, 8)
        exercise(store, url, {keep})
    assert reasons(path, "quarantined_sessions") == [
        ("p-text-title", "sessions.title is text that is not UTF-8"),
        ("p-too-late", f"sessions.created_at is not a time: '{TOO_LATE}'"),
    ]
    assert sorted(r for _, r in reasons(path, "quarantined_messages")) == [
        "messages.content is text that is not UTF-8",
        "messages.sequence_number is not an integer: 'draft'",
        f"messages.timestamp is not a time: '{TOO_EARLY}'",
    ]
    assert [r for _, r in reasons(path, "quarantined_metadata")] == [
        "session_metadata.value is text that is not UTF-8"
    ]


def test_health_finds_these_shapes_at_head(tmp_path: Path) -> None:
    path = tmp_path / "planted.db"
    url = f"sqlite:///{path}"
    with SessionStore.open(url) as store:
        sid = store.sessions.create("m", title="café ✓").session_id
        store.messages.append(sid, "user", "naïve \U0001f600")
        assert store.health.check()["readable"].ok
        plant_shapes(path, sid)
        check = store.health.check()["readable"]
        assert check.status == "failed"
        # The session (its last_seq), three messages, the metadata row, two sessions.
        assert check.count == 7
        for expected in (f"sessions '{sid}': last_seq", "'p-text-title': title",
                         "'p-too-late': created_at"):  # fmt: skip
            assert expected in check.detail
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        found = unreadable_rows(conn)
    engine.dispose()
    assert [line.split(": ", 1)[1] for line in found] == [
        "last_seq",
        "title",
        "created_at, updated_at, last_activity",
        "sequence_number",
        "content",
        "timestamp",
        "value",
    ]
    code, out = run("doctor", "--db", url)
    assert code == 1
    assert "readable" in out
