"""Reads of a session's messages take the plain statement once its pages were plain.

``message_sql.read_session``: a session is read with the full statement (12
columns) until a page of it held plain chat messages only (no metadata,
caller's id, payload or exact text, the plain kind); from then on with the
plain one (8 columns), until a page holds anything else, which is read
again whole. Whichever statement a read took, every record is the one
``messages.get`` returns.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sessionstore import SessionStore, message_sql
from sessionstore.records import MessageRecord
from sessionstore.transactions import Raw

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
        # A plain session is read plain from its second read on; the last read
        # of a rich one, the whole session, held messages beyond plain chat.
        assert (sid in message_sql._PLAIN_SESSIONS) is not rich
        if rich:
            by_text = {m.content: m for m in stored}
            assert by_text["with metadata"].metadata == {"k": "v"}
            assert by_text["with an id"].client_msg_id == "c-1"
            assert by_text["call"].kind == "tool_call"
            assert by_text["call"].payload == {"a": [1, 2]}
            assert "nul \x00 inside" in by_text


def test_a_message_beyond_plain_chat_is_read_whole_in_a_session_read_plain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    statements: list[str] = []
    all_rows = Raw.all
    monkeypatch.setattr(
        Raw,
        "all",
        lambda raw, p, params: (
            statements.append(p.render(raw.dialect)[0]) or all_rows(raw, p, params)
        ),
    )
    plain = "CASE WHEN"  # only the plain statement computes RICH
    with SessionStore.open(f"sqlite:///{tmp_path}/s.db") as store:
        sid = store.sessions.create().session_id
        store.messages.append(sid, "assistant", "call", kind="tool_call", payload={"x": 1})
        _fill(store, sid, rich=False)
        statements.clear()
        # The newest page holds plain messages only: read whole, then plain.
        first, second = store.messages.recent(sid, 3), store.messages.recent(sid, 3)
        assert first == second and [m.content for m in first] == [
            "message 9", "message 10", "message 11",
        ]  # fmt: skip
        assert [plain in s for s in statements] == [False, True]
        assert sid in message_sql._PLAIN_SESSIONS
        # A page reaching the tool call: the plain read sees it, the full one reads it.
        statements.clear()
        oldest = store.messages.history(sid, limit=2).items
        assert [plain in s for s in statements] == [True, False]
        assert oldest[0].kind == "tool_call" and oldest[0].payload == {"x": 1}
        assert oldest == tuple(store.messages.get(m.message_id) for m in oldest)
        assert sid not in message_sql._PLAIN_SESSIONS
        # Another writer's message beyond plain chat, to a session read plain.
        store.messages.recent(sid, 3)
        assert sid in message_sql._PLAIN_SESSIONS
        with SessionStore.open(f"sqlite:///{tmp_path}/s.db") as other:
            other.messages.append(sid, "user", "hello", client_msg_id="from-elsewhere")
        newest = store.messages.recent(sid, 1)[0]
        assert newest.client_msg_id == "from-elsewhere"
        assert newest == store.messages.get(newest.message_id)


def test_the_sessions_remembered_are_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(message_sql, "_PLAIN_SESSIONS", {})
    monkeypatch.setattr(message_sql, "_PLAIN_LIMIT", 2)
    with SessionStore.open(f"sqlite:///{tmp_path}/s.db") as store:
        for _ in range(5):
            sid = store.sessions.create().session_id
            store.messages.append(sid, "user", "hi")
            assert store.messages.recent(sid, 1)[0].content == "hi"
            assert sid in message_sql._PLAIN_SESSIONS
            assert len(message_sql._PLAIN_SESSIONS) <= 2
