"""The same user workloads against the session stores of the frameworks users already have.

``peers.py`` drives the OpenAI Agents SDK's ``SQLiteSession`` and
``SQLAlchemySession``, LangChain's ``SQLChatMessageHistory`` and ADK's
``DatabaseSessionService`` through ``workloads.py``, one process each, on
SQLite files with their default settings. Each is an optional benchmark
dependency (``pip install 'sessionstore[bench]'``): a peer whose package is
missing is skipped. ``report.py`` puts these figures beside ours and the
floor's in a second table, which ``make bench`` writes into the README. Full
mode only: ADK alone takes half a minute on the quick sizes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from peers import ADK_SESSION, PEER_TITLES, PEERS, available
from test_bench_user import ROWS

#: The workloads the peers can do (none pages history or lists sessions).
PEER_ROWS = (
    "append_p50", "recent_p50", "bulk", "threads_own", "threads_own_errors",
    "threads_one", "threads_one_errors", "processes", "processes_busy", "peak_rss",
)  # fmt: skip


@pytest.mark.full_only
@pytest.mark.parametrize("peer", list(PEERS))
@pytest.mark.parametrize("key", PEER_ROWS)
def test_peer_row(
    benchmark: Any, user_figures: Callable[[str], dict[str, Any]], key: str, peer: str
) -> None:
    missing = available(peer)
    if missing is not None:
        pytest.skip(f"{peer}: {missing} is not installed (pip install 'sessionstore[bench]')")
    figures = user_figures(peer)
    title, unit, _floor, _target = ROWS[key]
    if peer == "adk" and key == "recent_p50":
        title += f" (ADK: of {ADK_SESSION:,})"
    benchmark.group = f"peer: {title}"
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    benchmark.extra_info.update(
        kind="peer", op=f"user_{key}", side=peer, peer_title=PEER_TITLES[peer], title=title,
        unit=unit, value=figures[key],
    )  # fmt: skip
