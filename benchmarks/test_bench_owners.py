"""One user's sessions, page 1 and page 50, in a store of 3,000 and of 300,000 sessions.

The user has 1,010 sessions (page 50 of 20 is their 981st to 1,000th) among
sessions of 200 other users of the same app, all interleaved in time; the
rest of the store is filled by raw ``executemany`` (the quick mode's large
store holds 30,000). Each page is read through the user's scoped view
(``store.for_user(app, user).sessions.list``), on
``ix_sessions_app_user_id_last_activity``: the large store's page must cost
at most 1.25 times the small one's, page for page. The comparison is made
on the fastest round of each (the least disturbed by other work on a shared
machine), and the medians are printed beside it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from modes import scale
from support import EPOCH, open_store, raw_connection

from sessionstore import SessionStore
from sessionstore.models import to_utc_text

APP, USER = "chat", "target-user"
USER_SESSIONS = 1_010
PAGE = 20
DEEP_PAGE = 50
SIZES = (3_000, 300_000 if scale().name == "full" else 30_000)
RATIO = 1.25
#: The fastest and median seconds per call, by (store size, page).
MEASURED: dict[tuple[int, int], tuple[float, float]] = {}


def _seed(path: Path, total: int) -> None:
    """``total`` sessions; ``USER_SESSIONS`` of them the user's, spread evenly in time."""
    SessionStore.open(f"sqlite:///{path}").close()
    rng = random.Random(12)
    every = total // USER_SESSIONS
    rows = []
    for i in range(total):
        mine = i % every == 0 and i // every < USER_SESSIONS
        user = USER if mine else f"user-{rng.randrange(200)}"
        stamp = to_utc_text(EPOCH + timedelta(seconds=i))
        # An explicit search_key: the trigger that would assign one reads MAX() per row.
        rows.append((f"{i:08d}-{rng.getrandbits(64):016x}", "gpt-4o", stamp, stamp, stamp,
                     APP, user, i + 1))  # fmt: skip
    conn = raw_connection(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO sessions (session_id, model_id, created_at, updated_at, last_activity,"
            " app, user_id, search_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


@pytest.fixture(scope="module", params=SIZES, ids=lambda n: f"{n}-sessions")
def owner_store(request: pytest.FixtureRequest, tmp_path_factory: Any) -> Iterator[tuple[int, Any]]:
    size = int(request.param)
    path = tmp_path_factory.mktemp("owners") / f"owners-{size}.db"
    _seed(path, size)
    store = open_store(path)
    try:
        assert store.sessions.count(app=APP, user_id=USER) == USER_SESSIONS
        assert store.sessions.count() == size
        yield size, store
    finally:
        store.close()


@pytest.mark.parametrize("page", [1, DEEP_PAGE])
def test_one_users_page(benchmark: Any, owner_store: tuple[int, Any], page: int) -> None:
    size, store = owner_store
    view = store.for_user(APP, USER)
    cursor = None
    for _ in range(page - 1):
        cursor = view.sessions.list(limit=PAGE, cursor=cursor).next_cursor
    benchmark.group = f"one user's sessions.list, page {page}"
    benchmark.extra_info.update(kind="owners", store_sessions=size, page=page)
    result = benchmark.pedantic(
        view.sessions.list, kwargs={"limit": PAGE, "cursor": cursor}, rounds=300, iterations=5,
        warmup_rounds=20,
    )  # fmt: skip
    assert len(result.items) == PAGE
    assert all(s.user_id == USER for s in result.items)
    MEASURED[(size, page)] = (benchmark.stats.stats.min, benchmark.stats.stats.median)
    small = MEASURED.get((SIZES[0], page))
    if size == SIZES[1] and small is not None:
        fastest, median = MEASURED[(size, page)]
        ratio = fastest / small[0]
        print(f"\npage {page}: {small[0] * 1e6:.1f} us (median {small[1] * 1e6:.1f}) with "
              f"{SIZES[0]:,} sessions, {fastest * 1e6:.1f} us (median {median * 1e6:.1f}) with "
              f"{size:,}: ratio {ratio:.2f} (median ratio {median / small[1]:.2f})")  # fmt: skip
        assert ratio <= RATIO
