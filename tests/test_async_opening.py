"""Opening and closing the async store: URLs of async drivers, engines, options, threads.

The async drivers' URLs map to the sync driver of the same database; an
``AsyncEngine`` lends its database (not its pool); bad options are
``InvalidInput`` and start no thread; closing (or dropping) a store ends
its worker threads, and one store serves one event loop after another.
"""

from __future__ import annotations

import _thread
import asyncio
import gc
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import create_async_engine

from sessionstore import InvalidInput, SessionStore, StoreClosedError
from sessionstore.aio import AsyncSessionStore, sync_url

T = TypeVar("T")


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(main())


async def opened(url: str, **options: Any) -> AsyncSessionStore:
    return await AsyncSessionStore.open(url, **options)


# --- URLs and engines ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite+aiosqlite:///chat.db", "sqlite:///chat.db"),
        ("sqlite:///chat.db", "sqlite:///chat.db"),
        ("postgresql+asyncpg://u:p@h:5/db", "postgresql+psycopg://u:p@h:5/db"),
        ("postgresql+asyncpg://u@h/db?ssl=require", "postgresql+psycopg://u@h/db?sslmode=require"),
        ("postgresql+psycopg_async://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
    ],
)
def test_async_driver_urls_map_to_the_sync_driver_of_the_same_database(
    url: str, expected: str
) -> None:
    assert sync_url(url) == expected


def test_every_spelling_of_the_url_opens_the_same_database(
    tmp_path: Path, backend_url: str
) -> None:
    async def main() -> None:
        if backend_url.startswith("sqlite"):
            path = backend_url.removeprefix("sqlite:///")
            spellings = [f"sqlite+aiosqlite:///{path}", backend_url]
        else:
            rest = backend_url.split("://", 1)[1]
            spellings = [f"postgresql+{d}://{rest}" for d in ("asyncpg", "psycopg")]
            spellings.append(f"postgresql://{rest}")
        ids = []
        for url in spellings:
            async with await opened(url) as store:
                ids.append((await store.sessions.create("gpt")).session_id)
                assert await store.sessions.count() == len(ids)

    run(main)


def test_from_engine_takes_an_async_engines_database_and_leaves_the_engine_alone(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
        try:
            async with await AsyncSessionStore.from_engine(engine) as store:
                assert store.engine is not engine.sync_engine
                sid = (await store.sessions.create("gpt")).session_id
                await store.messages.append(sid, "user", "through the async engine's URL")
            # The engine still works, and sees what the store wrote.
            async with engine.connect() as conn:
                count = await conn.exec_driver_sql("SELECT count(*) FROM messages")
                assert count.scalar() == 1
        finally:
            await engine.dispose()
        memory = create_async_engine("sqlite+aiosqlite://")
        with pytest.raises(InvalidInput, match="in-memory"):
            await AsyncSessionStore.from_engine(memory)
        await memory.dispose()
        with pytest.raises(InvalidInput):
            await AsyncSessionStore.from_engine("sqlite:///not-an-engine.db")

    run(main)


def test_from_engine_uses_a_sync_engine_as_it_is(tmp_path: Path) -> None:
    async def main() -> None:
        engine = create_engine(f"sqlite:///{tmp_path / 's.db'}")
        store = await AsyncSessionStore.from_engine(engine)
        assert store.engine is engine
        await store.sessions.create("gpt")
        await store.close()
        engine.dispose()

    run(main)


def test_from_sync_wraps_a_store_the_caller_keeps(sqlite_url: str) -> None:
    sync = SessionStore.open(sqlite_url)
    sid = sync.sessions.create("gpt").session_id

    async def main() -> None:
        store = AsyncSessionStore.from_sync(sync, max_workers=2)
        assert store.max_workers == 2 and store.sync is sync
        await store.messages.append(sid, "user", "hi")
        await store.close()

    run(main)
    assert sync.messages.recent(sid, 1)[0].content == "hi"  # still open
    sync.close()


def test_an_async_postgres_url_without_the_driver_names_the_extra(tmp_path: Path) -> None:
    script = (
        "import asyncio, sys\n"
        "sys.modules['psycopg'] = None\n"  # the postgres extra not installed
        "from sessionstore import MissingDependency\n"
        "from sessionstore.aio import AsyncSessionStore\n"
        "try:\n"
        "    asyncio.run(AsyncSessionStore.open('postgresql+asyncpg://u@localhost/db'))\n"
        "except MissingDependency as exc:\n"
        "    print('missing:', exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert "missing:" in done.stdout
    assert "pip install 'sessionstore[postgres]'" in done.stdout


@pytest.mark.parametrize(
    "options",
    [{"max_workers": 0}, {"max_workers": True}, {"max_workers": "4"}, {"no_such_option": 1}],
)
def test_bad_options_are_invalid_input_and_leave_no_thread(
    sqlite_url: str, options: dict[str, Any]
) -> None:
    threads = _thread._count()  # the worker threads are started with _thread

    async def main() -> None:
        with pytest.raises(InvalidInput):
            await AsyncSessionStore.open(sqlite_url, **options)

    run(main)
    assert _threads_settle_at(threads)


def _threads_settle_at(count: int) -> bool:
    for _ in range(500):
        if _thread._count() == count:
            return True
        time.sleep(0.01)
    return False


def test_closing_or_dropping_a_store_ends_its_worker_threads(sqlite_url: str) -> None:
    threads = _thread._count()

    async def main() -> None:
        store = await opened(sqlite_url, max_workers=3)
        await asyncio.gather(*(store.sessions.count() for _ in range(6)))
        assert _thread._count() > threads
        await store.close()
        assert _threads_settle_at(threads)
        dropped = await opened(sqlite_url, max_workers=3)
        await asyncio.gather(*(dropped.sessions.count() for _ in range(6)))
        dropped.sync.close()
        del dropped
        gc.collect()
        assert _threads_settle_at(threads)

    run(main)


# --- closing --------------------------------------------------------------------------------


def test_close_stops_the_workers_and_every_later_call_is_refused(backend_url: str) -> None:
    async def main() -> None:
        store = await opened(backend_url)
        sid = (await store.sessions.create("gpt")).session_id
        await store.close()
        await store.close()  # again: nothing
        with pytest.raises(StoreClosedError):
            await store.sessions.get(sid)
        with pytest.raises(StoreClosedError):
            async with store.transaction():
                pass

    run(main)


def test_a_store_serves_one_event_loop_after_another(sqlite_url: str) -> None:
    store = run(lambda: opened(sqlite_url))
    sid = run(lambda: store.sessions.create("gpt")).session_id
    run(lambda: store.messages.append(sid, "user", "second loop"))
    assert run(lambda: store.sessions.get(sid)).message_count == 1
    run(store.close)


def test_the_async_store_needs_neither_greenlet_nor_an_async_driver(tmp_path: Path) -> None:
    script = (
        "import asyncio, sys\n"
        "for name in ('greenlet', 'aiosqlite', 'asyncpg'):\n"
        "    sys.modules[name] = None\n"  # not installed
        "from sessionstore.aio import AsyncSessionStore\n"
        "async def main():\n"
        f"    store = await AsyncSessionStore.open('sqlite+aiosqlite:///{tmp_path / 'g.db'}')\n"
        "    sid = (await store.sessions.create('gpt')).session_id\n"
        "    await store.messages.append(sid, 'user', 'hi')\n"
        "    print('stored', (await store.sessions.get(sid)).message_count)\n"
        "    await store.close()\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "stored 1"
