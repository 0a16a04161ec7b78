"""Resource figures: memory per pooled connection, bytes on disk per message, 10 writer threads.

These are measurements more than timings; each still runs under the
``benchmark`` fixture (``pedantic``, few rounds) so that ``--benchmark-only``
keeps them and their figures land in the JSON's ``extra_info``, where
``report.py`` reads them.

* Memory: a store with a pool of 8 opens all 8 connections at once; the
  SQLite heap (``sqlite3_memory_used``, read through ctypes from the same
  ``libsqlite3`` the driver uses), the process RSS and ``tracemalloc`` are
  read before, after opening, after one hot query on each connection, and
  after each connection has read the whole 100,000-message table, which fills
  its page cache up to the ``PRAGMA cache_size`` bound.
* Disk: the same 20,000 messages (200 sessions of 100; quick: 40) in our layout (written
  through the store) and in the legacy layout (the DDL of revision 0001: its
  standalone FTS table whose triggers copy title and content per message),
  sizes after ``wal_checkpoint(TRUNCATE)`` and after ``VACUUM``, with the
  schema-only size subtracted, plus a per-object breakdown from ``dbstat``.
* Threads: 10 threads append 100 messages each (quick: 20) to one session
  through one store; wall time, errors (must be 0), the final count and the
  sequence numbers (exactly 1..count). The same with the raw baseline, one
  connection per thread, for comparison.

Each also records a row for ``report.py`` (``op``, ``side``, ``title``, and
for the figures that are not times ``value`` / ``baseline_value`` in
``unit``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import sqlite3
import threading
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from baseline import RECENT_SQL, RawStore, legacy_schema, utc_text
from modes import scale
from support import MODELS, Env, Texts, label, make_texts, open_store

from sessionstore import StoreConfig

SCALE = scale()
POOL = 8
THREADS = SCALE.threads
PER_THREAD = SCALE.per_thread
DISK_SESSIONS = SCALE.disk_sessions
DISK_PER_SESSION = 100


# --- memory ---------------------------------------------------------------------------


def _sqlite_memory_used() -> Callable[[], int] | None:
    """``sqlite3_memory_used()`` of the library the driver loaded, if it can be reached."""
    name = ctypes.util.find_library("sqlite3")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
        lib.sqlite3_memory_used.restype = ctypes.c_int64
        lib.sqlite3_libversion_number.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    if lib.sqlite3_libversion_number() != sqlite3.sqlite_version_info[0] * 1_000_000 + (
        sqlite3.sqlite_version_info[1] * 1000 + sqlite3.sqlite_version_info[2]
    ):
        return None  # another copy of SQLite: its counters are not the driver's
    return lambda: int(lib.sqlite3_memory_used())


def _rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def test_memory_per_pooled_connection(benchmark: Any, append_env: Env) -> None:
    """What each pooled connection costs: opened, after a hot query, with a full cache."""
    benchmark.group = "resources: memory per pooled connection"
    sqlite_used = _sqlite_memory_used()
    figures: dict[str, Any] = {}

    def snapshot() -> dict[str, int]:
        gc.collect()
        return {
            "sqlite_heap": sqlite_used() if sqlite_used else 0,
            "rss": _rss_bytes(),
            "python_heap": tracemalloc.get_traced_memory()[0],
        }

    def measure() -> None:
        store = open_store(append_env.path, pool_size=POOL, max_overflow=0)
        tracemalloc.start()
        try:
            base = snapshot()
            fairies = [store.engine.pool.connect() for _ in range(POOL)]
            opened = snapshot()
            for fairy in fairies:
                fairy.dbapi_connection.execute(
                    RECENT_SQL, (append_env.ids["big"], 50, 0)
                ).fetchall()
            hot = snapshot()
            for fairy in fairies:
                fairy.dbapi_connection.execute(
                    "SELECT count(*), sum(length(content)) FROM messages"
                ).fetchone()
            full = snapshot()
            cache_size = fairies[0].dbapi_connection.execute("PRAGMA cache_size").fetchone()[0]
            page_size = fairies[0].dbapi_connection.execute("PRAGMA page_size").fetchone()[0]
            for fairy in fairies:
                fairy.close()
        finally:
            tracemalloc.stop()
            store.close()
        for name, state in (("opened", opened), ("hot_query", hot), ("full_cache", full)):
            for key in base:
                figures[f"{key}_{name}_per_conn"] = (state[key] - base[key]) / POOL
        figures["cache_size_pragma"] = cache_size
        figures["page_size"] = page_size
        bound = -cache_size * 1024 if cache_size < 0 else cache_size * page_size
        figures["cache_bound_bytes_per_conn"] = bound
        defaults = StoreConfig()
        figures["default_pool_max_connections"] = defaults.pool_size + defaults.max_overflow
        figures["default_pool_worst_case_cache_bytes"] = bound * (
            defaults.pool_size + defaults.max_overflow
        )
        figures["db_file_bytes"] = os.path.getsize(append_env.path)
        figures["sqlite_heap_measured"] = sqlite_used is not None

    benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info.update(kind="memory", pool=POOL, **figures)
    heap = "sqlite_heap" if figures["sqlite_heap_measured"] else "rss"
    benchmark.extra_info.update(
        op="memory",
        side="ours",
        title="memory per pooled connection, cache full",
        target=None,
        value=figures[f"{heap}_full_cache_per_conn"],
        unit="B",
    )
    if sqlite_used is not None:
        # A full cache holds about the bound, never much more.
        assert (
            figures["sqlite_heap_full_cache_per_conn"]
            <= 1.25 * figures["cache_bound_bytes_per_conn"] + 2 * 1024 * 1024
        )


# --- disk -----------------------------------------------------------------------------


def _session_ids() -> list[str]:
    return [f"disk-{i:05d}-{'x' * 24}" for i in range(DISK_SESSIONS)]


def _messages() -> list[tuple[str, str, int, float | None]]:
    texts = make_texts(DISK_PER_SESSION * 4)
    return [
        (role, content, tokens, 1.5 if role == "assistant" else None)
        for role, content, tokens in texts
    ]


def _build_ours(path: Path) -> None:
    messages = _messages()
    with open_store(path) as store:
        for i, session_id in enumerate(_session_ids()):
            store.sessions.create(MODELS[i % len(MODELS)], session_id=session_id)
            start = (i * DISK_PER_SESSION) % len(messages)
            batch = [messages[(start + k) % len(messages)] for k in range(DISK_PER_SESSION)]
            store.messages.append_many(
                session_id,
                [{"role": r, "content": c, "tokens": t, "duration": d} for r, c, t, d in batch],
            )


def _build_legacy(path: Path) -> None:
    messages = _messages()
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        for statement in legacy_schema():
            conn.execute(statement)
        now = utc_text(datetime.now(UTC))
        for i, session_id in enumerate(_session_ids()):
            model = MODELS[i % len(MODELS)]
            start = (i * DISK_PER_SESSION) % len(messages)
            batch = [messages[(start + k) % len(messages)] for k in range(DISK_PER_SESSION)]
            conn.execute("BEGIN")
            conn.execute(
                "INSERT INTO sessions (session_id, created_at, updated_at, model_id,"
                " last_activity) VALUES (?, ?, ?, ?, ?)",
                (session_id, now, now, model, now),
            )
            conn.executemany(
                "INSERT INTO messages (session_id, sequence_number, role, content, timestamp,"
                " tokens_used, duration_seconds, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                [
                    (session_id, seq, r, c, now, t, d)
                    for seq, (r, c, t, d) in enumerate(batch, start=1)
                ],
            )
            conn.execute("COMMIT")
    finally:
        conn.close()


def _empty_legacy(path: Path) -> None:
    conn = sqlite3.connect(str(path), isolation_level=None)
    for statement in legacy_schema():
        conn.execute(statement)
    conn.close()


def _sizes(path: Path) -> dict[str, Any]:
    """Size after a checkpoint, after VACUUM, and what each table and index holds."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        checkpointed = os.path.getsize(path)
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        vacuumed = os.path.getsize(path)
        objects = conn.execute(
            "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"
        ).fetchall()
        wal = Path(f"{path}-wal")
        assert not wal.exists() or wal.stat().st_size == 0
    finally:
        conn.close()
    return {"checkpointed": checkpointed, "vacuumed": vacuumed, "objects": dict(objects)}


def test_disk_bytes_per_message(benchmark: Any, tmp_path: Path) -> None:
    """The same messages (20,000; quick: 4,000), our layout against the legacy one."""
    benchmark.group = "resources: bytes on disk per message"
    figures: dict[str, Any] = {}

    def measure() -> None:
        ours, legacy = tmp_path / "ours.db", tmp_path / "legacy.db"
        ours_empty, legacy_empty = tmp_path / "ours-empty.db", tmp_path / "legacy-empty.db"
        with open_store(ours_empty):
            pass
        _empty_legacy(legacy_empty)
        _build_ours(ours)
        _build_legacy(legacy)
        for name, full, empty in (("ours", ours, ours_empty), ("legacy", legacy, legacy_empty)):
            sized, base = _sizes(full), _sizes(empty)
            figures[f"{name}_file_checkpointed"] = sized["checkpointed"]
            figures[f"{name}_file_vacuumed"] = sized["vacuumed"]
            figures[f"{name}_schema_only"] = base["vacuumed"]
            figures[f"{name}_bytes_per_message"] = (sized["vacuumed"] - base["vacuumed"]) / (
                DISK_SESSIONS * DISK_PER_SESSION
            )
            figures[f"{name}_objects"] = sized["objects"]
        conn = sqlite3.connect(str(ours))
        stored = conn.execute("SELECT count(*), sum(length(CAST(content AS BLOB))) FROM messages")
        count, content_bytes = stored.fetchone()
        conn.close()
        figures["messages"] = count
        figures["content_bytes_per_message"] = content_bytes / count

    benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info.update(kind="disk", **figures)
    benchmark.extra_info.update(
        op="disk",
        side="ours",
        title="bytes on disk per message (vs legacy)",
        target=None,
        value=figures["ours_bytes_per_message"],
        baseline_value=figures["legacy_bytes_per_message"],
        unit="B",
    )
    assert figures["messages"] == DISK_SESSIONS * DISK_PER_SESSION


# --- threads --------------------------------------------------------------------------


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@pytest.mark.parametrize("side", ["ours", "raw_dict"])
def test_threads_append_one_session(benchmark: Any, bench_dir: Path, side: str) -> None:
    """10 threads x 100 appends to one session: wall time, zero errors, seq 1..1000."""
    label(benchmark, "threads", side, threads=THREADS, per_thread=PER_THREAD)
    path = bench_dir / f"threads-{side}.db"
    store = open_store(path)
    runs: list[dict[str, Any]] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        session_id = store.sessions.create("gpt-4o").session_id
        raws = [RawStore(path) for _ in range(THREADS)] if side == "raw_dict" else []
        return (session_id, raws), {}

    def run(session_id: str, raws: list[RawStore]) -> None:
        errors: list[str] = []
        latencies: list[float] = []
        barrier = threading.Barrier(THREADS)

        def worker(k: int) -> None:
            append = raws[k].append if raws else store.messages.append
            text = Texts(64)
            barrier.wait()
            for _ in range(PER_THREAD):
                role, content, tokens = text()
                start = time.perf_counter()
                try:
                    append(session_id, role, content, tokens=tokens)
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                latencies.append(time.perf_counter() - start)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for raw in raws:
            raw.close()
        runs.append({"session_id": session_id, "errors": errors, "latencies": latencies})

    try:
        benchmark.pedantic(run, setup=setup, rounds=SCALE.thread_rounds, iterations=1)
        checks = []
        for result in runs:
            record = store.sessions.get(result["session_id"])
            page = store.messages.history(result["session_id"], limit=1000)
            sequence = [m.sequence_number for m in page.items]
            checks.append(
                {
                    "errors": len(result["errors"]),
                    "first_errors": result["errors"][:3],
                    "message_count": record.message_count,
                    "last_seq": record.last_seq,
                    "seq_ok": sequence == list(range(1, THREADS * PER_THREAD + 1))
                    and page.next_cursor is None,
                    "append_p50_ms": _quantile(result["latencies"], 0.5) * 1000,
                    "append_p99_ms": _quantile(result["latencies"], 0.99) * 1000,
                    "append_max_ms": max(result["latencies"]) * 1000,
                }
            )
    finally:
        store.close()
    benchmark.extra_info.update(
        errors=sum(c["errors"] for c in checks),
        final_counts=[c["message_count"] for c in checks],
        seq_ok=all(c["seq_ok"] for c in checks),
        append_p50_ms=max(c["append_p50_ms"] for c in checks),
        append_p99_ms=max(c["append_p99_ms"] for c in checks),
        append_max_ms=max(c["append_max_ms"] for c in checks),
        first_errors=[e for c in checks for e in c["first_errors"]][:3],
    )
    for check in checks:
        assert check["errors"] == 0, check["first_errors"]
        assert check["message_count"] == check["last_seq"] == THREADS * PER_THREAD
        assert check["seq_ok"]
