"""Shared fixtures: a store on a real SQLite file, and on a real PostgreSQL server.

Contract tests take ``store`` and run once per backend. The PostgreSQL run
starts one throwaway server for the whole session (see ``pgserver.py``) and
gives every test its own database. Where no server binaries are installed
the PostgreSQL runs are skipped — except under CI (``CI`` set), where that
is an error: CI must run them.

In the contract modules (:data:`ASYNC_CONTRACTS`) ``store`` also runs a
second way: the same tests, unchanged, through ``AsyncSessionStore``, via a
bridge that runs each call on an event loop in a background thread
(``async_bridge.py``; asyncio debug mode, and a test fails if the store
stalled that loop past 5 ms). Test ids gain ``sync`` / ``async``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sessionstore import SessionStore
from sessionstore.aio import AsyncSessionStore

from .async_bridge import Bridge, LoopThread
from .pgserver import PostgresServer, find_bindir


class FakeClock:
    """An injectable clock: starts at a fixed instant, moves only when told."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bindir = find_bindir()
    if bindir is None:
        message = "PostgreSQL server binaries not found (apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must run the PostgreSQL tests")
        pytest.skip(message)
    server = PostgresServer(bindir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sessions.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sessions.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


#: Contract modules whose ``store`` tests also run through ``AsyncSessionStore``.
ASYNC_CONTRACTS = frozenset(
    {
        "test_messages",
        "test_sessions",
        "test_store",
        "test_search",
        "test_transactions",
        "test_state",
        "test_windows",
        "test_forks",
        "test_export",
        "test_lifecycle",
        "test_never_expires",
    }
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # The "way" dimension: sync, and (in the contract modules) async through a bridge.
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    # "store_way" is there when the test's ``store`` is this file's (not a module's own).
    if "store_way" in metafunc.fixturenames and module in ASYNC_CONTRACTS:
        metafunc.parametrize("store_way", ["sync", "async"], indirect=True)


@pytest.fixture
def store_way(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "sync"))


@pytest.fixture(scope="session")
def async_loop() -> Iterator[LoopThread]:
    """One event loop in a background thread (debug mode, 5 ms slow-callback threshold)."""
    loop = LoopThread()
    try:
        yield loop
    finally:
        loop.close()


@pytest.fixture
def store(backend_url: str, store_way: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A store on each backend, at head, real clock; in the contract modules also the
    async store, through a bridge that runs each call on an event loop."""
    if store_way == "sync":
        with SessionStore.open(backend_url) as opened:
            yield opened
        return
    loop: LoopThread = request.getfixturevalue("async_loop")
    with Bridge(loop.run(AsyncSessionStore.open(backend_url)), loop) as bridged:
        # The test's own calls; opening (its first imports, its threads' start) is
        # tests/test_async_stalls.py's to judge, where nothing else competes for the CPU.
        before = len(loop.slow.records)
        yield bridged
    stalls = loop.slow.by_the_store(since=before)
    assert not stalls, f"the store stalled the event loop (slow callbacks): {stalls}"


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[SessionStore]:
    with SessionStore.open(sqlite_url) as opened:
        yield opened


@pytest.fixture
def walks_taken(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each recent-order search since took the index walk (``recent_walk``), in order."""
    from sessionstore import search as search_module

    taken: list[bool] = []
    walk = search_module.recent_walk

    def recorded(*args: Any, **kwargs: Any) -> Any:
        rows = walk(*args, **kwargs)
        taken.append(rows is not None)
        return rows

    monkeypatch.setattr(search_module, "recent_walk", recorded)
    return taken
