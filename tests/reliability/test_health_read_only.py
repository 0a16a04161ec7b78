"""``health.check()`` only reads, and never reports damage that is not there.

A healthy database is reported healthy while another connection (in this
process or another) holds the write lock with uncommitted changes, and when
the file can only be read (``mode=ro`` and ``immutable`` URIs, since the
tests run as root and root ignores ``chmod``). The deeper FTS5
``integrity-check``, which is a write, runs only when asked for and is then
reported as *could not check* (``unchecked``), never as damage, when it
cannot get the lock. Real damage is still found read-only, the title index
is checked too, and ``sessionstore doctor`` exits 0 / 1 / 3 accordingly.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from sessionstore import SessionStore
from sessionstore.cli import main
from sessionstore.health import HealthReport

from .test_health_accuracy import build, inject, raw

pytestmark = pytest.mark.reliability

BUSY = timedelta(seconds=0.3)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "health.db"
    with SessionStore.open(f"sqlite:///{path}") as store:
        build(store, 0, 0)
    return path


def healthy(report: HealthReport) -> None:
    assert [(c.name, c.status, c.detail) for c in report.checks if not c.ok] == []
    assert report.ok and report.complete and report.status == "ok"


# --- a writer holds the lock -------------------------------------------------------------


@contextlib.contextmanager
def writer_here(path: Path) -> Iterator[None]:
    """Another connection of this process, in a write transaction with uncommitted drift."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE sessions SET message_count = message_count + 100")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


WRITER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE sessions SET message_count = message_count + 100")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


@contextlib.contextmanager
def writer_elsewhere(path: Path) -> Iterator[None]:
    """Another process, in a write transaction with uncommitted drift, until told to stop."""
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        yield
    finally:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.close()
        assert child.wait(timeout=30) == 0


@pytest.mark.parametrize("writer", [writer_here, writer_elsewhere])
def test_check_beside_a_writer_holding_the_lock(db: Path, writer: object) -> None:
    with SessionStore.open(f"sqlite:///{db}", busy_timeout=BUSY) as store:
        with writer(db):  # type: ignore[operator]
            healthy(store.health.check())
            healthy(store.health.check(quick=True))
            deep = store.health.check(deep=True)
        assert deep.ok and not deep.complete and deep.status == "incomplete"
        assert [c.name for c in deep.unchecked] == ["search_index_deep"]
        assert "could not check" in deep["search_index_deep"].detail
        assert "lock" in deep["search_index_deep"].detail
        # With the lock free again the deep check runs, and passes.
        again = store.health.check(deep=True)
        healthy(again)
        assert again["search_index_deep"].ok


# --- a file that can only be read ----------------------------------------------------------


@contextlib.contextmanager
def read_only_store(path: Path, flag: str) -> Iterator[SessionStore]:
    """The store over ``path`` opened ``?mode=ro`` or ``?immutable=1``, the file 0444 in a
    0555 directory (which root, running the tests, ignores: hence the URI)."""
    uri = f"file:{path}?{flag}"

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(uri, uri=True)
        conn.execute("PRAGMA foreign_keys = ON")  # as the store's own connections have it
        return conn

    engine = create_engine("sqlite://", creator=connect, poolclass=NullPool)
    modes = {p: p.stat().st_mode for p in (path, path.parent)}
    path.chmod(0o444)
    path.parent.chmod(0o555)
    try:
        yield SessionStore(engine)
    finally:
        engine.dispose()
        for p, mode in modes.items():
            p.chmod(stat.S_IMODE(mode))


@pytest.mark.parametrize("flag", ["mode=ro", "immutable=1"])
def test_check_on_a_read_only_file(db: Path, flag: str) -> None:
    with read_only_store(db, flag) as store:
        # The file really cannot be written.
        with pytest.raises(OperationalError, match="readonly"), store.engine.connect() as conn:
            conn.execute(text("UPDATE sessions SET title = 'x'"))
            conn.commit()
        healthy(store.health.check())
        deep = store.health.check(deep=True)
    assert deep.ok and deep.status == "incomplete"
    assert "read-only" in deep["search_index_deep"].detail


def test_read_only_check_still_finds_damage(db: Path) -> None:
    """The rows the legacy triggers lost are found without a write: 3 messages missing
    from the index, and a session title missing from its own index."""
    url = f"sqlite:///{db}"
    with SessionStore.open(url) as store:
        world = build(store, 0, 0)
    inject(url, world, 0, 3)
    with raw(url) as conn:
        conn.execute(
            text(
                "INSERT INTO session_titles_fts (session_titles_fts, rowid, title)"
                " SELECT 'delete', search_key, title FROM sessions WHERE session_id = :sid"
            ),
            {"sid": world.healthy[0]},
        )
    with read_only_store(db, "mode=ro") as store:
        report = store.health.check()
    assert [(c.name, c.count) for c in report.failed] == [("search_index", 4)]
    assert "1 session titles" in report["search_index"].detail
    assert report.complete
    with SessionStore.open(url) as store:
        assert store.health.repair().index_rebuilt
        healthy(store.health.check(deep=True))
        assert store.search.sessions("healthy").items


def test_deep_check_finds_what_rows_alone_do_not(db: Path) -> None:
    """An index row whose words are not its message's: every row is there, so only
    FTS5's own integrity-check sees it; repair rebuilds the index from the messages."""
    url = f"sqlite:///{db}"
    with raw(url) as conn:
        message_id, content = conn.execute(
            text("SELECT message_id, content FROM messages ORDER BY message_id LIMIT 1")
        ).one()
        conn.execute(
            text(
                "INSERT INTO messages_fts (messages_fts, rowid, content)"
                " VALUES ('delete', :id, :content)"
            ),
            {"id": message_id, "content": content},
        )
        conn.execute(
            text("INSERT INTO messages_fts (rowid, content) VALUES (:id, 'planted words')"),
            {"id": message_id},
        )
    with SessionStore.open(url) as store:
        healthy(store.health.check())
        deep = store.health.check(deep=True)
        assert [c.name for c in deep.failed] == ["search_index_deep"]
        assert store.search.messages("planted").items
        assert store.health.repair().index_rebuilt
        healthy(store.health.check(deep=True))
        assert store.search.messages("planted").items == ()


def test_schema_check_does_not_write(db: Path) -> None:
    """A read-only file outside WAL: the schema is read, not 'fixed' by switching the
    journal mode (a write, which failed and was reported as a schema failure)."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA journal_mode = DELETE")
    with read_only_store(db, "mode=ro") as store:
        report = store.health.check()
    assert report["schema"].ok, report["schema"].detail
    assert [c.name for c in report.failed] == ["journal"]  # a finding, not a failure to look


# --- doctor ------------------------------------------------------------------------------------


def doctor(db: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["doctor", "--db", f"sqlite:///{db}", *args])
    return result.exit_code, result.output


def test_doctor_beside_a_writer_exits_0(db: Path) -> None:
    with writer_elsewhere(db):
        code, out = doctor(db)
        assert code == 0, out
        assert out.rstrip().endswith("healthy")
        code, out = doctor(db, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["ok"] is True and data["status"] == "ok"
    assert {c["status"] for c in data["checks"]} == {"ok"}


@pytest.mark.slow
def test_doctor_deep_beside_a_writer_says_could_not_check_and_exits_3(db: Path) -> None:
    """The deep check waits for the lock up to the busy timeout (10 s by default)."""
    with writer_elsewhere(db):
        code, out = doctor(db, "--deep")
        assert code == 3, out
        lines = out.splitlines()
        header = next(line for line in lines if line.startswith("check"))
        row = next(line for line in lines if line.startswith("search_index_deep"))
        assert row[header.index("status") :].startswith("could not check")
        assert "no damage found" in out and "UNHEALTHY" not in out
        code, out = doctor(db, "--deep", "--json")
    assert code == 3
    data = json.loads(out)
    assert data["ok"] is True and data["status"] == "incomplete"
    statuses = {c["name"]: (c["status"], c["ok"]) for c in data["checks"]}
    assert statuses["search_index_deep"] == ("unchecked", False)
    assert {s for name, s in statuses.items() if name != "search_index_deep"} == {("ok", True)}


def test_doctor_exits_1_on_damage(db: Path) -> None:
    url = f"sqlite:///{db}"
    with SessionStore.open(url) as store:
        world = build(store, 0, 0)
    inject(url, world, 2, 0)
    code, out = doctor(db)
    assert code == 1
    assert "UNHEALTHY" in out
    assert os.path.exists(db)
