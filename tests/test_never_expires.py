"""Sessions that never expire: ``never_expires=True``, distinct from "the store's defaults".

On both backends: such a session is never swept nor listed by ``expiring``,
whatever its age and timeouts; ``set_timeouts(never_expires=...)`` turns it
on and off and keeps the session's own timeouts meanwhile; the scan leaves
them out in its SQL; bad values are ``InvalidInput``; an archived session
refuses the change; export, import and snapshots carry the flag; the
``sessionstore timeouts`` command shows and sets it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import event

from sessionstore import SessionStore
from sessionstore.cli import main
from sessionstore.errors import InvalidInput, SessionArchived

from .conftest import FakeClock

LATER = timedelta(days=400)


@pytest.fixture
def clocked(backend_url: str) -> Any:
    clock = FakeClock()
    with SessionStore.open(backend_url, clock=clock) as store:
        yield store, clock


def test_a_session_that_never_expires_is_never_swept(clocked: Any) -> None:
    store, clock = clocked
    keep = store.sessions.create("m", never_expires=True, idle_timeout=timedelta(minutes=1))
    plain = store.sessions.create("m")
    assert keep.never_expires is True and plain.never_expires is False
    assert store.sessions.get(keep.session_id).never_expires is True
    later = clock.now + LATER
    assert [e.session.session_id for e in store.lifecycle.expiring(timedelta(0), later)] == [
        plain.session_id
    ]
    assert store.lifecycle.due(store.sessions.get(keep.session_id), later) is None
    report = store.lifecycle.sweep(later)
    assert [item.session_id for item in report.archived] == [plain.session_id]
    assert store.sessions.get(keep.session_id).status == "active"


def test_set_timeouts_turns_it_on_and_off_and_keeps_the_timeouts(clocked: Any) -> None:
    store, clock = clocked
    sid = store.sessions.create("m", idle_timeout=timedelta(minutes=5)).session_id
    record = store.lifecycle.set_timeouts(sid, never_expires=True)
    assert record.never_expires is True and record.idle_timeout == timedelta(minutes=5)
    # Its own timeouts change while it never expires, and still do not apply.
    store.lifecycle.set_timeouts(sid, idle_timeout=timedelta(minutes=2))
    assert store.lifecycle.sweep(clock.now + LATER).archived == ()
    record = store.lifecycle.set_timeouts(sid, never_expires=False)
    assert (record.never_expires, record.idle_timeout) == (False, timedelta(minutes=2))
    expiry = store.lifecycle.expiring(timedelta(0), clock.now + timedelta(minutes=3))
    assert [(e.session.session_id, e.reason) for e in expiry] == [(sid, "idle")]
    # Leaving it out leaves it as it is.
    assert store.lifecycle.set_timeouts(sid, hard_timeout=None).never_expires is False


def test_a_sweep_that_races_the_flag_rechecks_under_the_lock(clocked: Any) -> None:
    """Due when the sweep listed it, exempt by its turn: left alone."""
    store, clock = clocked
    sid = store.sessions.create("m").session_id
    later = clock.now + LATER
    due = store.lifecycle.expiring(timedelta(0), later)
    assert [e.session.session_id for e in due] == [sid]
    store.lifecycle.set_timeouts(sid, never_expires=True)
    with store.engine.begin() as conn:
        assert store.lifecycle._archive_if_due(conn, due[0], later) is None
    assert store.sessions.get(sid).status == "active"


def test_the_scan_leaves_them_out_in_sql(clocked: Any) -> None:
    store, clock = clocked
    for _ in range(3):
        store.sessions.create("m", never_expires=True)
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM sessions" in statement:
            seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        assert store.lifecycle.expiring(timedelta(0), clock.now + LATER) == []
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    scans = [s for s in seen if "never_expires" in s.split("WHERE", 1)[-1]]
    assert scans, seen


@pytest.mark.parametrize("bad", [None, 1, 0, "yes", [], 1.0])
def test_a_bad_flag_is_invalid_input(store: SessionStore, bad: Any) -> None:
    count = store.sessions.count()
    with pytest.raises(InvalidInput, match="never_expires"):
        store.sessions.create("m", never_expires=bad)
    assert store.sessions.count() == count
    sid = store.sessions.create("m").session_id
    with pytest.raises(InvalidInput, match="never_expires"):
        store.lifecycle.set_timeouts(sid, never_expires=bad)
    assert store.sessions.get(sid).never_expires is False


def test_an_archived_session_refuses_the_change(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    store.lifecycle.archive(sid)
    with pytest.raises(SessionArchived):
        store.lifecycle.set_timeouts(sid, never_expires=True)
    assert store.sessions.get(sid).never_expires is False


def test_export_import_and_snapshots_carry_the_flag(store: SessionStore) -> None:
    sid = store.sessions.create("m", never_expires=True).session_id
    store.messages.append(sid, "user", "keep me")
    document = json.loads(store.export(sid) or "")
    assert document["session"]["never_expires"] is True
    copy = store.import_session(document, session_id="copy")
    assert copy.never_expires is True and store.sessions.get("copy").never_expires is True
    snapshot = store.lifecycle.archive(sid)
    store.lifecycle.purge(timedelta(0))
    restored = store.lifecycle.restore(snapshot.snapshot_id)
    assert restored.never_expires is True
    assert store.sessions.get(sid).never_expires is True


def test_an_export_without_the_flag_imports_as_expiring(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    document = json.loads(store.export(sid) or "")
    del document["session"]["never_expires"]
    assert store.import_session(document, session_id="older").never_expires is False
    document["session"]["never_expires"] = "yes"
    with pytest.raises(InvalidInput):
        store.import_session(document, session_id="bad")


# --- the command line -------------------------------------------------------------------


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_the_timeouts_command_shows_and_sets_the_flag(sqlite_url: str) -> None:
    with SessionStore.open(sqlite_url) as store:
        sid = store.sessions.create("m", idle_timeout=timedelta(minutes=10)).session_id
    code, out, _ = run("timeouts", sid, "--db", sqlite_url)
    assert code == 0
    assert "0:10:00 (this session's)" in out and "never expires  no" in out
    code, out, _ = run("timeouts", sid, "--never-expires", "--db", sqlite_url)
    assert code == 0 and "never expires  yes" in out and "times out      never" in out
    code, out, _ = run("timeouts", sid, "--json", "--db", sqlite_url)
    shown = json.loads(out)
    assert shown["never_expires"] is True and shown["deadline"] is None
    assert shown["idle_timeout"] == 600.0 and shown["default_hard_timeout"] == 86400.0
    code, out, _ = run(
        "timeouts", sid, "--expires", "--idle", "default", "--hard", "2h", "--json",
        "--db", sqlite_url,
    )  # fmt: skip
    shown = json.loads(out)
    assert code == 0 and shown["never_expires"] is False
    assert (shown["idle_timeout"], shown["hard_timeout"]) == (None, 7200.0)
    assert shown["reason"] == "idle"
    assert datetime.fromisoformat(shown["deadline"]) > datetime.now(UTC)


@pytest.mark.parametrize(
    "args", [("--idle", "soon"), ("--hard", "-1h"), ("--never-expires", "--bogus")]
)
def test_the_timeouts_command_refuses_bad_values_in_one_line(
    sqlite_url: str, args: tuple[str, ...]
) -> None:
    with SessionStore.open(sqlite_url) as store:
        sid = store.sessions.create("m").session_id
    code, out, err = run("timeouts", sid, *args, "--db", sqlite_url)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1
    with SessionStore.open(sqlite_url) as store:
        assert store.sessions.get(sid).never_expires is False


def test_the_timeouts_command_names_a_missing_session(sqlite_url: str) -> None:
    SessionStore.open(sqlite_url).close()
    code, _, err = run("timeouts", "nope", "--db", sqlite_url)
    assert code == 2 and err == "error: no session with id 'nope'\n"
