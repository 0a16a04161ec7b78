"""Message benchmarks: append, recent, history pages, get; ours against the raw baseline.

Each operation runs three times in the same benchmark session: through the
store (``ours``) and through :class:`baseline.RawStore` returning dicts
(``raw_dict``) or bare tuples (``raw_tuple``), on the same file. Appends go
to a fresh empty session and to the long (100,000-message) session of
``append.db``; reads go to the long (20,000-message) session of
``messages.db`` (sizes of the full mode; see ``modes.py``). In the quick
mode the tuple baseline is left out.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import cycle
from typing import Any

import pytest
from modes import scale
from support import Env, Texts, label

SCALE = scale()
SIDES = SCALE.sides
HISTORY_DEPTH = SCALE.history_depth
PAGE = 50


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("size", ["empty", "long"])
def test_append(benchmark: Any, append_env: Env, size: str, side: str) -> None:
    """One message, one transaction: to an empty session, and to the long one."""
    label(benchmark, "append" if size == "empty" else "append_deep", side)
    if size == "empty":
        session_id = append_env.ours.sessions.create("gpt-4o").session_id
        if side == "floor":
            session_id = append_env.side(side).create_session(session_id)
    else:
        session_id = append_env.ids["big"]
    if side == "floor":
        before = append_env.side(side).get_session(session_id)["last_seq"]
    else:
        before = append_env.ours.sessions.get(session_id).last_seq
    text = Texts()
    run: Callable[[], Any]
    if side == "ours":
        append = append_env.ours.messages.append

        def run() -> Any:
            role, content, tokens = text()
            return append(session_id, role, content, tokens=tokens)
    else:
        raw_append = append_env.side(side).append

        def run() -> Any:
            role, content, tokens = text()
            return raw_append(session_id, role, content, tokens=tokens)

    benchmark(run)
    if side == "floor":
        last_seq = append_env.side(side).get_session(session_id)["last_seq"]
        assert last_seq > before
    else:
        after = append_env.ours.sessions.get(session_id)
        assert after.message_count == after.last_seq > before
        last_seq = after.last_seq
    if size == "long":
        assert last_seq > SCALE.big_session


def _sequence(row: Any, side: str) -> int:
    """A raw side's row's sequence number."""
    if side == "raw_dict":
        return int(row["sequence_number"])
    if side == "floor":
        return int(row["seq"])
    return int(row[1])  # the store's reads of a session leave out its id


@pytest.mark.parametrize("side", SIDES)
def test_recent(benchmark: Any, messages_env: Env, side: str) -> None:
    """The last 50 messages of the long session, oldest first."""
    label(benchmark, "recent", side)
    session_id = messages_env.ids["main"]
    if side == "ours":
        result = benchmark(messages_env.ours.messages.recent, session_id, PAGE)
        sequence = [m.sequence_number for m in result]
    else:
        result = benchmark(messages_env.side(side).recent, session_id, PAGE)
        sequence = [_sequence(row, side) for row in result]
    assert sequence == list(range(SCALE.read_session - PAGE + 1, SCALE.read_session + 1))


@pytest.fixture(scope="module")
def history_cursor(messages_env: Env) -> str:
    """Our cursor for the page that starts after sequence ``HISTORY_DEPTH``, reached by paging."""
    store = messages_env.ours
    session_id = messages_env.ids["main"]
    cursor = None
    for _ in range(HISTORY_DEPTH // PAGE):
        cursor = store.messages.history(session_id, limit=PAGE, cursor=cursor).next_cursor
    assert cursor is not None
    return cursor


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("depth", [0, HISTORY_DEPTH])
def test_history_page(
    benchmark: Any, messages_env: Env, history_cursor: str, depth: int, side: str
) -> None:
    """A keyset page of 50: the first, and the one after sequence ``HISTORY_DEPTH``."""
    label(benchmark, "history_p1" if depth == 0 else "history_deep", side, depth=depth)
    session_id = messages_env.ids["main"]
    if side == "ours":
        cursor = None if depth == 0 else history_cursor
        page = benchmark(messages_env.ours.messages.history, session_id, limit=PAGE, cursor=cursor)
        first, next_key = page.items[0].sequence_number, page.next_cursor
    else:
        rows, next_key = benchmark(
            messages_env.side(side).history, session_id, limit=PAGE, after=depth
        )
        first = _sequence(rows[0], side)
    assert first == depth + 1
    assert next_key is not None


@pytest.mark.parametrize("side", SIDES)
def test_message_get(benchmark: Any, messages_env: Env, side: str) -> None:
    """One message by id, cycling over 1,000 ids of the long session (quick: 1,000 of 2,000)."""
    label(benchmark, "message_get", side)
    rows = messages_env.raw["raw_tuple"].history(
        messages_env.ids["main"], limit=1000, after=SCALE.read_session // 4
    )
    ids = cycle([row[0] for row in rows[0]])
    get = messages_env.ours.messages.get if side == "ours" else messages_env.side(side).get_message
    result = benchmark(lambda: get(next(ids)))
    assert result is not None
