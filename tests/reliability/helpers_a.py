"""Shared machinery of the crash, storm, lock and backup tests (part A of the battery).

Real processes only: :func:`fork_call` runs a function in a forked child that
reports through pipes and ends with ``os._exit``; :func:`sigkill` delivers a
real ``SIGKILL`` and reaps the child. The database is always inspected with
plain :mod:`sqlite3` connections of the test's own, never through the code
under test, so a check cannot share a bug with what it checks.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import sqlite3
import sys
import time
import traceback
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sessionstore import SessionStore
from sessionstore.config import StoreConfig
from sessionstore.engine import build_engine

__all__ = [
    "LineReader",
    "SessionView",
    "assert_sequences_exact",
    "child_exit_code",
    "dump",
    "fork_call",
    "open_at_head",
    "quick_check",
    "raw",
    "read_sessions",
    "sigkill",
    "wait_child",
]


def fork_call(work: Callable[[], None]) -> int:
    """Run ``work()`` in a forked child; it exits 0 on success, 1 with a traceback on error."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            work()
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
    return pid


def open_at_head(path: str | Path, **options: Any) -> SessionStore:
    """A store on a file known to be at head, without the migration check on opening.

    ``SessionStore.open`` scans the Alembic scripts (about 45 ms); in a loop of
    hundreds of trials that would be most of the time. The engine and the store
    are built exactly as ``open`` builds them otherwise.
    """
    config = StoreConfig.from_env(f"sqlite:///{path}", **options)
    return SessionStore(build_engine(config), config=config, owns_engine=True)


def sigkill(pid: int) -> None:
    """``kill -9`` the child and reap it (a child already gone is reaped all the same)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def child_exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def wait_child(pid: int, timeout: float) -> int:
    """The child's exit code; on timeout it is killed and the test fails."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return child_exit_code(status)
        if time.monotonic() > deadline:
            sigkill(pid)
            raise AssertionError(f"child {pid} did not finish within {timeout} s")
        time.sleep(0.005)


class LineReader:
    """Whole lines from a pipe's read end; the writer sends each line in one ``write``."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = b""
        self.eof = False

    def _fill(self, timeout: float | None) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return False
        chunk = os.read(self.fd, 65536)
        if not chunk:
            self.eof = True
        self._buffer += chunk
        return True

    def line(self, timeout: float) -> str | None:
        """The next line (without newline), or None at end of file; fails on timeout."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            if self.eof:
                return None
            left = deadline - time.monotonic()
            if left <= 0 or not self._fill(left):
                raise AssertionError(f"no line from the child within {timeout} s")
        head, _, self._buffer = self._buffer.partition(b"\n")
        return head.decode()

    def rest(self, timeout: float = 30.0) -> list[str]:
        """Every remaining complete line, up to end of file (the writer is dead or done)."""
        lines: list[str] = []
        while True:
            item = self.line(timeout)
            if item is None:
                # A torn last line cannot happen: each line is one write below PIPE_BUF.
                assert self._buffer == b"", f"a partial line arrived: {self._buffer!r}"
                return lines
            lines.append(item)

    def close(self) -> None:
        os.close(self.fd)


def raw(path: str | Path, timeout: float = 30.0, *, readonly: bool = False) -> sqlite3.Connection:
    """A plain connection of the test's own (autocommit, a busy timeout).

    ``readonly`` connections never checkpoint the WAL when they close, so checking a
    file between two kills leaves it exactly as the killed process left it.
    """
    if readonly:
        uri = f"file:{urllib.parse.quote(os.fspath(Path(path).absolute()))}?mode=ro"
        return sqlite3.connect(uri, timeout=timeout, isolation_level=None, uri=True)
    return sqlite3.connect(os.fspath(path), timeout=timeout, isolation_level=None)


def quick_check(target: str | Path | sqlite3.Connection, pragma: str = "quick_check") -> str:
    """``PRAGMA quick_check`` (or ``integrity_check``) on a path or an open connection."""
    if isinstance(target, sqlite3.Connection):
        return "; ".join(str(r[0]) for r in target.execute(f"PRAGMA {pragma}"))
    with contextlib.closing(raw(target)) as conn:
        return "; ".join(str(r[0]) for r in conn.execute(f"PRAGMA {pragma}"))


_QUARANTINE_TIME = re.compile(r"'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?'\);$")


def dump(path: str | Path, *, mask_quarantine_time: bool = False) -> list[str]:
    """The file's logical content as ``iterdump`` writes it (schema, rows, sequences).

    ``mask_quarantine_time`` blanks the one column an upgrade fills with the wall
    clock (when an orphan was quarantined), so two upgrades compare equal.
    """
    with contextlib.closing(raw(path)) as conn:
        lines = list(conn.iterdump())
    if mask_quarantine_time:
        lines = [
            _QUARANTINE_TIME.sub("'<now>');", line)
            if line.startswith('INSERT INTO "quarantined_')
            else line
            for line in lines
        ]
    return lines


@dataclass
class SessionView:
    """One session as stored: its counters and its messages in sequence order."""

    message_count: int
    last_seq: int
    status: str
    #: (sequence_number, message_id, content), ordered by sequence number.
    messages: list[tuple[int, int, str]] = field(default_factory=list)


def read_sessions(conn: sqlite3.Connection) -> dict[str, SessionView]:
    """Every session with its messages, read in one transaction (one snapshot)."""
    conn.execute("BEGIN")
    try:
        views = {
            sid: SessionView(count, last, status)
            for sid, count, last, status in conn.execute(
                "SELECT session_id, message_count, last_seq, status FROM sessions"
            )
        }
        for sid, seq, mid, content in conn.execute(
            "SELECT session_id, sequence_number, message_id, content FROM messages"
            " ORDER BY session_id, sequence_number"
        ):
            views[sid].messages.append((seq, mid, content))
    finally:
        conn.execute("ROLLBACK")
    return views


def assert_sequences_exact(views: dict[str, SessionView]) -> int:
    """Each session numbered 1..n without gap or duplicate, counters equal to n; total rows."""
    total = 0
    for sid, view in views.items():
        n = len(view.messages)
        seqs = [m[0] for m in view.messages]
        assert seqs == list(range(1, n + 1)), f"{sid}: sequence numbers are not 1..{n}"
        assert len({m[1] for m in view.messages}) == n, f"{sid}: duplicate message ids"
        assert view.message_count == n, f"{sid}: message_count {view.message_count} != {n} rows"
        assert view.last_seq == n, f"{sid}: last_seq {view.last_seq} != {n}"
        total += n
    return total
