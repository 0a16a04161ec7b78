"""Items, forks, token windows and revision 0006 under hostile input and kill -9.

* **kill at every statement**: the upgrade through ``0006_items_owners_state``
  (a fresh file at 0005 and an adopted legacy file) and the downgrade back to
  0005 run in a forked child that ends itself with ``os._exit`` just before
  its k-th SQL statement, for k = 1, 2, … until a run completes; after each
  kill the file passes ``PRAGMA integrity_check``, holds exactly what it held
  before (the migration is one transaction), opens, and a re-run reaches
  exactly the state an uninterrupted run reaches, every message readable.
* **round trips** of hostile items (NUL, huge integers, deep JSON, unicode
  edges, roles and kinds at their limits) through export, import, snapshots,
  forks and backups, on SQLite and PostgreSQL;
* **cost**: JSON nesting is bounded when it is written, so no later read
  (export, archive, the sweep, ``record.metadata``) meets ``RecursionError``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sessionstore import SessionStore, StoreConfig, files, migrations
from sessionstore.downgrades import downgrade
from sessionstore.engine import build_engine
from sessionstore.errors import DuplicateMessageId, InvalidInput, MessageNotFound
from sessionstore.validation import encode_cursor

from .legacy import build_legacy_db, copy_legacy
from .reliability.helpers_a import dump, raw

CRASHED = 137
BEFORE_0006 = "0005_unusable_ids"
LEGACY_ROLES = ("user", "assistant", "system", "tool")
#: The first statement of revision 0006's upgrade.
FIRST_0006 = "ADD COLUMN kind"


# --- kill -9 before every statement ----------------------------------------------------


def crash_before_statement(k: int, work: Callable[[], None], arm: str | None) -> int:
    """Run ``work`` in a child that dies just before its k-th SQLite statement; its exit code.

    Statements are counted once ``arm`` is seen in one (``None``: from the
    migration's start, the ``upgrade:migrate`` step, or from a step
    ``op:start`` the work announces), and the migration's commit (the
    ``upgrade:commit`` step) counts as one more.
    """
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        count = 0
        armed = False

        def tick() -> None:
            nonlocal count
            count += 1
            if count == k:
                os._exit(CRASHED)

        def before(statement: str) -> None:
            nonlocal armed
            if not armed and arm is not None and arm in statement:
                armed = True
            if armed:
                tick()

        def traced(dbapi_connection: Any, _record: Any) -> None:
            # SQLite's own trace: every statement, the driver's BEGIN and COMMIT
            # and those the store runs on the raw driver connection included.
            dbapi_connection.set_trace_callback(before)

        def step(label: str) -> None:
            nonlocal armed
            if label in ("upgrade:migrate", "op:start") and arm is None:
                armed = True
            elif label == "upgrade:commit" and armed:
                tick()

        sa.event.listen(sa.pool.Pool, "connect", traced)
        files.step = step  # type: ignore[assignment]
        code = 0
        try:
            work()
        except BaseException:
            traceback.print_exc()
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def integrity(path: Path) -> str:
    with closing(raw(path)) as conn:
        return "; ".join(str(r[0]) for r in conn.execute("PRAGMA integrity_check"))


def revision(path: Path) -> str | None:
    engine = build_engine(StoreConfig(url=f"sqlite:///{path}"))
    try:
        with engine.connect() as conn:
            state = migrations.database_state(conn)
            conn.rollback()
        return state.revision
    finally:
        engine.dispose()


def messages_read(path: Path) -> list[tuple[str, int, str, str]]:
    """Every message of every session, read through the store (at head)."""
    with SessionStore.open(f"sqlite:///{path}") as store:
        assert store.health.check().ok
        out = []
        for session in store.sessions.list(limit=1000).items:
            out += [
                (m.session_id, m.sequence_number, m.role, m.content)
                for m in store.messages.iterate(session.session_id)
            ]
    return sorted(out)


def kill_at_every_statement(
    tmp_path: Path,
    pristine: Path,
    work: Callable[[str], None],
    arm: str | None,
    *,
    expected_after: str,
) -> int:
    """Kill ``work`` before each statement in turn: always before or after, never between."""
    before = dump(pristine)
    reference = tmp_path / "reference" / pristine.name
    reference.parent.mkdir()
    shutil.copyfile(pristine, reference)
    work(f"sqlite:///{reference}")
    after = dump(reference, mask_quarantine_time=True)
    assert revision(reference) == expected_after
    for k in range(1, 400):
        trial = tmp_path / f"k{k}" / pristine.name
        trial.parent.mkdir()
        shutil.copyfile(pristine, trial)
        url = f"sqlite:///{trial}"
        code = crash_before_statement(k, lambda url=url: work(url), arm)  # type: ignore[misc]
        assert integrity(trial) == "ok", f"k={k}"
        if code == 0:
            assert dump(trial, mask_quarantine_time=True) == after
            print(f"\n[{pristine.name}] {k - 1} crash points")
            return k - 1
        assert code == CRASHED, f"k={k}: the child failed (exit {code})"
        if dump(trial) == before:
            work(url)  # the re-run finishes
        # else killed after its commit (closing the store, say): done already
        assert dump(trial, mask_quarantine_time=True) == after, f"k={k}: neither before nor after"
        shutil.rmtree(trial.parent)
    raise AssertionError("the operation never completed")


def _open(url: str) -> None:
    SessionStore.open(url).close()


def _down(url: str) -> None:
    engine = build_engine(StoreConfig(url=url))
    try:
        downgrade(engine, BEFORE_0006)
    finally:
        engine.dispose()


def _populated_at_head(path: Path) -> None:
    with SessionStore.open(f"sqlite:///{path}") as store:
        for s in range(3):
            sid = store.sessions.create("m", session_id=f"s{s}", metadata={"k": "v"}).session_id
            store.messages.append_many(
                sid,
                [
                    {"role": ("user", "assistant", "system", "tool")[i % 4], "content": f"{s}.{i}"}
                    for i in range(8)
                ],
            )
            store.messages.pop(sid)
        store.lifecycle.archive("s2")


def _populated_at_0005(path: Path) -> None:
    """A file made by the release before 0006 (schema built by the chain up to 0005)."""
    engine = build_engine(StoreConfig(url=f"sqlite:///{path}"))
    try:
        migrations.upgrade(engine, BEFORE_0006)
        with engine.begin() as conn:
            for s in range(3):
                conn.execute(
                    sa.text(
                        "INSERT INTO sessions (session_id, model_id, title) VALUES (:s, 'm', 't')"
                    ),
                    {"s": f"s{s}"},
                )
                for i in range(7):
                    conn.execute(
                        sa.text(
                            "INSERT INTO messages (session_id, sequence_number, role, content)"
                            " VALUES (:s, :n, :r, :c)"
                        ),
                        {"s": f"s{s}", "n": i + 1, "r": LEGACY_ROLES[i % 4], "c": f"{s}.{i}"},
                    )
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("made", ["by-0005", "downgraded"])
def test_upgrade_through_0006_killed_before_every_statement(tmp_path: Path, made: str) -> None:
    pristine = tmp_path / "pristine" / "at0005.db"
    pristine.parent.mkdir()
    if made == "by-0005":
        _populated_at_0005(pristine)
    else:
        _populated_at_head(pristine)
        _down(f"sqlite:///{pristine}")
    assert revision(pristine) == BEFORE_0006
    points = kill_at_every_statement(
        tmp_path, pristine, _open, FIRST_0006, expected_after=migrations.head_revision()
    )
    assert points >= 20  # every statement of 0006 (and 0007) and the commit
    rows = messages_read(pristine)
    assert len(rows) == 21 and {r[1] for r in rows} == set(range(1, 8))


@pytest.mark.slow
def test_adopting_a_legacy_file_killed_before_every_statement_of_0006(tmp_path: Path) -> None:
    facts = build_legacy_db(tmp_path / "source.db", sessions=4, messages_per_session=4)
    pristine = copy_legacy(facts, tmp_path / "pristine" / "legacy.db").path
    points = kill_at_every_statement(
        tmp_path, pristine, _open, FIRST_0006, expected_after=migrations.head_revision()
    )
    assert points >= 20
    kept = messages_read(pristine)
    assert {(m.session_id, m.content) for m in facts.messages.values()} == {
        (sid, content) for sid, _, _, content in kept
    }


@pytest.mark.slow
def test_downgrade_from_0006_killed_before_every_statement(tmp_path: Path) -> None:
    pristine = tmp_path / "pristine" / "head.db"
    pristine.parent.mkdir()
    _populated_at_head(pristine)
    points = kill_at_every_statement(tmp_path, pristine, _down, None, expected_after=BEFORE_0006)
    assert points >= 20


# --- JSON nesting is bounded when written ------------------------------------------------


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def _deep_stack(depth: int, call: Callable[[], Any]) -> Any:
    """``call()`` from ``depth`` frames down: a reader's stack is never empty."""
    return call() if depth == 0 else _deep_stack(depth - 1, call)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SessionStore]:
    with SessionStore.open(f"sqlite:///{tmp_path / 'items.db'}") as opened:
        yield opened


def test_a_payload_nested_near_the_recursion_limit_is_refused_not_a_later_export(
    store: SessionStore,
) -> None:
    sid = store.sessions.create("m").session_id
    with pytest.raises(InvalidInput, match="nested more than 100"):
        store.messages.append(sid, "user", "x", payload={"p": _nested(900)})
    with pytest.raises(InvalidInput, match="nested more than 100"):
        store.messages.append_many(sid, [{"role": "user", "content": "x", "payload": _nested(101)}])
    assert store.sessions.get(sid).message_count == 0
    # What is accepted is read back everywhere, from a deep stack too.
    store.messages.append(sid, "user", "x", payload=_nested(100))
    assert _deep_stack(300, lambda: store.messages.recent(sid, 1)[0].payload) == _nested(100)
    copy = store.import_session(_deep_stack(300, lambda: store.export(sid)), session_id="copy")
    assert store.messages.recent(copy.session_id, 1)[0].payload == _nested(100)
    _deep_stack(300, lambda: store.lifecycle.archive(sid))


def test_metadata_nested_near_the_recursion_limit_is_refused(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    with pytest.raises(InvalidInput, match="nested more than 100"):
        store.messages.append(sid, "user", "x", metadata={"d": _nested(950)})
    record = store.messages.append(sid, "user", "x", metadata={"d": _nested(99)})
    assert _deep_stack(300, lambda: record.metadata) == {"d": _nested(99)}


# --- a repeated message id is a retry only when it repeats the item ---------------------


@pytest.mark.parametrize(
    "changed",
    [{"x": True, "ok": False}, {"x": 1.0, "ok": False}, {"x": 1, "ok": 0}, {"x": [1], "ok": False}],
)
def test_a_payload_equal_only_in_python_is_not_a_retry(
    backend_url: str, changed: dict[str, Any]
) -> None:
    with SessionStore.open(backend_url) as store:
        sid = store.sessions.create("m").session_id
        item = {"x": 1, "ok": False}
        first = store.messages.append(sid, "assistant", "c", payload=item, client_msg_id="i")
        with pytest.raises(DuplicateMessageId):
            store.messages.append(sid, "assistant", "c", payload=changed, client_msg_id="i")
        with pytest.raises(DuplicateMessageId):
            store.messages.append_many(
                sid,
                [{"role": "assistant", "content": "c", "payload": changed, "client_msg_id": "i"}],
            )
        # The same item again (keys in another order) is a retry: the stored message comes back.
        again = store.messages.append(
            sid, "assistant", "c", payload={"ok": False, "x": 1}, client_msg_id="i"
        )
        assert again == first
        assert store.sessions.get(sid).message_count == 1


# --- hostile items survive every way a session is copied -----------------------------------

HOSTILE_PAYLOAD: dict[str, Any] = {
    "nul\x00key": "nul\x00value\x00",
    "big": 10**300,
    "negative": -(2**70),
    "floats": [1e308, -0.0, 5e-324, 0.1],
    "unicode": "\U0010ffff\ufeff\u2028\u0085\ufffd e\u0301 🎉",
    "deep": _nested(99),
    "empty": [{}, [], ""],
}
HOSTILE_ITEMS: list[dict[str, Any]] = [
    {"role": "developer", "content": "a\x00b\x00", "kind": "function_call",
     "payload": HOSTILE_PAYLOAD, "tokens": 2**40, "client_msg_id": "c\x01"},
    {"role": "r" * 64, "content": "\ufffd\x00", "kind": "k" + "a" * 63, "payload": None},
    {"role": "Ünï côdé", "content": "", "kind": "a.b-c_d", "payload": [None, True, "x" * 1000]},
    {"role": "tool", "content": "\x00", "payload": "\x00", "tokens": 0},
]  # fmt: skip


def _items(store: SessionStore, sid: str) -> list[tuple[Any, ...]]:
    return [
        (m.sequence_number, m.role, m.content, m.kind, m.payload_json, m.tokens, m.client_msg_id)
        for m in store.messages.iterate(sid)
    ]


def test_hostile_items_round_trip_through_every_copy(backend_url: str, tmp_path: Path) -> None:
    with SessionStore.open(backend_url) as store:
        sid = store.sessions.create("m", session_id="hostile").session_id
        store.messages.append_many(sid, HOSTILE_ITEMS)
        store.messages.append(sid, "user", "popped")
        assert store.messages.pop(sid) is not None
        stored = _items(store, sid)
        assert stored[0][4] is not None
        assert store.messages.recent(sid, 4)[0].payload == HOSTILE_PAYLOAD
        assert [m[2] for m in stored] == [i["content"] for i in HOSTILE_ITEMS]

        copy = store.import_session(store.export(sid), session_id="imported")
        assert _items(store, copy.session_id) == stored
        forked = store.sessions.fork(sid, 5)  # its message 5 was popped: not handed out again
        assert _items(store, forked.session_id) == stored
        assert store.messages.append(forked.session_id, "user", "next").sequence_number == 6

        snapshot = store.lifecycle.archive(sid)
        store.lifecycle.purge(timedelta(0), now=datetime.now(UTC) + timedelta(days=1))
        restored = store.lifecycle.restore(snapshot.snapshot_id)
        assert restored.last_seq == 5
        assert _items(store, sid) == stored
        assert store.messages.append(sid, "user", "after").sequence_number == 6
        if store.dialect == "sqlite":
            store.backup(tmp_path / "backup.db")
    if backend_url.startswith("sqlite"):
        with SessionStore.open(f"sqlite:///{tmp_path / 'backup.db'}") as backup:
            assert _items(backup, "imported") == stored


# --- a caller's timestamp does not decide when a session goes idle ---------------------------


def test_a_future_timestamp_does_not_keep_a_session_from_going_idle(backend_url: str) -> None:
    future = datetime(9000, 1, 1, tzinfo=UTC)
    with SessionStore.open(backend_url) as store:
        made = []
        for how in ("append", "append_many", "client_id"):
            sid = store.sessions.create("m", session_id=how).session_id
            if how == "append":
                store.messages.append(sid, "user", "x", timestamp=future)
            elif how == "append_many":
                store.messages.append_many(
                    sid, [{"role": "user", "content": "x", "timestamp": future}]
                )
            else:
                store.messages.append(sid, "user", "x", timestamp=future, client_msg_id="c")
            made.append(sid)
        made.append(store.sessions.fork("append", 1).session_id)
        doc = json.loads(store.export("append"))
        for name in ("created_at", "updated_at", "last_activity"):
            doc["session"][name] = future.isoformat()
        made.append(store.import_session(json.dumps(doc), session_id="imported").session_id)
        for name in ("created_at", "updated_at", "last_activity"):
            assert getattr(store.sessions.get("imported"), name) < future
        for sid in made:
            session = store.sessions.get(sid)
            soon = datetime.now(UTC) + timedelta(minutes=1)
            assert session.last_activity < soon and session.updated_at < soon
            assert store.messages.recent(sid, 1)[0].timestamp == future  # kept as given
        # One hour idle (the default timeout) later, every one of them is archived.
        store.lifecycle.sweep(now=datetime.now(UTC) + timedelta(hours=2))
        assert {store.sessions.get(sid).status for sid in made} == {"archived"}


# --- fork, clear, pop and erase killed before every statement ----------------------------

FIXED = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _owned_populated(path: Path) -> None:
    with SessionStore.open(f"sqlite:///{path}", clock=lambda: FIXED) as store:
        for s in range(2):
            sid = store.sessions.create(
                "m", session_id=f"s{s}", app="app", user_id="u", metadata={"k": "v"}
            ).session_id
            store.messages.append_many(sid, [*HOSTILE_ITEMS, {"role": "user", "content": "last"}])
        store.lifecycle.archive("s1")


def _operation(name: str) -> Callable[[str], None]:
    def work(url: str) -> None:
        with SessionStore.open(url, clock=lambda: FIXED) as store:
            files.step("op:start")
            if name == "fork":
                store.sessions.fork("s0", 3, new_session_id="forked")
            elif name == "fork-archived":
                store.sessions.fork("s1", 5, new_session_id="forked")
            elif name == "clear":
                store.messages.clear("s0")
            elif name == "pop":
                store.messages.pop("s0")
            else:
                store.erase_user("app", "u")

    return work


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fork", "fork-archived", "clear", "pop", "erase"])
def test_history_operations_killed_before_every_statement(tmp_path: Path, name: str) -> None:
    pristine = tmp_path / "pristine" / f"{name}.db"
    pristine.parent.mkdir()
    _owned_populated(pristine)
    head = migrations.head_revision()
    points = kill_at_every_statement(
        tmp_path, pristine, _operation(name), None, expected_after=head
    )
    assert points >= 2


# --- the token window against a brute-force reading of its rules ---------------------------


def _cost(message: Any) -> int:
    if message.tokens is not None and message.tokens >= 0:
        return int(message.tokens)
    stored = message.content.replace("\x00", "\ufffd")  # what the row's content holds
    return (len(stored.encode("utf-8")) + 3) // 4


def _brute_window(messages: list[Any], budget: int, keep_system: bool) -> list[int]:
    pinned = None
    if keep_system:
        pinned = next((m for m in messages if m.role in ("system", "developer")), None)
    remaining, chosen = budget, []
    if pinned is not None:
        if _cost(pinned) > budget:
            return []
        remaining -= _cost(pinned)
        chosen.append(pinned.sequence_number)
    for message in reversed(messages):
        if message is pinned:
            continue
        if _cost(message) > remaining:
            break
        remaining -= _cost(message)
        chosen.append(message.sequence_number)
    return sorted(chosen)


def test_window_matches_its_rules_at_every_budget_edge(backend_url: str) -> None:
    rng = random.Random(7)
    with SessionStore.open(backend_url) as store:
        sid = store.sessions.create("m").session_id
        store.messages.append_many(
            sid,
            [
                {
                    "role": rng.choice(["user", "assistant", "system", "developer", "tool"]),
                    "content": "é" * rng.randint(0, 30) + rng.choice(["", "\x00", "🎉"]),
                    "tokens": rng.choice([None, 0, 1, 7, 2**40]),
                }
                for _ in range(300)
            ],
        )
        store.messages.pop(sid)
        messages = list(store.messages.iterate(sid))
        budgets = {1, 2, 3, 10, 2**40 - 1, 2**40}
        # Every running total of the newest messages, and one either side of it.
        total = 0
        for message in reversed(messages[-80:]):
            total += _cost(message)
            budgets |= {total - 1, total, total + 1}
        for budget in sorted(b for b in budgets if 1 <= b <= 2**40):
            for keep in (True, False):
                got = [
                    m.sequence_number for m in store.messages.window(sid, budget, keep_system=keep)
                ]
                assert got == _brute_window(messages, budget, keep), (budget, keep)


# --- reads by time ----------------------------------------------------------------------------


def test_since_by_caller_time_with_naive_far_and_tied_bounds(backend_url: str) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    offsets = [5, 1, 3, 3, 0, 9, 1]  # out of order, with ties
    with SessionStore.open(backend_url) as store:
        sid = store.sessions.create("m").session_id
        for i, offset in enumerate(offsets):
            store.messages.append(
                sid, "user", f"m{i}", timestamp=base + timedelta(microseconds=offset)
            )
        for after in range(-1, 11):
            bound = base + timedelta(microseconds=after)
            expected = sorted((offset, i + 1) for i, offset in enumerate(offsets) if offset > after)
            got = [
                ((m.timestamp - base) // timedelta(microseconds=1), m.sequence_number)
                for m in store.messages.since(sid, bound)
            ]
            assert got == expected, after
        assert store.messages.since(sid, datetime(9998, 12, 31, tzinfo=UTC)) == []
        assert len(store.messages.since(sid, datetime(2, 1, 1, tzinfo=UTC))) == len(offsets)
        for bad in (datetime(2026, 1, 1), datetime.max.replace(tzinfo=UTC), "2026-01-01"):
            with pytest.raises(InvalidInput):
                store.messages.since(sid, bad)  # type: ignore[arg-type]


# --- a stream read while others append ---------------------------------------------------------


def test_iterate_while_appending_sees_a_gapless_prefix(backend_url: str) -> None:
    with SessionStore.open(backend_url) as store:
        sid = store.sessions.create("m").session_id
        store.messages.append_many(sid, [{"role": "user", "content": f"m{i}"} for i in range(50)])
        stop = threading.Event()

        def writer() -> None:
            i = 0
            while not stop.is_set() and i < 400:
                store.messages.append(sid, "assistant", f"w{i}")
                i += 1

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            seen = [m.sequence_number for m in store.messages.iterate(sid, batch=7)]
        finally:
            stop.set()
            thread.join()
        assert seen == list(range(1, len(seen) + 1)) and len(seen) >= 50
        store.messages.clear(sid)
        assert (
            store.messages.append(sid, "user", "after").sequence_number
            == (store.sessions.get(sid).last_seq)
            > len(seen)
        )


# --- numbers at the edges of the columns -------------------------------------------------------


def test_reads_with_numbers_past_the_columns_range(backend_url: str) -> None:
    with SessionStore.open(backend_url) as store:
        sid = store.sessions.create("m").session_id
        store.messages.append_many(sid, [{"role": "user", "content": f"m{i}"} for i in range(3)])
        assert list(store.messages.iterate(sid, after=2**40)) == []
        assert [m.sequence_number for m in store.messages.iterate(sid, after=-(2**40))] == [1, 2, 3]
        assert len(store.messages.recent(sid, 2**40)) == 3
        assert len(store.messages.since(sid, datetime(2, 1, 1, tzinfo=UTC), limit=2**40)) == 3
        assert len(store.messages.window(sid, 2**40)) == 3
        with pytest.raises(InvalidInput):
            store.sessions.fork(sid, 2**31)
        forged = encode_cursor("history", (sid,), 2**40)  # cursors are not signed
        assert store.messages.history(sid, cursor=forged).items == ()
        for call in (store.messages.get, store.messages.delete):
            with pytest.raises(MessageNotFound):
                call(2**62)
