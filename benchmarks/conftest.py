"""Benchmark fixtures and run settings: the mode, the seeded files, the run's facts.

``--quick`` selects the quick mode (``modes.py``): every data size about a
tenth, shorter measurements, the raw tuple baseline and the diagnostic
benchmarks (marked ``full_only``) left out. Either mode's pytest-benchmark
settings apply unless the same option is given on the command line.

Three files are seeded once per benchmark session, in a temporary directory
(sizes of the full mode; the quick mode's are in ``modes.py``):

* ``messages.db``: a 20,000-message session (``append_many`` in four
  batches) and ten 1,000-message sessions interleaved with it, for
  ``recent``, ``history`` and ``messages.get``;
* ``append.db``: a 100,000-message session (raw ``executemany`` on the
  store's file; the store's triggers fill counts, ``last_seq`` and FTS), that
  the append benchmarks write to, next to fresh empty sessions;
* ``sessions.db``: 10,000 sessions (raw ``executemany``), four models plus a
  rare one, one in ten archived, for ``sessions.list`` and ``sessions.get``.

Every file is created by :meth:`SessionStore.open`, so the raw baseline
(:class:`baseline.RawStore`) runs on the same schema, indexes and triggers.
An :class:`Env` holds, on one file, our store and the raw variants.

The JSON that ``--benchmark-json`` writes gets a ``run`` entry (mode, wall
time, load average at the start and the end, SQLite version), which
``report.py`` prints above its table.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from modes import scale, select
from support import (
    MODELS,
    Env,
    bulk_messages,
    bulk_sessions,
    make_texts,
    open_store,
    raw_connection,
)

_STARTED: dict[str, Any] = {}
WORKLOADS = Path(__file__).resolve().parent / "workloads.py"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--quick",
        action="store_true",
        default=False,
        help="sessionstore benchmarks: small data, short measurements (about a minute)",
    )


def _given(config: pytest.Config, dest: str) -> bool:
    """Whether the command line sets this pytest-benchmark option itself."""
    flag = "--" + dest.replace("_", "-")
    return any(arg == flag or arg.startswith(flag + "=") for arg in config.invocation_params.args)


def pytest_configure(config: pytest.Config) -> None:
    mode = select(bool(config.getoption("--quick", default=False)))
    # pytest-benchmark reads its options in its own (trylast) pytest_configure, after this.
    for dest, value in mode.benchmark_options.items():
        if not _given(config, dest):
            setattr(config.option, dest, value)
    config.addinivalue_line("markers", "full_only: a diagnostic benchmark left out of --quick")
    _STARTED.update(time=time.perf_counter(), load=os.getloadavg())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if scale().name != "quick":
        return
    kept = [item for item in items if item.get_closest_marker("full_only") is None]
    dropped = [item for item in items if item.get_closest_marker("full_only") is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_benchmark_update_json(
    config: pytest.Config, benchmarks: list[Any], output_json: dict[str, Any]
) -> None:
    """Record what the report's heading says about this run."""
    output_json["run"] = {
        "mode": scale().name,
        "wall_seconds": round(time.perf_counter() - _STARTED["time"], 1),
        "loadavg_start": [round(x, 2) for x in _STARTED["load"]],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "cpu_count": os.cpu_count(),
        "sqlite_version": sqlite3.sqlite_version,
    }


@pytest.fixture(scope="session")
def user_figures(bench_dir: Path) -> Callable[[str], dict[str, Any]]:
    """Each side's user-workload figures (``workloads.py``), measured once per run.

    A side runs in its own processes (ours and the floor three times in the
    full mode; otherwise once), each workload in a fresh directory; the
    figures are the medians over those processes.
    """
    cache: dict[str, dict[str, Any]] = {}
    quick = scale().name == "quick"

    def figures(side: str) -> dict[str, Any]:
        if side not in cache:
            # Medians of three processes for ours and the floor; one for the others.
            runs = 3 if side in ("ours", "floor") and not quick else 1
            results = []
            for run in range(runs):
                directory = bench_dir / "user" / f"{side}-{run}"
                command = [sys.executable, str(WORKLOADS), side, str(directory)]
                done = subprocess.run(
                    command + (["--quick"] if quick else []),
                    capture_output=True, text=True, timeout=900, check=False,
                )  # fmt: skip
                if done.returncode != 0:
                    raise RuntimeError(f"workloads.py {side} failed:\n{done.stderr[-3000:]}")
                results.append(json.loads(done.stdout.strip().splitlines()[-1]))
                shutil.rmtree(directory, ignore_errors=True)
            cache[side] = {
                key: statistics.median(r[key] for r in results)
                if isinstance(results[0][key], int | float)
                else results[0][key]
                for key in results[0]
            }
        return cache[side]

    return figures


@pytest.fixture(scope="session")
def bench_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench")


@pytest.fixture(scope="session")
def messages_env(bench_dir: Path) -> Iterator[Env]:
    """A long session (20,000 messages) among ten of a twentieth of its size."""
    path = bench_dir / "messages.db"
    texts = make_texts(1024)
    size = scale().read_session
    batch, other_size = size // 4, size // 20
    with open_store(path) as store:
        main = store.sessions.create("gpt-4o", title="the long session").session_id
        others = [store.sessions.create(MODELS[i % len(MODELS)]).session_id for i in range(10)]
        for first in range(0, size, batch):
            store.messages.append_many(
                main,
                [
                    {"role": role, "content": content, "tokens": tokens}
                    for role, content, tokens in (
                        texts[i % len(texts)] for i in range(first, first + batch)
                    )
                ],
            )
            # Other sessions' rows land between this session's, as in a real file.
            for other in others[first // batch :: size // batch]:
                store.messages.append_many(
                    other,
                    [
                        {"role": role, "content": content, "tokens": tokens}
                        for role, content, tokens in texts[:other_size]
                    ],
                )
        assert store.sessions.get(main).message_count == size
    conn = raw_connection(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    env = Env.open(path)
    env.add_floor()
    env.ids["main"] = main
    yield env
    env.close()


@pytest.fixture(scope="session")
def append_env(bench_dir: Path) -> Iterator[Env]:
    """A long session (100,000 messages) that appends go to, next to fresh empty sessions."""
    path = bench_dir / "append.db"
    with open_store(path) as store:
        big = store.sessions.create("gpt-4o", title="the long session").session_id
    bulk_messages(path, big, scale().big_session)
    env = Env.open(path)
    env.add_floor()
    assert env.ours.sessions.get(big).message_count == scale().big_session
    env.ids["big"] = big
    yield env
    env.close()


@pytest.fixture(scope="session")
def sessions_env(bench_dir: Path) -> Iterator[Env]:
    """10,000 sessions (full mode), newest activity first in ``session_ids``."""
    path = bench_dir / "sessions.db"
    with open_store(path):
        pass
    ids = bulk_sessions(path, scale().session_count)
    env = Env.open(path)
    env.add_floor()
    env.session_ids = ids
    yield env
    env.close()
