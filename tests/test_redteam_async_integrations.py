"""Edges of the async store and the framework adapters: misuse and odd input.

* leaving an async transaction twice is refused (``RuntimeError``, as entering
  it twice is), and never hands its worker
  thread to two callers (another task would read the open transaction's
  uncommitted rows);
* a LangChain tool call whose arguments JSON cannot hold is ``InvalidInput``,
  and nothing is stored;
* an ADK time no datetime can hold (NaN, past the year 9999) is
  ``InvalidInput``, and nothing is stored.
"""

from __future__ import annotations

import asyncio
import math
import threading
from pathlib import Path

import pytest

from sessionstore import InvalidInput, SessionNotFound, SessionStore
from sessionstore.aio import AsyncSessionStore


async def test_leaving_a_transaction_twice_is_refused_and_keeps_lanes_apart(
    tmp_path: Path,
) -> None:
    store = await AsyncSessionStore.open(f"sqlite:///{tmp_path / 'a.db'}", max_workers=2)
    try:
        sid = (await store.sessions.create("m")).session_id
        ctx = store.transaction()
        await ctx.__aenter__()
        await ctx.__aexit__(None, None, None)
        with pytest.raises(RuntimeError):
            await ctx.__aexit__(None, None, None)

        entered, done = asyncio.Event(), asyncio.Event()

        async def writer() -> None:
            async with store.transaction() as tx:
                await tx.messages.append(sid, "user", "not committed yet")
                entered.set()
                await done.wait()

        task = asyncio.create_task(writer())
        await entered.wait()
        seen = [m.content for m in await store.messages.recent(sid, 10)]
        done.set()
        await task
        assert seen == []  # the open transaction's row is not visible outside it
        assert [m.content for m in await store.messages.recent(sid, 10)] == ["not committed yet"]
    finally:
        await store.close()


def test_langchain_tool_call_args_not_json_are_invalid_input(tmp_path: Path) -> None:
    pytest.importorskip("langchain_core")
    from langchain_core.messages import AIMessage, HumanMessage

    from sessionstore.integrations.langchain import SessionStoreChatMessageHistory

    store = SessionStore.open(f"sqlite:///{tmp_path / 'l.db'}")
    try:
        history = SessionStoreChatMessageHistory("h", store)
        for args in ({"blob": b"\x00\x01"}, {"tags": {1, 2}}):
            bad = AIMessage(content="", tool_calls=[{"name": "f", "args": args, "id": "c1"}])
            with pytest.raises(InvalidInput):
                history.add_messages([HumanMessage("first"), bad])
            with pytest.raises(InvalidInput):
                asyncio.run(history.aadd_messages([HumanMessage("first"), bad]))
        with pytest.raises(SessionNotFound):
            store.sessions.get("h")  # nothing of the batch, not even the session
    finally:
        store.close()


@pytest.mark.parametrize("seconds", [math.nan, 1e20, -1e12])
async def test_adk_times_out_of_range_are_invalid_input(tmp_path: Path, seconds: float) -> None:
    pytest.importorskip("google.adk")
    from google.adk.events import Event
    from google.adk.sessions.base_session_service import GetSessionConfig

    from sessionstore.integrations.adk import SessionStoreService

    service = SessionStoreService.from_url(f"sqlite:///{tmp_path / 'adk.db'}")
    try:
        session = await service.create_session(app_name="a", user_id="u")
        with pytest.raises(InvalidInput):
            await service.append_event(session, Event(author="user", timestamp=seconds))
        with pytest.raises(InvalidInput):
            await service.get_session(
                app_name="a",
                user_id="u",
                session_id=session.id,
                config=GetSessionConfig(after_timestamp=seconds),
            )
        assert service.store.messages.recent(session.id, 10) == []
        # The session still takes a well-formed event after the refused one.
        await service.append_event(session, Event(author="user"))
        assert len(service.store.messages.recent(session.id, 10)) == 1
    finally:
        await service.close()


def test_closing_the_store_lets_an_open_transaction_finish(tmp_path: Path) -> None:
    """``close()`` while another task's transaction is open: that transaction ends
    (no task waits forever on a stopped worker thread), wholly, and the file is
    free for the next writer."""
    url = f"sqlite:///{tmp_path / 'c.db'}"
    outcome: list[str] = []

    async def main() -> None:
        store = await AsyncSessionStore.open(url)
        sid = (await store.sessions.create("m")).session_id
        entered, go = asyncio.Event(), asyncio.Event()

        async def writer() -> None:
            async with store.transaction() as tx:
                await tx.messages.append(sid, "user", "one")
                entered.set()
                await go.wait()
                await tx.messages.append(sid, "user", "two")

        task = asyncio.create_task(writer())
        await entered.wait()
        await store.close()
        go.set()
        try:
            await task
            outcome.append("committed")
        except Exception as exc:  # a typed refusal is fine; a hang is not
            outcome.append(type(exc).__name__)

    # A thread of its own: without the guarantee the task never ends, and not even
    # a cancellation (which waits for the transaction's end) could stop it.
    runner = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    runner.start()
    runner.join(60)
    assert not runner.is_alive(), "a transaction open at close() never ended"
    assert len(outcome) == 1
    with SessionStore.open(url) as store:
        (session,) = store.sessions.list().items
        contents = [m.content for m in store.messages.recent(session.session_id, 10)]
        assert contents in ([], ["one", "two"])
        store.messages.append(session.session_id, "user", "next")  # the write lock is free
