"""The two run modes of the benchmarks: the data sizes and the timing settings of each.

``full`` is the mode of the published figures (the README's Performance
section); ``quick`` scales every data size down about tenfold and measures
for a fraction of the time, so that a development run takes about a minute
on 2 cores. Both run the same operations and check the same results.

The mode is chosen once per pytest run, by ``--quick`` (``conftest.py``
calls :func:`select` from ``pytest_configure``, before the benchmark
modules are imported), so those modules read :func:`scale` at import time,
for their module-level sizes and parametrizations, and fixtures read it at
run time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["FULL", "QUICK", "Scale", "scale", "select"]


@dataclass(frozen=True, slots=True)
class Scale:
    """Data sizes and measuring effort of one mode."""

    name: str
    #: Messages in the session ``recent``, ``history`` and ``messages.get`` read.
    read_session: int
    #: ``history`` is also read after this sequence number (the deep page).
    history_depth: int
    #: Messages in the session the "append at depth" benchmark writes to.
    big_session: int
    #: Sessions in the file ``sessions.list`` / ``sessions.get`` read.
    session_count: int
    #: The deep ``sessions.list`` page (pages of 20).
    deep_list_page: int
    threads: int
    per_thread: int
    thread_rounds: int
    #: Sessions of 100 messages written in each layout for bytes on disk.
    disk_sessions: int
    #: Idle sessions of 20 messages archived by the measured sweep.
    sweep_sessions: int
    #: Messages in the session ``messages.window`` reads.
    window_session: int
    #: Messages ``sessions.fork`` copies.
    fork_messages: int
    #: Sessions of 20 messages in the search corpus.
    search_sessions: int
    #: Seconds of measurement per search benchmark.
    search_budget: float
    #: The raw baselines run beside ours (the tuple one only in full mode).
    raw_sides: tuple[str, ...]
    #: pytest-benchmark settings (option dest -> parsed value); the command line wins.
    benchmark_options: dict[str, Any] = field(default_factory=dict)

    @property
    def sides(self) -> tuple[str, ...]:
        return ("ours", *self.raw_sides, "floor")


FULL = Scale(
    name="full",
    read_session=20_000,
    history_depth=10_000,
    big_session=100_000,
    session_count=10_000,
    deep_list_page=200,
    threads=10,
    per_thread=100,
    thread_rounds=3,
    disk_sessions=200,
    sweep_sessions=10_000,
    window_session=100_000,
    fork_messages=10_000,
    search_sessions=50_000,
    search_budget=3.0,
    raw_sides=("raw_dict", "raw_tuple"),
    benchmark_options={
        "benchmark_warmup": True,
        "benchmark_warmup_iterations": 2000,
        "benchmark_max_time": "1.0",
    },
)

QUICK = Scale(
    name="quick",
    read_session=2_000,
    history_depth=1_000,
    big_session=10_000,
    session_count=2_000,
    deep_list_page=20,
    threads=10,
    per_thread=20,
    thread_rounds=1,
    disk_sessions=40,
    sweep_sessions=1_000,
    window_session=10_000,
    fork_messages=1_000,
    search_sessions=3_000,
    search_budget=0.3,
    raw_sides=("raw_dict",),
    benchmark_options={
        "benchmark_warmup": True,
        "benchmark_warmup_iterations": 200,
        "benchmark_max_time": "0.15",
        "benchmark_min_rounds": 5,
    },
)

_selected: Scale | None = None


def select(quick: bool) -> Scale:
    """Choose this run's mode (once, before the benchmark modules are imported)."""
    global _selected  # noqa: PLW0603 - one choice per process, made by pytest_configure
    _selected = QUICK if quick else FULL
    return _selected


def scale() -> Scale:
    """This run's mode; full unless ``--quick`` was given."""
    return _selected or FULL
