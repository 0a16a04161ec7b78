"""Workloads as users feel them: ours against the same-schema raw layer and the floor.

Each side runs ``workloads.py`` in its own processes (medians of three in
the full mode), each workload in a fresh directory, through the public API
with default settings (ours), the store's schema and SQL on bare
connections (``raw``), and the minimal hand-written layer (``floor``,
``floor.py``). Every figure becomes a row of the report with both ratios:
ours / raw and ours / floor, held to the ceilings of ``FLOOR_TARGETS``.
The workloads check their own results (counts, pages); the error rows must
read 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from modes import scale
from workloads import FULL, QUICK

SIZE = QUICK if scale().name == "quick" else FULL
SIDES = ("ours", "raw", "floor")

#: key -> (title, unit, floor target, baseline target)
ROWS: dict[str, tuple[str, str, str | None, str | None]] = {
    "append_p50": ("user: append 200 B, fresh session, p50", "s", "append", None),
    "recent_p50": (f"user: recent(50) of {SIZE['session']:,}, p50", "s", "read", None),
    "history_p50": (f"user: history page after {SIZE['depth']:,}, p50", "s", "read", None),
    "bulk": (
        f"user: {SIZE['sessions']:,} sessions x {SIZE['per_session']} appends",
        "s", "bulk", None,
    ),
    "list_p50": (f"user: list(20) of {SIZE['sessions']:,}, p50", "s", "list", None),
    "threads_own": (
        f"user: {SIZE['threads']} thr x {SIZE['per_thread']}, own sessions", "s", "concurrent",
        None,
    ),
    "threads_own_errors": ("user: ... errors (own sessions)", "n", None, "zero"),
    "threads_one": (
        f"user: {SIZE['threads']} thr x {SIZE['per_thread']}, one session", "s", "concurrent",
        None,
    ),
    "threads_one_errors": ("user: ... errors (one session)", "n", None, "zero"),
    "processes": (
        f"user: {SIZE['processes']} procs x {SIZE['per_process']}, one file", "s", "processes",
        None,
    ),
    "processes_busy": ("user: ... busy errors (processes)", "n", None, "zero"),
    "peak_rss": ("user: peak RSS of the process", "B", None, None),
}  # fmt: skip


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("key", list(ROWS))
def test_user_workload(
    benchmark: Any, user_figures: Callable[[str], dict[str, Any]], key: str, side: str
) -> None:
    figures = user_figures(side)
    title, unit, floor_target, target = ROWS[key]
    benchmark.group = title
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    benchmark.extra_info.update(
        kind="user",
        op=f"user_{key}",
        side=side,
        title=title,
        unit=unit,
        value=figures[key],
        target=target,
        floor_target=floor_target,
    )
    if key.endswith("errors") and side != "ours":
        assert figures[key] == 0, figures.get("threads_error_sample")
