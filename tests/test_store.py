"""The store and its engine: pooling, per-connection pragmas, BEGIN IMMEDIATE, lifecycle."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from sessionstore import (
    InvalidInput,
    SchemaMismatchError,
    SessionStore,
    StoreClosedError,
    StoreConfig,
)
from sessionstore.engine import build_engine


def test_pool_status_reports_the_pragmas_in_force(sqlite_url: str) -> None:
    with SessionStore.open(sqlite_url, pool_size=3, max_overflow=2) as store:
        status = store.pool_status()
    assert status.pool_class == "QueuePool"
    assert status.size == 3
    assert status.pragmas == {
        "foreign_keys": 1,
        "journal_mode": "wal",
        "synchronous": 1,
        "busy_timeout": 10_000,
        "cache_size": -16384,
        "temp_store": 2,
    }


def test_every_pooled_connection_gets_the_pragmas(sqlite_url: str) -> None:
    with SessionStore.open(
        sqlite_url, pool_size=4, synchronous="FULL", busy_timeout=timedelta(seconds=3)
    ) as store:
        connections = [store.engine.raw_connection() for _ in range(6)]  # overflow too
        try:
            for conn in connections:
                cursor = conn.cursor()
                values = [cursor.execute(f"PRAGMA {p}").fetchone()[0]
                          for p in ("foreign_keys", "synchronous", "busy_timeout")]  # fmt: skip
                assert values == [1, 2, 3000]
            assert store.pool_status().overflow == 2
        finally:
            for conn in connections:
                conn.close()


def test_writes_take_the_write_lock_at_begin(sqlite_url: str) -> None:
    with SessionStore.open(sqlite_url) as store:
        sid = store.sessions.create("m").session_id
        outsider = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), timeout=0)
        try:
            with store.transaction() as tx:
                # BEGIN IMMEDIATE: the lock is held before the first write.
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    outsider.execute("BEGIN IMMEDIATE")
                tx.sessions.get(sid)
                # Readers are never blocked by it (WAL).
                assert outsider.execute("SELECT COUNT(*) FROM sessions").fetchone() == (1,)
        finally:
            outsider.close()


def test_reads_do_not_wait_for_a_writer(sqlite_url: str) -> None:
    with SessionStore.open(sqlite_url) as store:
        sid = store.sessions.create("m").session_id
        store.messages.append(sid, "user", "hello")
        with store.transaction() as tx:
            tx.messages.append(sid, "assistant", "uncommitted")
            done = threading.Event()

            def read() -> None:
                assert [m.content for m in store.messages.recent(sid, 10)] == ["hello"]
                done.set()

            reader = threading.Thread(target=read)
            reader.start()
            reader.join(5)
            assert done.is_set()


def test_memory_url_is_one_shared_connection() -> None:
    with SessionStore.open("sqlite:///:memory:") as store:
        sid = store.sessions.create("m").session_id
        threads = [
            threading.Thread(
                target=lambda: [store.messages.append(sid, "user", "x") for _ in range(20)]
            )
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store.sessions.get(sid).message_count == 80
        assert store.pool_status().pool_class == "StaticPool"


def test_constructors(sqlite_url: str) -> None:
    with SessionStore.from_config(StoreConfig(url=sqlite_url)) as store:
        store.sessions.create("m", session_id="one")
    engine = build_engine(StoreConfig(url=sqlite_url))
    try:
        store = SessionStore.from_engine(engine)
        assert store.sessions.get("one").model_id == "m"
        store.close()
        # The caller's engine is the caller's: still usable after the store closes.
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT COUNT(*) FROM sessions").scalar() == 1
    finally:
        engine.dispose()


def test_default_url_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SESSIONSTORE_URL", raising=False)
    with SessionStore.open() as store:
        assert store.path == tmp_path / ".ai-router-sessions.db"  # absolute: chdir-proof
    assert (tmp_path / ".ai-router-sessions.db").exists()
    monkeypatch.setenv("SESSIONSTORE_URL", f"sqlite:///{tmp_path / 'other.db'}")
    with SessionStore.open() as store:
        assert store.path == tmp_path / "other.db"


def test_nothing_is_created_at_import_time() -> None:
    code = (
        "import gc, sqlalchemy, sessionstore, sessionstore.cli, sessionstore.compat;"
        "print(sum(isinstance(o, sqlalchemy.engine.Engine) for o in gc.get_objects()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"


def test_refuses_a_database_that_is_not_current(sqlite_url: str) -> None:
    with pytest.raises(SchemaMismatchError, match="sessionstore upgrade"):
        SessionStore.open(sqlite_url, upgrade=False)
    with SessionStore.open(sqlite_url) as store:
        assert store.upgrade_report is not None
        assert store.upgrade_report.found == "empty"
    with SessionStore.open(sqlite_url, upgrade=False) as store:
        assert store.upgrade_report is None


def test_bad_configuration_is_a_typed_error(tmp_path: Path) -> None:
    for options in ({"pool_size": 0}, {"synchronous": "OFF"}, {"busy_timeout": -1},
                    {"no_such_option": 1}):  # fmt: skip
        with pytest.raises(InvalidInput):
            SessionStore.open(f"sqlite:///{tmp_path / 'x.db'}", **options)
    with pytest.raises(InvalidInput):
        SessionStore.open("mysql://localhost/x")
    with pytest.raises(InvalidInput):
        SessionStore.open("not a url")
    with pytest.raises(InvalidInput):
        SessionStore.open(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")


def test_closed_store_refuses_work(sqlite_url: str) -> None:
    store = SessionStore.open(sqlite_url)
    sid = store.sessions.create("m").session_id
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreClosedError):
        store.sessions.get(sid)
    with pytest.raises(StoreClosedError):
        store.messages.append(sid, "user", "x")
    with pytest.raises(StoreClosedError), store.transaction():
        pass


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_opens_its_own_connections(sqlite_url: str) -> None:
    with SessionStore.open(sqlite_url) as store:
        sid = store.sessions.create("m").session_id
        store.messages.append(sid, "user", "parent before fork")
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through its exit status
            try:
                store.messages.append(sid, "user", "child")
                os._exit(0 if store.sessions.get(sid).message_count == 2 else 1)
            except BaseException:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        store.messages.append(sid, "user", "parent after fork")
        assert [m.sequence_number for m in store.messages.recent(sid, 10)] == [1, 2, 3]


def test_postgresql_uses_pre_ping(postgres_url: str) -> None:
    with SessionStore.open(postgres_url) as store:
        assert store.engine.pool._pre_ping is True
        status = store.pool_status()
        assert status.pool_class == "QueuePool"
        assert "server_version" in status.pragmas


def test_driver_errors_are_classified_by_name(tmp_path: Path) -> None:
    """Each SQLite result code a caller can act on becomes its own typed error."""
    from sessionstore.errors import (
        ConstraintViolation,
        DatabaseCorruptError,
        NotADatabaseError,
        ReadOnlyError,
        StorageFullError,
        StorageIOError,
        StoreBusyError,
        translate,
    )

    def raised(name: str) -> sqlite3.Error:
        error = sqlite3.OperationalError("from the driver")
        error.sqlite_errorname = name  # type: ignore[attr-defined]
        return error

    expected = {
        "SQLITE_BUSY": StoreBusyError,
        "SQLITE_LOCKED_SHAREDCACHE": StoreBusyError,
        "SQLITE_FULL": StorageFullError,
        "SQLITE_IOERR_WRITE": StorageIOError,
        "SQLITE_CORRUPT_INDEX": DatabaseCorruptError,
        "SQLITE_NOTADB": NotADatabaseError,
        "SQLITE_READONLY": ReadOnlyError,
        "SQLITE_CONSTRAINT_UNIQUE": ConstraintViolation,
    }
    for name, cls in expected.items():
        assert type(translate(raised(name), path=str(tmp_path / "x.db"))) is cls, name
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"definitely not sqlite" * 200)
    with pytest.raises(NotADatabaseError, match="is not a SQLite database"):
        SessionStore.open(f"sqlite:///{junk}")
