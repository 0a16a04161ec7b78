"""Token windows and forks: ``messages.window`` at 100,000 messages, ``sessions.fork`` of 10,000.

(10,000 and 1,000 in the quick mode; see ``modes.py``.)

One file, ``windows.db``, seeded once by raw ``executemany`` on the store's
own file (the triggers fill counts, ``last_seq`` and the search index as
appends would), holds:

* ``deep``: a system prompt, then ``window_session - 1`` chat messages,
  every third without a token count (it costs ``ceil(bytes / 4)``);
* ``shallow``: the same, 1,000 messages: ``window`` is measured on both,
  and the report's depth row holds the deep one to 1.25x the shallow one,
  which is what "stops early, never loads the history" means in time;
* ``bare`` (full mode only): ``window_session`` messages and no system
  prompt, so ``keep_system`` looks through the whole session for one: the
  cost of that lookup, reported (not judged).

The raw side (``raw_dict``) is stdlib ``sqlite3`` running the library's own
window statements (``windows.statements()``, rendered once) with the same
chunk loop, in one deferred read transaction, rows as dicts: the same SQL
window query without the store around it. The budgets are 8,000 tokens
(about 130 messages of this corpus) and 128,000 (about 2,000).

``fork`` copies the first ``fork_messages`` messages of ``deep`` into a new
session, one round per fork; its raw side runs the library's own ``INSERT …
SELECT`` statements (``forks.fork_statements()``) in one ``BEGIN
IMMEDIATE`` transaction.

Reproduce (``-s`` prints the figures)::

    .venv/bin/pytest benchmarks/test_bench_windows.py --benchmark-only --quick -s
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from baseline import utc_text
from modes import scale
from sqlalchemy.dialects import sqlite as sqlite_dialect
from support import EPOCH, make_texts, open_store, raw_connection

from sessionstore import SessionStore
from sessionstore.forks import fork_statements
from sessionstore.prepared import Prepared
from sessionstore.windows import CHUNKS, statements

DEEP = scale().window_session
SHALLOW = 1_000
FORKED = scale().fork_messages
BUDGETS = (8_000, 128_000)
_DIALECT = sqlite_dialect.dialect()


def seed(path: Path, session_id: str, count: int, *, system: bool) -> None:
    """A session of ``count`` messages by ``executemany``; every third has no token count."""
    texts = make_texts(1024)
    conn = raw_connection(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO sessions (session_id, model_id, status, created_at, updated_at,"
            " last_activity) VALUES (?, 'gpt-4o', 'active', ?, ?, ?)",
            (session_id, *[utc_text(EPOCH)] * 3),
        )
        conn.execute("COMMIT")
        for first in range(0, count, 10_000):
            rows = []
            for i in range(first, min(count, first + 10_000)):
                role, content, tokens = texts[i % len(texts)]
                if i == 0 and system:
                    role, content = "system", "You are a terse assistant. " * 8
                ts = utc_text(EPOCH + timedelta(milliseconds=i))
                rows.append((session_id, i + 1, role, content, ts, None if i % 3 == 2 else tokens))
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO messages (session_id, sequence_number, role, content, timestamp,"
                " tokens_used) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


class RawWindow:
    """The window on a bare ``sqlite3`` connection: the library's SQL, the same chunk loop."""

    def __init__(self, path: Path) -> None:
        self.conn = raw_connection(path)
        self.conn.row_factory = sqlite3.Row
        self._sql = {name: p.render(_DIALECT) for name, p in statements().items()}

    def _run(self, name: str, params: dict[str, Any]) -> list[sqlite3.Row]:
        sql, order, defaults = self._sql[name]
        merged = {**defaults, **params}
        assert order is not None
        return self.conn.execute(sql, [merged[key] for key in order]).fetchall()

    def window(
        self, session_id: str, budget: int, keep_system: bool = True
    ) -> list[dict[str, Any]]:
        top = 2**63 - 1
        rows: list[sqlite3.Row] = []
        pinned_seq, remaining, cap = -top - 1, budget, budget + 1
        self.conn.execute("BEGIN")
        try:
            if keep_system:
                found = self._run("pinned", {"sid": session_id, "cap": cap})
                if found:
                    if found[0]["cost"] > budget:
                        return []
                    rows.append(found[0])
                    pinned_seq = found[0]["sequence_number"]
                    remaining -= found[0]["cost"]
            through, chunk = top, CHUNKS[0]
            while remaining >= 0:
                params = {"sid": session_id, "through": through, "pinned": pinned_seq,
                          "chunk": chunk, "remaining": remaining, "cap": cap}  # fmt: skip
                fitted = self._run("chunk", params)
                rows.extend(fitted)
                if len(fitted) < chunk:
                    break
                through = min(row["sequence_number"] for row in fitted) - 1
                remaining -= max(row["running"] for row in fitted)
                chunk = min(chunk * 2, CHUNKS[1])
        finally:
            self.conn.execute("COMMIT")
        rows.sort(key=lambda row: row["sequence_number"])
        return [dict(row) for row in rows]

    def fork(self, parent: str, new_id: str, through: int) -> None:
        now = utc_text(EPOCH + timedelta(days=1))
        params = {"new_id": new_id, "parent": parent, "through": through, "now": now, "title": None}
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            last = self.conn.execute(
                "SELECT last_seq FROM sessions WHERE session_id = ?", (parent,)
            ).fetchone()
            assert last is not None and last[0] >= through
            for statement in fork_statements().values():
                sql, order, defaults = Prepared(statement).render(_DIALECT)
                merged = {**defaults, **params}
                assert order is not None
                self.conn.execute(sql, [merged[key] for key in order])
            self.conn.execute("SELECT * FROM sessions WHERE session_id = ?", (new_id,)).fetchone()
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


@dataclass
class Windows:
    store: SessionStore
    raw: RawWindow
    path: Path


@pytest.fixture(scope="module")
def windows_env(bench_dir: Path) -> Iterator[Windows]:
    path = bench_dir / "windows.db"
    with open_store(path):
        pass  # the file at the current schema
    seed(path, "deep", DEEP, system=True)
    seed(path, "shallow", SHALLOW, system=True)
    env = Windows(open_store(path), RawWindow(path), path)
    try:
        yield env
    finally:
        env.raw.close()
        env.store.close()


def _label(
    benchmark: Any, op: str, side: str, title: str, target: str | None, **extra: Any
) -> None:
    benchmark.group = title
    benchmark.extra_info.update(kind="op", op=op, side=side, title=title, target=target, **extra)


def _check(ours: list[Any], raw: list[dict[str, Any]], budget: int) -> None:
    """Both sides return the same window, and it fits."""
    assert [m.sequence_number for m in ours] == [row["sequence_number"] for row in raw]
    assert ours and ours[0].role == "system"
    cost = sum(m.tokens if m.tokens is not None else (len(m.content.encode()) + 3) // 4
               for m in ours)  # fmt: skip
    assert cost <= budget


def _op(session: str, budget: int) -> str:
    return f"window_{session}_{budget}"


def _title(size: int, budget: int) -> str:
    return f"window({budget // 1000}k tokens), session of {size:,}"


@pytest.mark.parametrize("side", ["ours", "raw_dict"])
@pytest.mark.parametrize("budget", BUDGETS)
def test_window_deep(benchmark: Any, windows_env: Windows, budget: int, side: str) -> None:
    env = windows_env
    _check(env.store.messages.window("deep", budget), env.raw.window("deep", budget), budget)
    depth: dict[str, Any] = {}
    if budget == BUDGETS[0]:
        depth = {
            "depth_of": _op("shallow", budget),
            "depth_title": f"depth: window at {DEEP:,} / at {SHALLOW:,}",
        }
    _label(benchmark, _op("deep", budget), side, _title(DEEP, budget), "read", **depth)
    if side == "ours":
        result = benchmark(env.store.messages.window, "deep", budget)
    else:
        result = benchmark(env.raw.window, "deep", budget)
    assert len(result) > 10


@pytest.mark.parametrize("side", ["ours", "raw_dict"])
def test_window_shallow(benchmark: Any, windows_env: Windows, side: str) -> None:
    env, budget = windows_env, BUDGETS[0]
    _check(env.store.messages.window("shallow", budget), env.raw.window("shallow", budget), budget)
    _label(benchmark, _op("shallow", budget), side, _title(SHALLOW, budget), "read")
    if side == "ours":
        benchmark(env.store.messages.window, "shallow", budget)
    else:
        benchmark(env.raw.window, "shallow", budget)


@pytest.mark.full_only
@pytest.mark.parametrize("side", ["ours", "raw_dict"])
def test_window_without_a_system_prompt(benchmark: Any, windows_env: Windows, side: str) -> None:
    """keep_system in a session with no system message: the lookup reads the whole session."""
    env, budget = windows_env, BUDGETS[0]
    if not env.store.sessions.exists("bare"):
        seed(env.path, "bare", DEEP, system=False)
    ours = env.store.messages.window("bare", budget)
    assert [m.sequence_number for m in ours] == [
        row["sequence_number"] for row in env.raw.window("bare", budget)
    ]
    title = f"window({budget // 1000}k), no system prompt, {DEEP:,}"
    _label(benchmark, "window_bare", side, title, None)
    call = env.store.messages.window if side == "ours" else env.raw.window
    benchmark.pedantic(call, args=("bare", budget), rounds=20, iterations=1, warmup_rounds=2)


@pytest.mark.parametrize("side", ["ours", "raw_dict"])
def test_fork(benchmark: Any, windows_env: Windows, side: str) -> None:
    env = windows_env
    names = (f"fork-{side}-{n}" for n in itertools.count())

    def fork_ours() -> None:
        record = env.store.sessions.fork("deep", FORKED, new_session_id=next(names))
        assert record.message_count == FORKED

    def fork_raw() -> None:
        env.raw.fork("deep", next(names), FORKED)

    title = f"sessions.fork, {FORKED:,} messages"
    _label(benchmark, "fork", side, title, "write")
    rounds = 5 if scale().name == "full" else 3
    benchmark.pedantic(
        fork_ours if side == "ours" else fork_raw, rounds=rounds, iterations=1, warmup_rounds=1
    )
    forked = env.store.sessions.get(f"fork-{side}-0")
    assert (forked.message_count, forked.last_seq, forked.parent_session_id) == (
        FORKED,
        FORKED,
        "deep",
    )
    median = benchmark.stats.stats.median
    print(f"\nfork ({side}): {FORKED:,} messages in {median * 1e3:.1f} ms"
          f" = {median / FORKED * 1e6:.1f} us per message")  # fmt: skip
