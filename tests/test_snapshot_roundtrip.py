"""Whatever the store holds, its snapshot restores, exactly; one id rule holds everywhere.

* A property test on SQLite and PostgreSQL: random sessions, legacy-shaped
  rows included (written with SQL where the API refuses them: an empty
  ``model_id``, negative or textual token counts, negative durations,
  sequence numbers 0 and below, a 70 KB title, a metadata key ``''``, NUL in
  content on SQLite), go through archive → purge → restore and come back
  row for row (``repr`` equal, so an int never comes back a float). Export →
  import under a new id gives the same document exactly when the session
  follows the rules for new input, else :class:`InvalidInput`.
* A legacy file whose rows have every one of those shapes is adopted; the
  sessions whose ids break the id rule (300 characters, blank, NUL, not text)
  are quarantined with their messages and metadata, and every session the
  store lists can be read, exported, archived, purged and restored.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import column, create_engine, insert, table, text, update
from sqlalchemy.pool import NullPool

from sessionstore import InvalidInput, SessionStore
from sessionstore.downgrades import downgrade
from sessionstore.models import Session, SessionMetadata, UTCDateTime

from .legacy import build_empty_legacy_db, legacy_connect

Rows = dict[str, list[str]]
# Raw SQL for the messages: the ORM's Float would turn a legacy textual duration into float().
RAW_MESSAGES = table(
    "messages",
    *(column(name) for name in ("session_id", "sequence_number", "role", "content")),
    column("timestamp", UTCDateTime()),
    *(column(name) for name in ("tokens_used", "duration_seconds", "metadata", "client_msg_id")),
)
_COUNTER = itertools.count()


def session_rows(url: str, session_id: str) -> Rows:
    """The session's rows in sessions, messages and session_metadata (not its surrogate ids)."""
    engine = create_engine(url, poolclass=NullPool)
    queries = {
        "sessions": "SELECT * FROM sessions WHERE session_id = :sid",
        "messages": "SELECT * FROM messages WHERE session_id = :sid ORDER BY message_id",
        # metadata_id is a surrogate key nothing refers to; a restore numbers rows anew.
        "session_metadata": "SELECT session_id, key, value FROM session_metadata"
        " WHERE session_id = :sid ORDER BY key",
    }
    try:
        with engine.connect() as conn:
            return {
                name: [repr(tuple(row)) for row in conn.execute(text(sql), {"sid": session_id})]
                for name, sql in queries.items()
            }
    finally:
        engine.dispose()


def fts_is_consistent(store: SessionStore) -> None:
    if store.dialect == "sqlite":
        with store.engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)"
            )


# --- the property test ------------------------------------------------------------------------


def texts(nul: bool, max_size: int = 12) -> st.SearchStrategy[str]:
    excluded = "" if nul else "\x00"
    return st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters=excluded),
        max_size=max_size,
    )


@st.composite
def sessions(draw: st.DrawFn, dialect: str) -> dict[str, Any]:
    legacy_sqlite = dialect == "sqlite"
    words = texts(nul=legacy_sqlite)
    number_text = st.sampled_from(["abc", "", "12abc", "NaN?", "-"])
    tokens = st.none() | st.integers(-(2**40), 2**40)
    durations = st.none() | st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
    if legacy_sqlite:  # legacy INTEGER/REAL columns hold text too
        tokens |= number_text
        durations |= number_text
    seqs = draw(st.lists(st.integers(-3, 12), unique=True, max_size=6))
    messages = [
        {
            "sequence_number": seq,
            "role": draw(st.sampled_from(("user", "assistant", "system", "tool"))),
            "content": draw(words),
            # In the past: an import takes a session's times in the future as "now"
            # (so they cannot escape the timeouts), which the round trip would show.
            "timestamp": draw(
                st.datetimes(datetime(2000, 1, 1), datetime(2025, 1, 1), timezones=st.just(UTC))
            ),
            "tokens_used": draw(tokens),
            "duration_seconds": draw(durations),
            "metadata": draw(st.none() | words),
            "client_msg_id": draw(st.none() | st.just(f"client-{i}")),
        }
        for i, seq in enumerate(seqs)
    ]
    return {
        "model_id": draw(st.sampled_from(["", "gpt-4o", "  "]) | words),
        "model_name": draw(st.none() | words),
        "title": draw(st.none() | words | st.just("T" * 70_000)),
        "metadata": draw(
            st.dictionaries(
                st.sampled_from(["", " ", "k", "é"]) | words, st.none() | words, max_size=3
            )
        ),
        "messages": messages,
    }


def _blank_or_long(value: object) -> bool:
    return not isinstance(value, str) or not value.strip() or len(value.encode()) > 255


def follows_the_rules(spec: dict[str, Any]) -> bool:
    """Whether import (the rules for new input) must accept this session."""

    def clean(value: object) -> bool:
        return value is None or (isinstance(value, str) and "\x00" not in value)

    if _blank_or_long(spec["model_id"]) or "\x00" in spec["model_id"]:
        return False
    if not clean(spec["model_name"]) or not clean(spec["title"]):
        return False
    if spec["title"] is not None and len(spec["title"].encode()) > 64 * 1024:
        return False
    for key, value in spec["metadata"].items():
        if _blank_or_long(key) or "\x00" in key or not clean(value):
            return False
    for m in spec["messages"]:
        tokens, duration = m["tokens_used"], m["duration_seconds"]
        if m["sequence_number"] < 1 or not clean(m["content"]) or not clean(m["metadata"]):
            return False
        if tokens is not None and (not isinstance(tokens, int) or tokens < 0):
            return False
        if duration is not None and (not isinstance(duration, float) or duration < 0):
            return False
    return True


def plant(store: SessionStore, spec: dict[str, Any]) -> str:
    """The session, written with SQL where the API would refuse its values."""
    sid = f"prop-{next(_COUNTER)}"
    store.sessions.create("placeholder", session_id=sid)
    with store.engine.begin() as conn:
        if spec["metadata"]:
            conn.execute(
                insert(SessionMetadata),
                [{"session_id": sid, "key": k, "value": v} for k, v in spec["metadata"].items()],
            )
        if spec["messages"]:
            conn.execute(insert(RAW_MESSAGES), [{**m, "session_id": sid} for m in spec["messages"]])
        conn.execute(
            update(Session)
            .where(Session.session_id == sid)
            .values(model_id=spec["model_id"], model_name=spec["model_name"], title=spec["title"])
        )
    return sid


def without_ids(document: dict[str, Any]) -> dict[str, Any]:
    document["session"].pop("session_id")
    for message in document["messages"]:
        message.pop("message_id")
    return document


def round_trip(store: SessionStore, spec: dict[str, Any]) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    sid = plant(store, spec)
    before = session_rows(url, sid)
    exported = store.export(sid) or ""

    snapshot = store.lifecycle.archive(sid)
    [purged] = store.lifecycle.purge(timedelta(0)).purged
    assert purged.session_id == sid and session_rows(url, sid)["sessions"] == []
    store.lifecycle.restore(snapshot.snapshot_id)
    assert session_rows(url, sid) == before
    assert store.export(sid) == exported

    copy = f"{sid}-imported"
    try:
        store.import_session(exported, session_id=copy)
    except InvalidInput:
        assert not follows_the_rules(spec)
    else:
        assert follows_the_rules(spec)
        again = without_ids(json.loads(store.export(copy) or ""))
        assert again == without_ids(json.loads(exported))


EXAMPLES = {"sqlite": 150, "postgresql": 100}


@pytest.mark.slow
def test_archive_purge_restore_gives_every_row_back(store: SessionStore) -> None:
    @settings(
        max_examples=EXAMPLES[store.dialect],
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(spec=sessions(store.dialect))
    def check(spec: dict[str, Any]) -> None:
        round_trip(store, spec)

    check()
    fts_is_consistent(store)
    assert store.health.check().ok


def test_every_legacy_shape_at_once(store: SessionStore) -> None:
    """The issue's list, in one session, deterministically."""
    sqlite = store.dialect == "sqlite"
    spec = {
        "model_id": "",
        "model_name": None,
        "title": "T" * 70_000,
        "metadata": {"": "empty key", "k": None},
        "messages": [
            {
                "sequence_number": seq,
                "role": "user",
                "content": "nul \x00 inside" if sqlite else "plain",
                "timestamp": datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=seq),
                "tokens_used": tokens,
                "duration_seconds": duration,
                "metadata": "{'not': json}",
                "client_msg_id": None,
            }
            for seq, tokens, duration in (
                (0, -5, -1.5),
                (1, "twelve" if sqlite else 7, 0.25),
                (2, 2**40, "slow" if sqlite else 1e9),
            )
        ],
    }
    round_trip(store, spec)


def test_durations_keep_every_total_finite(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    for bad in (1e308, 10**400, float("inf"), float("nan"), -1.0, 1e9 + 1):
        with pytest.raises(InvalidInput):
            store.messages.append(sid, "assistant", "x", duration=bad)
    for _ in range(2):
        store.messages.append(sid, "assistant", "long", duration=1e9)
    assert store.sessions.get(sid).total_duration_seconds == 2e9
    snap = store.lifecycle.archive(sid)
    store.lifecycle.purge(timedelta(0))
    assert store.lifecycle.restore(snap.snapshot_id).total_duration_seconds == 2e9


# --- the id rule, from adoption on ----------------------------------------------------------

BAD_IDS: dict[str, object] = {
    "300 characters": "x" * 300,
    "blank": "",
    "spaces": "   ",
    "NUL": "a\x00b",
    "a blob": b"blob-id",
}


def legacy_file(path: Path) -> Path:
    build_empty_legacy_db(path)
    with contextlib.closing(legacy_connect(path)) as conn:
        ids: list[object] = ["good", *BAD_IDS.values()]
        for i, sid in enumerate(ids):
            conn.execute(
                "INSERT INTO sessions (session_id, model_id, title) VALUES (?, ?, ?)",
                (sid, "" if sid == "good" else "m", "T" * 70_000 if sid == "good" else None),
            )
            conn.execute(
                "INSERT INTO session_metadata (session_id, key, value) VALUES (?, '', ?)",
                (sid, f"meta {i}"),
            )
            for seq, tokens, duration in ((0, -5, -1.5), (1, "twelve", 0.5), (2, 3, "slow")):
                conn.execute(
                    "INSERT INTO messages (session_id, sequence_number, role, content,"
                    " tokens_used, duration_seconds) VALUES (?, ?, 'user', ?, ?, ?)",
                    (sid, seq, f"message {seq} of {i} \x00 with NUL", tokens, duration),
                )
    return path


def test_adoption_quarantines_ids_that_break_the_rule(tmp_path: Path) -> None:
    path = legacy_file(tmp_path / ".ai-router-sessions.db")
    url = f"sqlite:///{path}"
    with SessionStore.open(url) as store:
        listed = [s.session_id for s in store.sessions.list(limit=100)]
        assert listed == ["good"]
        with contextlib.closing(sqlite3.connect(path)) as raw:
            raw.text_factory = bytes
            reasons = raw.execute(
                "SELECT reason, COUNT(*) FROM quarantined_sessions GROUP BY reason"
            ).fetchall()
            assert reasons == [
                (b"session id breaks the id rule (blank, NUL, not text or over 255 bytes)", 5)
            ]
            moved = raw.execute(
                "SELECT reason, COUNT(*) FROM quarantined_messages GROUP BY reason"
            ).fetchall()
            assert moved == [(b"its session was quarantined: its id breaks the id rule", 15)]
            meta = raw.execute("SELECT COUNT(*) FROM quarantined_metadata").fetchone()
            assert meta == (5,)
        # Everything listed can be read, exported, archived, purged and restored.
        for sid in listed:
            store.sessions.get(sid)
            assert len(store.messages.history(sid).items) == 3
            before = session_rows(url, sid)
            exported = store.export(sid)
            snap = store.lifecycle.archive(sid)
            assert store.lifecycle.snapshots(sid) == [snap]
            store.lifecycle.purge(timedelta(0))
            store.lifecycle.restore(snap.snapshot_id)
            assert session_rows(url, sid) == before
            assert store.export(sid) == exported
        assert store.health.check().ok


def test_a_database_adopted_before_the_id_rule_is_brought_into_it(tmp_path: Path) -> None:
    """A file adopted by an earlier version kept such ids; the next upgrade quarantines them."""
    path = tmp_path / "adopted-earlier.db"
    url = f"sqlite:///{path}"
    with SessionStore.open(url) as store:
        keep = store.sessions.create("m").session_id
        store.messages.append(keep, "user", "kept")
    # Back to the revision before the id rule, as that earlier version left it.
    engine = create_engine(url, poolclass=NullPool)
    try:
        downgrade(engine, "0004_lifecycle")
    finally:
        engine.dispose()
    with contextlib.closing(sqlite3.connect(path)) as raw, raw:
        raw.execute("PRAGMA foreign_keys = ON")
        for sid in ("y" * 300, " ", b"blob-id"):
            raw.execute("INSERT INTO sessions (session_id, model_id) VALUES (?, 'm')", (sid,))
            raw.execute(
                "INSERT INTO messages (session_id, sequence_number, role, content)"
                " VALUES (?, 1, 'user', 'unreachable until now')",
                (sid,),
            )
            raw.execute(
                "INSERT INTO session_metadata (session_id, key, value) VALUES (?, 'k', 'v')",
                (sid,),
            )
    with SessionStore.open(url) as store:
        assert [s.session_id for s in store.sessions.list(limit=100)] == [keep]
        assert store.health.check().ok
        assert [m.content for m in store.messages.history(keep).items] == ["kept"]
    with contextlib.closing(sqlite3.connect(path)) as raw:
        assert raw.execute("SELECT COUNT(*) FROM quarantined_sessions").fetchone() == (3,)
        assert raw.execute("SELECT COUNT(*) FROM quarantined_messages").fetchone() == (3,)
        assert raw.execute("SELECT COUNT(*) FROM quarantined_metadata").fetchone() == (3,)
        assert raw.execute("SELECT COUNT(*) FROM messages_fts").fetchone() == (1,)
