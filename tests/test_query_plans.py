"""The hot statements' query plans: each searches the index meant for it, none scans or sorts.

For every statement the hot paths run (the session lookup inside a message
append's ``INSERT … SELECT``, a history page, ``recent``, a message by id, a
session by id, and ``sessions.list`` page 1, with a cursor, by model, by
status), the SQL is taken from the library itself (``Prepared.render``) and
``EXPLAIN QUERY PLAN`` runs it with representative parameters on a populated
SQLite file. No ``ANALYZE``: the plans are the ones a fresh database gets.

A second group checks that the paged statements' work does not grow with the
table: the number of SQLite VM instructions (counted with a progress handler,
not timed) for the same page is compared before and after the table grows
tenfold. That is what separates an index walk that stops at ``LIMIT`` (the
unfiltered page 1 is planned ``SCAN sessions USING INDEX …``: ordered, and
bounded by the limit) from a full scan.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sessionstore import SessionStore
from sessionstore import message_sql as messages_module
from sessionstore import sessions as sessions_module
from sessionstore.prepared import Prepared

MODELS = ("gpt-4o", "claude-3-5-sonnet", "llama-3.1-70b")
RARE_MODEL = "rare-model"
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
PAGE = 20
#: Enough that every filtered page below is full before the table grows.
SESSIONS = 150

FULL_SCAN = re.compile(r"^SCAN (messages|sessions)\b(?! USING (COVERING )?INDEX )")
TEMP_SORT = "USE TEMP B-TREE"


def _text(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _args(store: SessionStore, prepared: Prepared, params: Mapping[str, Any]) -> tuple[str, Any]:
    """The SQL and the driver arguments, exactly as ``Prepared.execute`` builds them."""
    sql, order, defaults = prepared.render(store.engine.dialect)
    merged = {**defaults, **params}
    return sql, merged if order is None else [merged[name] for name in order]


def explain(store: SessionStore, prepared: Prepared, params: Mapping[str, Any]) -> list[str]:
    sql, args = _args(store, prepared, params)
    raw = store.engine.raw_connection()
    try:
        rows = raw.driver_connection.execute("EXPLAIN QUERY PLAN " + sql, args).fetchall()
    finally:
        raw.close()
    return [str(row[3]) for row in rows]


def vm_steps(store: SessionStore, prepared: Prepared, params: Mapping[str, Any]) -> int:
    """SQLite VM instructions the statement executes (a count, not a time)."""
    sql, args = _args(store, prepared, params)
    raw = store.engine.raw_connection()
    steps = 0

    def tick() -> int:
        nonlocal steps
        steps += 1
        return 0

    conn = raw.driver_connection
    try:
        conn.set_progress_handler(tick, 1)
        rows = conn.execute(sql, args).fetchall()
    finally:
        conn.set_progress_handler(None, 1)
        raw.close()
    assert rows, "the statement should return a page"
    return steps


def constraint_index(store: SessionStore, table: str, columns: tuple[str, ...]) -> str:
    """The name SQLite gave the index behind a PRIMARY KEY or UNIQUE constraint."""
    raw = store.engine.raw_connection()
    try:
        conn = raw.driver_connection
        for _seq, name, _unique, origin, _partial in conn.execute(f"PRAGMA index_list({table})"):
            indexed = tuple(row[2] for row in conn.execute(f'PRAGMA index_info("{name}")'))
            if origin in ("pk", "u") and indexed == columns:
                return str(name)
    finally:
        raw.close()
    raise AssertionError(f"no constraint index on {table}{columns}")


# --- data -----------------------------------------------------------------------------


@dataclass
class Data:
    store: SessionStore
    session_id: str
    message_id: int
    #: The (last_activity, session_id) key a cursor for page 2 carries.
    page2_key: tuple[str, str]


def add_sessions(store: SessionStore, first: int, count: int) -> None:
    """Sessions ``first`` … ``first + count - 1``: the lower the number, the older.

    Three common models in turn; :data:`RARE_MODEL` only on sessions 0-2 (the
    oldest); one in five archived. Newer sessions leave the rare ones at the
    far end of every index ordered by activity.
    """
    rows = []
    for i in range(first, first + count):
        model = RARE_MODEL if i < 3 else MODELS[i % len(MODELS)]
        status = "archived" if i % 5 == 4 else "active"
        moment = _text(EPOCH + timedelta(seconds=i))
        rows.append((f"s-{i:06d}", model, status, moment, moment, moment))
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO sessions (session_id, model_id, status, created_at, updated_at,"
            " last_activity) VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )


def add_messages(store: SessionStore, session_id: str, count: int) -> None:
    store.messages.append_many(
        session_id,
        [
            {"role": "user" if k % 2 == 0 else "assistant", "content": f"message {k} text"}
            for k in range(count)
        ],
    )


@pytest.fixture
def data(sqlite_store: SessionStore) -> Data:
    add_sessions(sqlite_store, 0, SESSIONS)
    main = sqlite_store.sessions.create("gpt-4o").session_id
    other = sqlite_store.sessions.create("claude-3-5-sonnet").session_id
    for _ in range(2):  # the two sessions' rows interleave in the table
        add_messages(sqlite_store, main, 100)
        add_messages(sqlite_store, other, 100)
    message_id = sqlite_store.messages.history(main, limit=1).items[0].message_id
    page = sqlite_store.sessions.list(limit=PAGE)
    last = page.items[-1]
    return Data(sqlite_store, main, message_id, (_text(last.last_activity), last.session_id))


# --- the plans ------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    prepared: Callable[[], Prepared]
    params: Callable[[Data], dict[str, Any]]
    #: The table and index the plan must search (an index name, or "PK" / "ROWID").
    table: str
    index: str
    #: What the plan line must constrain, e.g. "(session_id=? AND sequence_number>?)".
    constraint: str | None
    paged: bool


def _list(by_model: bool, by_status: bool, after: bool) -> Callable[[], Prepared]:
    return lambda: sessions_module._list_statement(by_model, by_status, after)


def _list_params(
    d: Data, *, model: str | None = None, status: str | None = None, after: bool = False
) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": PAGE + 1, "model_id": model, "status": status}
    if after:
        params["after_activity"], params["after_id"] = d.page2_key
    return params


def _append_params(d: Data) -> dict[str, Any]:
    return {
        "sid": d.session_id,
        "role": "user",
        "content": "hello",
        "ts": _text(datetime.now(UTC)),
        "tokens": 3,
        "duration": None,
        "meta": None,
        "cid": None,
        "kind": "message",
        "payload": None,
        "exact": None,
    }


SESSIONS_PK = "PK:sessions"
MESSAGES_SEQ = "UNIQUE:messages(session_id, sequence_number)"
ROW_VALUE = "(last_activity,session_id)<(?,?)"

CASES = {
    "append: session lookup": Case(
        lambda: messages_module.APPEND,
        _append_params,
        "sessions",
        SESSIONS_PK,
        "(session_id=?)",
        paged=False,
    ),
    **{
        f"history page, {statement}": Case(
            lambda statement=statement: getattr(messages_module.HISTORY, statement),
            lambda d: {"sid": d.session_id, "after": 150, "limit": 51},
            "messages",
            MESSAGES_SEQ,
            "(session_id=? AND sequence_number>?)",
            paged=True,
        )
        for statement in ("plain", "full")
    },
    **{
        f"recent, {statement}": Case(
            lambda statement=statement: getattr(messages_module.RECENT, statement),
            lambda d: {"sid": d.session_id, "limit": 50},
            "messages",
            MESSAGES_SEQ,
            "(session_id=?)",
            paged=True,
        )
        for statement in ("plain", "full")
    },
    "items": Case(
        lambda: messages_module.ITEMS,
        lambda d: {"sid": d.session_id},
        "messages",
        MESSAGES_SEQ,
        "(session_id=?)",
        paged=False,
    ),
    "items, the last n": Case(
        lambda: messages_module.RECENT_ITEMS,
        lambda d: {"sid": d.session_id, "limit": 20},
        "messages",
        MESSAGES_SEQ,
        "(session_id=?)",
        paged=True,
    ),
    "message get": Case(
        lambda: messages_module.GET,
        lambda d: {"mid": d.message_id},
        "messages",
        "INTEGER PRIMARY KEY",
        "(rowid=?)",
        paged=False,
    ),
    "session get": Case(
        lambda: sessions_module._GET,
        lambda d: {"session_id": d.session_id},
        "sessions",
        SESSIONS_PK,
        "(session_id=?)",
        paged=False,
    ),
    # No filter and no cursor: nothing to search for. The plan walks the
    # ordering index and stops at LIMIT (bounded: see the VM-step tests).
    "sessions.list page 1": Case(
        _list(False, False, False),
        _list_params,
        "sessions",
        "ix_sessions_last_activity_session_id",
        None,
        paged=True,
    ),
    "sessions.list with cursor": Case(
        _list(False, False, True),
        lambda d: _list_params(d, after=True),
        "sessions",
        "ix_sessions_last_activity_session_id",
        f"({ROW_VALUE})",
        paged=True,
    ),
    "sessions.list by model_id": Case(
        _list(True, False, False),
        lambda d: _list_params(d, model="gpt-4o"),
        "sessions",
        "ix_sessions_model_id_last_activity",
        "(model_id=?)",
        paged=True,
    ),
    "sessions.list by model_id with cursor": Case(
        _list(True, False, True),
        lambda d: _list_params(d, model="gpt-4o", after=True),
        "sessions",
        "ix_sessions_model_id_last_activity",
        f"(model_id=? AND {ROW_VALUE})",
        paged=True,
    ),
    # Active sessions: the activity index, skipping the archived ones met (no
    # index holding last_activity for them alone: every append would rewrite it).
    "sessions.list by status": Case(
        _list(False, True, False),
        lambda d: _list_params(d, status="active"),
        "sessions",
        "ix_sessions_last_activity_session_id",
        None,
        paged=True,
    ),
    "sessions.list by status with cursor": Case(
        _list(False, True, True),
        lambda d: _list_params(d, status="active", after=True),
        "sessions",
        "ix_sessions_last_activity_session_id",
        f"({ROW_VALUE})",
        paged=True,
    ),
    # Archived sessions: their own partial index, which no append touches.
    "sessions.list by status archived": Case(
        _list(False, True, False),
        lambda d: _list_params(d, status="archived"),
        "sessions",
        "ix_sessions_archived_last_activity",
        None,
        paged=True,
    ),
    "sessions.list by status archived with cursor": Case(
        _list(False, True, True),
        lambda d: _list_params(d, status="archived", after=True),
        "sessions",
        "ix_sessions_archived_last_activity",
        f"({ROW_VALUE})",
        paged=True,
    ),
}


def _index_name(store: SessionStore, index: str) -> str:
    if index == SESSIONS_PK:
        return constraint_index(store, "sessions", ("session_id",))
    if index == MESSAGES_SEQ:
        return constraint_index(store, "messages", ("session_id", "sequence_number"))
    return index


@pytest.mark.parametrize("name", list(CASES))
def test_hot_query_searches_its_index(data: Data, name: str) -> None:
    case = CASES[name]
    plan = explain(data.store, case.prepared(), case.params(data))
    index = _index_name(data.store, case.index)
    if index == "INTEGER PRIMARY KEY":
        expected = f"SEARCH {case.table} USING INTEGER PRIMARY KEY"
    else:
        verb = "SEARCH" if case.constraint else "SCAN"
        expected = f"{verb} {case.table} USING (COVERING )?INDEX {re.escape(index)}"
    if case.constraint:
        expected += " " + re.escape(case.constraint)
    assert any(re.fullmatch(expected, line) for line in plan), (expected, plan)
    assert not [line for line in plan if FULL_SCAN.match(line)], plan
    if case.paged:
        assert not [line for line in plan if TEMP_SORT in line], plan


@pytest.mark.parametrize(
    ("status", "index"),
    [
        ("active", "ix_sessions_model_id_last_activity"),
        ("archived", "ix_sessions_archived_model_id_last_activity"),
    ],
)
def test_filter_by_model_and_status_uses_an_ordering_index(
    data: Data, status: str, index: str
) -> None:
    """Both filters: the model's activity index (archived: its partial one), no sort, no scan."""
    prepared = sessions_module._list_statement(True, True, False)
    plan = explain(data.store, prepared, _list_params(data, model="gpt-4o", status=status))
    pattern = rf"SEARCH sessions USING INDEX {index} \(model_id=\?\)"
    assert any(re.fullmatch(pattern, line) for line in plan), plan
    assert not [line for line in plan if FULL_SCAN.match(line) or TEMP_SORT in line], plan


# --- bounded work ----------------------------------------------------------------------


@dataclass(frozen=True)
class Paged:
    prepared: Callable[[], Prepared]
    params: Callable[[Data], dict[str, Any]]


PAGED = {
    **{
        f"history page, {statement}": Paged(
            lambda statement=statement: getattr(messages_module.HISTORY, statement),
            lambda d: {"sid": d.session_id, "after": 150, "limit": 51},
        )
        for statement in ("plain", "full")
    },
    **{
        f"recent, {statement}": Paged(
            lambda statement=statement: getattr(messages_module.RECENT, statement),
            lambda d: {"sid": d.session_id, "limit": 50},
        )
        for statement in ("plain", "full")
    },
    "sessions.list page 1": Paged(_list(False, False, False), _list_params),
    "sessions.list with cursor": Paged(
        _list(False, False, True), lambda d: _list_params(d, after=True)
    ),
    "sessions.list by model_id": Paged(
        _list(True, False, False), lambda d: _list_params(d, model="gpt-4o")
    ),
    "sessions.list by a rare model_id": Paged(
        _list(True, False, False), lambda d: _list_params(d, model=RARE_MODEL)
    ),
    "sessions.list by status": Paged(
        _list(False, True, False), lambda d: _list_params(d, status="active")
    ),
    "sessions.list by status archived": Paged(
        _list(False, True, False), lambda d: _list_params(d, status="archived")
    ),
    "sessions.list by model_id and status": Paged(
        _list(True, True, False), lambda d: _list_params(d, model="gpt-4o", status="active")
    ),
}


@pytest.mark.parametrize(
    "name",
    [
        *PAGED,
        "sessions.list by a rare model_id and status",
    ],
)
def test_paged_work_does_not_grow_with_the_table(data: Data, name: str) -> None:
    """The same page costs the same VM instructions when the table is ten times larger."""
    if name in PAGED:
        paged = PAGED[name]
    else:
        paged = Paged(
            _list(True, True, False), lambda d: _list_params(d, model=RARE_MODEL, status="active")
        )
    store = data.store
    before = vm_steps(store, paged.prepared(), paged.params(data))
    # Ten times the sessions (all newer, so page 2's key still has 20 rows before it),
    # and ten times the long session's messages (added after the page read).
    add_sessions(store, SESSIONS, 9 * SESSIONS)
    add_messages(store, data.session_id, 1800)
    after = vm_steps(store, paged.prepared(), paged.params(data))
    assert after <= before * 1.2 + 20, (before, after)
