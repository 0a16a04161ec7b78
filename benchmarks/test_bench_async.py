"""The async store against the sync store, and against SQLAlchemy's asyncio layer.

* **Latency** (SQLite): ``append`` to a fresh session and ``recent(50)`` on a
  session of ``read_session`` messages, timed call by call (the p50 of
  ``CALLS`` calls, a warm-up first) in the same run: the sync store called
  directly; :class:`AsyncSessionStore` awaited from one task (a lane
  thread's hand-off each way); and the same repository code run through
  SQLAlchemy's asyncio extension (``AsyncEngine`` on aiosqlite,
  ``conn.run_sync``), the design the async store did not take.
* **Throughput**: 64 tasks x ``per_task`` appends, all to one session and
  each to its own, on SQLite and PostgreSQL: wall time and errors (every
  message must be stored, sequence numbers 1..n per session), against the
  sync store written by 8 threads doing the same appends.

Each row's figure is in ``extra_info`` (``value``, the baseline in
``baseline_value``, errors in ``errors``); the rows are reported, not
judged (no target). Titles: ``async`` is :class:`AsyncSessionStore`,
``SQLA asyncio`` the run_sync way, ``/ sync`` the sync store's p50 in the
same run, ``/ 8 thr`` the sync store written by 8 threads.
"""

from __future__ import annotations

import asyncio
import importlib.util
import statistics
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from modes import scale
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from sessionstore import SessionStore
from sessionstore.aio import AsyncSessionStore
from sessionstore.messages import MessageRepository
from sessionstore.store import utc_now
from sessionstore.transactions import TransactionRunner

SCALE = scale()
QUICK = SCALE.name == "quick"
CALLS = 300 if QUICK else 2000
TASKS = 64
PER_TASK = 20 if QUICK else 100
THREADS = 8
RECENT_SESSION = SCALE.read_session


def _row(benchmark: Any, op: str, title: str, value: float, baseline: float, **extra: Any) -> None:
    benchmark.group = title
    benchmark.extra_info.update(
        kind="op",
        op=op,
        side="ours",
        title=title,
        target=None,
        value=value,
        baseline_value=baseline,
        **extra,
    )


def _p50(samples: list[float]) -> float:
    return statistics.median(samples)


# --- the three ways to call the store ---------------------------------------------------------


def _sync_p50(call: Callable[[], Any]) -> float:
    for _ in range(CALLS // 10):
        call()
    samples = []
    for _ in range(CALLS):
        began = time.perf_counter()
        call()
        samples.append(time.perf_counter() - began)
    return _p50(samples)


async def _async_p50(call: Callable[[], Awaitable[Any]]) -> float:
    for _ in range(CALLS // 10):
        await call()
    samples = []
    for _ in range(CALLS):
        began = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - began)
    return _p50(samples)


class SqlaAsync:
    """The store's own repository code, run by SQLAlchemy's asyncio layer on aiosqlite.

    The engine gets the store's connection setup: driver autocommit, the same
    pragmas, ``BEGIN IMMEDIATE`` for writes (``BEGIN`` for reads) emitted from
    the ``begin`` event, as SQLAlchemy's aiosqlite notes describe.
    """

    def __init__(self, path: Path, store: SessionStore) -> None:
        self.engine: AsyncEngine = create_async_engine(f"sqlite+aiosqlite:///{path}")
        self._config = store.config

        @event.listens_for(self.engine.sync_engine, "connect")
        def setup(dbapi: Any, _record: Any) -> None:
            dbapi.isolation_level = None
            cursor = dbapi.cursor()
            for pragma in (
                "foreign_keys = ON",
                "busy_timeout = 10000",
                "synchronous = NORMAL",
                "cache_size = -16384",
                "temp_store = MEMORY",
            ):
                cursor.execute(f"PRAGMA {pragma}")
            cursor.close()

        @event.listens_for(self.engine.sync_engine, "begin")
        def begin(conn: Any) -> None:
            conn.exec_driver_sql(conn.get_execution_options().get("begin", "BEGIN IMMEDIATE"))

        self._reader = self.engine.execution_options(begin="BEGIN")

    def _messages(self, conn: Any) -> MessageRepository:
        return MessageRepository(
            TransactionRunner(conn, path=None),
            utc_now,
            max_content_bytes=self._config.max_content_bytes,
            max_payload_bytes=self._config.max_payload_bytes,
        )

    async def append(self, session_id: str, content: str) -> Any:
        async with self.engine.begin() as conn:
            return await conn.run_sync(
                lambda sync: self._messages(sync).append(session_id, "user", content)
            )

    async def recent(self, session_id: str, n: int) -> Any:
        async with self._reader.begin() as conn:
            return await conn.run_sync(lambda sync: self._messages(sync).recent(session_id, n))


@pytest.fixture(scope="module")
def latency_file(bench_dir: Path) -> Iterator[tuple[Path, str]]:
    path = bench_dir / "async-latency.db"
    with SessionStore.open(f"sqlite:///{path}") as store:
        sid = store.sessions.create("gpt-4o").session_id
        for start in range(0, RECENT_SESSION, 5000):
            count = min(5000, RECENT_SESSION - start)
            store.messages.append_many(
                sid, [{"role": "user", "content": f"message {start + i}"} for i in range(count)]
            )
    yield path, sid


def _latencies(path: Path, read_sid: str) -> dict[str, dict[str, float]]:
    """p50 seconds per (way, operation), all measured in this one call."""
    figures: dict[str, dict[str, float]] = {}
    with SessionStore.open(f"sqlite:///{path}") as sync:
        write_sid = sync.sessions.create("gpt-4o").session_id
        figures["sync"] = {
            "append": _sync_p50(lambda: sync.messages.append(write_sid, "user", "hello")),
            "recent": _sync_p50(lambda: sync.messages.recent(read_sid, 50)),
        }
        assert len(sync.messages.recent(read_sid, 50)) == 50

        async def measure() -> None:
            async with await AsyncSessionStore.open(f"sqlite:///{path}") as store:
                sid = (await store.sessions.create("gpt-4o")).session_id
                figures["async"] = {
                    "append": await _async_p50(lambda: store.messages.append(sid, "user", "hello")),
                    "recent": await _async_p50(lambda: store.messages.recent(read_sid, 50)),
                }
            sqla = SqlaAsync(path, sync)
            try:
                sid = sync.sessions.create("gpt-4o").session_id
                figures["sqla"] = {
                    "append": await _async_p50(lambda: sqla.append(sid, "hello")),
                    "recent": await _async_p50(lambda: sqla.recent(read_sid, 50)),
                }
                assert len(await sqla.recent(read_sid, 50)) == 50
            finally:
                await sqla.engine.dispose()

        asyncio.run(measure())
    return figures


@pytest.fixture(scope="module")
def latencies(latency_file: tuple[Path, str]) -> dict[str, dict[str, float]]:
    return _latencies(*latency_file)


#: Row titles (the report's column is 40 characters wide).
WAYS = {"async": "async", "sqla": "SQLA asyncio"}


@pytest.mark.parametrize("op", ["append", "recent"])
@pytest.mark.parametrize("way", list(WAYS))
def test_async_latency(
    benchmark: Any, latencies: dict[str, dict[str, float]], way: str, op: str
) -> None:
    """p50 of one awaited call, against the sync store's p50 measured in the same run."""
    what = "append" if op == "append" else f"recent(50) of {RECENT_SESSION:,}"
    _row(
        benchmark,
        f"{way}_{op}",
        f"{WAYS[way]} {what} / sync",
        latencies[way][op],
        latencies["sync"][op],
    )
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


# --- 64 tasks against 8 threads ------------------------------------------------------------------


def _load_pgserver() -> Any:
    path = Path(__file__).resolve().parent.parent / "tests" / "pgserver.py"
    spec = importlib.util.spec_from_file_location("bench_pgserver", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def postgres() -> Iterator[Any]:
    pgserver = _load_pgserver()
    bindir = pgserver.find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found")
    server = pgserver.PostgresServer(bindir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _url(backend: str, bench_dir: Path, name: str, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{bench_dir / f'{name}.db'}"
    return str(request.getfixturevalue("postgres").create_database())


def _check(counts: dict[str, list[int]], per_session: int) -> int:
    """Errors: sessions whose sequence numbers are not exactly 1..n."""
    return sum(seqs != list(range(1, per_session + 1)) for seqs in counts.values())


async def _tasks(url: str, sessions: int) -> tuple[float, int]:
    async with await AsyncSessionStore.open(url) as store:
        sids = [(await store.sessions.create("gpt-4o")).session_id for _ in range(sessions)]
        errors = 0

        async def task(n: int) -> None:
            nonlocal errors
            sid = sids[n % sessions]
            for i in range(PER_TASK):
                try:
                    await store.messages.append(sid, "user", f"{n}-{i}")
                except Exception:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(task(n) for n in range(TASKS)))
        wall = time.perf_counter() - began
        per_session = TASKS * PER_TASK // sessions
        seqs = {sid: [m.sequence_number async for m in store.messages.iterate(sid)] for sid in sids}
        return wall, errors + _check(seqs, per_session)


def _threads(url: str, sessions: int) -> tuple[float, int]:
    with SessionStore.open(url) as store:
        sids = [store.sessions.create("gpt-4o").session_id for _ in range(sessions)]
        errors = 0
        lock = threading.Lock()
        # The same 64 x PER_TASK appends, handed out to 8 threads.
        work = [(n % sessions, f"{n}-{i}") for n in range(TASKS) for i in range(PER_TASK)]
        chunks = [work[k::THREADS] for k in range(THREADS)]
        barrier = threading.Barrier(THREADS + 1)

        def worker(chunk: list[tuple[int, str]]) -> None:
            nonlocal errors
            barrier.wait()
            for index, content in chunk:
                try:
                    store.messages.append(sids[index], "user", content)
                except Exception:
                    with lock:
                        errors += 1

        threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
        for thread in threads:
            thread.start()
        barrier.wait()
        began = time.perf_counter()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - began
        per_session = TASKS * PER_TASK // sessions
        seqs = {sid: [m.sequence_number for m in store.messages.iterate(sid)] for sid in sids}
        return wall, errors + _check(seqs, per_session)


@pytest.mark.parametrize("sessions", [1, TASKS], ids=["one_session", "64_sessions"])
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_64_tasks_against_8_threads(
    benchmark: Any, bench_dir: Path, request: pytest.FixtureRequest, backend: str, sessions: int
) -> None:
    """Wall time of 64 tasks x PER_TASK appends, against 8 sync threads doing the same."""
    rounds = 1 if QUICK else 3
    ours: list[float] = []
    theirs: list[float] = []
    errors = {"async": 0, "threads": 0}
    for r in range(rounds):
        wall, bad = asyncio.run(
            _tasks(_url(backend, bench_dir, f"t{sessions}-{r}", request), sessions)
        )
        ours.append(wall)
        errors["async"] += bad
        wall, bad = _threads(_url(backend, bench_dir, f"h{sessions}-{r}", request), sessions)
        theirs.append(wall)
        errors["threads"] += bad
    database = "pg" if backend == "postgresql" else backend
    _row(
        benchmark,
        f"tasks_{backend}_{sessions}",
        f"{TASKS} tasks x{PER_TASK}, {sessions} sess, {database} / 8 thr",
        statistics.median(ours),
        statistics.median(theirs),
        errors=errors,
    )
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    assert errors == {"async": 0, "threads": 0}
