"""``health.check()`` counts exactly the damage injected, and ``repair()`` undoes it losslessly.

On a real store, damage is injected behind the store's back through a raw
connection of its own:

* N orphans: a session row deleted with foreign keys off (``PRAGMA
  foreign_keys = OFF`` on SQLite; ``session_replication_role = replica`` on
  PostgreSQL, which disables the foreign-key triggers), leaving its messages
  and metadata rows (N of them together) without a session;
* M drifted sessions: raw ``UPDATE`` of ``message_count``, ``total_tokens`` or
  ``total_duration_seconds`` on M sessions;
* K missing index rows (SQLite): the FTS5 ``'delete'`` command for K messages.

Proved, for several (N, M, K): a clean database reports zero everywhere and
is ok; after injection ``check()`` reports exactly N under ``orphans``, M
under ``counts`` and K under ``search_index``, every other check still ok;
``repair()`` reports the same figures, leaves a database whose check is ok,
keeps every orphan row (ids and contents) in ``quarantined_messages`` /
``quarantined_metadata``, recomputes the true counts and totals, and makes
the K messages findable again. On PostgreSQL the same with K = 0 (its
search vector is a generated column and cannot go missing).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.pool import NullPool

from sessionstore import NewMessage, SessionStore
from sessionstore.health import ORPHAN_REASON

pytestmark = pytest.mark.reliability

HEALTHY_SESSIONS = 6
MESSAGES_EACH = 8


@dataclass
class World:
    """The healthy sessions with their true totals, and the victim of the orphan injection."""

    healthy: list[str] = field(default_factory=list)
    # session -> (message count, total tokens, total duration)
    totals: dict[str, tuple[int, int, float]] = field(default_factory=dict)
    # message id -> its unique search word, for the healthy sessions' messages
    words: dict[int, str] = field(default_factory=dict)
    victim: str | None = None
    orphan_messages: list[tuple[Any, ...]] = field(default_factory=list)
    orphan_metadata: list[tuple[Any, ...]] = field(default_factory=list)


def build(store: SessionStore, orphan_messages: int, orphan_metadata: int) -> World:
    world = World()
    for s in range(HEALTHY_SESSIONS):
        sid = store.sessions.create("m", title=f"healthy {s}", metadata={"a": "1", "b": "2"})
        batch = [
            NewMessage("user" if j % 2 == 0 else "assistant", f"note w{s}x{j}q", j + 1, 0.25 * j)
            for j in range(MESSAGES_EACH)
        ]
        stored = store.messages.append_many(sid.session_id, batch)
        world.healthy.append(sid.session_id)
        world.totals[sid.session_id] = (
            MESSAGES_EACH,
            sum(j + 1 for j in range(MESSAGES_EACH)),
            sum(0.25 * j for j in range(MESSAGES_EACH)),
        )
        world.words.update({m.message_id: f"w{s}x{j}q" for j, m in enumerate(stored)})
    if orphan_messages or orphan_metadata:
        metadata = {f"key{i}": f"value {i}" for i in range(orphan_metadata)}
        victim = store.sessions.create("m", title="victim", metadata=metadata).session_id
        for i in range(orphan_messages):
            store.messages.append(victim, "user", f"orphan {i}", tokens=i)
        world.victim = victim
    return world


@contextlib.contextmanager
def raw(url: str) -> Iterator[Connection]:
    """A connection of its own, foreign keys off, one transaction committed at the end."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
            else:
                conn.exec_driver_sql("SET session_replication_role = replica")
            conn.commit()  # the setting stays for the session
            with conn.begin():
                yield conn
    finally:
        engine.dispose()


def inject(url: str, world: World, m: int, k: int) -> None:
    with raw(url) as conn:
        if world.victim is not None:
            params = {"sid": world.victim}
            world.orphan_messages = [
                tuple(r)
                for r in conn.execute(
                    text(
                        "SELECT message_id, session_id, sequence_number, role, content"
                        " FROM messages WHERE session_id = :sid ORDER BY message_id"
                    ),
                    params,
                )
            ]
            world.orphan_metadata = [
                tuple(r)
                for r in conn.execute(
                    text(
                        "SELECT metadata_id, session_id, key, value FROM session_metadata"
                        " WHERE session_id = :sid ORDER BY metadata_id"
                    ),
                    params,
                )
            ]
            conn.execute(text("DELETE FROM sessions WHERE session_id = :sid"), params)
        drifts = (
            "message_count = message_count + 3",
            "total_tokens = total_tokens + 7",
            "total_duration_seconds = total_duration_seconds + 1.5",
        )
        for i, sid in enumerate(world.healthy[:m]):
            conn.execute(
                text(f"UPDATE sessions SET {drifts[i % 3]} WHERE session_id = :sid"), {"sid": sid}
            )
        for message_id in list(world.words)[:k]:
            conn.execute(
                text(
                    "INSERT INTO messages_fts (messages_fts, rowid, content)"
                    " SELECT 'delete', message_id, content FROM messages WHERE message_id = :id"
                ),
                {"id": message_id},
            )


def assert_report(store: SessionStore, n: int, m: int, k: int, when: str) -> None:
    report = store.health.check()
    figures = {name: report[name].count for name in ("orphans", "counts", "search_index")}
    print(f"\n{when}: expected N={n} M={m} K={k}; check() counts {figures}", end="")
    assert figures == {"orphans": n, "counts": m, "search_index": k}
    assert report["orphans"].ok == (n == 0)
    assert report["counts"].ok == (m == 0)
    assert report["search_index"].ok == (k == 0)
    others = [c for c in report.checks if c.name not in figures]
    assert [c for c in others if not c.ok] == []
    assert report.ok == (n + m + k == 0)


def split(n: int) -> tuple[int, int]:
    """N orphans as (messages, metadata rows)."""
    return n - n // 3, n // 3


def run_case(store: SessionStore, url: str, n: int, m: int, k: int) -> None:
    orphan_messages, orphan_metadata = split(n)
    world = build(store, orphan_messages, orphan_metadata)
    assert_report(store, 0, 0, 0, "clean")
    inject(url, world, m, k)
    assert len(world.orphan_messages) + len(world.orphan_metadata) == n
    missing = list(world.words)[:k]
    for message_id in missing:
        assert store.search.messages(world.words[message_id]).items == ()
    assert_report(store, n, m, k, "injected")

    repaired = store.health.repair()
    print(f"\nrepair(): {repaired}", end="")
    assert repaired.orphaned_messages_quarantined == orphan_messages
    assert repaired.orphaned_metadata_quarantined == orphan_metadata
    assert repaired.counts_repaired == m
    assert repaired.index_rebuilt == (k > 0)
    assert_report(store, 0, 0, 0, "repaired")

    for sid, (count, tokens, duration) in world.totals.items():
        record = store.sessions.get(sid)
        assert (record.message_count, record.total_tokens) == (count, tokens)
        assert record.total_duration_seconds == pytest.approx(duration)
        assert len(store.messages.history(sid).items) == count
    for message_id in missing:
        hits = store.search.messages(world.words[message_id]).items
        assert [h.message.message_id for h in hits] == [message_id]
    with raw(url) as conn:
        kept = [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT message_id, session_id, sequence_number, role, content, reason"
                    " FROM quarantined_messages ORDER BY message_id"
                )
            )
        ]
        kept_metadata = [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT metadata_id, session_id, key, value, reason"
                    " FROM quarantined_metadata ORDER BY metadata_id"
                )
            )
        ]
        left = conn.execute(text("SELECT COUNT(*) FROM messages")).scalar()
    assert kept == [(*row, ORPHAN_REASON) for row in world.orphan_messages]
    assert kept_metadata == [(*row, ORPHAN_REASON) for row in world.orphan_metadata]
    assert left == HEALTHY_SESSIONS * MESSAGES_EACH

    again = store.health.repair()  # nothing left to do
    assert (again.orphaned_messages_quarantined, again.orphaned_metadata_quarantined,
            again.counts_repaired, again.index_rebuilt) == (0, 0, 0, False)  # fmt: skip


@pytest.mark.parametrize(
    ("n", "m", "k"), [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (3, 2, 5), (8, 6, 13)]
)
def test_sqlite_check_counts_exactly_and_repair_fixes(
    tmp_path: Path, n: int, m: int, k: int
) -> None:
    url = f"sqlite:///{tmp_path / 'health.db'}"
    with SessionStore.open(url) as store:
        run_case(store, url, n, m, k)
    with contextlib.closing(sqlite3.connect(tmp_path / "health.db")) as conn:
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


@pytest.mark.postgres
@pytest.mark.parametrize(("n", "m"), [(0, 0), (4, 3)])
def test_postgres_check_counts_exactly_and_repair_fixes(postgres_url: str, n: int, m: int) -> None:
    with SessionStore.open(postgres_url) as store:
        run_case(store, postgres_url, n, m, 0)
