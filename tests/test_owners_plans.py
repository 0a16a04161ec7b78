"""One owner's listing runs on the owner index, and its cost does not grow with the store.

The statements are the library's own (``sessions._list_statement``, rendered
by ``Prepared``); ``EXPLAIN QUERY PLAN`` must show a search of
``ix_sessions_app_user_id_last_activity`` and no sort. The work of one page,
counted in SQLite VM instructions (a progress handler, not a clock), must
stay the same when other owners' sessions grow tenfold.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sessionstore import SessionStore
from sessionstore import sessions as sessions_module
from sessionstore.prepared import Prepared

INDEX = "ix_sessions_app_user_id_last_activity"
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def _insert(path: Path, start: int, count: int, users: int, prefix: str = "u") -> None:
    """``count`` sessions spread over ``users`` users of app ``chat`` (raw, for speed)."""
    with sqlite3.connect(path) as conn:
        rows = []
        for i in range(start, start + count):
            moment = (EPOCH + timedelta(seconds=i)).replace(tzinfo=None)
            stamp = moment.isoformat(sep=" ", timespec="microseconds")
            rows.append((f"s{i:07d}", "gpt", stamp, stamp, stamp, "chat", f"{prefix}{i % users}"))
        conn.executemany(
            "INSERT INTO sessions (session_id, model_id, created_at, updated_at, last_activity,"
            " app, user_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SessionStore]:
    path = tmp_path / "owners.db"
    SessionStore.open(f"sqlite:///{path}").close()
    _insert(path, 0, 600, users=20)
    with SessionStore.open(f"sqlite:///{path}") as opened:
        yield opened


def _args(store: SessionStore, prepared: Prepared, params: dict[str, Any]) -> tuple[str, Any]:
    sql, order, defaults = prepared.render(store.engine.dialect)
    merged = {**defaults, **params}
    return sql, merged if order is None else [merged[name] for name in order]


def _params(after: bool, **extra: Any) -> dict[str, Any]:
    params = {"limit": 21, "owner_app": "chat", "owner_user": "u3", "model_id": "gpt",
              "status": "active"}  # fmt: skip
    if after:
        params.update(after_activity="2026-01-01 00:05:00.000000", after_id="s0000300")
    return {**params, **extra}


SHAPES = [
    (False, False, False),
    (False, False, True),
    (True, False, True),
    (False, True, False),
    (True, True, True),
]


@pytest.mark.parametrize(("by_model", "by_status", "after"), SHAPES)
def test_one_users_page_searches_the_owner_index(
    store: SessionStore, by_model: bool, by_status: bool, after: bool
) -> None:
    prepared = sessions_module._list_statement(by_model, by_status, after, (True, True))
    sql, args = _args(store, prepared, _params(after))
    raw = store.engine.raw_connection()
    try:
        plan = [row[3] for row in raw.driver_connection.execute("EXPLAIN QUERY PLAN " + sql, args)]
    finally:
        raw.close()
    assert any(step.startswith(f"SEARCH sessions USING INDEX {INDEX} (app=? AND user_id=?")
               for step in plan), plan  # fmt: skip
    assert not any("TEMP B-TREE" in step for step in plan), plan


def _steps(store: SessionStore, sql: str, args: Any) -> int:
    raw = store.engine.raw_connection()
    count = 0

    def tick() -> int:
        nonlocal count
        count += 1
        return 0

    try:
        conn = raw.driver_connection
        conn.set_progress_handler(tick, 1)
        rows = conn.execute(sql, args).fetchall()
        conn.set_progress_handler(None, 0)
    finally:
        raw.close()
    assert len(rows) == 21
    return count


def test_one_users_page_costs_the_same_in_a_store_ten_times_larger(
    store: SessionStore, tmp_path: Path
) -> None:
    first = sessions_module._list_statement(False, False, False, (True, True))
    deep = sessions_module._list_statement(False, False, True, (True, True))
    # u3 has 30 sessions among the first 600; a page of 20 (+1) after the newest few.
    cases = [
        _args(store, first, _params(False)),
        _args(
            store,
            deep,
            _params(True, after_activity="2026-01-01 00:09:59.000000", after_id="s0000599"),
        ),
    ]
    before = [_steps(store, sql, args) for sql, args in cases]
    assert store.path is not None
    # Tenfold: other users' sessions (newer than u3's), all in the same app.
    _insert(store.path, 600, 6000, users=7, prefix="v")
    after = [_steps(store, sql, args) for sql, args in cases]
    assert after == before
    assert store.sessions.count() == 6600
    page = store.sessions.list(app="chat", user_id="u3")
    assert [s.session_id for s in page.items][:2] == ["s0000583", "s0000563"]
