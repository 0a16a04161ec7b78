"""Owners: stamping, listing and counting by owner, scoped views, search, stats, lifecycle."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from sessionstore import (
    InvalidCursor,
    InvalidInput,
    SessionExists,
    SessionIdRetired,
    SessionNotFound,
    SessionStore,
    StoreConfig,
)

from .conftest import FakeClock


def _sessions(
    store: SessionStore, app: str, user: str | None, n: int, clock: FakeClock
) -> list[str]:
    ids = []
    for i in range(n):
        clock.advance(seconds=1)
        ids.append(
            store.sessions.create("gpt", app=app, user_id=user, title=f"{user} {i}").session_id
        )
    return ids


@pytest.fixture
def clocked(backend_url: str, clock: FakeClock) -> SessionStore:
    store = SessionStore.open(backend_url, clock=clock)
    yield store  # type: ignore[misc]
    store.close()


def test_create_stamps_the_owner_and_checks_it(clocked: SessionStore) -> None:
    owned = clocked.sessions.create("gpt", app="chat", user_id="alice")
    assert (owned.app, owned.user_id) == ("chat", "alice")
    assert clocked.sessions.get(owned.session_id) == owned
    app_only = clocked.sessions.create("gpt", app="chat")
    assert (app_only.app, app_only.user_id) == ("chat", None)
    assert clocked.sessions.create("gpt").app is None
    for app, user in [(None, "alice"), ("", None), ("chat", " "), ("a\x00b", None),
                      (5, None), ("chat", ["x"]), ("x" * 256, None)]:  # fmt: skip
        with pytest.raises(InvalidInput):
            clocked.sessions.create("gpt", app=app, user_id=user)  # type: ignore[arg-type]
    assert clocked.sessions.count() == 3


def test_list_and_count_one_owner_in_keyset_pages(clocked: SessionStore, clock: FakeClock) -> None:
    alice = _sessions(clocked, "chat", "alice", 23, clock)
    _sessions(clocked, "chat", "bob", 7, clock)
    _sessions(clocked, "other", "alice", 5, clock)
    _sessions(clocked, "chat", None, 2, clock)
    clocked.sessions.create("gpt")
    seen, cursor = [], None
    while True:
        page = clocked.sessions.list(limit=10, cursor=cursor, app="chat", user_id="alice")
        seen += [s.session_id for s in page.items]
        assert all((s.app, s.user_id) == ("chat", "alice") for s in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == list(reversed(alice))
    assert clocked.sessions.count(app="chat", user_id="alice") == 23
    assert clocked.sessions.count(app="chat") == 32
    assert clocked.sessions.count(app="nobody") == 0
    assert len(clocked.sessions.list(limit=100, app="chat").items) == 32
    assert clocked.sessions.count() == 38
    # A cursor pages the owner it was made for only.
    first = clocked.sessions.list(limit=10, app="chat", user_id="alice")
    assert first.next_cursor is not None
    with pytest.raises(InvalidCursor):
        clocked.sessions.list(limit=10, cursor=first.next_cursor, app="chat", user_id="bob")
    with pytest.raises(InvalidCursor):
        clocked.sessions.list(limit=10, cursor=first.next_cursor)
    with pytest.raises(InvalidInput, match="needs an app"):
        clocked.sessions.list(user_id="alice")


def test_a_view_sees_its_owner_only(clocked: SessionStore, clock: FakeClock) -> None:
    alice_ids = _sessions(clocked, "chat", "alice", 3, clock)
    bob_ids = _sessions(clocked, "chat", "bob", 2, clock)
    alice, bob = clocked.for_user("chat", "alice"), clocked.for_user("chat", "bob")
    assert [s.session_id for s in alice.sessions.list()] == list(reversed(alice_ids))
    assert alice.sessions.count() == 3
    # Filters outside the view match nothing.
    assert alice.sessions.list(app="chat", user_id="bob").items == ()
    assert alice.sessions.count(app="other") == 0
    with pytest.raises(SessionNotFound) as theirs:
        alice.sessions.get(bob_ids[0])
    with pytest.raises(SessionNotFound) as missing:
        alice.sessions.get("no-such-session")
    assert str(theirs.value).replace(bob_ids[0], "?") == str(missing.value).replace(
        "no-such-session", "?"
    )
    assert not alice.sessions.exists(bob_ids[0])
    created = bob.sessions.create("gpt")
    assert (created.app, created.user_id) == ("chat", "bob")
    with pytest.raises(InvalidInput, match="belongs to user 'bob'"):
        bob.sessions.create("gpt", user_id="alice")
    with pytest.raises(InvalidInput, match="belongs to app 'chat'"):
        bob.sessions.create("gpt", app="other")
    # The app's view: every session of the app, any user; a user may be named at create.
    app_view = clocked.for_user("chat", None)
    assert app_view.sessions.count() == 6
    assert app_view.sessions.create("gpt", user_id="carol").user_id == "carol"
    assert app_view.sessions.count(user_id="carol") == 1
    assert clocked.for_user("other", None).sessions.count() == 0
    for app, user in [("", "x"), (None, "x"), ("chat", 5), ("chat", "")]:
        with pytest.raises(InvalidInput):
            clocked.for_user(app, user)  # type: ignore[arg-type]


def test_a_views_transaction_is_scoped_too(clocked: SessionStore, clock: FakeClock) -> None:
    (theirs,) = _sessions(clocked, "chat", "bob", 1, clock)
    alice = clocked.for_user("chat", "alice")
    with alice.transaction() as tx:
        mine = tx.sessions.create("gpt")
        tx.messages.append(mine.session_id, "user", "hello")
    assert clocked.sessions.get(mine.session_id).user_id == "alice"
    with pytest.raises(SessionNotFound), alice.transaction() as tx:
        tx.messages.append(mine.session_id, "user", "rolled back")
        tx.messages.append(theirs, "user", "not yours")
    assert clocked.sessions.get(mine.session_id).message_count == 1
    assert clocked.sessions.get(theirs).message_count == 0


def test_search_by_owner(clocked: SessionStore) -> None:
    for app, user in [("chat", "alice"), ("chat", "bob"), ("other", "alice"), (None, None)]:
        session = clocked.sessions.create("gpt", app=app, user_id=user)
        clocked.messages.append(session.session_id, "user", f"routers for {user}")
    hits = clocked.search.sessions("routers", app="chat", user_id="alice")
    assert [(h.session.app, h.session.user_id) for h in hits.items] == [("chat", "alice")]
    assert len(clocked.search.sessions("routers", app="chat").items) == 2
    assert len(clocked.search.sessions("routers").items) == 4
    messages = clocked.search.messages("routers", app="other", user_id="alice")
    assert [m.message.content for m in messages.items] == ["routers for alice"]
    view = clocked.for_user("chat", "bob")
    assert [h.session.user_id for h in view.search.sessions("routers", order="recent")] == ["bob"]
    assert view.search.sessions("routers", app="chat", user_id="alice").items == ()
    assert [m.message.content for m in view.search.messages("routers")] == ["routers for bob"]
    with pytest.raises(InvalidInput):
        clocked.search.messages("routers", user_id="alice")


def test_stats_by_owner(clocked: SessionStore) -> None:
    for app, user, n in [("chat", "alice", 3), ("chat", "bob", 1), ("other", "alice", 2)]:
        session = clocked.sessions.create("gpt", app=app, user_id=user)
        for _ in range(n):
            clocked.messages.append(session.session_id, "user", "hi", tokens=10)
    clocked.sessions.create(None)  # type: ignore[arg-type]
    assert clocked.stats(app="chat", user_id="alice").messages == 3
    assert clocked.stats(app="chat").tokens == 40
    assert clocked.stats().sessions == 4
    assert clocked.for_user("other", "alice").stats().tokens == 20
    assert clocked.for_user("nobody", None).stats().sessions == 0
    # Sessions without a model id group under None, last.
    assert [m.model_id for m in clocked.stats().by_model] == ["gpt", None]


def test_purge_and_sweep_by_owner(clocked: SessionStore, clock: FakeClock) -> None:
    ids = {}
    for app, user in [("chat", "alice"), ("chat", "bob"), (None, None)]:
        ids[user] = clocked.sessions.create("gpt", app=app, user_id=user).session_id
        clocked.lifecycle.archive(ids[user])
    clock.advance(days=2)
    report = clocked.lifecycle.purge(timedelta(days=1), app="chat", user_id="alice")
    assert [p.session_id for p in report.purged] == [ids["alice"]]
    assert clocked.for_user("chat", "carol").lifecycle.purge(timedelta(0)).purged == ()
    bob = clocked.for_user("chat", "bob")
    assert [p.session_id for p in bob.lifecycle.purge(timedelta(0)).purged] == [ids["bob"]]
    assert clocked.sessions.exists(ids[None])
    # The purge events and snapshots carry the owner.
    assert [e.action for e in bob.lifecycle.history(ids["bob"])] == ["archive", "purge"]
    assert bob.lifecycle.snapshots(ids["bob"])
    assert clocked.for_user("chat", "alice").lifecycle.snapshots(ids["bob"]) == []
    with pytest.raises(InvalidInput, match="needs an app"):
        clocked.lifecycle.purge(timedelta(0), user_id="bob")
    # A view's sweep archives its owner's sessions only.
    alice = clocked.for_user("chat", "alice")
    mine = alice.sessions.create("gpt").session_id
    other = clocked.sessions.create("gpt", app="chat", user_id="dave").session_id
    clock.advance(days=3)
    assert [e.session.session_id for e in alice.lifecycle.expiring(timedelta(0))] == [mine]
    assert [i.session_id for i in alice.lifecycle.sweep().archived] == [mine]
    assert clocked.sessions.get(other).status == "active"


def test_per_app_timeouts(backend_url: str, clock: FakeClock) -> None:
    timeouts = {"fast": (timedelta(minutes=5), None), "slow": (None, timedelta(days=30))}
    with SessionStore.open(backend_url, clock=clock, app_timeouts=timeouts) as store:
        fast = store.sessions.create("gpt", app="fast", user_id="u").session_id
        slow = store.sessions.create("gpt", app="slow").session_id
        plain = store.sessions.create("gpt").session_id
        own = store.sessions.create("gpt", app="fast", idle_timeout=timedelta(hours=2)).session_id
        clock.advance(minutes=10)
        assert [e.session.session_id for e in store.lifecycle.expiring(timedelta(0))] == [fast]
        clock.advance(hours=1)  # past the store's idle hour: plain, not slow (no idle timeout)
        due = {e.session.session_id: e.reason for e in store.lifecycle.expiring(timedelta(0))}
        assert due == {fast: "idle", plain: "idle"}
        record = store.sessions.get(slow)
        assert store.lifecycle.due(record, clock.now + timedelta(days=30)) is not None
        assert store.lifecycle.due(record, clock.now + timedelta(days=29)) is None
        swept = {i.session_id for i in store.for_user("fast", None).lifecycle.sweep().archived}
        assert swept == {fast}
        clock.advance(hours=1)
        assert {i.session_id for i in store.lifecycle.sweep().archived} == {plain, own}
    for bad in [{"a": timedelta(1)}, {"": (None, None)}, {"a": (timedelta(-1), None)}, [],
                {5: (None, None)}, {"a": (None, None, None)}]:  # fmt: skip
        with pytest.raises(InvalidInput, match="app_timeouts"):
            StoreConfig(app_timeouts=bad)  # type: ignore[arg-type]


def test_export_and_import_carry_the_owner(clocked: SessionStore) -> None:
    alice = clocked.for_user("chat", "alice")
    session = alice.sessions.create("gpt")
    alice.messages.append(session.session_id, "user", "hello")
    document = alice.export(session.session_id)
    assert document is not None
    assert json.loads(document)["session"]["user_id"] == "alice"
    copy = clocked.import_session(document, session_id="admin-copy")
    assert (copy.app, copy.user_id) == ("chat", "alice")
    bob = clocked.for_user("chat", "bob")
    taken = bob.import_session(document, session_id="bob-copy")
    assert (taken.app, taken.user_id) == ("chat", "bob")
    with pytest.raises(SessionNotFound):
        bob.export(session.session_id)
    unowned = clocked.import_session(
        json.dumps({**json.loads(document), "session": {
            **json.loads(document)["session"], "app": None, "user_id": None}}),
        session_id="unowned-copy",
    )  # fmt: skip
    assert unowned.app is None
    with pytest.raises(InvalidInput, match="needs an app"):
        doc = json.loads(document)
        doc["session"]["app"] = None
        clocked.import_session(doc, session_id="broken-copy")


def test_an_id_another_owner_retired_is_taken_without_naming_its_snapshot(
    clocked: SessionStore, clock: FakeClock
) -> None:
    alice = clocked.for_user("chat", "alice")
    alice.sessions.create("gpt", session_id="shared-name")
    alice.lifecycle.archive("shared-name")
    clock.advance(days=2)
    alice.lifecycle.purge(timedelta(days=1))
    with pytest.raises(SessionIdRetired):
        alice.sessions.create("gpt", session_id="shared-name")
    with pytest.raises(SessionExists) as caught:
        clocked.for_user("chat", "bob").sessions.create("gpt", session_id="shared-name")
    assert type(caught.value) is SessionExists
    assert "snapshot" not in str(caught.value)


def test_owner_columns_on_snapshots_and_events(clocked: SessionStore) -> None:
    alice = clocked.for_user("chat", "alice")
    session = alice.sessions.create("gpt")
    alice.lifecycle.archive(session.session_id, now=datetime(2026, 1, 1, tzinfo=UTC))
    with clocked.engine.connect() as conn:
        from sqlalchemy import text

        snapshot = conn.execute(text("SELECT app, user_id FROM session_snapshots")).all()
        events = conn.execute(text("SELECT app, user_id FROM lifecycle_events")).all()
    assert snapshot == [("chat", "alice")]
    assert events == [("chat", "alice")]


def test_a_views_scheduler_ends_with_its_store(sqlite_url: str) -> None:
    store = SessionStore.open(sqlite_url)
    scheduler = store.for_user("chat", "alice").lifecycle.start_scheduler(timedelta(seconds=0.05))
    other = store.lifecycle.start_scheduler(timedelta(hours=1))
    store.for_user("chat", "bob").lifecycle.stop_schedulers()  # not Alice's, not the store's
    assert scheduler.running and other.running
    store.close()
    scheduler._thread.join(5)
    assert not scheduler.running
    assert not other.running


def test_sweep_and_purge_refuse_a_progress_that_is_no_function(
    clocked: SessionStore, clock: FakeClock
) -> None:
    session = clocked.sessions.create("gpt", app="chat", user_id="alice").session_id
    clock.advance(days=2)
    for bad in (False, "bar", 5):
        with pytest.raises(InvalidInput, match="progress"):
            clocked.lifecycle.sweep(progress=bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="progress"):
            clocked.lifecycle.purge(timedelta(0), progress=bad)  # type: ignore[arg-type]
    # Refused before anything was archived (the callback runs after each commit).
    assert clocked.sessions.get(session).status == "active"
