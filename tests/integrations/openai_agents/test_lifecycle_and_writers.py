"""SessionStoreSession under the lifecycle and under concurrency."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

pytest.importorskip("agents")

from sessionstore import InvalidInput, SessionArchived, SessionExists, SessionStore
from sessionstore.aio import AsyncSessionStore
from sessionstore.integrations.openai_agents import SessionStoreSession

from ...conftest import FakeClock


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


@pytest.fixture
def clocked(tmp_path: Path, clock: FakeClock) -> SessionStore:
    with SessionStore.open(f"sqlite:///{tmp_path / 'clocked.db'}", clock=clock) as opened:
        yield opened  # type: ignore[misc]


async def test_a_session_the_sweep_archived_comes_back_on_the_next_write(
    clocked: SessionStore, clock: FakeClock
) -> None:
    session = SessionStoreSession("idle", clocked)
    await session.add_items([_user("before the break")])
    clock.advance(hours=2)  # past the default idle timeout of 1 hour
    assert [item.session_id for item in clocked.lifecycle.sweep().archived] == ["idle"]
    assert clocked.sessions.get("idle").status == "archived"

    assert await session.get_items() == [_user("before the break")]  # reads leave it archived
    assert clocked.sessions.get("idle").status == "archived"
    await session.add_items([_user("after the break")])
    assert clocked.sessions.get("idle").status == "active"
    assert await session.get_items() == [_user("before the break"), _user("after the break")]
    assert [event.action for event in clocked.lifecycle.history("idle")][-2:] == [
        "archive",
        "reactivate",
    ]


@pytest.mark.parametrize("operation", ["add", "pop", "clear"])
async def test_on_archived_raise_refuses_every_write_and_changes_nothing(
    store: SessionStore, operation: str
) -> None:
    session = SessionStoreSession("frozen", store, on_archived="raise")
    await session.add_items([_user("kept")])
    store.lifecycle.archive("frozen")
    with pytest.raises(SessionArchived):
        if operation == "add":
            await session.add_items([_user("refused")])
        elif operation == "pop":
            await session.pop_item()
        else:
            await session.clear_session()
    assert await session.get_items() == [_user("kept")]
    assert store.sessions.get("frozen").status == "archived"


@pytest.mark.parametrize("operation", ["pop", "clear"])
async def test_pop_and_clear_bring_an_archived_session_back(
    store: SessionStore, operation: str
) -> None:
    session = SessionStoreSession("back", store)
    await session.add_items([_user("a"), _user("b")])
    store.lifecycle.archive("back")
    if operation == "pop":
        assert await session.pop_item() == _user("b")
        assert await session.get_items() == [_user("a")]
    else:
        await session.clear_session()
        assert await session.get_items() == []
    assert store.sessions.get("back").status == "active"


async def test_eight_concurrent_writers_lose_nothing(store: SessionStore) -> None:
    sessions = [SessionStoreSession("shared", store) for _ in range(8)]

    async def writer(index: int, session: SessionStoreSession) -> None:
        for turn in range(10):
            await session.add_items([_user(f"{index}-{turn}-a"), _user(f"{index}-{turn}-b")])

    await asyncio.gather(*(writer(i, s) for i, s in enumerate(sessions)))
    items = await sessions[0].get_items()
    assert len(items) == 160
    contents = [item["content"] for item in items]
    assert sorted(contents) == sorted(
        f"{i}-{t}-{x}" for i in range(8) for t in range(10) for x in "ab"
    )
    for index in range(8):  # each batch stays in one piece, in order
        first = contents.index(f"{index}-0-a")
        assert contents[first + 1] == f"{index}-0-b"
    rows = list(store.messages.iterate("shared"))
    assert [row.sequence_number for row in rows] == list(range(1, 161))


def test_writers_on_their_own_event_loops_and_threads(store: SessionStore) -> None:
    session = SessionStoreSession("threads", store)
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            asyncio.run(session.add_items([_user(f"thread {index}")]))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    contents = sorted(item["content"] for item in asyncio.run(session.get_items()))
    assert contents == [f"thread {i}" for i in range(6)]


async def test_concurrent_pops_return_each_item_once(store: SessionStore) -> None:
    session = SessionStoreSession("pops", store)
    await session.add_items([_user(str(i)) for i in range(20)])
    others = [SessionStoreSession("pops", store) for _ in range(4)]
    popped = await asyncio.gather(*(s.pop_item() for s in others for _ in range(6)))
    got = [item["content"] for item in popped if item is not None]
    assert sorted(got, key=int) == [str(i) for i in range(20)]
    assert popped.count(None) == 4


async def test_a_cancelled_write_still_reports_its_outcome(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    with SessionStore.open(f"sqlite:///{path}") as opened:
        session = SessionStoreSession("cancel", opened)
        await session.add_items([_user("first")])
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # the write below waits for this lock
        task = asyncio.create_task(session.add_items([_user("second")]))
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.sleep(0)
        assert not task.done()  # still waiting for the write to finish, not abandoned
        blocker.rollback()
        blocker.close()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The cancellation came after the outcome was known: the write committed.
        assert await session.get_items() == [_user("first"), _user("second")]


async def test_an_async_store_serves_the_session(tmp_path: Path) -> None:
    async with await AsyncSessionStore.open(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}") as astore:
        session = SessionStoreSession("async", astore)
        await session.add_items([_user("hello")])
        assert await session.get_items() == [_user("hello")]
        assert session.store is astore.sync
        assert (await astore.messages.recent("async", 5))[0].payload == _user("hello")


async def test_an_owned_session_is_invisible_to_other_owners(store: SessionStore) -> None:
    alice = SessionStoreSession("same-id", store, app="chat", user_id="alice")
    await alice.add_items([_user("alice's secret")])
    record = store.sessions.get("same-id")
    assert (record.app, record.user_id) == ("chat", "alice")
    bob = SessionStoreSession("same-id", store, app="chat", user_id="bob")
    assert await bob.get_items() == []
    assert await bob.pop_item() is None
    await bob.clear_session()
    with pytest.raises(SessionExists):
        await bob.add_items([_user("bob's")])
    assert await alice.get_items() == [_user("alice's secret")]
    store.erase_user("chat", "alice")
    assert await alice.get_items() == []
    with pytest.raises(InvalidInput):
        SessionStoreSession("x", store, user_id="bob")
