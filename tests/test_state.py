"""State at three scopes: partial updates merged in the database, checks, and where state goes.

Each test that takes ``store`` runs on a SQLite file and on PostgreSQL, through
the store and through the async store. What is proved here: any JSON value
comes back equal (``None`` is a value, not an absent key); an update sets and
removes only the keys it names; every bad key or value is ``InvalidInput`` and
changes nothing; an archived session's state is read-only; user and app state
are shared by their sessions and shown in ADK's merged view; an append and its
state delta commit together or not at all, also inside a caller's transaction
that catches the refusal; state travels with export, import, snapshot,
restore, fork and the transaction; a scoped view cannot see or change another
owner's state (row-level security on or off); the ``state`` command prints it.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sessionstore import (
    InvalidInput,
    SessionArchived,
    SessionNotFound,
    SessionStore,
    StateDelta,
)
from sessionstore.statedelta import MAX_DELTA_KEYS, MAX_DEPTH

VALUES: dict[str, Any] = {
    "none": None,
    "true": True,
    "false": False,
    "zero": 0,
    "big": 2**70,
    "negative": -12,
    "float": 0.1,
    "negative zero": -0.0,
    "text": 'ünïcode 🎉 "quoted" \n and a NUL \x00 inside',
    "empty text": "",
    "list": [1, "two", None, [3.5, {"four": 4}]],
    "empty list": [],
    "object": {"z": 1, "a": {"nested": [True, False]}, "": "empty key inside is fine"},
    "empty object": {},
}


def owned(store: SessionStore, app: str = "app", user_id: str | None = "ann") -> str:
    return store.sessions.create("gpt", app=app, user_id=user_id).session_id


# --- values and partial updates ----------------------------------------------------------


def test_every_json_value_comes_back_equal(store: SessionStore) -> None:
    sid = store.sessions.create("gpt").session_id
    assert store.state.get(sid) == {}
    store.state.update(sid, VALUES)
    got = store.state.get(sid)
    assert got == VALUES
    assert list(got) == sorted(VALUES)
    # JSON null is stored: the key is there, and distinct from an absent one.
    assert "none" in got and got["none"] is None
    assert json.dumps(got["negative zero"]) == "-0.0"
    # A tuple is a JSON array: it comes back as a list.
    store.state.update(sid, {"tuple": ("a", 1)})
    assert store.state.get(sid)["tuple"] == ["a", 1]


def test_update_sets_and_removes_only_the_keys_it_names(store: SessionStore) -> None:
    sid = store.sessions.create("gpt").session_id
    store.state.update(sid, {"a": 1, "b": 2, "c": 3})
    store.state.update(sid, {"b": "two", "d": None}, remove=["c", "never-there"])
    assert store.state.get(sid) == {"a": 1, "b": "two", "d": None}
    store.state.update(sid, {}, remove=("a", "a"))
    assert store.state.get(sid) == {"b": "two", "d": None}
    store.state.update(sid, {})
    assert store.state.get(sid) == {"b": "two", "d": None}


def test_keys_may_be_any_text_of_up_to_255_bytes(store: SessionStore) -> None:
    sid = store.sessions.create("gpt").session_id
    keys = {"é" * 127, "x" * 255, "with space", "日本語", "a:b", "🎉"}
    store.state.update(sid, dict.fromkeys(keys, 1))
    assert set(store.state.get(sid)) == keys


BAD_KEYS: list[Any] = ["", "   ", "a\x00b", "x" * 256, "é" * 128, "\ud800", 1, None, b"k",
                       "app:theme", "user:name", "temp:scratch"]  # fmt: skip
BAD_VALUES: list[Any] = [
    float("nan"), float("inf"), -float("inf"), b"bytes", datetime(2026, 1, 1, tzinfo=UTC),
    {1: "integer key"}, {None: 1}, {"a": {"b": [1, {2: 3}]}}, {"s": {1, 2}}, object(),
    "\ud800 lone surrogate", ["deep", [float("nan")]], 10**5000,
]  # fmt: skip


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
def test_bad_keys_are_refused_and_change_nothing(store: SessionStore, key: Any) -> None:
    sid = store.sessions.create("gpt").session_id
    store.state.update(sid, {"kept": 1})
    with pytest.raises(InvalidInput):
        store.state.update(sid, {"fine": 1, key: 2})
    with pytest.raises(InvalidInput):
        store.state.update(sid, {}, remove=["kept", key])
    with pytest.raises(InvalidInput):
        store.state.update_user("app", "ann", {key: 1})
    with pytest.raises(InvalidInput):
        store.state.update_app("app", {key: 1})
    assert store.state.get(sid) == {"kept": 1}
    assert store.state.get_user("app", "ann") == {} and store.state.get_app("app") == {}


@pytest.mark.parametrize("value", BAD_VALUES, ids=lambda v: type(v).__name__)
def test_values_that_are_not_json_are_refused(store: SessionStore, value: Any) -> None:
    sid = store.sessions.create("gpt").session_id
    with pytest.raises(InvalidInput):
        store.state.update(sid, {"fine": 1, "bad": value})
    assert store.state.get(sid) == {}


def test_sizes_are_capped(tmp_path: Any) -> None:
    with SessionStore.open(f"sqlite:///{tmp_path / 's.db'}", max_content_bytes=1000) as store:
        sid = store.sessions.create("gpt").session_id
        store.state.update(sid, {"fits": "x" * 998})  # 1000 bytes with its quotes
        with pytest.raises(InvalidInput, match="more than the limit of 1000"):
            store.state.update(sid, {"too big": "x" * 999})
        with pytest.raises(InvalidInput, match="nested more than"):
            store.state.update(sid, {"deep": _nested(MAX_DEPTH + 1)})
        store.state.update(sid, {"deep": _nested(MAX_DEPTH - 1)})
        with pytest.raises(InvalidInput, match="keys"):
            store.state.update(sid, {f"k{i}": i for i in range(MAX_DELTA_KEYS + 1)})
        with pytest.raises(InvalidInput, match="keys"):
            store.state.update(sid, {}, remove=(f"k{i}" for i in range(10**12)))
        assert set(store.state.get(sid)) == {"fits", "deep"}


def _closed_file() -> io.StringIO:
    handle = io.StringIO("a")
    handle.close()
    return handle


@pytest.mark.parametrize(
    ("delta", "remove"),
    [(None, ()), ([("a", 1)], ()), ("a=1", ()), ({}, "abc"), ({}, None), ({}, {"a": 1}),
     ({}, io.StringIO("a")), ({}, _closed_file()), ({"a": 1}, ["a"]), ({}, [1]), ({}, 5)],
)  # fmt: skip
def test_malformed_deltas_are_refused(store: SessionStore, delta: Any, remove: Any) -> None:
    sid = store.sessions.create("gpt").session_id
    store.state.update(sid, {"a": 0})
    with pytest.raises(InvalidInput):
        store.state.update(sid, delta, remove=remove)
    assert store.state.get(sid) == {"a": 0}


def test_get_many_reads_a_pages_states_at_once(store: SessionStore) -> None:
    first, second, empty = (store.sessions.create("gpt").session_id for _ in range(3))
    store.state.update(first, {"a": 1, "b": None})
    store.state.update(second, {"c": [2]})
    got = store.state.get_many([second, "no-such-session", empty, first, second])
    assert got == {second: {"c": [2]}, empty: {}, first: {"a": 1, "b": None}}
    assert list(got) == [second, empty, first]
    assert store.state.get_many([]) == {}
    many = [first, *(f"missing-{i}" for i in range(999))]
    assert store.state.get_many(many) == {first: {"a": 1, "b": None}}
    for bad in (first, None, {first: 1}, [first, ""], [first, 5], io.StringIO(first)):
        with pytest.raises(InvalidInput):
            store.state.get_many(bad)
    with pytest.raises(InvalidInput, match="more than 1000"):
        store.state.get_many(f"s{i}" for i in range(10**9))


# --- sessions: missing, archived, deleted ----------------------------------------------------


def test_missing_and_archived_sessions(store: SessionStore) -> None:
    with pytest.raises(SessionNotFound):
        store.state.get("no-such-session")
    with pytest.raises(SessionNotFound):
        store.state.update("no-such-session", {"a": 1})
    with pytest.raises(SessionNotFound):
        store.state.merged("no-such-session")
    sid = store.sessions.create("gpt").session_id
    store.state.update(sid, {"a": 1})
    store.lifecycle.archive(sid)
    with pytest.raises(SessionArchived):
        store.state.update(sid, {"a": 2})
    with pytest.raises(SessionArchived):
        store.state.update(sid, {}, remove=["a"])
    assert store.state.get(sid) == {"a": 1}  # still readable
    store.lifecycle.reactivate(sid)
    store.state.update(sid, {"a": 2})
    assert store.state.get(sid) == {"a": 2}


def test_deleting_a_session_deletes_its_state_and_only_its_state(store: SessionStore) -> None:
    sid, other = owned(store), owned(store)
    store.state.update(sid, {"a": 1})
    store.state.update(other, {"a": 2})
    store.state.update_user("app", "ann", {"u": 1})
    store.sessions.delete(sid)
    with pytest.raises(SessionNotFound):
        store.state.get(sid)
    store.sessions.create("gpt", session_id=sid)
    assert store.state.get(sid) == {}
    assert store.state.get(other) == {"a": 2}
    assert store.state.get_user("app", "ann") == {"u": 1}


# --- user and app state, ADK's merged view ---------------------------------------------------


def test_user_and_app_state_are_shared_and_merged(store: SessionStore) -> None:
    first, second = owned(store), owned(store)
    stranger = owned(store, user_id="bob")
    unowned = store.sessions.create("gpt").session_id
    store.state.update_app("app", {"theme": "dark"})
    store.state.update_user("app", "ann", {"name": "Ann", "n": None})
    store.state.update_user("app", "bob", {"name": "Bob"})
    store.state.update_app("other-app", {"theme": "light"})
    store.state.update(first, {"step": 1})
    assert store.state.merged(first) == {
        "app:theme": "dark", "user:n": None, "user:name": "Ann", "step": 1,
    }  # fmt: skip
    assert store.state.merged(second) == {"app:theme": "dark", "user:n": None, "user:name": "Ann"}
    assert store.state.merged(stranger) == {"app:theme": "dark", "user:name": "Bob"}
    assert store.state.merged(unowned) == {}
    app_only = owned(store, user_id=None)
    assert store.state.merged(app_only) == {"app:theme": "dark"}
    store.state.update_user("app", "ann", {"name": "Annie"}, remove=["n"])
    store.state.update_app("app", {}, remove=["theme"])
    assert store.state.get_user("app", "ann") == {"name": "Annie"}
    assert store.state.get_app("app") == {}
    assert store.state.get_app("other-app") == {"theme": "light"}
    assert store.state.get_user("nobody", "none") == {}
    for bad in ("", None, 5, "a\x00"):
        with pytest.raises(InvalidInput):
            store.state.get_app(bad)
        with pytest.raises(InvalidInput):
            store.state.get_user("app", bad)


def test_from_prefixed_splits_adk_deltas() -> None:
    delta = StateDelta.from_prefixed(
        {"app:theme": "dark", "user:name": "Ann", "temp:scratch": 1, "step": 2}
    )
    assert delta == StateDelta(session={"step": 2}, user={"name": "Ann"}, app={"theme": "dark"})
    with pytest.raises(InvalidInput):
        StateDelta.from_prefixed({1: "x"})  # type: ignore[dict-item]
    with pytest.raises(InvalidInput):
        StateDelta.from_prefixed([("a", 1)])  # type: ignore[arg-type]


# --- an append and its state delta: one unit ---------------------------------------------------


def test_append_commits_its_state_delta_with_the_message(store: SessionStore) -> None:
    sid = owned(store)
    delta = StateDelta(
        session={"step": 1}, user={"seen": True}, app={"version": 2}, remove_session=["gone"]
    )
    store.state.update(sid, {"gone": 1})
    store.messages.append(sid, "user", "hello", state_delta=delta)
    assert store.state.merged(sid) == {"app:version": 2, "user:seen": True, "step": 1}
    records = store.messages.append_many(
        sid,
        [{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}],
        state_delta=StateDelta(session={"step": 2}, remove_user=["seen"]),
    )
    assert [m.sequence_number for m in records] == [2, 3]
    assert store.state.merged(sid) == {"app:version": 2, "step": 2}
    # No delta, an empty delta: the state is left alone.
    store.messages.append(sid, "user", "plain")
    store.messages.append(sid, "user", "empty", state_delta=StateDelta())
    assert store.state.merged(sid) == {"app:version": 2, "step": 2}


def test_a_batch_of_no_messages_still_writes_its_state_delta(store: SessionStore) -> None:
    """``append_many(sid, [], state_delta=…)`` is a state write: applied, or refused as one."""
    sid = owned(store)
    assert store.messages.append_many(sid, [], state_delta=StateDelta(session={"s": 1})) == []
    assert store.state.get(sid) == {"s": 1}
    assert store.sessions.get(sid).message_count == 0
    with pytest.raises(SessionNotFound):
        store.messages.append_many("no-such-session", [], state_delta=StateDelta(session={"s": 1}))
    store.lifecycle.archive(sid)
    with pytest.raises(SessionArchived):
        store.messages.append_many(sid, [], state_delta=StateDelta(session={"s": 2}))
    assert store.messages.append_many(sid, []) == []  # nothing to write: nothing checked


def test_a_failing_append_leaves_state_unchanged(store: SessionStore) -> None:
    sid = owned(store)
    store.state.update(sid, {"step": 0})
    store.messages.append(sid, "user", "first", client_msg_id="m1")
    bad = StateDelta(session={"step": 1}, user={"u": 1}, app={"a": 1})
    # Refused before the transaction (bad content, bad delta) ...
    with pytest.raises(InvalidInput):
        store.messages.append(sid, "user", "x\ud800", state_delta=bad)
    with pytest.raises(InvalidInput):
        store.messages.append(sid, "user", "fine", state_delta="not a delta")  # type: ignore[arg-type]
    # ... and inside it: the session is archived.
    store.lifecycle.archive(sid)
    with pytest.raises(SessionArchived):
        store.messages.append(sid, "user", "late", state_delta=bad)
    with pytest.raises(SessionArchived):
        store.messages.append_many(sid, [{"role": "user", "content": "late"}], state_delta=bad)
    store.lifecycle.reactivate(sid)
    # A whole transaction rolled back takes the delta with the message.
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.messages.append(sid, "user", "rolled back", state_delta=bad)
        raise RuntimeError("the caller's block fails")
    assert store.state.merged(sid) == {"step": 0}
    assert store.sessions.get(sid).message_count == 1


def test_a_failing_state_delta_leaves_the_messages_unchanged(store: SessionStore) -> None:
    unowned = store.sessions.create("gpt").session_id
    app_only = owned(store, user_id=None)
    store.messages.append(unowned, "user", "first")
    # User state needs a user; app state needs an app: found out inside the transaction,
    # after the message went in, so the message goes too.
    for sid, delta in (
        (unowned, StateDelta(session={"s": 1}, user={"u": 1})),
        (unowned, StateDelta(app={"a": 1})),
        (app_only, StateDelta(session={"s": 1}, user={"u": 1})),
    ):
        before = store.sessions.get(sid)
        with pytest.raises(InvalidInput, match="has no"):
            store.messages.append(sid, "user", "with a delta it cannot take", state_delta=delta)
        with pytest.raises(InvalidInput, match="has no"):
            store.messages.append_many(sid, [{"role": "user", "content": "x"}], state_delta=delta)
        assert store.sessions.get(sid) == before
        assert store.state.get(sid) == {}
    store.messages.append(app_only, "user", "ok", state_delta=StateDelta(app={"a": 1}))
    assert store.state.merged(app_only) == {"app:a": 1}


def test_a_refused_append_in_a_transaction_that_goes_on_leaves_nothing(store: SessionStore) -> None:
    """A caller that catches the refusal and commits keeps neither half of the unit."""
    unowned = store.sessions.create("gpt").session_id
    store.messages.append(unowned, "user", "first")
    delta = StateDelta(session={"s": 1}, user={"u": 1})
    with store.transaction() as tx:
        with pytest.raises(InvalidInput, match="has no"):
            tx.messages.append(unowned, "user", "refused", state_delta=delta)
        with pytest.raises(InvalidInput, match="has no"):
            tx.messages.append_many(unowned, [{"role": "user", "content": "x"}], state_delta=delta)
        tx.messages.append(unowned, "user", "kept")
    assert [m.content for m in store.messages.recent(unowned, 10)] == ["first", "kept"]
    assert store.state.get(unowned) == {}


def test_a_retried_append_does_not_apply_its_delta_twice(store: SessionStore) -> None:
    sid = owned(store)
    store.messages.append(
        sid, "user", "hi", client_msg_id="m1", state_delta=StateDelta(session={"n": 1})
    )
    store.state.update(sid, {"n": 5})
    again = store.messages.append(
        sid, "user", "hi", client_msg_id="m1", state_delta=StateDelta(session={"n": 1})
    )
    assert again.sequence_number == 1
    assert store.state.get(sid) == {"n": 5}


# --- where state goes: transactions, export, import, snapshots ----------------------------------


def test_state_in_a_transaction(store: SessionStore) -> None:
    sid = owned(store)
    with store.transaction() as tx:
        tx.state.update(sid, {"a": 1})
        tx.state.update_user("app", "ann", {"u": 1})
        assert tx.state.merged(sid) == {"user:u": 1, "a": 1}
        assert store.state.get(sid) == {}  # not committed yet
    assert store.state.merged(sid) == {"user:u": 1, "a": 1}
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.state.update(sid, {"a": 2})
        tx.state.update_app("app", {"x": 1})
        raise RuntimeError("rolled back")
    assert store.state.merged(sid) == {"user:u": 1, "a": 1}


def test_export_and_import_carry_session_state(store: SessionStore) -> None:
    sid = owned(store)
    store.messages.append(sid, "user", "hi")
    store.state.update(sid, VALUES)
    store.state.update_user("app", "ann", {"u": 1})
    doc = json.loads(store.export(sid) or "")
    assert doc["state"] == VALUES
    # Only the session's own state: user and app state belong to the owner.
    assert "user:u" not in doc["state"] and "u" not in doc["state"]
    store.import_session(doc, session_id="copy")
    assert store.state.get("copy") == VALUES
    # An export written before state existed has none, and imports.
    del doc["state"]
    store.import_session(doc, session_id="older")
    assert store.state.get("older") == {}
    for bad in ([1], {"": 1}, {"app:x": 1}, {"k": {1: 2}}, "text"):
        doc["state"] = bad
        with pytest.raises(InvalidInput):
            store.import_session(doc, session_id="refused")
    assert not store.sessions.exists("refused")


def test_snapshot_restore_and_copy_bring_state_back(store: SessionStore) -> None:
    sid = owned(store)
    store.messages.append(sid, "user", "hi")
    store.state.update(sid, {"step": 3, "text": "a\x00b"})
    snapshot = store.lifecycle.archive(sid)
    copy = store.lifecycle.restore(snapshot.snapshot_id, session_id="restored-copy")
    assert store.state.get(copy.session_id) == {"step": 3, "text": "a\x00b"}
    report = store.lifecycle.purge(older_than=timedelta(0))
    assert [item.session_id for item in report.purged] == [sid]
    store.lifecycle.restore(snapshot.snapshot_id)
    assert store.state.get(sid) == {"step": 3, "text": "a\x00b"}


def test_a_fork_takes_the_parents_state_as_it_is(store: SessionStore) -> None:
    sid = owned(store)
    store.messages.append(sid, "user", "one", state_delta=StateDelta(session={"step": 1}))
    store.messages.append(sid, "user", "two", state_delta=StateDelta(session={"step": 2}))
    store.state.update_user("app", "ann", {"u": 1})
    fork = store.sessions.fork(sid, 1, new_session_id="forked")
    # The state now, not as it was at message 1: state is not versioned by message.
    assert store.state.merged(fork.session_id) == {"user:u": 1, "step": 2}
    store.state.update(fork.session_id, {"step": "fork's own"})
    assert store.state.get(sid) == {"step": 2}


def test_stored_values_that_are_not_json_are_reported_as_damage(store: SessionStore) -> None:
    from sqlalchemy import insert

    from sessionstore import DatabaseCorruptError
    from sessionstore.models import SessionState

    sid = store.sessions.create("gpt").session_id
    with store.engine.begin() as conn:  # written by hand, past the store's checks
        conn.execute(insert(SessionState).values(session_id=sid, key="k", value="{not json"))
    with pytest.raises(DatabaseCorruptError, match="'k' is not JSON"):
        store.state.get(sid)


def test_a_snapshot_with_a_malformed_state_is_refused(store: SessionStore) -> None:
    import zlib

    from sqlalchemy import select, update

    from sessionstore.models import Snapshot

    sid = store.sessions.create("gpt").session_id
    store.state.update(sid, {"k": 1})
    snapshot = store.lifecycle.archive(sid).snapshot_id
    table = Snapshot.__table__
    with store.engine.begin() as conn:
        payload = conn.execute(select(table.c.payload).where(table.c.snapshot_id == snapshot))
        doc = json.loads(zlib.decompress(payload.scalar_one()))
        doc["state"] = ["not", "an", "object"]
        tampered = zlib.compress(json.dumps(doc).encode())
        conn.execute(update(table).where(table.c.snapshot_id == snapshot).values(payload=tampered))
    with pytest.raises(InvalidInput, match="state"):
        store.lifecycle.restore(snapshot, session_id="from-a-bad-snapshot")
    assert not store.sessions.exists("from-a-bad-snapshot")


# --- owners: a scoped view sees its own owner's state only -----------------------------------


def _scoped_checks(store: SessionStore) -> None:
    ann, bob = store.for_user("app", "ann"), store.for_user("app", "bob")
    sid = ann.sessions.create().session_id
    ann.state.update(sid, {"secret": 1})
    ann.state.update_user("app", "ann", {"private": 1})
    ann.messages.append(sid, "user", "hi", state_delta=StateDelta(app={"shared": 1}))
    assert ann.state.merged(sid) == {"app:shared": 1, "user:private": 1, "secret": 1}
    missing = str(SessionNotFound(sid))
    delta = StateDelta(session={"x": 1})
    for call in (
        lambda: bob.state.get(sid),
        lambda: bob.state.merged(sid),
        lambda: bob.state.update(sid, {"x": 1}),
        lambda: bob.state.update(sid, {}, remove=["secret"]),
        lambda: bob.messages.append(sid, "user", "x", state_delta=delta),
        lambda: bob.messages.append_many(
            sid, [{"role": "user", "content": "x"}], state_delta=delta
        ),
        lambda: store.for_user("other-app", "ann").state.get(sid),
    ):
        with pytest.raises(SessionNotFound) as caught:
            call()
        assert str(caught.value) == missing  # the text of a session that does not exist
    with pytest.raises(SessionNotFound), bob.transaction() as tx:
        tx.state.update(sid, {"x": 1})
    for call in (
        lambda: bob.state.get_user("app", "ann"),
        lambda: bob.state.update_user("app", "ann", {"x": 1}),
        lambda: bob.state.get_app("other-app"),
        lambda: bob.state.update_app("other-app", {"x": 1}),
    ):
        with pytest.raises(InvalidInput, match="outside"):
            call()
    bob.state.update_user("app", "bob", {"mine": 1})
    assert bob.state.get_user("app", "bob") == {"mine": 1}
    assert bob.state.get_app("app") == {"shared": 1}  # the app's state is every user's
    # The app's view sees every user of the app.
    assert bob.state.get_many([sid]) == {}  # as for a session that does not exist
    assert ann.state.get_many([sid]) == {sid: {"secret": 1}}
    whole = store.for_user("app", None)
    assert whole.state.get(sid) == {"secret": 1}
    assert whole.state.get_user("app", "ann") == {"private": 1}
    # Nothing of ann's changed.
    assert store.state.merged(sid) == {"app:shared": 1, "user:private": 1, "secret": 1}


def test_a_scoped_view_sees_only_its_owners_state(store: SessionStore) -> None:
    _scoped_checks(store)


@pytest.mark.postgres
def test_a_scoped_view_with_row_level_security(postgres_url: str) -> None:
    with SessionStore.open(postgres_url) as store:
        store.enable_row_level_security()
        _scoped_checks(store)


# --- the command line ----------------------------------------------------------------------


def test_state_command(sqlite_url: str) -> None:
    from click.testing import CliRunner

    from sessionstore.cli import main

    with SessionStore.open(sqlite_url) as store:
        sid = owned(store)
        store.state.update(sid, {"step": 3, "note": "two\nlines", "none": None})
        store.state.update_user("app", "ann", {"name": "Ann"})
        store.state.update_app("app", {"theme": "dark"})
        empty = store.sessions.create("gpt").session_id

    def run(*args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    code, out, _ = run("state", sid, "--db", sqlite_url)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["scope", "key", "value"]
    rows = [line.split(None, 2) for line in lines[2:]]
    assert rows == [
        ["app", "theme", '"dark"'],
        ["user", "name", '"Ann"'],
        ["session", "none", "null"],
        ["session", "note", '"two\\nlines"'],
        ["session", "step", "3"],
    ]
    code, out, _ = run("state", sid, "--own", "--json", "--db", sqlite_url)
    assert code == 0 and json.loads(out) == {"step": 3, "note": "two\nlines", "none": None}
    code, out, _ = run("state", sid, "--json", "--db", sqlite_url)
    assert json.loads(out) == {
        "app:theme": "dark", "user:name": "Ann", "none": None, "note": "two\nlines", "step": 3,
    }  # fmt: skip
    code, out, _ = run("state", empty, "--db", sqlite_url)
    assert code == 0 and "(none)" in out
    code, out, err = run("state", "no-such-session", "--db", sqlite_url)
    assert code == 2 and out == "" and err == "error: no session with id 'no-such-session'\n"
