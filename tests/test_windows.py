"""Token-budget windows: ``store.messages.window(session_id, max_tokens, keep_system=...)``.

On both backends: the window is the newest run of messages whose costs sum
to at most the budget, oldest first; a message without a token count costs
``ceil(bytes / 4)``; ``keep_system`` pins the first system or developer
message and takes its cost from the budget; a budget that cannot hold the
newest message (or the pinned prompt) gives an empty list; bad budgets are
``InvalidInput``; archived sessions are read; a long session is walked in
chunks (crossing every chunk boundary) and agrees with a reference computed
in Python from the whole history. On SQLite, the walk's statements search
the ``(session_id, sequence_number)`` index, and the work of one chunk does
not grow with the session (counted in VM instructions, not timed).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import text

from sessionstore import MessageRecord, NewMessage, SessionStore
from sessionstore.errors import InvalidInput, SessionNotFound
from sessionstore.windows import CHUNKS, statements

from .test_query_plans import FULL_SCAN, TEMP_SORT, _args, constraint_index


def cost(message: MessageRecord) -> int:
    """The documented rule: the token count, else ceil(UTF-8 bytes of the text / 4)."""
    if message.tokens is not None:
        return message.tokens
    return (len(message.content.encode("utf-8")) + 3) // 4


def reference(history: Sequence[MessageRecord], budget: int, keep_system: bool) -> list[int]:
    """The window's sequence numbers computed in Python from the whole history."""
    chosen: list[MessageRecord] = []
    remaining = budget
    pinned = None
    if keep_system:
        pinned = next((m for m in history if m.role in ("system", "developer")), None)
        if pinned is not None:
            if cost(pinned) > budget:
                return []
            chosen.append(pinned)
            remaining -= cost(pinned)
    for message in reversed(history):
        if message is pinned:
            continue
        if cost(message) > remaining:
            break
        remaining -= cost(message)
        chosen.append(message)
    return sorted(m.sequence_number for m in chosen)


def seqs(messages: Sequence[MessageRecord]) -> list[int]:
    return [m.sequence_number for m in messages]


def everything(store: SessionStore, session_id: str) -> list[MessageRecord]:
    return store.messages.recent(session_id, 1000)


def test_newest_messages_that_fit_oldest_first(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    for tokens in (50, 10, 20, 30, 40):
        store.messages.append(sid, "user", "text", tokens=tokens)
    window = store.messages.window(sid, 70)
    assert seqs(window) == [4, 5]  # 40 + 30 fit; 20 more would make 90
    assert [m.tokens for m in window] == [30, 40]
    assert seqs(store.messages.window(sid, 90)) == [3, 4, 5]
    # A total exactly at the budget fits.
    assert seqs(store.messages.window(sid, 100)) == [2, 3, 4, 5]
    assert seqs(store.messages.window(sid, 10**6)) == [1, 2, 3, 4, 5]
    assert store.messages.window(sid, 10**6) == everything(store, sid)


def test_a_message_without_a_token_count_costs_a_quarter_of_its_bytes(
    store: SessionStore,
) -> None:
    sid = store.sessions.create("m").session_id
    texts = ["abcd", "abcde", "", "ééé", "日本語"]  # 4, 5, 0, 6 and 9 bytes of UTF-8
    for content in texts:
        store.messages.append(sid, "user", content)
    costs = [1, 2, 0, 2, 3]
    assert [cost(m) for m in everything(store, sid)] == costs
    assert seqs(store.messages.window(sid, 3)) == [5]
    assert seqs(store.messages.window(sid, 5)) == [3, 4, 5]  # the empty text costs nothing
    assert seqs(store.messages.window(sid, 7)) == [2, 3, 4, 5]
    assert seqs(store.messages.window(sid, 8)) == [1, 2, 3, 4, 5]
    # A count of zero is a count: it is not replaced by the bytes rule.
    store.messages.append(sid, "user", "x" * 400, tokens=0)
    assert seqs(store.messages.window(sid, 3)) == [5, 6]


def test_keep_system_pins_the_first_system_message_and_charges_it(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    store.messages.append(sid, "user", "before the prompt", tokens=5)
    store.messages.append(sid, "system", "You are terse.", tokens=30)
    for _ in range(5):
        store.messages.append(sid, "user", "q", tokens=10)
    store.messages.append(sid, "system", "A later system message is an ordinary one.", tokens=10)
    store.messages.append(sid, "assistant", "a", tokens=10)

    window = store.messages.window(sid, 60)
    assert seqs(window) == [2, 7, 8, 9]  # 30 for the prompt, then the newest 30
    assert window[0].role == "system" and window[0].content == "You are terse."
    assert seqs(store.messages.window(sid, 60, keep_system=False)) == [4, 5, 6, 7, 8, 9]
    # Reaching back past the prompt: it is there once, in its place.
    assert seqs(store.messages.window(sid, 105)) == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert seqs(store.messages.window(sid, 104)) == [2, 3, 4, 5, 6, 7, 8, 9]


def test_a_developer_message_is_a_system_prompt(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    store.messages.append(sid, "developer", "Answer in French.", tokens=7)
    for _ in range(3):
        store.messages.append(sid, "user", "q", tokens=10)
    assert seqs(store.messages.window(sid, 27)) == [1, 3, 4]
    assert seqs(store.messages.window(sid, 27, keep_system=False)) == [3, 4]


def test_a_budget_that_cannot_hold_the_newest_message_gives_nothing(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    store.messages.append(sid, "system", "prompt", tokens=5)
    store.messages.append(sid, "user", "small", tokens=1)
    store.messages.append(sid, "user", "big", tokens=100)
    # No message is cut, and the budget is never exceeded.
    assert store.messages.window(sid, 99, keep_system=False) == []
    # The prompt alone fits, the newest message does not: the prompt alone.
    assert seqs(store.messages.window(sid, 99)) == [1]
    # A prompt over the budget: nothing, rather than a window without its prompt.
    assert store.messages.window(sid, 4) == []
    assert seqs(store.messages.window(sid, 4, keep_system=False)) == []


def test_the_window_of_an_empty_session_is_empty(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    assert store.messages.window(sid, 1000) == []


@pytest.mark.parametrize(
    "bad", [0, -1, True, False, 1.5, "100", None, 2**40 + 1, 2**64, [100], float("nan")]
)
def test_a_bad_budget_is_invalid_input(store: SessionStore, bad: Any) -> None:
    sid = store.sessions.create("m").session_id
    store.messages.append(sid, "user", "hi", tokens=1)
    with pytest.raises(InvalidInput, match="max_tokens"):
        store.messages.window(sid, bad)


@pytest.mark.parametrize("bad", [None, 1, "yes", []])
def test_keep_system_must_be_a_bool(store: SessionStore, bad: Any) -> None:
    sid = store.sessions.create("m").session_id
    with pytest.raises(InvalidInput, match="keep_system"):
        store.messages.window(sid, 100, keep_system=bad)


def test_a_missing_session_is_not_found(store: SessionStore) -> None:
    with pytest.raises(SessionNotFound):
        store.messages.window("no-such-session", 100)
    with pytest.raises(InvalidInput):
        store.messages.window("", 100)


def test_an_archived_session_is_read(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    store.messages.append(sid, "system", "prompt", tokens=2)
    store.messages.append(sid, "user", "hi", tokens=3)
    store.lifecycle.archive(sid)
    assert seqs(store.messages.window(sid, 5)) == [1, 2]


def test_inside_a_transaction_the_window_sees_its_writes(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    store.messages.append(sid, "user", "first", tokens=3)
    with store.transaction() as tx:
        tx.messages.append(sid, "user", "second", tokens=3)
        assert seqs(tx.messages.window(sid, 6)) == [1, 2]
    assert seqs(store.messages.window(sid, 3)) == [2]


def test_a_long_session_agrees_with_the_whole_history(store: SessionStore) -> None:
    """Random sessions across every chunk boundary: the same answer as Python's."""
    rng = random.Random(20261129)
    sid = store.sessions.create("m").session_id
    roles = ["user", "assistant", "tool", "user", "assistant"]
    batch = []
    for i in range(CHUNKS[0] * 8 + 37):
        role = "system" if i == 40 else "developer" if i == 300 else rng.choice(roles)
        text = "wörd " * rng.randint(0, 30)
        tokens = None if rng.random() < 0.4 else rng.randint(0, 12)
        batch.append(NewMessage(role, text, tokens=tokens))
    store.messages.append_many(sid, batch)
    history = everything(store, sid)
    assert len(history) == len(batch)
    total = sum(cost(m) for m in history)
    budgets = [1, 5, 63, 64, 65, 200, 1000, total // 3, total - 1, total, total + 1]
    budgets += [rng.randint(1, total) for _ in range(8)]
    for budget in budgets:
        for keep_system in (True, False):
            got = store.messages.window(sid, budget, keep_system=keep_system)
            expected = reference(history, budget, keep_system)
            assert seqs(got) == expected, (budget, keep_system)
            assert sum(cost(m) for m in got) <= budget
    whole = store.messages.window(sid, total, keep_system=False)
    assert whole == history  # every field, in order


def test_legacy_token_counts_that_are_no_counts_cost_their_bytes(backend_url: str) -> None:
    """A negative count (legacy) is no count: the message costs its bytes."""
    store = SessionStore.open(backend_url)
    sid = store.sessions.create("m").session_id
    store.messages.append(sid, "user", "x" * 40)  # 10 by its bytes
    store.messages.append(sid, "user", "y" * 8, tokens=1)
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE messages SET tokens_used = -50"
                " WHERE session_id = :sid AND sequence_number = 1"
            ),
            {"sid": sid},
        )
    assert seqs(store.messages.window(sid, 10)) == [2]
    assert seqs(store.messages.window(sid, 11)) == [1, 2]
    store.close()


def test_a_textual_legacy_count_costs_its_bytes(sqlite_store: SessionStore) -> None:
    store = sqlite_store
    sid = store.sessions.create("m").session_id
    store.messages.append(sid, "user", "x" * 40)
    store.messages.append(sid, "user", "y", tokens=1)
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE messages SET tokens_used = 'many' WHERE sequence_number = 1 AND session_id = ?",
            (sid,),
        )
    assert seqs(store.messages.window(sid, 10)) == [2]
    assert seqs(store.messages.window(sid, 11)) == [1, 2]


def test_a_huge_legacy_count_never_overflows_the_sum(sqlite_store: SessionStore) -> None:
    store = sqlite_store
    sid = store.sessions.create("m").session_id
    for _ in range(3):
        store.messages.append(sid, "user", "x", tokens=1)
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE messages SET tokens_used = 9223372036854775807 WHERE session_id = ?", (sid,)
        )
    assert store.messages.window(sid, 2**40) == []


# --- the statements' plans (SQLite) ----------------------------------------------------


def _populate(store: SessionStore, session_id: str, count: int) -> None:
    store.messages.append_many(
        session_id, [NewMessage("user", f"message {i} " * 5, tokens=7) for i in range(count)]
    )


def _params(session_id: str) -> dict[str, Any]:
    return {
        "sid": session_id,
        "cap": 1001,
        "through": 2**63 - 1,
        "pinned": -(2**63),
        "chunk": CHUNKS[0],
        "remaining": 1000,
    }


def test_the_walk_searches_the_sequence_index(sqlite_store: SessionStore) -> None:
    store = sqlite_store
    sid = store.sessions.create("m").session_id
    _populate(store, sid, 300)
    index = constraint_index(store, "messages", ("session_id", "sequence_number"))
    raw = store.engine.raw_connection()
    try:
        for name in ("pinned", "chunk"):
            sql, args = _args(store, statements()[name], _params(sid))
            plan = [str(row[3]) for row in raw.driver_connection.execute(
                "EXPLAIN QUERY PLAN " + sql, args
            )]  # fmt: skip
            searches = [line for line in plan if line.startswith("SEARCH messages")]
            assert searches, (name, plan)
            # The system prompt has its own partial index: one step, prompt or none.
            used = "ix_messages_session_id_system" if name == "pinned" else index
            assert all(f"USING INDEX {used} (session_id=?" in s for s in searches), plan
            assert not [line for line in plan if FULL_SCAN.match(line)], (name, plan)
            assert not [line for line in plan if TEMP_SORT in line], (name, plan)
    finally:
        raw.close()


def test_a_chunk_stops_early_whatever_the_session_length(sqlite_store: SessionStore) -> None:
    """VM instructions of one chunk, before and after the session grows twentyfold."""
    store = sqlite_store
    sid = store.sessions.create("m").session_id
    _populate(store, sid, 200)

    def steps() -> int:
        sql, args = _args(store, statements()["chunk"], _params(sid))
        raw = store.engine.raw_connection()
        count = 0

        def tick() -> int:
            nonlocal count
            count += 1
            return 0

        try:
            raw.driver_connection.set_progress_handler(tick, 1)
            rows = raw.driver_connection.execute(sql, args).fetchall()
        finally:
            raw.driver_connection.set_progress_handler(None, 1)
            raw.close()
        assert len(rows) == CHUNKS[0]
        return count

    before = steps()
    _populate(store, sid, 3800)
    after = steps()
    assert after < before * 1.2, (before, after)


def test_a_scoped_view_reads_only_its_owners_windows(store: SessionStore) -> None:
    mine = store.sessions.create("m", app="chat", user_id="ann").session_id
    other = store.sessions.create("m", app="chat", user_id="bob").session_id
    for sid in (mine, other):
        store.messages.append(sid, "user", "hello", tokens=2)
    ann = store.for_user("chat", "ann")
    assert seqs(ann.messages.window(mine, 10)) == [1]
    with pytest.raises(SessionNotFound) as caught:
        ann.messages.window(other, 10)
    with pytest.raises(SessionNotFound) as missing:
        ann.messages.window("nobody", 10)
    assert str(caught.value).replace(other, "X") == str(missing.value).replace("nobody", "X")


@pytest.mark.postgres
def test_the_walk_scans_the_sequence_index_backwards_on_postgresql(postgres_url: str) -> None:
    with SessionStore.open(postgres_url) as store:
        sids = [store.sessions.create("m").session_id for _ in range(3)]
        for sid in sids:
            _populate(store, sid, 1000)
        params = {**_params(sids[1]), "through": 2**31 - 1, "pinned": -(2**31)}
        sql, _order, defaults = statements()["chunk"].render(store.engine.dialect)
        raw = store.engine.raw_connection()
        try:
            cursor = raw.driver_connection.cursor()
            cursor.execute("ANALYZE messages")
            cursor.execute("EXPLAIN " + sql, {**defaults, **params})
            plan = "\n".join(row[0] for row in cursor.fetchall())
        finally:
            raw.close()
    assert "Index Scan Backward using uq_messages_session_id_sequence_number" in plan, plan
    assert plan.index("Limit") < plan.index("WindowAgg"), plan
    assert "Seq Scan" not in plan and "Sort" not in plan, plan
