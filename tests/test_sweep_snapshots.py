"""A swept session's snapshot is the export's JSON text, character for character.

The sweep formats its snapshots itself (``sessionstore.export_json``) and
compresses them on a small thread pool (``sessionstore.sweeps``); ``archive``
writes them through ``sessionstore.export``. Both must store the same
document: here every kind of value a session can hold (NUL, escapes, non-BMP
text, payloads, nested state, floats, owners, forks, own timeouts) and the
legacy values a file may hold (textual or negative tokens, times without
microseconds, an empty model id) are snapshotted by a sweep and compared
with the export taken just before.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sessionstore import SessionStore, export_json, sweeps
from sessionstore.errors import DatabaseCorruptError
from sessionstore.export_json import session_text
from sessionstore.prepared import from_db_time

from .conftest import FakeClock

HOUR = timedelta(hours=1)


def _snapshot(store: SessionStore, session_id: str) -> tuple[str, int, int, int]:
    """The stored snapshot's text, message count, raw bytes and stored bytes."""
    with store.engine.connect() as conn:
        payload, count, raw, stored = conn.exec_driver_sql(
            "SELECT payload, message_count, raw_bytes, stored_bytes FROM session_snapshots"
            f" WHERE session_id = '{session_id}'"
        ).one()
    data = zlib.decompress(payload)
    assert (raw, stored) == (len(data), len(payload))
    return data.decode("utf-8"), count, raw, stored


def _varied_sessions(store: SessionStore, clock: FakeClock) -> list[str]:
    plain = store.sessions.create("gpt-4o", title='a "quoted" title\\ with \t tab').session_id
    store.messages.append(plain, "user", "hi\x00 NUL, \u2028 separator, \U0001f600, \x7f and \x1f")
    store.messages.append(plain, "user", 'ascii only: \x7f DEL, "quotes" \\ and\ttab')
    clock.advance(seconds=1)  # a whole second: the timestamp has no microseconds
    store.messages.append(plain, "assistant", "answer", tokens=12, duration=0.25)
    rich = store.sessions.create(
        None,
        model_name="Model \u00e9",
        metadata={"topic": "t\u00fcrkce", "empty": None},
        idle_timeout=timedelta(minutes=30),
        hard_timeout=timedelta(days=2, microseconds=5),
        app="app",
        user_id="user-1",
    ).session_id
    store.messages.append(
        rich, "assistant", "", kind="function_call", client_msg_id="c-1",
        payload={"type": "function_call", "args": {"x": [1, 2.5, None, True]}, "s": "\u00e9"},
        metadata={"nested": {"k": [1, "v"]}},
    )  # fmt: skip
    store.messages.append(rich, "user", "text " * 300, payload=["a", {"b": 1e-7}])
    store.state.update(
        rich,
        {"step": 3, "plan": {"todo": ["a", "b"], "done": {}}, "f": 1.5, "flag": True, "nan": None},
    )
    forked = store.sessions.fork(plain, 1, title=None).session_id
    empty = store.sessions.create("gpt-4o").session_id  # no messages at all
    return [plain, rich, forked, empty]


def _sweep_and_compare(store: SessionStore, clock: FakeClock, ids: list[str]) -> dict[str, str]:
    """Sweep the sessions; each snapshot is the export text taken just before."""
    exported = {sid: store.export(sid) for sid in ids}
    report = store.lifecycle.sweep(clock.now + 3 * 24 * HOUR)
    assert sorted(item.session_id for item in report.archived) == sorted(ids)
    for sid in ids:
        text, count, _, _ = _snapshot(store, sid)
        assert text == exported[sid]
        assert count == store.sessions.get(sid).message_count
    assert not [t for t in threading.enumerate() if t.name.startswith("sessionstore-sweep")]
    return exported


def test_a_swept_snapshot_is_the_export_text(backend_url: str, clock: FakeClock) -> None:
    with SessionStore.open(backend_url, clock=clock, idle_timeout=HOUR) as store:
        ids = _varied_sessions(store, clock)
        exported = _sweep_and_compare(store, clock, ids)
        # And it restores to the session exported before the sweep.
        for sid in ids:
            snapshot = store.lifecycle.snapshots(sid)[0].snapshot_id
            store.sessions.delete(sid)
            store.lifecycle.restore(snapshot)
            assert store.export(sid) == exported[sid]


def test_legacy_values_are_snapshotted_as_stored(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "legacy.db"
    with SessionStore.open(f"sqlite:///{path}", clock=clock, idle_timeout=HOUR) as store:
        sid = store.sessions.create("gpt-4o").session_id
        for text in ("one", "two", "three"):
            store.messages.append(sid, "user", text, tokens=5)
    raw = sqlite3.connect(path)
    with raw:
        raw.execute("UPDATE messages SET tokens_used = 'many' WHERE sequence_number = 1")
        raw.execute(
            "UPDATE messages SET tokens_used = -3, duration_seconds = 'slow',"
            " metadata = 'not json', payload = '{broken' WHERE sequence_number = 2"
        )
        raw.execute("UPDATE messages SET timestamp = '2026-01-01 12:00:00' WHERE sequence_number=3")
        raw.execute("UPDATE sessions SET model_id = ''")
    raw.close()
    with SessionStore.open(f"sqlite:///{path}", clock=clock, idle_timeout=HOUR) as store:
        _sweep_and_compare(store, clock, [sid])


def test_a_session_larger_than_a_batch_is_snapshotted_alone(
    backend_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sweeps, "BATCH_MESSAGES", 4)
    with SessionStore.open(backend_url, clock=clock, idle_timeout=HOUR) as store:
        big = store.sessions.create("gpt-4o", metadata={"k": "v"}).session_id
        store.messages.append_many(big, [{"role": "user", "content": f"m{i}"} for i in range(6)])
        store.state.update(big, {"s": [1]})
        small = [store.sessions.create("gpt-4o").session_id for _ in range(3)]
        for sid in small:
            store.messages.append(sid, "user", "hi")
        _sweep_and_compare(store, clock, [big, *small])
        for sid in [big, *small]:
            [event] = store.lifecycle.history(sid)
            assert event.snapshot_id == store.lifecycle.snapshots(sid)[0].snapshot_id


def test_compressing_on_this_thread_stores_the_same_snapshot(
    sqlite_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sweeps, "COMPRESS_THREADS", 0)  # no pool: compressed as formatted
    with SessionStore.open(sqlite_url, clock=clock, idle_timeout=HOUR) as store:
        ids = _varied_sessions(store, clock)
        _sweep_and_compare(store, clock, ids)


def test_the_text_of_a_session_kept_forever_is_the_export(sqlite_url: str) -> None:
    # Never swept, but export_json writes any session (and its True) as the export does.
    with SessionStore.open(sqlite_url) as store:
        session = store.sessions.create("gpt-4o", never_expires=True, metadata={"k": None})
        text, count = session_text(session, {"k": None}, {}, [])
        assert (text, count) == (store.export(session.session_id), 0)


def test_strings_and_times_are_spelled_as_the_json_module_and_records_spell_them() -> None:
    texts = ["", "plain", "\x7f", "a\x7fb", 'q"b\\s/', "\u00e9", "\U0001f600", "\ud800"]
    texts += ["".join(map(chr, range(0, 0x81))), "line\nbreak\r\t\b\f"]
    for text in texts:
        assert export_json._text(text) == json.dumps(text, ensure_ascii=False)
    times = [
        "2026-01-01 00:00:00.000000",
        "2026-01-01 00:00:00.000001",
        "2026-12-31 23:59:59.999999",
        "0001-01-01 00:00:00.100000",
        "2026-01-01 00:00:00",  # legacy CURRENT_TIMESTAMP text
        "2026-01-01T00:00:00.500000",
        "2026-01-01 12:00:00.250000+02:00",
        "2026-01-01T12:00:00Z",
        "2026-W01-1 00:00:00.123456",
        datetime(2026, 1, 1, 12, tzinfo=UTC),
        datetime(2026, 1, 1, 12, 0, 0, 7),
    ]
    for stored in times:
        assert export_json._iso(stored) == from_db_time(stored).isoformat(), stored
    for broken in ("2026-13-01 00:00:00.000000", "not a time"):
        with pytest.raises(DatabaseCorruptError):
            export_json._iso(broken)
