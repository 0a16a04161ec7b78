"""Workloads as a user feels them: each side in its own process, each workload in a fresh directory.

``python benchmarks/workloads.py SIDE DIR [--quick]`` runs every workload a
side supports, one after another in this process (each in a fresh
subdirectory of ``DIR``), and prints one JSON object: the figures, and the
process's peak RSS at the end. The benchmark modules run it three times per
side (once in the quick mode) and keep the medians.

A side is a :class:`Client` factory (``sides()``): ``ours`` (the public API,
default settings), ``raw`` (the store's own schema and SQL on a bare
connection: :class:`baseline.RawStore`), ``floor`` (:class:`floor.FloorStore`)
and the peers of ``peers.py``. Each workload is written once, against the
client, so every side does the same thing the way its users would call it.

The workloads (full sizes; quick ones in :data:`QUICK`):

* ``append_p50``: 2,000 appends of a 200-byte message to a fresh session;
  the median latency of one call;
* ``recent_p50``: ``recent(50)`` of a 20,000-message session; median;
* ``history_p50``: the page of 50 after sequence 10,000 of that session;
* ``bulk``: create 2,000 sessions and append 5 messages to each, one call
  (one transaction) at a time; wall time;
* ``list_p50``: page 1 (20) of those 2,000 sessions, newest activity first;
* ``threads_own`` / ``threads_one``: 8 threads x 300 appends, each thread
  on its own session / all on one session; wall time and errors;
* ``processes``: 4 processes x 500 appends on one file, each its own
  session; wall time (from the moment all are ready) and busy errors.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

__all__ = ["FULL", "QUICK", "WORKLOADS", "Client", "run_side"]

FULL = {
    "appends": 2000,
    "session": 20_000,
    "depth": 10_000,
    "reads": 1000,
    "sessions": 2000,
    "per_session": 5,
    "threads": 8,
    "per_thread": 300,
    "processes": 4,
    "per_process": 500,
}
QUICK = {
    "appends": 300,
    "session": 2000,
    "depth": 1000,
    "reads": 200,
    "sessions": 200,
    "per_session": 5,
    "threads": 8,
    "per_thread": 50,
    "processes": 4,
    "per_process": 100,
}
#: The peers' p50 samples in the full mode (the workloads themselves are the same).
PEER_SAMPLES = {"appends": 500, "reads": 20}
#: A 200-byte message, as the user workloads append.
MESSAGE = ("The quick brown fox jumps over the lazy dog near the riverbank. " * 4)[:200]
PAGE = 50


class Client(Protocol):
    """What a workload calls; every side implements what it supports."""

    def create(self, session_id: str) -> str: ...

    def append(self, session_id: str, role: str, content: str) -> Any: ...

    def seed(self, session_id: str, rows: list[tuple[str, str, int]]) -> None: ...

    def recent(self, session_id: str, n: int) -> Any: ...

    def history_after(self, session_id: str, after: int, limit: int) -> Any: ...

    def list(self, limit: int) -> Any: ...

    def close(self) -> None: ...


class Side(Protocol):
    name: str
    #: The workloads this side can do (peers lack paged history or lists).
    supports: frozenset[str]
    #: Whether threads share one client (else each thread opens its own).
    shared_across_threads: bool

    def open(self, path: Path) -> Client: ...


def peak_rss() -> int:
    """This process's peak RSS (``VmHWM``; ``ru_maxrss`` would carry the parent's over exec)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def is_busy(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return "busy" in text or "locked" in text


# --- the workloads ------------------------------------------------------------------


def _median_us(samples: list[int]) -> float:
    return statistics.median(samples) / 1000


def _timed_calls(call: Callable[[], Any], count: int) -> list[int]:
    samples = []
    clock = time.perf_counter_ns
    for _ in range(count):
        started = clock()
        call()
        samples.append(clock() - started)
    return samples


def append_p50(side: Side, directory: Path, size: dict[str, int]) -> dict[str, Any]:
    client = side.open(directory / "store.db")
    try:
        sid = client.create("append-session")
        samples = _timed_calls(lambda: client.append(sid, "user", MESSAGE), size["appends"])
    finally:
        client.close()
    return {"append_p50": _median_us(samples) * 1e-6}


def _texts(count: int) -> list[tuple[str, str, int]]:
    """Chat-like messages of 40 to 1,000 bytes (no library imported: RSS is per side)."""
    rng = random.Random(20261129)
    words = MESSAGE.lower().replace(".", "").split()
    texts = []
    for i in range(1024):
        n = rng.randint(8, 40) if i % 2 == 0 else rng.randint(40, 160)
        content = " ".join(rng.choices(words, k=n)).capitalize() + "."
        texts.append(("user" if i % 2 == 0 else "assistant", content, max(1, len(content) // 4)))
    return [texts[i % len(texts)] for i in range(count)]


def reads(side: Side, directory: Path, size: dict[str, int]) -> dict[str, Any]:
    client = side.open(directory / "store.db")
    figures: dict[str, Any] = {}
    try:
        sid = client.create("long-session")
        rows = _texts(size["session"])
        for first in range(0, len(rows), 5000):
            client.seed(sid, rows[first : first + 5000])
        got = client.recent(sid, PAGE)
        if len(got) != PAGE:
            raise AssertionError(f"{side.name}: recent returned {len(got)} items")
        figures["recent_p50"] = (
            _median_us(_timed_calls(lambda: client.recent(sid, PAGE), size["reads"])) * 1e-6
        )
        if "history_p50" in side.supports:
            depth = size["depth"]
            figures["history_p50"] = (
                _median_us(
                    _timed_calls(lambda: client.history_after(sid, depth, PAGE), size["reads"])
                )
                * 1e-6
            )
    finally:
        client.close()
    return figures


def bulk_and_list(side: Side, directory: Path, size: dict[str, int]) -> dict[str, Any]:
    client = side.open(directory / "store.db")
    figures: dict[str, Any] = {}
    try:
        started = time.perf_counter()
        for i in range(size["sessions"]):
            sid = client.create(f"bulk-{i:05d}")
            for j in range(size["per_session"]):
                client.append(sid, "user" if j % 2 == 0 else "assistant", MESSAGE)
        figures["bulk"] = time.perf_counter() - started
        if "list_p50" in side.supports:
            first = client.list(20)
            if len(first) != 20:
                raise AssertionError(f"{side.name}: list returned {len(first)} sessions")
            figures["list_p50"] = (
                _median_us(_timed_calls(lambda: client.list(20), size["reads"])) * 1e-6
            )
    finally:
        client.close()
    return figures


def _threads(side: Side, path: Path, size: dict[str, int], *, one_session: bool) -> dict[str, Any]:
    n, per = size["threads"], size["per_thread"]
    setup = side.open(path)
    ids = [
        setup.create("shared" if one_session else f"thread-{i}")
        for i in range(1 if one_session else n)
    ]
    clients = [setup] * n if side.shared_across_threads else [side.open(path) for _ in range(n)]
    errors: list[str] = []
    barrier = threading.Barrier(n + 1)

    def worker(i: int) -> None:
        client, sid = clients[i], ids[0 if one_session else i]
        barrier.wait()
        for _ in range(per):
            try:
                client.append(sid, "user", MESSAGE)
            except Exception as exc:  # counted, not raised: the figure is the error count
                errors.append(repr(exc)[:200])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    for client in {id(c): c for c in clients}.values():
        client.close()
    return {"wall": wall, "errors": len(errors), "error_sample": errors[:3]}


def threads(side: Side, directory: Path, size: dict[str, int]) -> dict[str, Any]:
    own = _threads(side, directory / "own.db", size, one_session=False)
    one = _threads(side, directory / "one.db", size, one_session=True)
    return {
        "threads_own": own["wall"],
        "threads_own_errors": own["errors"],
        "threads_one": one["wall"],
        "threads_one_errors": one["errors"],
        "threads_error_sample": own["error_sample"] + one["error_sample"],
    }


def processes(side: Side, directory: Path, size: dict[str, int]) -> dict[str, Any]:
    """Writer processes on one file, started together by a go file."""
    path = directory / "store.db"
    setup = side.open(path)
    ids = [setup.create(f"process-{i}") for i in range(size["processes"])]
    setup.close()
    go = directory / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", side.name, str(path), sid,
             str(size["per_process"]), str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for sid in ids
    ]  # fmt: skip
    ready = [directory / f"ready-{sid}" for sid in ids]
    deadline = time.monotonic() + 120
    while not all(p.exists() for p in ready):
        if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
            raise RuntimeError(f"{side.name}: a writer process did not start")
        time.sleep(0.01)
    started = time.perf_counter()
    go.touch()
    # Timed to each writer's report, written once its last append is committed
    # and its store closed, not to its exit: an interpreter's teardown (garbage
    # collection of a heap it is about to drop) is not the store's work.
    results = [json.loads(w.stdout.readline()) for w in workers]  # type: ignore[union-attr]
    wall = time.perf_counter() - started
    for w in workers:
        w.communicate(timeout=600)
    return {
        "processes": wall,
        "processes_busy": sum(r["busy"] for r in results),
        "processes_errors": sum(r["errors"] for r in results),
    }


def _worker(side_name: str, path: str, session_id: str, count: int, go: str) -> None:
    side = get_side(side_name)
    client = side.open(Path(path))
    Path(go).parent.joinpath(f"ready-{session_id}").touch()
    while not os.path.exists(go):
        time.sleep(0.001)
    busy = errors = 0
    for _ in range(count):
        try:
            client.append(session_id, "user", MESSAGE)
        except Exception as exc:
            if is_busy(exc):
                busy += 1
            else:
                errors += 1
    client.close()
    print(json.dumps({"busy": busy, "errors": errors}), flush=True)


WORKLOADS: dict[str, Callable[[Side, Path, dict[str, int]], dict[str, Any]]] = {
    "append_p50": append_p50,
    "recent_p50": reads,
    "bulk": bulk_and_list,
    "threads_own": threads,
    "processes": processes,
}


def get_side(name: str) -> Side:
    if name in ("ours", "raw", "floor"):
        from sides import SIDES

        return SIDES[name]
    from peers import PEERS

    return PEERS[name]()


def run_side(name: str, directory: Path, quick: bool) -> dict[str, Any]:
    side = get_side(name)
    size = QUICK if quick else FULL
    if name not in ("ours", "raw", "floor") and not quick:
        # The peers take milliseconds per call: fewer samples for their medians
        # (LangChain loads the whole 20,000-message history for each read).
        size = {**FULL, **PEER_SAMPLES}
    figures: dict[str, Any] = {}
    for key, workload in WORKLOADS.items():
        if key not in side.supports:
            continue
        fresh = directory / key
        fresh.mkdir(parents=True, exist_ok=False)
        figures.update(workload(side, fresh, size))
    figures["peak_rss"] = peak_rss()
    return figures


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        _worker(argv[1], argv[2], argv[3], int(argv[4]), argv[5])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("side")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    print(json.dumps(run_side(args.side, args.directory, args.quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
