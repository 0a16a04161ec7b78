"""Lifecycle benchmark: one sweep archiving 10,000 idle sessions of 20 messages each.

(1,000 sessions in the quick mode; see ``modes.py``.)

Seeding is bulk (raw ``executemany`` on the store's own file, so the
triggers fill counts, ``last_seq`` and the FTS index exactly as appends
would), then one ``UPDATE`` moves every session's ``last_activity`` two
hours into the past. The store runs with an idle timeout of 1 h and no hard
timeout, and ``sweep(now=...)`` is measured once (``pedantic``, one round):
each of the 10,000 sessions is re-checked under its lock, snapshotted (the
export JSON, zlib at ``snapshots.LEVEL``), marked archived and logged, in transactions of up
to ``sweeps.BATCH_SESSIONS`` sessions (``sessionstore.sweeps``; the snapshots
are compressed on up to ``sweeps.COMPRESS_THREADS`` threads).

Reported in ``extra_info`` (``kind="lifecycle_sweep"``): the total time,
sessions per second, and snapshot bytes per message (the sum of
``stored_bytes`` over the messages snapshotted), with the raw JSON bytes per
message and the compression ratio beside it. ``report.py`` shows the time
per session (``op="sweep"``).

Reproduce (``-s`` prints the figures)::

    .venv/bin/pytest benchmarks/test_bench_lifecycle.py --benchmark-only --quick -s
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from baseline import utc_text
from modes import scale
from support import EPOCH, MODELS, make_texts, open_store, raw_connection

from sessionstore import SessionStore, sweeps

SWEEP_SESSIONS = scale().sweep_sessions
PER_SESSION = 20
IDLE = timedelta(hours=1)
NOW = EPOCH + timedelta(days=1)


def seed_idle_sessions(path: Path) -> list[str]:
    """``SWEEP_SESSIONS`` sessions of 20 messages by ``executemany``; idle for 2 h at ``NOW``."""
    with open_store(path):
        pass  # creates the file at the current schema
    texts = make_texts(1024)
    ids = [f"idle-{i:05d}" for i in range(SWEEP_SESSIONS)]
    conn = raw_connection(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO sessions (session_id, model_id, title, status, created_at, updated_at,"
            " last_activity) VALUES (?, ?, ?, 'active', ?, ?, ?)",
            [
                (sid, MODELS[i % len(MODELS)], f"Conversation {i}", *[utc_text(EPOCH)] * 3)
                for i, sid in enumerate(ids)
            ],
        )
        conn.execute("COMMIT")
        batch = 500  # sessions per transaction: 10,000 messages
        for first in range(0, SWEEP_SESSIONS, batch):
            rows = []
            for i in range(first, first + batch):
                for seq in range(1, PER_SESSION + 1):
                    role, content, tokens = texts[(i * PER_SESSION + seq) % len(texts)]
                    ts = utc_text(EPOCH + timedelta(seconds=i, milliseconds=seq))
                    rows.append((ids[i], seq, role, content, ts, tokens))
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO messages (session_id, sequence_number, role, content, timestamp,"
                " tokens_used) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.execute("COMMIT")
        # One UPDATE: everyone's last activity two hours before the sweep.
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE sessions SET last_activity = ?", (utc_text(NOW - 2 * IDLE),))
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return ids


@pytest.fixture(scope="module")
def idle_store(bench_dir: Path) -> Iterator[tuple[SessionStore, list[str]]]:
    path = bench_dir / "lifecycle.db"
    started = time.perf_counter()
    ids = seed_idle_sessions(path)
    print(f"\nseeded {SWEEP_SESSIONS:,} x {PER_SESSION} messages in "
          f"{time.perf_counter() - started:.1f} s")  # fmt: skip
    store = open_store(path, idle_timeout=IDLE, hard_timeout=None)
    try:
        yield store, ids
    finally:
        store.close()


def test_sweep_idle_sessions(benchmark: Any, idle_store: tuple[SessionStore, list[str]]) -> None:
    store, ids = idle_store
    expiring = store.lifecycle.expiring(timedelta(0), now=NOW)
    assert len(expiring) == SWEEP_SESSIONS
    assert {e.reason for e in expiring} == {"idle"}
    assert store.sessions.count(status="active") == SWEEP_SESSIONS

    timing: dict[str, float] = {}

    def sweep() -> Any:
        started = time.perf_counter()
        report = store.lifecycle.sweep(NOW)
        timing["seconds"] = time.perf_counter() - started
        return report

    benchmark.group = f"lifecycle: sweep {SWEEP_SESSIONS:,} idle sessions x 20 messages"
    report = benchmark.pedantic(sweep, rounds=1, iterations=1, warmup_rounds=0)

    # Correctness first: every session archived once, one snapshot each, all messages in it.
    assert len(report.archived) == SWEEP_SESSIONS and report.skipped == 0
    assert sorted(item.session_id for item in report.archived) == sorted(ids)
    assert store.sessions.count(status="archived") == SWEEP_SESSIONS
    with store.engine.connect() as conn:
        snapshots, messages, stored, raw = conn.exec_driver_sql(
            "SELECT COUNT(*), SUM(message_count), SUM(stored_bytes), SUM(raw_bytes)"
            " FROM session_snapshots"
        ).one()
    assert (snapshots, messages) == (SWEEP_SESSIONS, SWEEP_SESSIONS * PER_SESSION)

    seconds = timing["seconds"]
    figures = {
        "kind": "lifecycle_sweep",
        "op": "sweep",
        "side": "ours",
        "title": f"lifecycle sweep, per session (of {SWEEP_SESSIONS:,})",
        "target": None,
        "value": seconds / SWEEP_SESSIONS,
        "unit": "s",
        "sessions": SWEEP_SESSIONS,
        "messages_per_session": PER_SESSION,
        "total_seconds": round(seconds, 3),
        "sessions_per_second": round(SWEEP_SESSIONS / seconds, 1),
        "ms_per_session": round(seconds * 1000 / SWEEP_SESSIONS, 3),
        "snapshot_bytes_per_message": round(stored / messages, 1),
        "raw_json_bytes_per_message": round(raw / messages, 1),
        "compression_ratio": round(raw / stored, 2),
        "snapshot_bytes_total": int(stored),
        "batch_sessions": sweeps.BATCH_SESSIONS,
        "compress_threads": sweeps.COMPRESS_THREADS,
    }
    benchmark.extra_info.update(figures)
    print(
        f"\nsweep: {SWEEP_SESSIONS:,} sessions ({SWEEP_SESSIONS * PER_SESSION:,} messages) "
        f"archived in {seconds:.2f} s = {figures['sessions_per_second']:,} sessions/s "
        f"({figures['ms_per_session']} ms each); snapshots {figures['snapshot_bytes_per_message']}"
        f" bytes/message stored ({figures['raw_json_bytes_per_message']} raw JSON, "
        f"{figures['compression_ratio']}x), {int(stored):,} bytes in all"
    )
