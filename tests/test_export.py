"""Export (JSON, Markdown), streaming, the JSON round trip, and statistics."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from sessionstore import InvalidInput, NewMessage, SessionExists, SessionNotFound, SessionStore


def populated(store: SessionStore, n: int = 25) -> str:
    session = store.sessions.create("gpt-4o", model_name="GPT-4o", metadata={"team": "a"})
    sid = session.session_id
    roles = ("system", "user", "assistant", "tool")
    for i in range(n):
        store.messages.append(
            sid, roles[i % 4], f"message {i}: ünïcode 🎉 \"quoted\" \n line two",
            tokens=i, duration=i / 10, metadata={"i": i, "nested": {"ok": True}},
            client_msg_id=f"c{i}" if i % 3 == 0 else None,
        )  # fmt: skip
    return sid


def test_json_round_trip(store: SessionStore) -> None:
    sid = populated(store)
    text = store.export(sid)
    assert isinstance(text, str)
    doc = json.loads(text)
    assert doc["format"] == "sessionstore.session"
    assert len(doc["messages"]) == 25
    imported = store.import_session(text, session_id="copy-of-it")
    original = store.sessions.get(sid)
    for field in ("model_id", "model_name", "title", "status", "created_at", "updated_at",
                  "last_activity", "message_count", "total_tokens", "last_seq"):  # fmt: skip
        assert getattr(imported, field) == getattr(original, field), field
    assert imported.total_duration_seconds == pytest.approx(original.total_duration_seconds)
    assert store.sessions.metadata("copy-of-it") == {"team": "a"}
    ours = store.messages.history(sid, limit=100).items
    theirs = store.messages.history("copy-of-it", limit=100).items
    assert [(m.sequence_number, m.role, m.content, m.timestamp, m.tokens, m.metadata_json,
             m.client_msg_id) for m in ours] == [
        (m.sequence_number, m.role, m.content, m.timestamp, m.tokens, m.metadata_json,
         m.client_msg_id) for m in theirs
    ]  # fmt: skip
    again = json.loads(store.export("copy-of-it") or "")
    assert again["session"] | {"session_id": sid} == doc["session"]


def test_import_refuses_existing_and_malformed(store: SessionStore) -> None:
    sid = populated(store, 3)
    text = store.export(sid) or ""
    with pytest.raises(SessionExists):
        store.import_session(text)
    broken = json.loads(text)
    broken["messages"][1]["role"] = "   "
    before = store.sessions.count()
    with pytest.raises(InvalidInput):
        store.import_session(broken, session_id="new-one")
    for bad in ("not json", "{}", json.dumps({"format": "other"})):
        with pytest.raises(InvalidInput):
            store.import_session(bad, session_id="new-two")
    assert store.sessions.count() == before


def test_export_streams_to_a_file_object(store: SessionStore) -> None:
    sid = populated(store, 200)
    out = io.StringIO()
    assert store.export(sid, "json", out=out) is None
    assert len(json.loads(out.getvalue())["messages"]) == 200
    markdown = store.export(sid, "markdown") or ""
    assert markdown.startswith("# ")
    assert markdown.count("\n## ") == 200


def test_export_of_more_messages_than_a_batch_holds_every_one_once(store: SessionStore) -> None:
    """Messages are read in keyset batches of 500: across their edges none is lost or repeated."""
    sid = store.sessions.create("m").session_id
    store.messages.append_many(sid, [NewMessage("user", f"m{i}") for i in range(1001)])
    store.messages.delete(store.messages.recent(sid, 501)[0].message_id)  # a gap at the edge
    doc = json.loads(store.export(sid))
    expected = [m.sequence_number for m in store.messages.iterate(sid)]
    assert [m["sequence_number"] for m in doc["messages"]] == expected
    assert len(expected) == 1000 and 501 not in expected


def test_export_errors(store: SessionStore) -> None:
    with pytest.raises(SessionNotFound):
        store.export("missing")
    sid = populated(store, 1)
    with pytest.raises(InvalidInput):
        store.export(sid, "yaml")  # type: ignore[arg-type]


def test_stats_totals_and_per_model(store: SessionStore) -> None:
    a = store.sessions.create("alpha").session_id
    b = store.sessions.create("beta").session_id
    store.sessions.create("alpha")
    store.messages.append(a, "user", "x", tokens=3, duration=1.5)
    store.messages.append(b, "user", "y", tokens=4)
    stats = store.stats()
    assert (stats.sessions, stats.messages, stats.tokens) == (3, 2, 7)
    assert stats.duration_seconds == pytest.approx(1.5)
    assert stats.by_status == {"active": 3}
    assert [(m.model_id, m.sessions, m.messages) for m in stats.by_model] == [
        ("alpha", 2, 1),
        ("beta", 1, 1),
    ]
    assert stats.last_activity is not None and stats.last_activity.tzinfo is not None


def test_export_out_must_be_a_text_file_object(store: SessionStore, tmp_path: Path) -> None:
    sid = populated(store, 2)
    for out in ("out.md", tmp_path / "out.md", b"out.md", 5):
        with pytest.raises(InvalidInput) as caught:
            store.export(sid, "json", out)  # type: ignore[arg-type]
        assert "text file object" in str(caught.value)
    with open(tmp_path / "binary.json", "wb") as binary, pytest.raises(InvalidInput):
        store.export(sid, "json", binary)  # type: ignore[arg-type]
    with open(tmp_path / "ascii.md", "w", encoding="ascii") as narrow:
        with pytest.raises(InvalidInput) as caught:
            store.export(sid, "markdown", narrow)
        assert "encoding='utf-8'" in str(caught.value)
    assert not (tmp_path / "out.md").exists()


def test_import_refuses_numbers_past_any_float(store: SessionStore) -> None:
    doc = json.loads(store.export(populated(store, 1)) or "")
    for where, key in (("message", "duration"), ("session", "total_duration_seconds")):
        for value in (10**400, 1e308, -(10**400)):
            variant = json.loads(json.dumps(doc))
            target = variant["messages"][0] if where == "message" else variant["session"]
            target[key] = value
            with pytest.raises(InvalidInput):
                store.import_session(variant, session_id="huge")
            text = json.dumps(variant)  # and as text: 400 digits parse as a Python int
            with pytest.raises(InvalidInput):
                store.import_session(text, session_id="huge")
    assert not store.sessions.exists("huge")


def test_markdown_export_of_legacy_values(sqlite_store: SessionStore) -> None:
    """A legacy REAL column holding text is written as it is, not formatted as a number."""
    sid = sqlite_store.sessions.create("m").session_id
    sqlite_store.messages.append(sid, "assistant", "answer", tokens=3, duration=1.5)
    with sqlite_store.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO messages (session_id, sequence_number, role, content, tokens_used,"
            " duration_seconds) VALUES (?, 2, 'assistant', 'legacy', -4, 'slow')",
            (sid,),
        )
    markdown = sqlite_store.export(sid, "markdown") or ""
    assert "*3 tokens, 1.50s*" in markdown
    assert "*-4 tokens, slows*" in markdown


def test_markdown_export_of_a_session_without_a_model(store: SessionStore) -> None:
    """No model id and no model name: no Model line, rather than "Model: None"."""
    sid = store.sessions.create(title="no model").session_id
    store.messages.append(sid, "user", "hello")
    markdown = store.export(sid, "markdown") or ""
    assert "Model" not in markdown
    assert "None" not in markdown
    assert f"- **Session:** `{sid}`\n- **Created:** " in markdown
    named = store.sessions.create(model_name="GPT-4o").session_id
    assert "- **Model:** GPT-4o\n" in (store.export(named, "markdown") or "")
