"""The Agents SDK adapter against the SDK's own SQLite stores, on the same workloads.

Three sides, each on its own SQLite file in the benchmark directory, called
as their documentation shows with default settings, through one event loop:

* ``ours``: :class:`~sessionstore.integrations.openai_agents.SessionStoreSession`
  on a :class:`~sessionstore.SessionStore` (``SessionStore.open``);
* ``sqlite``: the SDK's ``SQLiteSession(session_id, path)`` (stdlib ``sqlite3``);
* ``sqlalchemy``: the SDK's ``SQLAlchemySession`` on ``sqlite+aiosqlite``, one
  engine shared by its sessions.

The workloads (the same items for every side; a Runner turn's mix of
messages, a tool call and its output):

* add 100 items: one ``add_items`` of 100 items;
* last 20: ``get_items(limit=20)`` of a 2,000-item session;
* all of 2,000: ``get_items()`` of that session;
* 8 concurrent writers: 8 tasks, each with its own session object on the
  same file and the same history, 25 single-item ``add_items`` each (wall
  time for all 200; every item must be stored, and errors are counted).

The SDK knows no users and no timestamps, so the issue's "one user's
sessions" and "events after a timestamp" workloads do not apply here.

Each pair (ours, one SDK store) is one row of the report, ``ours`` against
the SDK store as its baseline: the ratio is ours / theirs, so below 1 is
faster (the goal is below 1 on every row and at most 1/3 on most). The rows
are reported, not judged by ``report.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from modes import scale

pytest.importorskip("agents")
pytest.importorskip("aiosqlite")

from agents import SQLiteSession
from agents.extensions.memory.sqlalchemy_session import SQLAlchemySession
from sqlalchemy.ext.asyncio import create_async_engine

from sessionstore import SessionStore
from sessionstore.integrations.openai_agents import SessionStoreSession

READ_SIZE = 2000
#: Rounds of the concurrent writers (each round is 200 writes, seconds on the slow stores).
WRITER_ROUNDS = 2 if scale().name == "quick" else 5
WRITERS = 8
PER_WRITER = 25
THEIRS = {"sqlite": "SQLiteSession", "sqlalchemy": "SQLAlchemySession"}
WORKLOADS = {
    "add100": "add 100 items",
    "last20": "last 20 of 2,000",
    "all": "all of 2,000",
    "writers": f"{WRITERS} concurrent writers x {PER_WRITER}",
}


def items(count: int, start: int = 0) -> list[dict[str, Any]]:
    """A Runner's items: user message, function call, its output, assistant message."""
    out: list[dict[str, Any]] = []
    for i in range(start, start + count):
        match i % 4:
            case 0:
                out.append({"role": "user", "content": f"Question {i} about the weather in Lyon"})
            case 1:
                out.append({"type": "function_call", "call_id": f"call_{i}", "name": "forecast",
                            "arguments": json.dumps({"city": "Lyon", "day": i})})  # fmt: skip
            case 2:
                out.append({"type": "function_call_output", "call_id": f"call_{i - 1}",
                            "output": f"Sunny, {i % 30} degrees"})  # fmt: skip
            case _:
                text = {"type": "output_text", "text": f"Sunny on day {i}.", "annotations": []}
                out.append({"id": f"msg_{i}", "type": "message", "role": "assistant",
                            "status": "completed", "content": [text]})  # fmt: skip
    return out


class Side:
    """One store under test: sessions on its own file, run on one event loop."""

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.loop = asyncio.new_event_loop()
        self.path = directory / f"{name}.db"
        self.store: SessionStore | None = None
        self.engine: Any = None
        self.opened: list[Any] = []
        if name == "ours":
            self.store = SessionStore.open(f"sqlite:///{self.path}")
        elif name == "sqlalchemy":
            self.engine = create_async_engine(f"sqlite+aiosqlite:///{self.path}")

    def session(self, session_id: str) -> Any:
        if self.store is not None:
            session: Any = SessionStoreSession(session_id, self.store)
        elif self.engine is not None:
            session = SQLAlchemySession(session_id, engine=self.engine, create_tables=True)
        else:
            session = SQLiteSession(session_id, self.path)
            self.opened.append(session)
        return session

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        for session in self.opened:
            session.close()
        if self.engine is not None:
            self.run(self.engine.dispose())
        if self.store is not None:
            self.store.close()
        self.loop.close()


@pytest.fixture(scope="module")
def sides(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Side]]:
    directory = tmp_path_factory.mktemp("integrations-openai")
    opened = {name: Side(name, directory) for name in ("ours", *THEIRS)}
    for side in opened.values():
        side.run(side.session("read").add_items(items(READ_SIZE)))
    yield opened
    for side in opened.values():
        side.close()


def _label(benchmark: Any, workload: str, theirs: str, side: str) -> None:
    title = f"agents: {WORKLOADS[workload]} / {THEIRS[theirs]}"
    benchmark.group = title
    benchmark.extra_info.update(
        kind="integration", op=f"agents_{workload}_{theirs}",
        side="ours" if side == "ours" else "raw", title=title, target=None,
    )  # fmt: skip


_SERIAL = itertools.count()


def _workload(side: Side, workload: str) -> Callable[[], Any]:
    if workload == "add100":
        batch = items(100)
        session = side.session("add")
        return lambda: side.run(session.add_items(batch))
    if workload == "last20":
        session = side.session("read")
        return lambda: side.run(session.get_items(limit=20))
    if workload == "all":
        session = side.session("read")
        return lambda: side.run(session.get_items())

    def writers() -> Any:
        session_id = f"writers-{next(_SERIAL)}"
        sessions = [side.session(session_id) for _ in range(WRITERS)]

        async def writer(index: int, session: Any) -> None:
            for turn in range(PER_WRITER):
                await session.add_items(items(1, index * PER_WRITER + turn))

        async def all_writers() -> list[Any]:
            return await asyncio.gather(
                *(writer(i, s) for i, s in enumerate(sessions)), return_exceptions=True
            )

        errors = [r for r in side.run(all_writers()) if isinstance(r, BaseException)]
        stored = side.run(sessions[0].get_items())
        return errors, stored

    return writers


@pytest.mark.parametrize("side_name", ["ours", "theirs"])
@pytest.mark.parametrize("theirs", list(THEIRS))
@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_agents_session(
    benchmark: Any, sides: dict[str, Side], workload: str, theirs: str, side_name: str
) -> None:
    side = sides["ours" if side_name == "ours" else theirs]
    _label(benchmark, workload, theirs, side_name)
    run = _workload(side, workload)
    if workload == "writers":
        errors, stored = benchmark.pedantic(run, rounds=WRITER_ROUNDS, iterations=1)
        benchmark.extra_info["errors"] = len(errors)
        if side_name == "ours":
            assert errors == []
        if not errors:
            assert len(stored) == WRITERS * PER_WRITER
        return
    result = benchmark(run)
    if workload == "last20":
        assert result == items(READ_SIZE)[-20:]
    elif workload == "all":
        assert result == items(READ_SIZE)
