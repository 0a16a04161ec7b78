"""Erasing a user: every row of theirs goes, in one transaction, and nobody else's."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from sessionstore import InvalidInput, SessionStore
from sessionstore.cli import main

from .conftest import FakeClock


def _populate(store: SessionStore, clock: FakeClock, app: str, user: str) -> None:
    """Three sessions: one active, one purged and restored from its snapshot, one purged
    (only its snapshot and events remain); metadata, state and user state."""
    view = store.for_user(app, user)
    ids = []
    for n in range(3):
        session = view.sessions.create("gpt", title=f"{user} title {n}")
        ids.append(session.session_id)
        view.sessions.set_metadata(session.session_id, "k", user)
        view.messages.append(session.session_id, "user", f"{user} talks about routers")
        view.messages.append(session.session_id, "assistant", f"{user} hears about routers")
        view.state.update(session.session_id, {"n": n})
    view.state.update_user(app, user, {"theme": "dark", "lang": "en"})
    view.lifecycle.archive(ids[1])
    view.lifecycle.archive(ids[2])
    clock.advance(days=2)
    view.lifecycle.purge(timedelta(days=1))
    view.lifecycle.restore(view.lifecycle.snapshots(ids[1])[0].snapshot_id)


def _counts(store: SessionStore, app: str, user: str) -> dict[str, int]:
    queries = {
        "sessions": "SELECT count(*) FROM sessions WHERE app = :a AND user_id = :u",
        "messages": "SELECT count(*) FROM messages m JOIN sessions s USING (session_id)"
        " WHERE s.app = :a AND s.user_id = :u",
        "user_state": "SELECT count(*) FROM user_state WHERE app = :a AND user_id = :u",
        "snapshots": "SELECT count(*) FROM session_snapshots WHERE app = :a AND user_id = :u",
        "events": "SELECT count(*) FROM lifecycle_events WHERE app = :a AND user_id = :u",
    }
    with store.engine.connect() as conn:
        return {k: int(conn.execute(text(q), {"a": app, "u": user}).scalar() or 0)
                for k, q in queries.items()}  # fmt: skip


def test_erase_user_removes_everything_of_theirs_and_nothing_else(
    backend_url: str, clock: FakeClock
) -> None:
    with SessionStore.open(backend_url, clock=clock) as store:
        _populate(store, clock, "chat", "alice")
        _populate(store, clock, "chat", "bob")
        _populate(store, clock, "other", "alice")
        store.state.update_app("chat", {"motd": "hi"})
        before_alice = _counts(store, "chat", "alice")
        before_bob = _counts(store, "chat", "bob")
        assert before_alice == {"sessions": 2, "messages": 4, "user_state": 2,
                                "snapshots": 2, "events": 5}  # fmt: skip
        report = store.erase_user("chat", "alice")
        assert report.tables == {
            "sessions": 2,
            "messages": 4,
            "metadata": 2,
            "session_state": 2,
            "user_state": 2,
            "snapshots": 2,
            "lifecycle_events": 5,
            # The messages' index rows and the sessions' title rows.
            "search_index": 6,
            "leases": 0,
        }
        assert report.total == 25
        assert _counts(store, "chat", "alice") == dict.fromkeys(before_alice, 0)
        assert _counts(store, "chat", "bob") == before_bob
        assert _counts(store, "other", "alice")["sessions"] == 2
        assert store.state.get_app("chat") == {"motd": "hi"}
        hits = store.search.messages("routers", limit=100)
        assert {h.message.content.split()[0] for h in hits.items} == {"alice", "bob"}
        assert store.search.sessions("routers", app="chat", user_id="alice").items == ()
        assert store.search.sessions("title", app="chat", user_id="alice").items == ()
        # The search index holds no trace of the erased rows.
        assert store.health.check().ok
        again = store.erase_user("chat", "alice")
        assert again.total == 0


def test_erase_user_checks_its_arguments(sqlite_store: SessionStore) -> None:
    for app, user in [("", "u"), ("a", None), (None, "u"), ("a", "\x00"), ("a", 5)]:
        with pytest.raises(InvalidInput):
            sqlite_store.erase_user(app, user)  # type: ignore[arg-type]


def test_erase_user_command(sqlite_url: str, clock: FakeClock) -> None:
    with SessionStore.open(sqlite_url, clock=clock) as store:
        _populate(store, clock, "chat", "alice")
    runner = CliRunner()
    refused = runner.invoke(main, ["erase-user", "chat", "alice", "--db", sqlite_url])
    assert refused.exit_code == 2
    assert refused.stderr.strip() == "error: erasing needs a yes: pass --yes (nothing was erased)"
    with SessionStore.open(sqlite_url) as store:
        assert store.sessions.count(app="chat", user_id="alice") == 2
    done = runner.invoke(main, ["erase-user", "chat", "alice", "--yes", "--db", sqlite_url])
    assert done.exit_code == 0, done.output
    assert "lifecycle events" in done.output
    assert "erased user 'alice' of app 'chat': 25 rows" in done.output
    as_json = runner.invoke(
        main, ["erase-user", "chat", "alice", "--yes", "--json", "--db", sqlite_url]
    )
    assert '"total": 0' in as_json.output


def test_rls_commands_refuse_sqlite(sqlite_url: str, tmp_path: Path) -> None:
    SessionStore.open(sqlite_url).close()
    runner = CliRunner()
    status = runner.invoke(main, ["rls", "status", "--db", sqlite_url])
    assert status.exit_code == 0
    assert "row-level security is off" in status.output
    enable = runner.invoke(main, ["rls", "enable", "--db", sqlite_url])
    assert enable.exit_code == 2
    assert "PostgreSQL" in enable.stderr
