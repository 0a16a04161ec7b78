"""The append storm (item 3): 4 processes x 4 threads x 250 appends, with readers throughout.

What is proved here, on a real SQLite file with real forked processes: 4,000
appends (``append`` and one-message ``append_many`` in turn) made at once by
16 writer threads in 4 processes — once all into one session, once spread
over eight — are all acknowledged and all stored, each
exactly as acknowledged (id, session, sequence number, content); every session
is numbered 1..n with no gap or duplicate and its ``message_count`` and
``last_seq`` equal n; not one writer or reader sees "database is locked" or
any :class:`StoreBusyError` (or any error at all); and reader threads that
page the history and search the whole time only ever see a prefix 1..k of a
session (every paged view contiguous from 1, never shrinking), with the
session's count in step. The wall time of each storm is printed.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest

from sessionstore import SessionStore

from .helpers_a import (
    LineReader,
    assert_sequences_exact,
    fork_call,
    raw,
    read_sessions,
    wait_child,
)

pytestmark = pytest.mark.reliability

PROCESSES = 4
THREADS = 4
APPENDS = 250
STORM_TIMEOUT = 240.0


def _worker(
    url: str, sessions: list[str], process: int, go: tuple[int, int], ack: int, out: Path
) -> None:
    """One writer process: 4 threads x 250 appends, released together by the parent."""
    os.close(go[1])  # only the parent holds the write end: its close releases everyone
    store = SessionStore.open(url)
    os.write(ack, b"R\n")
    os.read(go[0], 1)  # end of file: the parent let everyone go at once
    acks: list[list[object]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def writer(thread: int) -> None:
        index = process * THREADS + thread
        session_id = sessions[index % len(sessions)]
        mine: list[list[object]] = []
        try:
            for i in range(APPENDS):
                content = f"storm p{process} t{thread} i{i} tok{process}x{thread}x{i}"
                if i % 2 == 0:  # both write paths: the hot INSERT ... SELECT and the batch
                    record = store.messages.append(session_id, "user", content)
                else:
                    (record,) = store.messages.append_many(
                        session_id, [{"role": "user", "content": content}]
                    )
                mine.append([record.message_id, session_id, record.sequence_number, content])
        except Exception as exc:
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}")
        with lock:
            acks.extend(mine)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    out.write_text(json.dumps({"acks": acks, "errors": errors}))


@dataclass
class ReaderFigures:
    pages: int = 0
    histories: int = 0
    searches: int = 0
    errors: list[str] = field(default_factory=list)
    not_prefix: list[str] = field(default_factory=list)


def _pager(
    store: SessionStore, sessions: list[str], stop: threading.Event, figures: ReaderFigures
) -> None:
    seen = dict.fromkeys(sessions, 0)
    rng = random.Random(1)
    while not stop.is_set():
        session_id = rng.choice(sessions)
        try:
            numbers: list[int] = []
            cursor: str | None = None
            while True:
                page = store.messages.history(session_id, limit=rng.randint(7, 60), cursor=cursor)
                figures.pages += 1
                numbers.extend(m.sequence_number for m in page)
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            figures.histories += 1
            if numbers != list(range(1, len(numbers) + 1)):
                figures.not_prefix.append(f"{session_id}: {numbers[:5]}..{numbers[-5:]}")
            if len(numbers) < seen[session_id]:
                figures.not_prefix.append(f"{session_id}: shrank to {len(numbers)}")
            seen[session_id] = len(numbers)
            session = store.sessions.get(session_id)
            if not session.message_count == session.last_seq >= len(numbers):
                figures.not_prefix.append(
                    f"{session_id}: count {session.message_count}, last_seq "
                    f"{session.last_seq}, paged {len(numbers)}"
                )
        except Exception as exc:
            figures.errors.append(f"{type(exc).__name__}: {exc}")


def _searcher(
    store: SessionStore, sessions: list[str], stop: threading.Event, figures: ReaderFigures
) -> None:
    rng = random.Random(2)
    known = set(sessions)
    while not stop.is_set():
        try:
            query = rng.choice(["storm", f"tok{rng.randrange(PROCESSES)}x0x{rng.randrange(50)}"])
            page = store.search.sessions(query, limit=10)
            figures.searches += 1
            strangers = {hit.session.session_id for hit in page} - known
            if strangers:
                figures.not_prefix.append(f"search found unknown sessions {strangers}")
        except Exception as exc:
            figures.errors.append(f"{type(exc).__name__}: {exc}")


@pytest.mark.parametrize("session_count", [1, 8], ids=["one-session", "eight-sessions"])
def test_append_storm_4_processes_4_threads_250_appends(tmp_path: Path, session_count: int) -> None:
    path = tmp_path / "storm.db"
    url = f"sqlite:///{path}"
    with SessionStore.open(url) as store:
        sessions = [store.sessions.create(f"model-{i}").session_id for i in range(session_count)]

    go_r, go_w = os.pipe()
    pids: list[int] = []
    outs: list[Path] = []
    readers: list[LineReader] = []
    for process in range(PROCESSES):
        ack_r, ack_w = os.pipe()
        out = tmp_path / f"worker{process}.json"
        pids.append(fork_call(partial(_worker, url, sessions, process, (go_r, go_w), ack_w, out)))
        os.close(ack_w)
        outs.append(out)
        readers.append(LineReader(ack_r))
    os.close(go_r)
    for reader in readers:
        assert reader.line(60) == "R", "a writer process did not start"
        reader.close()

    figures = ReaderFigures()
    stop = threading.Event()
    with SessionStore.open(url) as reading:
        threads = [
            threading.Thread(target=_pager, args=(reading, sessions, stop, figures)),
            threading.Thread(target=_pager, args=(reading, sessions, stop, figures)),
            threading.Thread(target=_searcher, args=(reading, sessions, stop, figures)),
        ]
        for thread in threads:
            thread.start()
        started = time.monotonic()
        os.close(go_w)  # every writer process is released at the same moment
        try:
            codes = [wait_child(pid, STORM_TIMEOUT) for pid in pids]
        finally:
            wall = time.monotonic() - started
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
        assert codes == [0] * PROCESSES, f"writer processes exited with {codes}"

    acks: list[list[object]] = []
    errors: list[str] = []
    for out in outs:
        result = json.loads(out.read_text())
        acks += result["acks"]
        errors += result["errors"]
    with closing(raw(path)) as conn:
        views = read_sessions(conn)
    rows = assert_sequences_exact(views)
    stored = {
        mid: (sid, seq, content) for sid, v in views.items() for seq, mid, content in v.messages
    }
    lost = [a for a in acks if stored.get(int(str(a[0]))) != (a[1], a[2], a[3])]
    busy = [e for e in errors + figures.errors if "locked" in e or "Busy" in e or "busy" in e]
    expected = PROCESSES * THREADS * APPENDS
    print(
        f"\n[append storm, {session_count} session(s)] {PROCESSES}x{THREADS}x{APPENDS}: "
        f"acknowledged={len(acks)}, rows={rows}, losses={len(lost)}, "
        f"duplicate ids={len(acks) - len({a[0] for a in acks})}, "
        f"busy/locked errors={len(busy)}, other errors={len(errors) + len(figures.errors)}, "
        f"reader histories={figures.histories} (pages={figures.pages}), "
        f"searches={figures.searches}, non-prefix views={len(figures.not_prefix)}, "
        f"wall={wall:.1f}s ({expected / wall:.0f} appends/s)"
    )
    assert errors == [], errors[:5]
    assert figures.errors == [], figures.errors[:5]
    assert busy == []
    assert len(acks) == expected
    assert rows == expected
    assert len({a[0] for a in acks}) == expected
    assert lost == []
    assert figures.not_prefix == [], figures.not_prefix[:5]
    assert figures.histories > 0 and figures.searches > 0, "the readers never read"
    for sid in sessions:
        assert views[sid].message_count == expected // session_count
    with SessionStore.open(url) as store:
        report = store.health.check()
        assert report.ok, report.failed
