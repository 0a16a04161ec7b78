"""Reads of a session's messages take the plain statement unless a page needs every column.

``message_sql.read_session``: a page of plain chat messages (no metadata,
caller's id, payload or exact text, the plain kind) is read with 8 columns;
a page holding any other message is read again whole, and its session is
remembered so its next reads go straight to the full statement. Whichever
statement a read took, every record is the one ``messages.get`` returns.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sessionstore import SessionStore, message_sql
from sessionstore.records import MessageRecord

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def _fill(store: SessionStore, sid: str, rich: bool) -> None:
    for i in range(12):
        store.messages.append(
            sid, "user" if i % 2 == 0 else "assistant", f"message {i}",
            timestamp=T0 + timedelta(seconds=i), tokens=i or None,
            duration=0.1 * i if i % 3 == 0 else None,
        )  # fmt: skip
    if rich:
        # One message of each kind the plain statement does not carry.
        store.messages.append(sid, "user", "with metadata", metadata={"k": "v"})
        store.messages.append(sid, "user", "with an id", client_msg_id="c-1")
        store.messages.append(sid, "assistant", "call", kind="tool_call", payload={"a": [1, 2]})
        store.messages.append(sid, "user", "nul \x00 inside")
        store.messages.append(sid, "assistant", "plain again")


def _every_read(store: SessionStore, sid: str) -> list[list[MessageRecord]]:
    reads: list[list[MessageRecord]] = [list(store.messages.recent(sid, n)) for n in (0, 1, 3, 50)]
    for limit in (1, 4, 50):
        cursor, pages = None, []
        while True:
            page = store.messages.history(sid, limit=limit, cursor=cursor)
            pages.extend(page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        reads.append(pages)
    reads.append(list(store.messages.iterate(sid, batch=3)))
    reads.append(list(store.messages.since(sid, T0 + timedelta(seconds=5))))
    reads.append(list(store.messages.since(sid, T0 - timedelta(days=1), limit=7)))
    return reads


@pytest.mark.parametrize("rich", [False, True], ids=["plain", "rich"])
def test_every_read_gives_the_records_get_gives(backend_url: str, rich: bool) -> None:
    with SessionStore.open(backend_url) as store:
        sid = store.sessions.create().session_id
        _fill(store, sid, rich)
        stored = [store.messages.get(m.message_id) for m in store.messages.iterate(sid)]
        assert len(stored) == (17 if rich else 12)
        for records in _every_read(store, sid):
            assert records == [store.messages.get(r.message_id) for r in records]
            assert all(r in stored for r in records)
        assert list(store.messages.iterate(sid)) == stored
        assert (sid in message_sql._RICH_SESSIONS) is rich
        if rich:
            by_text = {m.content: m for m in stored}
            assert by_text["with metadata"].metadata == {"k": "v"}
            assert by_text["with an id"].client_msg_id == "c-1"
            assert by_text["call"].kind == "tool_call"
            assert by_text["call"].payload == {"a": [1, 2]}
            assert "nul \x00 inside" in by_text


def test_a_plain_page_is_read_plain_even_in_a_session_with_other_messages(
    tmp_path: Path,
) -> None:
    with SessionStore.open(f"sqlite:///{tmp_path}/s.db") as store:
        sid = store.sessions.create().session_id
        store.messages.append(sid, "assistant", "call", kind="tool_call", payload={"x": 1})
        _fill(store, sid, rich=False)
        message_sql._RICH_SESSIONS.pop(sid, None)
        # The newest page holds plain messages only: the plain statement reads it.
        assert [m.content for m in store.messages.recent(sid, 3)] == [
            "message 9", "message 10", "message 11",
        ]  # fmt: skip
        assert sid not in message_sql._RICH_SESSIONS
        # A page reaching the tool call is read again whole, and the session remembered.
        oldest = store.messages.history(sid, limit=2).items
        assert oldest[0].kind == "tool_call" and oldest[0].payload == {"x": 1}
        assert sid in message_sql._RICH_SESSIONS
        assert list(store.messages.recent(sid, 3)) == [
            store.messages.get(m.message_id) for m in store.messages.recent(sid, 3)
        ]


def test_the_sessions_remembered_are_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(message_sql, "_RICH_SESSIONS", {})
    monkeypatch.setattr(message_sql, "_RICH_LIMIT", 2)
    with SessionStore.open(f"sqlite:///{tmp_path}/s.db") as store:
        for _ in range(5):
            sid = store.sessions.create().session_id
            store.messages.append(sid, "user", "hi", metadata={"n": 1})
            assert store.messages.recent(sid, 1)[0].metadata == {"n": 1}
            assert sid in message_sql._RICH_SESSIONS
            assert len(message_sql._RICH_SESSIONS) <= 2
