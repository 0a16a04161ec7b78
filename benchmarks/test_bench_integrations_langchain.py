"""The LangChain adapter against LangChain's own SQL history, on the same workloads.

Two sides, each on its own SQLite file in the benchmark directory, called as
their documentation shows with default settings:

* ``ours``: :class:`~sessionstore.integrations.langchain.SessionStoreChatMessageHistory`
  on a :class:`~sessionstore.SessionStore` (``SessionStore.open``);
* ``sql``: langchain-community's ``SQLChatMessageHistory(session_id,
  connection="sqlite:///…")``, one engine shared by its histories.

The workloads (the same messages for both; a chat with tool calls):

* add 100 messages: one ``add_messages`` of 100;
* last 20 of 2,000: ours ``recent(20)``; LangChain's history has no limit, so
  ``messages[-20:]``;
* all of 2,000: ``messages``;
* 8 concurrent writers: 8 threads, each with its own history object on the
  same file and the same session, 25 single-message ``add_message`` each (wall
  time for all 200; every message must be stored, and errors are counted).

LangChain's history knows no users and no timestamps, so the issue's "one
user's sessions" and "events after a timestamp" workloads do not apply.
Each workload is one row of the report, ours against LangChain's store as its
baseline (ratio ours / theirs: below 1 is faster); reported, not judged.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from modes import scale

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_community")

from langchain_community.chat_message_histories import SQLChatMessageHistory
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from sqlalchemy import create_engine

from sessionstore import SessionStore
from sessionstore.integrations.langchain import SessionStoreChatMessageHistory

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

READ_SIZE = 2000
#: Rounds of the concurrent writers (each round is 200 writes, seconds on the slow stores).
WRITER_ROUNDS = 2 if scale().name == "quick" else 5
WRITERS = 8
PER_WRITER = 25
WORKLOADS = {
    "add100": "add 100 messages",
    "last20": "last 20 of 2,000",
    "all": "all of 2,000",
    "writers": f"{WRITERS} concurrent writers x {PER_WRITER}",
}


def messages(count: int, start: int = 0) -> list[BaseMessage]:
    """A chat with tools: question, tool call, tool result, answer."""
    out: list[BaseMessage] = []
    for i in range(start, start + count):
        match i % 4:
            case 0:
                out.append(HumanMessage(content=f"Question {i} about the weather in Lyon"))
            case 1:
                out.append(AIMessage(content="", tool_calls=[
                    {"name": "forecast", "args": {"city": "Lyon", "day": i}, "id": f"call_{i}"}
                ]))  # fmt: skip
            case 2:
                out.append(
                    ToolMessage(content=f"Sunny, {i % 30} degrees", tool_call_id=f"call_{i - 1}")
                )
            case _:
                out.append(AIMessage(content=f"It will be sunny on day {i}.", id=f"run-{i}"))
    return out


class Side:
    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        path = directory / f"{name}.db"
        self.store: SessionStore | None = None
        self.engine: Any = None
        if name == "ours":
            self.store = SessionStore.open(f"sqlite:///{path}")
        else:
            self.engine = create_engine(f"sqlite:///{path}")

    def history(self, session_id: str) -> Any:
        if self.store is not None:
            return SessionStoreChatMessageHistory(session_id, self.store)
        return SQLChatMessageHistory(session_id, connection=self.engine)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
        if self.engine is not None:
            self.engine.dispose()


@pytest.fixture(scope="module")
def sides(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Side]]:
    directory = tmp_path_factory.mktemp("integrations-langchain")
    opened = {name: Side(name, directory) for name in ("ours", "sql")}
    for side in opened.values():
        side.history("read").add_messages(messages(READ_SIZE))
    yield opened
    for side in opened.values():
        side.close()


_SERIAL = itertools.count()


def _workload(side: Side, workload: str) -> Callable[[], Any]:
    if workload == "add100":
        batch = messages(100)
        history = side.history("add")
        return lambda: history.add_messages(batch)
    if workload == "last20":
        history = side.history("read")
        if side.store is not None:
            return lambda: history.recent(20)
        return lambda: history.messages[-20:]
    if workload == "all":
        history = side.history("read")
        return lambda: history.messages

    def writers() -> tuple[list[BaseException], list[BaseMessage]]:
        session_id = f"writers-{next(_SERIAL)}"
        histories = [side.history(session_id) for _ in range(WRITERS)]
        errors: list[BaseException] = []
        start = threading.Barrier(WRITERS)

        def writer(index: int) -> None:
            start.wait()
            for turn in range(PER_WRITER):
                try:
                    histories[index].add_message(messages(1, index * PER_WRITER + turn)[0])
                except Exception as exc:  # counted: the store under test may refuse a write
                    errors.append(exc)

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return errors, histories[0].messages

    return writers


@pytest.mark.parametrize("side_name", ["ours", "sql"])
@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_langchain_history(
    benchmark: Any, sides: dict[str, Side], workload: str, side_name: str
) -> None:
    title = f"langchain: {WORKLOADS[workload]} / SQLChatMessageHistory"
    benchmark.group = title
    benchmark.extra_info.update(
        kind="integration", op=f"langchain_{workload}",
        side="ours" if side_name == "ours" else "raw", title=title, target=None,
    )  # fmt: skip
    run = _workload(sides[side_name], workload)
    if workload == "writers":
        errors, stored = benchmark.pedantic(run, rounds=WRITER_ROUNDS, iterations=1)
        benchmark.extra_info["errors"] = len(errors)
        if side_name == "ours":
            assert errors == []
            assert len(stored) == WRITERS * PER_WRITER
        return
    result = benchmark(run)
    if workload == "last20":
        assert result == messages(READ_SIZE)[-20:]
    elif workload == "all":
        assert result == messages(READ_SIZE)
