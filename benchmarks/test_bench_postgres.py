"""PostgreSQL: ours against raw ``psycopg`` running the same statements (``pg_raw.py``).

A throwaway server (``tests/pgserver.py``, the test suite's own: the
system's binaries, ``fsync=off``, so both sides measure the statements and
the round trips, not the disk). The store creates the schema; the raw side
runs the library's SQL text, rendered for PostgreSQL, on one bare
connection. Rows: an append (held to 1.3x), ``recent(50)`` of a long
session, a history page after the middle of it and ``sessions.list(20)``
(each held to 1.5x), each timed alternately with its raw twin in shuffled
order (medians of both), and 32 concurrent writers from 4 processes (8
threads each, every thread on its own session; wall time and errors).
Skipped where no PostgreSQL binaries are installed.
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from modes import scale
from pg_raw import MESSAGE, PgRaw

from sessionstore import SessionStore

ROOT = Path(__file__).resolve().parent.parent
SIDES = ("ours", "raw")
SESSION = scale().read_session
PROCESSES, THREADS = 4, 8
PER_THREAD = 10 if scale().name == "quick" else 50
ROUNDS = 100 if scale().name == "quick" else 500


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from pgserver import PostgresServer, find_bindir
    finally:
        sys.path.remove(str(ROOT / "tests"))
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found")
    server = PostgresServer(bindir)
    server.start()
    try:
        yield server.create_database()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pg(pg_url: str) -> Iterator[dict[str, Any]]:
    """Our store and the raw layer on one database; a long session and 2,000 others."""
    store = SessionStore.open(pg_url)
    main = store.sessions.create("gpt-4o").session_id
    for first in range(0, SESSION, 5000):
        batch = min(5000, SESSION - first)
        store.messages.append_many(main, [{"role": "user", "content": MESSAGE}] * batch)
    for _ in range(200):
        store.sessions.create("gpt-4o")
    raw = PgRaw(pg_url)
    try:
        yield {"url": pg_url, "ours": store, "raw": raw, "main": main}
    finally:
        raw.close()
        store.close()


def _paired(
    benchmark: Any,
    op: str,
    title: str,
    target: str,
    ours: Callable[[], Any],
    raw: Callable[[], Any],
    rounds: int = ROUNDS,
) -> None:
    """Time ours and raw alternately, in shuffled order, and record both medians.

    Interleaved, both sides see the same machine load (the server's backends
    share the cores with the client): run one after the other, a load change
    between the two runs shows up as a ratio.
    """
    timings: dict[str, list[float]] = {"ours": [], "raw": []}
    sides = [("ours", ours), ("raw", raw)]
    rng = random.Random(15)
    for _ in range(rounds // 10):
        ours()
        raw()

    def measure() -> None:
        for _ in range(rounds):
            rng.shuffle(sides)
            for name, call in sides:
                started = time.perf_counter()
                call()
                timings[name].append(time.perf_counter() - started)

    benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.group = title
    benchmark.extra_info.update(
        kind="op", op=op, side="ours", title=title, target=target,
        value=statistics.median(timings["ours"]), baseline_value=statistics.median(timings["raw"]),
        rounds=rounds,
    )  # fmt: skip


def test_pg_append(benchmark: Any, pg: dict[str, Any]) -> None:
    store, raw = pg["ours"], pg["raw"]
    ours_id = store.sessions.create("gpt-4o").session_id
    raw_id = store.sessions.create("gpt-4o").session_id
    _paired(
        benchmark, "pg_append", "pg: append 200 B", "pg_write",
        lambda: store.messages.append(ours_id, "user", MESSAGE),
        lambda: raw.append(raw_id, "user", MESSAGE),
    )  # fmt: skip
    counts = {store.sessions.get(sid).message_count for sid in (ours_id, raw_id)}
    assert counts == {ROUNDS + ROUNDS // 10}


def test_pg_recent(benchmark: Any, pg: dict[str, Any]) -> None:
    store, raw, main = pg["ours"], pg["raw"], pg["main"]
    assert len(store.messages.recent(main, 50)) == len(raw.recent(main, 50)) == 50
    _paired(
        benchmark, "pg_recent", f"pg: recent(50) of {SESSION:,}", "pg_read",
        lambda: store.messages.recent(main, 50), lambda: raw.recent(main, 50),
    )  # fmt: skip


def test_pg_history_page(benchmark: Any, pg: dict[str, Any]) -> None:
    store, raw, main = pg["ours"], pg["raw"], pg["main"]
    depth = SESSION // 2
    cursor = None
    for _ in range(depth // 1000):
        cursor = store.messages.history(main, limit=1000, cursor=cursor).next_cursor
    page = store.messages.history(main, limit=50, cursor=cursor)
    assert page.items[0].sequence_number == raw.history(main, after=depth)[0][1] == depth + 1
    _paired(
        benchmark, "pg_history", f"pg: history page after {depth:,}", "pg_read",
        lambda: store.messages.history(main, limit=50, cursor=cursor),
        lambda: raw.history(main, limit=50, after=depth),
    )  # fmt: skip


def test_pg_list(benchmark: Any, pg: dict[str, Any]) -> None:
    store, raw = pg["ours"], pg["raw"]
    assert len(store.sessions.list(limit=20).items) == len(raw.list_sessions(20)) == 20
    _paired(
        benchmark, "pg_list", "pg: sessions.list(20)", "pg_read",
        lambda: store.sessions.list(limit=20), lambda: raw.list_sessions(20),
    )  # fmt: skip


def _label(benchmark: Any, op: str, side: str, title: str, target: str) -> None:
    benchmark.group = title
    benchmark.extra_info.update(kind="op", op=op, side=side, title=title, target=target)


@pytest.mark.parametrize("side", SIDES)
def test_pg_concurrent_writers(
    benchmark: Any, pg: dict[str, Any], side: str, tmp_path: Path
) -> None:
    """32 writers: 4 processes x 8 threads, each thread appending to its own session."""
    title = f"pg: {PROCESSES} procs x {THREADS} thr x {PER_THREAD}"
    store = pg["ours"]
    ids = [[store.sessions.create("gpt-4o").session_id for _ in range(THREADS)]
           for _ in range(PROCESSES)]  # fmt: skip
    go = tmp_path / "go"
    figures: dict[str, Any] = {}

    def run() -> None:
        workers = [
            subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("pg_raw.py")), side, pg["url"],
                 ",".join(group), str(PER_THREAD), str(go)],
                stdout=subprocess.PIPE, text=True,
            )
            for group in ids
        ]  # fmt: skip
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("go.ready-*"))) < PROCESSES:
            if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
                raise RuntimeError("a writer process did not start")
            time.sleep(0.01)
        started = time.perf_counter()
        go.touch()
        results = [json.loads(w.communicate(timeout=600)[0]) for w in workers]
        figures["wall"] = time.perf_counter() - started
        figures["errors"] = sum(r["errors"] for r in results)
        figures["sample"] = [s for r in results for s in r["sample"]][:3]

    benchmark.pedantic(run, rounds=1, iterations=1)
    _label(benchmark, "pg_writers", side, title, "pg_write")
    benchmark.extra_info.update(value=figures["wall"], errors=figures["errors"])
    assert figures["errors"] == 0, figures["sample"]
    counts = {store.sessions.get(sid).message_count for group in ids for sid in group}
    assert counts == {PER_THREAD}
