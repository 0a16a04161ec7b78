"""Forks: ``store.sessions.fork(session_id, through_sequence, new_session_id=..., title=...)``.

On both backends: the fork holds the parent's messages up to N with every
column as stored (sequence numbers, role, kind, payload, exact text, tokens,
duration, timestamps, metadata, client ids), new message ids; the parent's
metadata, session state, owner, model, title and timeouts; its lineage
(``parent_session_id``, ``fork_sequence``) and ``last_seq = N``, so the
fork's next message is N + 1 even when the parent's N was deleted. The
parent is unchanged. Bad input is a typed error and changes nothing; the id
rules of ``ids.py`` hold (taken, retired); an archived parent forks; the
copy is a fixed number of statements however many messages it copies.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, inspect, text

from sessionstore import NewMessage, SessionStore
from sessionstore.errors import (
    InvalidInput,
    SessionExists,
    SessionIdRetired,
    SessionNotFound,
)

from .conftest import FakeClock


def columns(url: str, session_id: str) -> list[tuple[Any, ...]]:
    """Every stored column of the session's messages but the row's own id and session."""
    with SessionStore.open(url) as sync, sync.engine.connect() as conn:
        names = [
            c["name"]
            for c in inspect(conn).get_columns("messages")
            if c["name"] not in ("message_id", "session_id")
        ]
        rows = conn.execute(
            text(
                f"SELECT {', '.join(names)} FROM messages WHERE session_id = :sid"
                " ORDER BY sequence_number"
            ),
            {"sid": session_id},
        ).all()
    return [tuple(row) for row in rows]


def session_count(store: SessionStore) -> int:
    return store.sessions.count()


@pytest.fixture
def parent(store: SessionStore, backend_url: str) -> str:
    """Six messages of every shape, metadata, state, an owner, timeouts."""
    session = store.sessions.create(
        "gpt-4o",
        model_name="GPT-4o",
        title="Parent",
        metadata={"topic": "wal", "empty": None},
        idle_timeout=timedelta(minutes=10),
        app="chat",
        user_id="ann",
    )
    sid = session.session_id
    store.messages.append(sid, "system", "You are terse.", tokens=4)
    store.messages.append(sid, "user", "What is WAL?", client_msg_id="u-1", metadata={"a": 1})
    store.messages.append(sid, "assistant", "A write-ahead log.", tokens=7, duration=0.5)
    store.messages.append(sid, "tool", '{"result": 42}', client_msg_id="t-1")
    store.messages.append(sid, "user", "And the checkpoint?", tokens=5)
    store.messages.append(sid, "assistant", "It moves pages back.", tokens=6)
    # Items as frameworks store them, written as the columns hold them.
    with SessionStore.open(backend_url) as sync, sync.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE messages SET kind = 'function_call', payload = :payload,"
                " exact_content = :exact WHERE session_id = :sid AND sequence_number = 3"
            ),
            {"sid": sid, "payload": '{"name":"lookup","args":[1,2]}', "exact": '"A\\u0000log"'},
        )
    store.state.update(sid, {"step": 3, "notes": ["x", {"y": None}]})
    return sid


def test_the_fork_holds_messages_up_to_n_with_every_column(
    store: SessionStore, parent: str, backend_url: str
) -> None:
    before = columns(backend_url, parent)
    fork = store.sessions.fork(parent, 4, new_session_id="edit-1")
    assert fork.session_id == "edit-1"
    assert columns(backend_url, "edit-1") == before[:4]
    copied = store.messages.recent("edit-1", 50)
    originals = store.messages.recent(parent, 50)[:4]
    assert [m.sequence_number for m in copied] == [1, 2, 3, 4]
    for new, old in zip(copied, originals, strict=True):
        assert new.message_id != old.message_id
        assert (new.role, new.content, new.timestamp, new.tokens, new.duration) == (
            old.role,
            old.content,
            old.timestamp,
            old.tokens,
            old.duration,
        )
        assert (new.metadata_json, new.client_msg_id, new.kind, new.payload_json) == (
            old.metadata_json,
            old.client_msg_id,
            old.kind,
            old.payload_json,
        )
    assert copied[2].kind == "function_call"
    assert copied[2].payload == {"name": "lookup", "args": [1, 2]}
    # The parent is as it was.
    assert columns(backend_url, parent) == before


def test_the_fork_takes_the_parents_settings_and_records_its_lineage(
    store: SessionStore, parent: str
) -> None:
    clock_before = store.sessions.get(parent)
    fork = store.sessions.fork(parent, 3)
    assert fork.parent_session_id == parent and fork.fork_sequence == 3
    assert fork.session_id != parent
    assert (fork.model_id, fork.model_name, fork.title) == ("gpt-4o", "GPT-4o", "Parent")
    assert (fork.app, fork.user_id) == ("chat", "ann")
    assert fork.idle_timeout == clock_before.idle_timeout and fork.hard_timeout is None
    assert fork.never_expires is False
    assert fork.status == "active" and fork.archived_at is None
    assert (fork.last_seq, fork.message_count, fork.total_tokens) == (3, 3, 11)
    assert fork.total_duration_seconds == pytest.approx(0.5)
    assert fork.created_at >= clock_before.created_at
    assert store.sessions.get(fork.session_id) == fork
    assert store.sessions.metadata(fork.session_id) == {"topic": "wal", "empty": None}
    assert store.state.get(fork.session_id) == {"step": 3, "notes": ["x", {"y": None}]}
    # The lineage is the parent's alone: it has none itself.
    assert store.sessions.get(parent).parent_session_id is None


def test_a_title_replaces_the_parents(store: SessionStore, parent: str) -> None:
    assert store.sessions.fork(parent, 2, title="Edited").title == "Edited"


def test_the_fork_goes_on_after_n(store: SessionStore, parent: str) -> None:
    fork = store.sessions.fork(parent, 2).session_id
    appended = store.messages.append(fork, "user", "A different question")
    assert appended.sequence_number == 3
    assert [m.content for m in store.messages.recent(fork, 10)][-1] == "A different question"
    assert [m.sequence_number for m in store.messages.recent(parent, 10)] == [1, 2, 3, 4, 5, 6]
    # Client ids are the fork's own from now on: the copied one is a retry there.
    again = store.messages.append(fork, "user", "What is WAL?", client_msg_id="u-1")
    assert again.sequence_number == 2


def test_a_deleted_message_at_n_is_not_handed_out_again(store: SessionStore, parent: str) -> None:
    fifth = store.messages.recent(parent, 10)[4]
    store.messages.delete(fifth.message_id)
    fork = store.sessions.fork(parent, 5)
    assert (fork.last_seq, fork.message_count) == (5, 4)
    assert store.messages.append(fork.session_id, "user", "next").sequence_number == 6


def test_through_zero_forks_the_settings_without_messages(store: SessionStore, parent: str) -> None:
    fork = store.sessions.fork(parent, 0)
    assert (fork.last_seq, fork.message_count, fork.fork_sequence) == (0, 0, 0)
    assert store.messages.recent(fork.session_id, 10) == []
    assert store.sessions.metadata(fork.session_id) == {"topic": "wal", "empty": None}
    assert store.messages.append(fork.session_id, "user", "edited").sequence_number == 1


def test_the_whole_session_forks(store: SessionStore, parent: str, backend_url: str) -> None:
    fork = store.sessions.fork(parent, 6)
    assert columns(backend_url, fork.session_id) == columns(backend_url, parent)


@pytest.mark.parametrize("bad", [7, 10**9, -1, True, 2.0, "3", None, 2**31, 2**64])
def test_a_sequence_out_of_range_is_invalid_input(
    store: SessionStore, parent: str, bad: Any
) -> None:
    count = session_count(store)
    with pytest.raises(InvalidInput, match="through_sequence"):
        store.sessions.fork(parent, bad)
    assert session_count(store) == count


def test_a_missing_parent_is_not_found(store: SessionStore) -> None:
    with pytest.raises(SessionNotFound):
        store.sessions.fork("no-such-session", 1)
    assert session_count(store) == 0


def test_a_taken_id_is_refused(store: SessionStore, parent: str) -> None:
    other = store.sessions.create("m").session_id
    count = session_count(store)
    with pytest.raises(SessionExists):
        store.sessions.fork(parent, 2, new_session_id=other)
    with pytest.raises(SessionExists):
        store.sessions.fork(parent, 2, new_session_id=parent)
    assert session_count(store) == count
    assert store.messages.recent(other, 10) == []


def test_a_retired_id_is_refused(store: SessionStore, parent: str) -> None:
    gone = store.sessions.create("m", session_id="gone").session_id
    store.lifecycle.archive(gone)
    store.lifecycle.purge(timedelta(0))
    assert not store.sessions.exists("gone")
    with pytest.raises(SessionIdRetired):
        store.sessions.fork(parent, 2, new_session_id="gone")
    assert not store.sessions.exists("gone")


@pytest.mark.parametrize("bad", ["", " ", "a\x00b", 5, b"id", "x" * 300])
def test_a_bad_new_id_is_invalid_input(store: SessionStore, parent: str, bad: Any) -> None:
    with pytest.raises(InvalidInput):
        store.sessions.fork(parent, 2, new_session_id=bad)


def test_a_bad_title_is_invalid_input(store: SessionStore, parent: str) -> None:
    with pytest.raises(InvalidInput):
        store.sessions.fork(parent, 2, title=42)  # type: ignore[arg-type]


def test_an_archived_parent_forks_into_an_active_session(store: SessionStore, parent: str) -> None:
    store.lifecycle.archive(parent)
    fork = store.sessions.fork(parent, 3)
    assert fork.status == "active"
    assert store.messages.append(fork.session_id, "user", "go on").sequence_number == 4
    assert store.sessions.get(parent).status == "archived"


def test_a_fork_of_a_fork_names_its_own_parent(store: SessionStore, parent: str) -> None:
    first = store.sessions.fork(parent, 4).session_id
    store.messages.append(first, "user", "branch")
    second = store.sessions.fork(first, 5)
    assert (second.parent_session_id, second.fork_sequence) == (first, 5)
    assert [m.content for m in store.messages.recent(second.session_id, 10)][-1] == "branch"


def test_the_forks_messages_are_searchable(store: SessionStore, parent: str) -> None:
    fork = store.sessions.fork(parent, 3).session_id
    hits = store.search.messages("write-ahead", session_id=fork)
    assert [hit.message.session_id for hit in hits.items] == [fork]


def test_a_fork_inside_a_transaction_rolls_back_with_it(store: SessionStore, parent: str) -> None:
    count = session_count(store)
    with pytest.raises(RuntimeError), store.transaction() as tx:
        fork = tx.sessions.fork(parent, 3, new_session_id="tx-fork")
        tx.messages.append(fork.session_id, "user", "in the transaction")
        raise RuntimeError("roll back")
    assert session_count(store) == count and not store.sessions.exists("tx-fork")
    with store.transaction() as tx:
        tx.sessions.fork(parent, 3, new_session_id="tx-fork")
    assert store.sessions.get("tx-fork").message_count == 3


def test_a_scoped_view_forks_only_its_owners_sessions(store: SessionStore, parent: str) -> None:
    other = store.sessions.create("m", app="chat", user_id="bob").session_id
    ann = store.for_user("chat", "ann")
    fork = ann.sessions.fork(parent, 2)
    assert (fork.app, fork.user_id) == ("chat", "ann")
    with pytest.raises(SessionNotFound):
        ann.sessions.fork(other, 0)


def test_the_copy_is_a_fixed_number_of_statements(sqlite_url: str) -> None:
    """INSERT … SELECT: the rows never travel through Python, whatever their number."""
    with SessionStore.open(sqlite_url, clock=FakeClock()) as store:
        small = store.sessions.create("m").session_id
        big = store.sessions.create("m").session_id
        store.messages.append_many(small, [NewMessage("user", "m") for _ in range(3)])
        store.messages.append_many(big, [NewMessage("user", "m") for _ in range(400)])
        statements: list[str] = []

        def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            statements.append(statement)

        event.listen(store.engine, "before_cursor_execute", count)
        try:
            store.sessions.fork(small, 3)
            few = len(statements)
            statements.clear()
            fork = store.sessions.fork(big, 400)
            many = len(statements)
        finally:
            event.remove(store.engine, "before_cursor_execute", count)
        assert few == many
        assert fork.message_count == 400
        assert any(
            s.lstrip().startswith("INSERT INTO messages") and "SELECT" in s for s in statements
        )


def test_export_import_and_snapshots_keep_the_lineage(store: SessionStore, parent: str) -> None:
    fork = store.sessions.fork(parent, 3, new_session_id="branch")
    document = json.loads(store.export("branch") or "")
    assert (document["session"]["parent_session_id"], document["session"]["fork_sequence"]) == (
        parent,
        3,
    )
    copy = store.import_session(document, session_id="branch-copy")
    assert (copy.parent_session_id, copy.fork_sequence) == (parent, 3)
    snapshot = store.lifecycle.archive("branch")
    store.lifecycle.purge(timedelta(0))
    restored = store.lifecycle.restore(snapshot.snapshot_id)
    assert (restored.parent_session_id, restored.fork_sequence) == (parent, 3)
    assert restored.last_seq == fork.last_seq
    for copied in ("branch", "branch-copy"):
        item = store.messages.recent(copied, 10)[2]
        assert (item.kind, item.payload, item.content) == (
            "function_call",
            {"name": "lookup", "args": [1, 2]},
            "A\x00log",
        )
    document["session"]["fork_sequence"] = -1
    with pytest.raises(InvalidInput, match="fork_sequence"):
        store.import_session(document, session_id="bad-copy")
