"""The legacy ``SessionManager`` drop-in: same methods, arguments and return shapes.

Includes the legacy application's own scenarios: five threads inserting ten
messages each into one session, a 1,000-message session with exact totals,
and orphan handling that quarantines instead of deleting.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessionstore.compat import SessionManager, SessionNotFoundError, create_session_manager


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[SessionManager]:
    with SessionManager(tmp_path / ".ai-router-sessions.db") as opened:
        yield opened


def test_create_and_get_session_return_legacy_dicts(manager: SessionManager) -> None:
    session_id = manager.create_session("qwen3-coder-30b", "Qwen3 Coder", None)
    assert isinstance(session_id, str)
    session = manager.get_session(session_id)
    assert session is not None
    assert set(session) == {
        "session_id", "created_at", "updated_at", "model_id", "model_name", "title",
        "message_count", "total_tokens", "total_duration_seconds", "last_activity",
    }  # fmt: skip
    assert session["model_id"] == "qwen3-coder-30b"
    assert session["message_count"] == 0
    # Timestamps keep the legacy text form, parseable the way the old callers did.
    assert len(session["created_at"]) == 19
    assert manager.get_session("no-such-session") is None


def test_messages_history_and_totals(manager: SessionManager) -> None:
    sid = manager.create_session("m1")
    assert manager.add_message(sid, "user", "Explain WAL please", tokens=4, duration=0.5) is None
    manager.add_message(sid, "assistant", "Write-ahead log.", tokens=6, duration=1.25,
                        metadata={"temperature": 0.7})  # fmt: skip
    history = manager.get_session_history(sid)
    assert [m["sequence_number"] for m in history] == [1, 2]
    assert history[1]["metadata"] == {"temperature": 0.7}
    assert history[0]["metadata"] is None
    assert history[1]["tokens_used"] == 6
    session = manager.get_session(sid)
    assert session is not None
    assert session["message_count"] == 2
    assert session["total_tokens"] == 10
    assert session["total_duration_seconds"] == pytest.approx(1.75)
    assert session["title"] == "Explain WAL please"
    assert manager.get_session_history("missing") == []


def test_five_threads_ten_messages_each(manager: SessionManager) -> None:
    sid = manager.create_session("m1")
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(10):
                manager.add_message(sid, "user", f"thread {n} message {i}")
        except BaseException as exc:  # pragma: no cover - the assertion reports it
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    history = manager.get_session_history(sid)
    assert len(history) == 50
    assert [m["sequence_number"] for m in history] == list(range(1, 51))
    session = manager.get_session(sid)
    assert session is not None and session["message_count"] == 50


def test_thousand_message_session_totals_are_exact(manager: SessionManager) -> None:
    sid = manager.create_session("m1")
    for i in range(1000):
        manager.add_message(sid, "user" if i % 2 == 0 else "assistant", f"m{i}",
                            tokens=i, duration=0.001 * i)  # fmt: skip
    session = manager.get_session(sid)
    assert session is not None
    assert session["message_count"] == 1000
    assert session["total_tokens"] == sum(range(1000))
    assert session["total_duration_seconds"] == pytest.approx(0.001 * sum(range(1000)))
    assert len(manager.get_session_history(sid)) == 1000


def test_list_sessions_uses_the_view_with_offsets(manager: SessionManager) -> None:
    ids = [manager.create_session("a" if i % 2 else "b") for i in range(5)]
    for sid in ids:
        manager.add_message(sid, "user", f"first prompt of {sid}")
    listed = manager.list_sessions(limit=50)
    assert [s["session_id"] for s in listed] == list(reversed(ids))
    assert listed[0]["first_prompt"] == f"first prompt of {ids[-1]}"
    assert "last_message" in listed[0]
    assert len(manager.list_sessions(limit=2, offset=1)) == 2
    assert {s["model_id"] for s in manager.list_sessions(model_filter="a")} == {"a"}


def test_search_sessions_is_safe_on_any_text(manager: SessionManager) -> None:
    sid = manager.create_session("m1")
    manager.add_message(sid, "user", "How do routers handle multi-agent traffic?")
    found = manager.search_sessions("router")
    assert [s["session_id"] for s in found] == [sid]
    for text in ('"unbalanced', "(x", "AND", "x OR", "*", "col:x", "C++", "don't"):
        assert isinstance(manager.search_sessions(text), list)


def test_titles_metadata_delete(manager: SessionManager) -> None:
    sid = manager.create_session("m1", title="old")
    manager.update_session_title(sid, "new")
    manager.update_session_title("missing", "ignored")
    assert manager.get_session(sid)["title"] == "new"  # type: ignore[index]
    manager.set_session_metadata(sid, "project", "router")
    manager.set_session_metadata(sid, "project", "router-2")
    assert manager.get_session_metadata(sid, "project") == "router-2"
    assert manager.get_session_metadata(sid, "absent") is None
    assert manager.delete_session(sid) is True
    assert manager.delete_session(sid) is False


def test_export_session_legacy_formats(manager: SessionManager) -> None:
    sid = manager.create_session("m1", "Model One")
    manager.add_message(sid, "user", "hello", tokens=1, duration=0.5)
    data = json.loads(manager.export_session(sid, "json"))
    assert set(data) == {"session", "messages"}
    assert data["messages"][0]["content"] == "hello"
    markdown = manager.export_session(sid, "markdown")
    assert markdown.startswith("# hello")
    assert "## USER (" in markdown and "*Tokens: 1*" in markdown
    with pytest.raises(ValueError):
        manager.export_session("missing")
    with pytest.raises(SessionNotFoundError):
        manager.export_session("missing")
    with pytest.raises(ValueError):
        manager.export_session(sid, "txt")


def test_markdown_of_a_session_without_a_model_has_no_model_line(
    manager: SessionManager,
) -> None:
    """An agent framework's session (no model id) is exported without "Model: None"."""
    sid = manager.store.sessions.create(None).session_id
    manager.add_message(sid, "user", "hi")
    markdown = manager.export_session(sid, "markdown")
    assert "None" not in markdown and "**Model:**" not in markdown
    named = manager.create_session("m1", "Model One")
    assert "**Model:** Model One" in manager.export_session(named, "markdown")


def test_statistics_shape(manager: SessionManager) -> None:
    a = manager.create_session("alpha")
    manager.create_session("alpha")
    manager.create_session("beta")
    manager.add_message(a, "user", "x", tokens=5)
    stats = manager.get_statistics()
    assert stats["total_sessions"] == 3
    assert stats["total_messages"] == 1
    assert stats["total_tokens"] == 5
    assert stats["model_breakdown"] == {"alpha": 2, "beta": 1}
    assert list(stats["model_breakdown"]) == ["alpha", "beta"]
    assert isinstance(stats["last_session"], str)


def test_fix_orphaned_records_quarantines_instead_of_deleting(tmp_path: Path) -> None:
    path = tmp_path / ".ai-router-sessions.db"
    with SessionManager(path) as manager:
        sid = manager.create_session("m1")
        manager.add_message(sid, "user", "keep me")
        manager.set_session_metadata(sid, "k", "v")
    # What the legacy layer did: delete a session with foreign keys off.
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA foreign_keys = OFF")
    raw.execute("DELETE FROM sessions WHERE session_id = ?", (sid,))
    raw.commit()
    raw.close()
    with SessionManager(path) as manager:
        assert manager.fix_orphaned_records() == 2
        assert manager.fix_orphaned_records() == 0
    raw = sqlite3.connect(path)
    kept = raw.execute("SELECT content, reason FROM quarantined_messages").fetchall()
    raw.close()
    assert kept[0][0] == "keep me" and "orphan" in kept[0][1]


def test_cleanup_old_sessions_and_factory(tmp_path: Path) -> None:
    with create_session_manager(tmp_path) as manager:
        assert manager.db_path == tmp_path / ".ai-router-sessions.db"
        manager.create_session("m1")
        assert manager.cleanup_old_sessions(days=30) == 0
        assert manager.cleanup_old_sessions(days=-1) == 1
