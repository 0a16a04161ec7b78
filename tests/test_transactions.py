"""Contract tests for ``store.transaction()``, run on a SQLite file and on PostgreSQL.

What is proved here: a block that finishes commits everything it did; a block
that raises rolls everything back (the stored data is identical to before, counts
included, and sequence numbers are not consumed); the repositories inside see
their own uncommitted writes while the rest of the store does not; the caller's
own exception comes out of the block unchanged (same object, same type); a typed
error the caller catches inside the block does not spoil it; the repositories
of a finished block refuse work with a typed error; and the store works
normally afterwards, however many blocks failed.
"""

from __future__ import annotations

import json

import pytest

from sessionstore import InvalidInput, SessionNotFound, SessionStore, SessionStoreError

from .test_bad_input import snapshot


class AppError(Exception):
    """An exception of the caller's own."""


class AppAbort(BaseException):
    """The caller's own exception that is not an ``Exception`` (like KeyboardInterrupt)."""


def test_commit_on_success(store: SessionStore) -> None:
    existing = store.sessions.create("m").session_id
    store.messages.append(existing, "user", "outside")
    with store.transaction() as tx:
        new = tx.sessions.create("m", title="in a transaction", metadata={"k": "v"})
        tx.messages.append(new.session_id, "user", "hello", tokens=2)
        tx.messages.append_many(new.session_id, [{"role": "assistant", "content": "hi"}])
        tx.messages.append(existing, "assistant", "inside", tokens=3)
        tx.sessions.rename(existing, "renamed")
        tx.sessions.set_metadata(existing, "phase", "two")

    assert store.sessions.count() == 2
    committed = store.sessions.get(new.session_id)
    assert (committed.title, committed.message_count, committed.total_tokens) == (
        "in a transaction",
        2,
        2,
    )
    assert [m.content for m in store.messages.history(new.session_id)] == ["hello", "hi"]
    assert store.sessions.metadata(new.session_id) == {"k": "v"}
    after = store.sessions.get(existing)
    assert (after.title, after.message_count, after.last_seq) == ("renamed", 2, 2)
    assert store.sessions.get_metadata(existing, "phase") == "two"


def test_rollback_on_exception_leaves_everything_as_it_was(store: SessionStore) -> None:
    existing = store.sessions.create("m", metadata={"k": "v"}).session_id
    first = store.messages.append(existing, "user", "first", tokens=1)
    before = snapshot(store)
    raised = AppError("boom")
    with pytest.raises(AppError) as caught, store.transaction() as tx:
        new = tx.sessions.create("m").session_id
        tx.messages.append(new, "user", "lost")
        tx.messages.append(existing, "assistant", "lost too", tokens=50)
        tx.messages.append_many(existing, [{"role": "user", "content": "lost three"}])
        tx.messages.edit(first.message_id, "edited, then lost")
        tx.sessions.rename(existing, "lost title")
        tx.sessions.set_metadata(existing, "k", "lost value")
        tx.sessions.delete_metadata(existing, "k")
        raise raised
    assert caught.value is raised
    assert snapshot(store) == before
    assert store.sessions.count() == 1
    assert not store.sessions.exists(new)
    session = store.sessions.get(existing)
    assert (session.message_count, session.total_tokens, session.last_seq) == (1, 1, 1)
    assert store.messages.append(existing, "assistant", "next").sequence_number == 2


def test_rollback_of_a_delete(store: SessionStore) -> None:
    sid = store.sessions.create("m", metadata={"k": "v"}).session_id
    message = store.messages.append(sid, "user", "keep me")
    before = snapshot(store)
    with pytest.raises(AppError), store.transaction() as tx:
        tx.messages.delete(message.message_id)
        tx.sessions.delete(sid)
        assert not tx.sessions.exists(sid)
        raise AppError
    assert snapshot(store) == before
    assert store.messages.get(message.message_id) == message


def test_block_sees_its_own_writes_and_others_do_not(store: SessionStore) -> None:
    existing = store.sessions.create("m").session_id
    with store.transaction() as tx:
        new = tx.sessions.create("m", session_id="uncommitted").session_id
        appended = tx.messages.append(new, "user", "Hello inside")
        assert tx.sessions.exists(new)
        assert tx.sessions.get(new).message_count == 1
        assert tx.sessions.get(new).title == "Hello inside"
        assert tx.messages.get(appended.message_id) == appended
        assert list(tx.messages.history(new)) == [appended]
        assert tx.messages.recent(new, 5) == [appended]
        assert tx.sessions.count() == 2
        assert {s.session_id for s in tx.sessions.list()} == {existing, new}
        tx.messages.append(existing, "user", "x")
        assert tx.sessions.get(existing).last_seq == 1
        # Outside the block nothing is visible until the commit.
        assert not store.sessions.exists(new)
        assert store.sessions.count() == 1
        assert store.sessions.get(existing).message_count == 0
        assert [s.session_id for s in store.sessions.list()] == [existing]
    assert store.sessions.exists(new)
    assert store.sessions.get(existing).message_count == 1


def test_callers_exceptions_propagate_unchanged(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    before = snapshot(store)
    for raised in (
        AppError("mine"),
        KeyError("key"),
        ValueError("value"),
        RuntimeError("runtime"),
        json.JSONDecodeError("bad json", "{", 0),
        AppAbort("abort"),
    ):
        with pytest.raises(type(raised)) as caught, store.transaction() as tx:
            tx.messages.append(sid, "user", "rolled back")
            raise raised
        assert caught.value is raised
        assert type(caught.value) is type(raised)
        assert snapshot(store) == before


def test_callers_unicode_error_propagates_unchanged(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    before = snapshot(store)
    with pytest.raises(UnicodeDecodeError), store.transaction() as tx:
        tx.messages.append(sid, "user", "rolled back")
        b"\xff caller's own bad bytes".decode("utf-8")
    assert snapshot(store) == before


def test_typed_errors_inside_the_block(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    with store.transaction() as tx:
        tx.messages.append(sid, "user", "one")
        with pytest.raises(SessionNotFound):
            tx.messages.append("missing", "user", "x")
        with pytest.raises(InvalidInput):
            tx.messages.append(sid, "", "x")
        tx.messages.append(sid, "user", "two")
    assert [m.content for m in store.messages.history(sid)] == ["one", "two"]

    before = snapshot(store)
    with pytest.raises(SessionNotFound), store.transaction() as tx:
        tx.messages.append(sid, "user", "three")
        tx.sessions.rename("missing", "x")
    assert snapshot(store) == before


def test_store_is_usable_after_many_failed_blocks(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    # More failures than the pool has connections (5 + 10 overflow): none may leak.
    for i in range(25):
        with pytest.raises(AppError), store.transaction() as tx:
            tx.messages.append(sid, "user", f"lost {i}")
            raise AppError
    assert store.messages.append(sid, "user", "kept").sequence_number == 1
    with store.transaction() as tx:
        tx.messages.append(sid, "assistant", "committed")
    assert [m.sequence_number for m in store.messages.history(sid)] == [1, 2]
    assert store.sessions.get(sid).message_count == 2
    status = store.pool_status()
    # Nothing in use: at most the idle connections the hot path keeps between calls.
    assert status.checked_out == status.kept


def test_repositories_of_a_finished_block_refuse_work(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    with store.transaction() as tx:
        tx.messages.append(sid, "user", "inside")
    before = snapshot(store)
    for call in (
        lambda: tx.sessions.create("m"),
        lambda: tx.messages.append(sid, "user", "after the block"),
        lambda: tx.sessions.get(sid),
    ):
        with pytest.raises(SessionStoreError):
            call()
    assert snapshot(store) == before
    assert store.messages.append(sid, "user", "outside").sequence_number == 2
