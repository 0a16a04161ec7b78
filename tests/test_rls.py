"""PostgreSQL row-level security: even hand-written SQL on a scoped connection sees one owner.

PostgreSQL never applies policies to a superuser (the tests' server user), so
each test creates an ordinary role, grants it the tables, and connects as it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from sessionstore import InvalidStateError, SessionNotFound, SessionStore
from sessionstore.cli import main
from sessionstore.rls import RLS_TABLES

_ROLES = itertools.count()


def restricted_url(admin_url: str) -> str:
    """The URL of a new ordinary role (no superuser, no BYPASSRLS) with the tables granted."""
    url = make_url(admin_url)
    role = f"sessionstore_app_{url.database}_{next(_ROLES)}".lower()
    engine = create_engine(admin_url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS"))
            conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {role}"))
            conn.execute(
                text(
                    f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"
                )
            )
            conn.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}"))
    finally:
        engine.dispose()
    return url.set(username=role).render_as_string(hide_password=False)


@pytest.fixture
def two_users(postgres_url: str) -> Iterator[tuple[SessionStore, str, str]]:
    with SessionStore.open(postgres_url) as admin:
        for user in ("alice", "bob"):
            view = admin.for_user("app", user)
            session = view.sessions.create("gpt", session_id=f"{user}-1", title=f"{user} title")
            view.sessions.set_metadata(session.session_id, "k", user)
            view.messages.append(session.session_id, "user", f"{user} says hello")
            view.messages.append(session.session_id, "assistant", f"hello {user}")
            view.state.update(session.session_id, {"who": user})
            view.state.update_user("app", user, {"who": user})
            view.lifecycle.archive(session.session_id)
            view.lifecycle.reactivate(session.session_id)
        unowned = admin.sessions.create("gpt", session_id="nobody-1")
        admin.messages.append(unowned.session_id, "user", "nobody's message")
        yield admin, postgres_url, restricted_url(postgres_url)


def _rows(url: str, sql: str, app: str | None, user: str | None) -> list[tuple[object, ...]]:
    """``sql`` on a connection of its own, in a transaction scoped as a view scopes it."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            if app is not None:
                conn.execute(
                    text(
                        "SELECT set_config('sessionstore.app', :app, true),"
                        " set_config('sessionstore.user_id', :user, true)"
                    ),
                    {"app": app, "user": user or ""},
                )
            return [tuple(row) for row in conn.execute(text(sql))]
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_hand_written_select_sees_only_the_scoped_owner(
    two_users: tuple[SessionStore, str, str],
) -> None:
    admin, admin_url, role_url = two_users
    everything = "SELECT session_id, content FROM messages ORDER BY message_id"
    # Before: the ordinary role sees every row, scoped or not.
    assert len(_rows(role_url, everything, "app", "alice")) == 5
    status = admin.enable_row_level_security()
    assert status.enabled
    assert all(status.tables[t] == (True, True, True) for t in RLS_TABLES)

    alice = _rows(role_url, "SELECT * FROM messages", "app", "alice")
    assert {row[1] for row in alice} == {"alice-1"}
    assert len(alice) == 2
    bob = _rows(role_url, everything, "app", "bob")
    assert bob == [("bob-1", "bob says hello"), ("bob-1", "hello bob")]
    # The app's view: both users' rows, not the unowned session's.
    assert {row[0] for row in _rows(role_url, everything, "app", None)} == {"alice-1", "bob-1"}
    assert _rows(role_url, everything, "other-app", "alice") == []
    # Every other table that holds an owner's rows, the same way.
    for table, column in [
        ("sessions", "session_id"),
        ("session_metadata", "value"),
        ("session_state", "session_id"),
        ("user_state", "user_id"),
        ("session_snapshots", "session_id"),
        ("lifecycle_events", "session_id"),
    ]:
        seen = {row[0] for row in _rows(role_url, f"SELECT {column} FROM {table}", "app", "bob")}
        assert seen and all("bob" in str(value) for value in seen), (table, seen)
    # Unset: the admin view, every row (the unowned session's too).
    assert len(_rows(role_url, everything, None, None)) == 5
    # A superuser is never subject to policies: the admin connection sees all, scoped or not.
    assert len(_rows(admin_url, everything, "app", "alice")) == 5


@pytest.mark.postgres
def test_writes_outside_the_scope_are_refused(two_users: tuple[SessionStore, str, str]) -> None:
    admin, _admin_url, role_url = two_users
    admin.enable_row_level_security()
    engine = create_engine(role_url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text("SELECT set_config('sessionstore.app', 'app', true),"
                              " set_config('sessionstore.user_id', 'bob', true)"))  # fmt: skip
            changed = conn.execute(text("UPDATE messages SET content = 'x'")).rowcount
            deleted = conn.execute(text("DELETE FROM sessions WHERE session_id = 'alice-1'"))
            assert (changed, deleted.rowcount) == (2, 0)
            forged = text(
                "INSERT INTO sessions (session_id, model_id, app, user_id)"
                " VALUES ('forged', 'm', 'app', 'alice')"
            )
            with pytest.raises(Exception, match="row-level security"), conn.begin_nested():
                conn.execute(forged)
            conn.rollback()
    finally:
        engine.dispose()
    assert admin.messages.history("alice-1").items[0].content == "alice says hello"


@pytest.mark.postgres
def test_scoped_views_work_under_rls_as_an_ordinary_role(
    two_users: tuple[SessionStore, str, str],
) -> None:
    admin, _admin_url, role_url = two_users
    admin.enable_row_level_security()
    with SessionStore.open(role_url, upgrade=False) as store:
        bob = store.for_user("app", "bob")
        session = bob.sessions.create("gpt")
        bob.messages.append(session.session_id, "user", "under policies")
        bob.state.update(session.session_id, {"k": 1})
        bob.lifecycle.archive(session.session_id)
        bob.lifecycle.reactivate(session.session_id)
        assert [s.session_id for s in bob.sessions.list()] == [session.session_id, "bob-1"]
        assert bob.search.messages("hello").items[0].message.session_id == "bob-1"
        with pytest.raises(SessionNotFound, match="no session with id 'alice-1'"):
            bob.messages.history("alice-1")
        # The role's own unscoped store is the admin view: nothing set, every row.
        assert store.sessions.count() == 4
    status = admin.disable_row_level_security()
    assert not any(any(flags) for flags in status.tables.values())


def test_row_level_security_is_postgresql_only(sqlite_store: SessionStore) -> None:
    with pytest.raises(InvalidStateError, match="PostgreSQL"):
        sqlite_store.enable_row_level_security()
    with pytest.raises(InvalidStateError, match="PostgreSQL"):
        sqlite_store.disable_row_level_security()
    assert not sqlite_store.row_level_security().enabled


@pytest.mark.postgres
def test_rls_commands(postgres_url: str) -> None:
    SessionStore.open(postgres_url).close()
    runner = CliRunner()
    enabled = runner.invoke(main, ["rls", "enable", "--db", postgres_url])
    assert enabled.exit_code == 0, enabled.output
    assert enabled.output.rstrip().endswith("row-level security is on")
    status = runner.invoke(main, ["rls", "status", "--json", "--db", postgres_url])
    assert '"enabled": true' in status.output
    disabled = runner.invoke(main, ["rls", "disable", "--db", postgres_url])
    assert disabled.output.rstrip().endswith("row-level security is off")
