"""Benchmark fixtures: seeded database files (built once per run) and the two sides.

Three files are seeded once per benchmark session, in a temporary directory:

* ``messages.db``: a 20,000-message session (``append_many`` in batches of
  5,000) and ten 1,000-message sessions interleaved with it, for ``recent``,
  ``history`` and ``messages.get``;
* ``append.db``: a 100,000-message session (raw ``executemany`` on the
  store's file; the store's triggers fill counts, ``last_seq`` and FTS), that
  the append benchmarks write to, next to fresh empty sessions;
* ``sessions.db``: 10,000 sessions (raw ``executemany``), four models plus a
  rare one, one in ten archived, for ``sessions.list`` and ``sessions.get``.

Every file is created by :meth:`SessionStore.open`, so the raw baseline
(:class:`baseline.RawStore`) runs on the same schema, indexes and triggers.
An :class:`Env` holds, on one file, our store and the two raw variants.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import (
    BIG_SESSION_SIZE,
    MODELS,
    READ_SESSION_SIZE,
    SESSION_COUNT,
    Env,
    bulk_messages,
    bulk_sessions,
    make_texts,
    open_store,
    raw_connection,
)


@pytest.fixture(scope="session")
def bench_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench")


@pytest.fixture(scope="session")
def messages_env(bench_dir: Path) -> Iterator[Env]:
    """A 20,000-message session among ten 1,000-message ones."""
    path = bench_dir / "messages.db"
    texts = make_texts(1024)
    batch = 5_000
    with open_store(path) as store:
        main = store.sessions.create("gpt-4o", title="the long session").session_id
        others = [store.sessions.create(MODELS[i % len(MODELS)]).session_id for i in range(10)]
        for first in range(0, READ_SESSION_SIZE, batch):
            store.messages.append_many(
                main,
                [
                    {"role": role, "content": content, "tokens": tokens}
                    for role, content, tokens in (
                        texts[i % len(texts)] for i in range(first, first + batch)
                    )
                ],
            )
            # Other sessions' rows land between this session's, as in a real file.
            for other in others[first // batch :: READ_SESSION_SIZE // batch]:
                store.messages.append_many(
                    other,
                    [
                        {"role": role, "content": content, "tokens": tokens}
                        for role, content, tokens in texts[:1000]
                    ],
                )
        assert store.sessions.get(main).message_count == READ_SESSION_SIZE
    conn = raw_connection(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    env = Env.open(path)
    env.ids["main"] = main
    yield env
    env.close()


@pytest.fixture(scope="session")
def append_env(bench_dir: Path) -> Iterator[Env]:
    """A 100,000-message session that appends go to, next to fresh empty sessions."""
    path = bench_dir / "append.db"
    with open_store(path) as store:
        big = store.sessions.create("gpt-4o", title="the 100,000-message session").session_id
    bulk_messages(path, big, BIG_SESSION_SIZE)
    env = Env.open(path)
    assert env.ours.sessions.get(big).message_count == BIG_SESSION_SIZE
    env.ids["big"] = big
    yield env
    env.close()


@pytest.fixture(scope="session")
def sessions_env(bench_dir: Path) -> Iterator[Env]:
    """10,000 sessions, newest activity first in ``session_ids``."""
    path = bench_dir / "sessions.db"
    with open_store(path):
        pass
    ids = bulk_sessions(path, SESSION_COUNT)
    env = Env.open(path)
    env.session_ids = ids
    yield env
    env.close()
