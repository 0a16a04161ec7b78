"""Session benchmarks: list pages (1 and 200), a selective filter, get; ours against raw.

All on ``sessions.db`` (10,000 sessions in the full mode, 2,000 in the
quick one). The deep page (200 of 20, quick: 20) starts after the 3,980th
session, newest activity first; both sides reach it by paging once, outside
the measurement, and then time only that page.
"""

from __future__ import annotations

from itertools import cycle
from typing import Any

import pytest
from modes import scale
from support import RARE_MODEL, Env, label

SCALE = scale()
SIDES = SCALE.sides
PAGE = 20
DEEP_PAGE = SCALE.deep_list_page


@pytest.fixture(scope="module")
def deep_keys(sessions_env: Env) -> dict[str, Any]:
    """Each side's way of asking for page 200: our cursor, the raw (activity, id) key."""
    store = sessions_env.ours
    cursor = None
    for _ in range(DEEP_PAGE - 1):
        cursor = store.sessions.list(limit=PAGE, cursor=cursor).next_cursor
    raw = sessions_env.raw["raw_tuple"]
    key = None
    for _ in range(DEEP_PAGE - 1):
        key = raw.list_sessions(limit=PAGE, after=key)[1]
    return {"ours": cursor, "raw_dict": key, "raw_tuple": key, "floor": key}


def _first_id(side: str, result: Any) -> str:
    if side == "ours":
        return str(result.items[0].session_id)
    row = result[0][0]
    return str(row["session_id"] if side == "raw_dict" else row[0])


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("page", [1, DEEP_PAGE])
def test_list_page(
    benchmark: Any, sessions_env: Env, deep_keys: dict[str, Any], page: int, side: str
) -> None:
    """``sessions.list`` page 1 and the deep page of 20, newest activity first."""
    label(benchmark, "list_p1" if page == 1 else "list_deep", side, page=page)
    key = None if page == 1 else deep_keys[side]
    if side == "ours":
        result = benchmark(sessions_env.ours.sessions.list, limit=PAGE, cursor=key)
        assert result.next_cursor is not None
    else:
        result = benchmark(sessions_env.side(side).list_sessions, limit=PAGE, after=key)
        assert result[1] is not None
    assert _first_id(side, result) == sessions_env.session_ids[(page - 1) * PAGE]
    assert len(sessions_env.session_ids) == SCALE.session_count


@pytest.mark.parametrize("side", SIDES)
def test_list_rare_model_active(benchmark: Any, sessions_env: Env, side: str) -> None:
    """Page 1 of a model with one session in 2,000, filtered to active ones."""
    label(benchmark, "list_rare_active", side)
    if side == "ours":
        page = benchmark(
            sessions_env.ours.sessions.list, limit=PAGE, model_id=RARE_MODEL, status="active"
        )
        found = len(page.items)
    else:
        rows, _ = benchmark(
            sessions_env.side(side).list_sessions_filtered,
            model_id=RARE_MODEL,
            status="active",
            limit=PAGE,
        )
        found = len(rows)
    assert found == SCALE.session_count // 2000


@pytest.mark.parametrize("side", SIDES)
def test_session_get(benchmark: Any, sessions_env: Env, side: str) -> None:
    """One session by id, cycling over a tenth of them."""
    label(benchmark, "session_get", side)
    ids = cycle(sessions_env.session_ids[::10])
    get = sessions_env.ours.sessions.get if side == "ours" else sessions_env.side(side).get_session
    result = benchmark(lambda: get(next(ids)))
    assert result is not None
