"""Opening a store off the happy path: every mistake is a typed error that says where.

* ``create=False`` opens only a database that exists (SQLite ``mode=rw``): a
  missing file is :class:`DatabaseNotFound` naming the path, and nothing is
  created, not even by a later connection of the pool;
* ``sqlite://name.db`` (two slashes), a directory, a missing parent directory
  are :class:`InvalidInput` naming what to write instead;
* without the PostgreSQL driver, :class:`MissingDependency` names the extra
  (``sys.modules['psycopg'] = None`` in a subprocess stands for a machine
  without it), from the API and as one line from the command line;
* a refused connection, an unknown database, an unknown role are
  :class:`ConnectionFailed` naming host:port/database, never the password, and
  never "the upgrade failed";
* a write on the store inside ``with store.transaction()`` on the same thread
  is :class:`NestedTransactionError` at once, and the transaction goes on.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import exc as sa_exc

from sessionstore import (
    ConnectionFailed,
    DatabaseNotFound,
    InvalidInput,
    NestedTransactionError,
    OrphanedJournal,
    SchemaMismatchError,
    SessionStore,
)
from sessionstore.cli import main

from .pgserver import PostgresServer

ROOT = Path(__file__).resolve().parents[1]


def test_create_false_opens_an_existing_database_and_never_creates_one(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    with pytest.raises(DatabaseNotFound) as caught:
        SessionStore.open(f"sqlite:///{path}", create=False)
    assert caught.value.path == str(path) and str(path) in str(caught.value)
    assert list(tmp_path.iterdir()) == []

    with SessionStore.open(f"sqlite:///{path}") as store:
        session_id = store.sessions.create("m").session_id
    with SessionStore.open(f"sqlite:///{path}", create=False, upgrade=False) as store:
        assert store.sessions.get(session_id).model_id == "m"
        # The file disappears under the store: its next connection must not make a new one.
        store.engine.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        with pytest.raises(sa_exc.OperationalError, match="unable to open"):
            store.engine.connect()
    assert not path.exists()


def test_upgrade_false_refuses_a_database_behind_head_naming_the_command(
    backend_url: str,
) -> None:
    from sessionstore import StoreConfig
    from sessionstore.downgrades import downgrade
    from sessionstore.engine import build_engine

    url = backend_url
    SessionStore.open(url).close()
    engine = build_engine(StoreConfig(url=url))
    downgrade(engine, "-1")
    engine.dispose()
    with pytest.raises(SchemaMismatchError, match="run `sessionstore upgrade`"):
        SessionStore.open(url, create=False, upgrade=False)
    # For diagnostic tools: open at any schema, and let the health check say it.
    with SessionStore.open(url, create=False, upgrade=False, check_schema=False) as store:
        assert "sessionstore upgrade" in store.health.check()["schema"].detail


def test_sqlite_urls_and_paths_that_name_no_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"sqlite:///relative\.db"):
        SessionStore.open("sqlite://relative.db")
    with pytest.raises(InvalidInput, match=f"{tmp_path} is a directory"):
        SessionStore.open(f"sqlite:///{tmp_path}")
    with pytest.raises(InvalidInput, match=f"{tmp_path / 'no'} for the database"):
        SessionStore.open(f"sqlite:///{tmp_path / 'no' / 'chat.db'}")
    assert list(tmp_path.iterdir()) == []


WITHOUT_DRIVER = """
import sys
sys.modules["psycopg"] = None  # as if the postgres extra were not installed
{body}
"""


def _python(body: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_DRIVER.format(body=body)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def test_a_missing_postgresql_driver_names_the_extra() -> None:
    done = _python(
        "from sessionstore import SessionStore, MissingDependency\n"
        "try:\n"
        "    SessionStore.open('postgresql://u@127.0.0.1:1/db')\n"
        "except MissingDependency as exc:\n"
        "    print('typed:', exc)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("typed: the PostgreSQL driver is not installed")
    assert "pip install 'sessionstore[postgres]'" in done.stdout

    done = _python(
        "from sessionstore.cli import main\n"
        "main(['stats', '--db', 'postgresql://u@127.0.0.1:1/db'])\n"
    )
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: the PostgreSQL driver is not installed")
    assert line.endswith("pip install 'sessionstore[postgres]'")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_refused_connection_says_where_not_that_an_upgrade_failed() -> None:
    port = _closed_port()
    url = f"postgresql://alice:s3cret-pw@127.0.0.1:{port}/chats"
    with pytest.raises(ConnectionFailed) as caught:
        SessionStore.open(url)
    message = str(caught.value)
    assert f"alice@127.0.0.1:{port}/chats" in message
    assert "s3cret-pw" not in message and "upgrade" not in message
    # The same from the migrations API, on an engine the caller made.
    from sessionstore import StoreConfig, migrations
    from sessionstore.engine import build_engine

    engine = build_engine(StoreConfig(url=url))
    with pytest.raises(ConnectionFailed, match=f"127.0.0.1:{port}/chats"):
        migrations.upgrade(engine)
    engine.dispose()
    result = CliRunner().invoke(main, ["upgrade", "--db", url])
    assert result.exit_code == 2 and result.stdout == ""
    assert f"127.0.0.1:{port}/chats" in result.stderr and "s3cret-pw" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.postgres
def test_an_unknown_database_or_role_is_a_connection_failure(
    postgres_server: PostgresServer,
) -> None:
    port = postgres_server.port
    for url, what in (
        (f"postgresql://postgres@127.0.0.1:{port}/no_such_db", "does not exist"),
        (f"postgresql://nobody_here:hunter22@127.0.0.1:{port}/postgres", "nobody_here"),
    ):
        with pytest.raises(ConnectionFailed) as caught:
            SessionStore.open(url)
        message = str(caught.value)
        assert f"127.0.0.1:{port}/" in message and what in message
        assert "hunter22" not in message and "upgrade" not in message


def test_a_store_write_inside_a_transaction_is_refused_at_once(sqlite_url: str) -> None:
    with SessionStore.open(sqlite_url) as store:
        session_id = store.sessions.create("m").session_id
        with store.transaction() as tx:
            tx.messages.append(session_id, "user", "inside")
            with pytest.raises(NestedTransactionError, match=r"tx\.messages"):
                store.messages.append(session_id, "user", "nested")
            with pytest.raises(NestedTransactionError):
                store.sessions.rename(session_id, "nested")
            # Reads still run, on their own connection: they see the last commit.
            assert store.messages.recent(session_id, 5) == []
            with pytest.raises(NestedTransactionError), store.transaction():
                pass
            tx.messages.append(session_id, "assistant", "still inside")
        # Committed, and the store works again on this thread.
        assert [m.content for m in store.messages.recent(session_id, 5)] == [
            "inside",
            "still inside",
        ]


def test_other_threads_are_not_refused_while_a_transaction_is_open(sqlite_url: str) -> None:
    with SessionStore.open(sqlite_url) as store:
        session_id = store.sessions.create("m").session_id
        seen: list[object] = []
        with store.transaction() as tx:
            tx.messages.append(session_id, "user", "one")
            reader = threading.Thread(
                target=lambda: seen.append(store.sessions.get(session_id).message_count)
            )
            reader.start()
            reader.join()
        assert seen == [0]  # a reader in another thread sees the last commit


@pytest.mark.parametrize("suffix", ["-wal", "-journal"])
def test_a_journal_without_its_database_is_refused_not_discarded(
    tmp_path: Path, suffix: str
) -> None:
    moved = tmp_path / "moved.db"
    orphan = Path(f"{moved}{suffix}")
    orphan.write_bytes(b"pages that belong to another database" * 100)
    with pytest.raises(OrphanedJournal) as caught:
        SessionStore.open(f"sqlite:///{moved}")
    assert str(orphan) in str(caught.value)
    assert orphan.stat().st_size == 3700
    assert not moved.exists()
    result = CliRunner().invoke(main, ["upgrade", "--db", f"sqlite:///{moved}"])
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1
    assert not moved.exists()


@pytest.mark.parametrize("query", ["mode=ro", "immutable=1", "journal_mode=delete&x=1"])
def test_sqlite_url_query_parameters_are_refused_not_ignored(tmp_path: Path, query: str) -> None:
    """The driver ignored them with a warning: ``?mode=ro`` opened the file read-write."""
    path = tmp_path / "q.db"
    with SessionStore.open(f"sqlite:///{path}"):
        pass
    with pytest.raises(InvalidInput, match="no query parameters"):
        SessionStore.open(f"sqlite:///{path}?{query}")
    result = CliRunner().invoke(main, ["--db", f"sqlite:///{path}?{query}", "archive", "x"])
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1
    assert "no query parameters" in result.output


def _acknowledged_only_in_the_wal(path: Path) -> None:
    """A writer appends and dies without a checkpoint: its writes live in ``path``-wal."""
    code = (
        "import os\n"
        "from sessionstore import SessionStore\n"
        f"s = SessionStore.open('sqlite:///{path}')\n"
        "s.sessions.create('m', session_id='precious')\n"
        "s.messages.append('precious', 'user', 'acknowledged')\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert Path(f"{path}-wal").stat().st_size > 0


@pytest.mark.parametrize("shape", ["emptied", "dangling link"])
def test_a_wal_beside_an_emptied_or_linked_away_database_is_refused(
    tmp_path: Path, shape: str
) -> None:
    real = tmp_path / "real" / "chat.db"
    real.parent.mkdir()
    _acknowledged_only_in_the_wal(real)
    if shape == "emptied":
        real.write_bytes(b"")
        url = f"sqlite:///{real}"
    else:
        real.unlink()
        (tmp_path / "link.db").symlink_to(real)
        url = f"sqlite:///{tmp_path / 'link.db'}"
    with pytest.raises(OrphanedJournal):
        SessionStore.open(url)
    assert Path(f"{real}-wal").stat().st_size > 0  # the frames are still there


def test_an_export_never_reaches_the_wal_through_a_linked_database(tmp_path: Path) -> None:
    """The -wal lives beside the resolved file, not beside the link the store was given."""
    real = tmp_path / "real" / "chat.db"
    real.parent.mkdir()
    SessionStore.open(f"sqlite:///{real}").close()
    (tmp_path / "link.db").symlink_to(real)
    with SessionStore.open(f"sqlite:///{tmp_path / 'link.db'}") as store:
        sid = store.sessions.create("m").session_id
        store.messages.append(sid, "user", "acknowledged")
        for own in ("", "-wal", "-shm"):
            with pytest.raises(InvalidInput, match="own file"):
                store.export_file(sid, f"{real}{own}", overwrite=True)
        assert store.messages.recent(sid, 5)[0].content == "acknowledged"


def test_a_store_keeps_its_file_after_the_process_changes_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    with SessionStore.open("sqlite:///chat.db") as store:
        sid = store.sessions.create("m").session_id
        monkeypatch.chdir(tmp_path / "elsewhere")
        store.messages.append(sid, "user", "still the same file")
        assert store.path == tmp_path / "chat.db"
        with pytest.raises(InvalidInput, match="own file"):
            store.export_file(sid, tmp_path / "chat.db-wal", overwrite=True)
        out = store.export_file(sid, "copy.json")
    assert out == tmp_path / "elsewhere" / "copy.json"
    assert not (tmp_path / "elsewhere" / "chat.db").exists()


def test_memory_url_query_parameters_are_refused() -> None:
    with pytest.raises(InvalidInput, match="no query parameters"):
        SessionStore.open("sqlite:///:memory:?cache=shared")
