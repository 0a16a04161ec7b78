"""Items benchmarks: ``append_many`` of 100 against raw ``executemany``; clear and pop at 10k.

* ``append_many``: a batch of 100 messages through the store, against the
  same 100 rows (same columns, same values, the same triggers firing: counts,
  totals, title, full-text index) inserted with one raw ``sqlite3``
  ``executemany`` in a ``BEGIN IMMEDIATE`` transaction that first reads the
  session's ``last_seq``, as the store must. The ratio of their medians is
  recorded in ``extra_info`` (the goal is at most 1.5).
* ``clear`` of a session of 10,000 messages (every row's delete trigger
  fires: counts and the full-text index follow), and ``pop`` of the last
  message of a session of 10,000.

Nothing here asserts a time; the checks are counts and sequence numbers.
Not part of the ``report.py`` table (no ``op`` in ``extra_info``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sessionstore import NewMessage, SessionStore

BATCH = 100
LONG = 10_000
_COLUMNS = (
    "session_id, sequence_number, role, content, timestamp, tokens_used, duration_seconds,"
    " metadata, client_msg_id, kind, payload, exact_content"
)
_RAW_INSERT = f"INSERT INTO messages ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_MEDIANS: dict[str, float] = {}


def _texts(n: int) -> list[tuple[str, str, int]]:
    roles = ("user", "assistant")
    return [
        (roles[i % 2], f"message {i}: the quick brown fox jumps over the lazy dog " * 3, 20)
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def items_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SessionStore, Path]]:
    path = tmp_path_factory.mktemp("bench-items") / "items.db"
    with SessionStore.open(f"sqlite:///{path}") as store:
        yield store, path


def _raw_connection(path: Path) -> sqlite3.Connection:
    """A connection set up as the store's are (WAL, synchronous NORMAL, foreign keys)."""
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in (
        "PRAGMA foreign_keys = ON",
        "PRAGMA synchronous = NORMAL",
        "PRAGMA busy_timeout = 10000",
        "PRAGMA cache_size = -16384",
        "PRAGMA temp_store = MEMORY",
    ):
        conn.execute(pragma)
    return conn


@pytest.mark.parametrize("side", ["raw_executemany", "ours"])
def test_append_many_100(benchmark: Any, items_store: tuple[SessionStore, Path], side: str) -> None:
    store, path = items_store
    benchmark.group = "append_many: a batch of 100"
    session_id = store.sessions.create("gpt-4o").session_id
    texts = _texts(BATCH)
    if side == "ours":
        batch = [NewMessage(role, content, tokens=tokens) for role, content, tokens in texts]

        def run() -> Any:
            return store.messages.append_many(session_id, batch)

    else:
        conn = _raw_connection(path)

        def run() -> Any:
            now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
            conn.execute("BEGIN IMMEDIATE")
            (last_seq,) = conn.execute(
                "SELECT last_seq FROM sessions WHERE session_id = ?", (session_id,)
            ).fetchone()
            conn.executemany(
                _RAW_INSERT,
                [
                    (session_id, last_seq + i, role, content, now, tokens, None, None, None,
                     "message", None, None)
                    for i, (role, content, tokens) in enumerate(texts, start=1)
                ],
            )  # fmt: skip
            conn.execute("COMMIT")

    benchmark(run)
    session = store.sessions.get(session_id)
    rounds = session.message_count // BATCH
    assert rounds >= 1 and session.message_count == session.last_seq == rounds * BATCH
    _MEDIANS[side] = benchmark.stats.stats.median
    benchmark.extra_info["per_row_us"] = round(benchmark.stats.stats.median / BATCH * 1e6, 1)
    if len(_MEDIANS) == 2:
        ratio = _MEDIANS["ours"] / _MEDIANS["raw_executemany"]
        benchmark.extra_info["ratio_to_raw"] = round(ratio, 2)
        print(f"\nappend_many(100): ours / raw executemany = {ratio:.2f}")


def _long_session(store: SessionStore) -> str:
    session_id = store.sessions.create("gpt-4o").session_id
    texts = _texts(1000)
    for _ in range(LONG // 1000):
        store.messages.append_many(session_id, [NewMessage(r, c, tokens=t) for r, c, t in texts])
    return session_id


def test_clear_10k(benchmark: Any, items_store: tuple[SessionStore, Path]) -> None:
    store, _ = items_store
    benchmark.group = "clear: a session of 10,000 messages"
    removed: list[int] = []

    def setup() -> tuple[tuple[str], dict[str, Any]]:
        return (_long_session(store),), {}

    def run(session_id: str) -> None:
        removed.append(store.messages.clear(session_id))

    benchmark.pedantic(run, setup=setup, rounds=3, iterations=1)
    assert removed == [LONG] * 3


def test_pop_at_10k(benchmark: Any, items_store: tuple[SessionStore, Path]) -> None:
    store, _ = items_store
    benchmark.group = "pop: the last of 10,000 messages"
    session_id = _long_session(store)
    popped: list[int] = []

    def run() -> None:
        message = store.messages.pop(session_id)
        assert message is not None
        popped.append(message.sequence_number)

    benchmark.pedantic(run, rounds=200, iterations=1)
    assert popped == list(range(LONG, LONG - 200, -1))
    assert store.sessions.get(session_id).last_seq == LONG
    benchmark.extra_info["median_ms"] = round(benchmark.stats.stats.median * 1e3, 3)
