"""Disk full, three ways, on real SQLite files: typed error, nothing half-written, recovery.

Each test appends numbered messages to one session until the storage refuses,
then proves: the refusal is a typed :class:`SessionStoreError` of the class
named below; the refused message is not stored (not in the history, not in the
search index); every earlier message is there, sequence numbers ``1..n`` with
exact contents and an exact count; and once space is given back the very next
append succeeds with sequence number ``n + 1`` and ``health.check()`` is ok.

* (a) ``PRAGMA max_page_count``: SQLite's own page limit → ``SQLITE_FULL`` →
  :class:`StorageFullError`. The pragma is per connection and
  ``SessionStore.open`` has no per-connection hook (``engine_options`` only
  reach ``create_engine``), so the test builds the engine the way ``open``
  does (``sessionstore.engine.build_engine``), adds a ``connect`` listener
  before the first connection exists, and hands it to
  ``SessionStore.from_engine``: every pooled connection, those the hot path
  keeps included, is born with the limit (read back to be sure). Space comes
  back when a ballast table is dropped from another connection: its pages go
  to the free list, which the limited connections reuse.
* (b) ``RLIMIT_FSIZE`` in a forked child (``SIGXFSZ`` ignored): ``write()``
  fails with ``EFBIG``. SQLite's unix VFS maps only ``ENOSPC`` (or a short
  write, which it retries until the ``EFBIG``) to ``SQLITE_FULL``; ``EFBIG``
  is ``SQLITE_IOERR_WRITE``, so the typed error is :class:`StorageIOError`.
  Space comes back when the child raises its soft limit again.
* (c) a 2 MiB tmpfs mounted for the test: ``ENOSPC`` → ``SQLITE_FULL`` →
  :class:`StorageFullError`; space comes back when a ballast file is removed.
  Skipped, with the reason, where mounting is not allowed.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import sqlite3
import subprocess
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from sessionstore import (
    MessageRecord,
    NewMessage,
    SessionStore,
    SessionStoreError,
    StorageFullError,
    StorageIOError,
    StoreConfig,
)
from sessionstore.engine import build_engine

pytestmark = pytest.mark.reliability

FILLER = " ".join(f"w{i}" for i in range(400))  # ~2 KB of indexable words


def content(i: int) -> str:
    return f"fill-{i:05d} {FILLER}"


def fill(store: SessionStore, sid: str, most: int = 5000) -> tuple[int, SessionStoreError]:
    """Append ``content(0), content(1), …`` until the store refuses; how many, and the error."""
    for i in range(most):
        try:
            record = store.messages.append(sid, "user", content(i))
        except SessionStoreError as exc:
            return i, exc
        assert record.sequence_number == i + 1
    raise AssertionError(f"{most} appends and the storage never filled up")


def full_history(store: SessionStore, sid: str) -> list[MessageRecord]:
    items: list[MessageRecord] = []
    cursor: str | None = None
    while True:
        page = store.messages.history(sid, limit=1000, cursor=cursor)
        items.extend(page)
        if page.next_cursor is None:
            return items
        cursor = page.next_cursor


def assert_exactly(store: SessionStore, sid: str, n: int, extra: tuple[str, ...] = ()) -> None:
    """Messages 1..n are content(0..n-1) then ``extra``; the refused content(n) is nowhere."""
    expected = [(i + 1, content(i)) for i in range(n)]
    expected += [(n + 1 + j, text) for j, text in enumerate(extra)]
    stored = [(m.sequence_number, m.content) for m in full_history(store, sid)]
    assert stored == expected
    assert store.sessions.get(sid).message_count == len(expected)
    assert store.search.messages(f"fill-{n:05d}").items == ()
    if n:
        hits = store.search.messages(f"fill-{n - 1:05d}").items
        assert [h.message.sequence_number for h in hits] == [n]


def sqlite_pragma(path: Path, name: str) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return int(conn.execute(f"PRAGMA {name}").fetchone()[0])


# --- (a) PRAGMA max_page_count ---------------------------------------------------------


def test_page_limit_gives_storage_full_error_and_recovers(tmp_path: Path) -> None:
    path = tmp_path / "limited.db"
    url = f"sqlite:///{path}"
    SessionStore.open(url).close()
    with contextlib.closing(sqlite3.connect(path)) as raw:
        raw.execute("CREATE TABLE ballast (b BLOB)")
        raw.execute("INSERT INTO ballast VALUES (zeroblob(256 * 1024))")
        raw.commit()
    limit = sqlite_pragma(path, "page_count") + 24

    engine = build_engine(StoreConfig(url=url))

    @event.listens_for(engine, "connect")
    def _limit_pages(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count = {limit}")

    try:
        store = SessionStore.from_engine(engine)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA max_page_count").scalar() == limit
            conn.rollback()
        sid = store.sessions.create("m", title="t").session_id
        n, error = fill(store, sid)
        print(f"\n(a) max_page_count={limit}: {n} appends, then {type(error).__name__}: {error}")
        assert type(error) is StorageFullError, repr(error)
        assert "nothing was changed" in str(error)
        assert n > 0
        assert sqlite_pragma(path, "page_count") <= limit
        assert_exactly(store, sid, n)

        # A batch at the limit: all of it refused, none of it stored.
        batch = [NewMessage("user", content(n + k)) for k in range(3)]
        with pytest.raises(StorageFullError):
            store.messages.append_many(sid, batch)
        assert_exactly(store, sid, n)

        # Space comes back: another connection drops the ballast.
        with contextlib.closing(sqlite3.connect(path)) as raw:
            raw.execute("DROP TABLE ballast")
            raw.commit()
        after = store.messages.append(sid, "assistant", "space is back")
        assert after.sequence_number == n + 1
        assert_exactly(store, sid, n, ("space is back",))
        report = store.health.check()
        assert report.ok, report.failed
        store.close()
    finally:
        engine.dispose()


# --- (b) RLIMIT_FSIZE in a forked child --------------------------------------------------


def _child(url: str, sid: str, allowance: int, out: int) -> None:
    """Runs in the forked child: fill under a file-size limit, lift it, append once more."""
    result: dict[str, Any] = {}
    try:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        path = url.removeprefix("sqlite:///")
        store = SessionStore.open(url)
        largest = max(os.path.getsize(f) for f in (path, f"{path}-wal") if os.path.exists(f))
        _soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (largest + allowance, hard))
        n, error = fill(store, sid)
        result.update(n=n, error=type(error).__name__, message=str(error))
        result["limit"] = largest + allowance
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
        after = store.messages.append(sid, "assistant", "space is back")
        result["next_seq"] = after.sequence_number
        result["health_ok"] = store.health.check().ok
        store.close()
    except BaseException:
        result["crash"] = traceback.format_exc()
    os.write(out, json.dumps(result).encode())


def test_file_size_limit_in_a_forked_child(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fsize.db'}"
    with SessionStore.open(url) as store:
        sid = store.sessions.create("m", title="t").session_id
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(read_end)
            _child(url, sid, 256 * 1024, write_end)
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    result = json.loads(b"".join(chunks))
    assert "crash" not in result, result.get("crash")
    n = result["n"]
    print(f"\n(b) RLIMIT_FSIZE={result['limit']} bytes: {n} appends, "
          f"then {result['error']}: {result['message']}")  # fmt: skip
    # EFBIG is SQLITE_IOERR_WRITE in SQLite's unix VFS (only ENOSPC is SQLITE_FULL).
    assert result["error"] == StorageIOError.__name__
    assert n > 0
    assert result["next_seq"] == n + 1
    assert result["health_ok"] is True
    with SessionStore.open(url) as store:
        assert_exactly(store, sid, n, ("space is back",))
        assert store.health.check().ok


# --- (c) a tiny tmpfs ------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(mountpoint: Path, size: str) -> Iterator[Path]:
    mountpoint.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mountpoint)],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as exc:
        pytest.skip(f"cannot run mount: {exc}")
    if done.returncode != 0:
        pytest.skip(f"this machine does not allow mounting a tmpfs: {done.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        if subprocess.run(["umount", str(mountpoint)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_tiny_tmpfs_gives_storage_full_error_and_recovers(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "2m") as mnt:
        ballast = mnt / "ballast"
        ballast.write_bytes(b"\0" * (256 * 1024))
        url = f"sqlite:///{mnt / 'full.db'}"
        store = SessionStore.open(url)
        try:
            sid = store.sessions.create("m", title="t").session_id
            n, error = fill(store, sid)
            print(f"\n(c) tmpfs of 2 MiB: {n} appends, then {type(error).__name__}: {error}")
            assert type(error) is StorageFullError, repr(error)
            assert n > 0
            assert_exactly(store, sid, n)
            ballast.unlink()
            assert store.messages.append(sid, "assistant", "space is back").sequence_number == n + 1
            assert_exactly(store, sid, n, ("space is back",))
            assert store.health.check().ok
        finally:
            store.close()
        with SessionStore.open(url) as reopened:
            assert_exactly(reopened, sid, n, ("space is back",))
