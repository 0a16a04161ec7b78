"""Model-based test: random sequences of operations agree with an in-memory model.

A Hypothesis ``RuleBasedStateMachine`` drives a store on a real SQLite file
(a fresh file per example) through create, append, append_many, edit,
delete, delete session, search (for a word planted in the messages),
archive, reactivate, restore (from a snapshot), purge, backup (then restore
the backup into a fresh file and compare) and reopen (close and open the
store again), and keeps a model of the sessions: their status, their
messages (id, sequence number, role, content, tokens), their last sequence
number and every snapshot taken.

After every step the store must equal the model: the set of sessions, each
session's status, ``message_count``, ``total_tokens`` and ``last_seq``, its
history (ids, sequence numbers, roles, contents) — and ``health.check()`` must
be ok. Writes to an archived session must raise :class:`SessionArchived`,
restoring over an active session :class:`SessionActive`, restoring a
snapshot that is not the newest of its id, or that lacks sequence numbers the
id handed out since, :class:`SnapshotSuperseded`, all changing nothing;
search must return exactly the messages (and the sessions) the model says
hold the word; a backup restored elsewhere must have the same logical
dump and read back the same state.

The same machine runs on PostgreSQL with fewer examples (a fresh database
per example; the backup is ``pg_dump`` restored into another fresh database).
Runs are derandomized, so they are the same every time.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from sessionstore import (
    NewMessage,
    SessionActive,
    SessionArchived,
    SessionStore,
    SnapshotSuperseded,
)

from ..pgserver import PostgresServer
from .conftest import logical_dump

pytestmark = pytest.mark.reliability

VOCABULARY = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")
# Filler that can never form a vocabulary word, whatever the tokenizer does with it.
FILLER = st.text(alphabet="0123456789 .,!?-'\"()*:日本語🎉é\n", max_size=12)
ROLES = st.sampled_from(("user", "assistant", "system", "tool"))
TOKENS = st.none() | st.integers(min_value=0, max_value=10_000)
FIRED: Counter[str] = Counter()


class TickingClock:
    """A clock that moves one millisecond every time it is read."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


@dataclass(frozen=True)
class Msg:
    message_id: int
    seq: int
    role: str
    content: str
    tokens: int | None
    words: frozenset[str]


@dataclass
class Model:
    status: str = "active"
    messages: list[Msg] = field(default_factory=list)
    last_seq: int = 0


@st.composite
def contents(draw: st.DrawFn) -> tuple[str, frozenset[str]]:
    words = draw(st.lists(st.sampled_from(VOCABULARY), max_size=3))
    parts = [*words, draw(FILLER)]
    parts = draw(st.permutations(parts))
    text = " ".join(parts)
    if not text.strip():
        text = "0"
    return text, frozenset(words)


def sqlite_urls() -> Callable[[Path], str]:
    counter = iter(range(1_000_000))
    return lambda directory: f"sqlite:///{directory / f'db-{next(counter)}.db'}"


class StoreMachine(RuleBasedStateMachine):
    #: Makes a URL for a new, empty database (given a scratch directory).
    new_url: Callable[[Path], str] = staticmethod(sqlite_urls())

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="sessionstore-model-"))
        self.url = type(self).new_url(self.dir)
        self.clock = TickingClock()
        self.store = SessionStore.open(self.url, clock=self.clock)
        self.model: dict[str, Model] = {}
        self.snapshots: dict[int, tuple[str, Model]] = {}
        #: The last sequence number of an id whose session was purged or deleted.
        self.handed_out: dict[str, int] = {}
        self.serial = 0
        self.backups = 0

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- helpers ------------------------------------------------------------------------

    def _pick_session(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(sorted(self.model)), label="session")

    def _all_messages(self) -> list[tuple[str, Msg]]:
        return [(sid, m) for sid in sorted(self.model) for m in self.model[sid].messages]

    def _has_messages(self) -> bool:
        return any(m.messages for m in self.model.values())

    # --- rules --------------------------------------------------------------------------

    # A few sessions at a time, so that the steps go to what happens inside them.
    @precondition(lambda self: len(self.model) < 4)
    @rule()
    def create(self) -> None:
        FIRED["create"] += 1
        self.serial += 1
        sid = f"s{self.serial}"
        record = self.store.sessions.create("model", title=f"t{self.serial}", session_id=sid)
        assert record.status == "active" and record.message_count == 0
        self.model[sid] = Model()

    @precondition(lambda self: self.model)
    @rule(data=st.data(), role=ROLES, body=contents(), tokens=TOKENS)
    def append(
        self, data: st.DataObject, role: str, body: tuple[str, frozenset[str]], tokens: int | None
    ) -> None:
        sid = self._pick_session(data)
        session = self.model[sid]
        if session.status == "archived":
            FIRED["append refused (archived)"] += 1
            with pytest.raises(SessionArchived):
                self.store.messages.append(sid, role, body[0], tokens=tokens)
            return
        FIRED["append"] += 1
        record = self.store.messages.append(sid, role, body[0], tokens=tokens)
        session.last_seq += 1
        assert record.sequence_number == session.last_seq
        session.messages.append(
            Msg(record.message_id, record.sequence_number, role, body[0], tokens, body[1])
        )

    @precondition(lambda self: self.model)
    @rule(
        data=st.data(),
        batch=st.lists(st.tuples(ROLES, contents(), TOKENS), max_size=4),
    )
    def append_many(
        self,
        data: st.DataObject,
        batch: list[tuple[str, tuple[str, frozenset[str]], int | None]],
    ) -> None:
        sid = self._pick_session(data)
        session = self.model[sid]
        items = [NewMessage(role, body[0], tokens) for role, body, tokens in batch]
        if session.status == "archived" and items:
            FIRED["append_many refused (archived)"] += 1
            with pytest.raises(SessionArchived):
                self.store.messages.append_many(sid, items)
            return
        FIRED["append_many"] += 1
        records = self.store.messages.append_many(sid, items)
        assert len(records) == len(items)
        for record, (role, body, tokens) in zip(records, batch, strict=True):
            session.last_seq += 1
            assert record.sequence_number == session.last_seq
            session.messages.append(
                Msg(record.message_id, record.sequence_number, role, body[0], tokens, body[1])
            )

    @precondition(_has_messages)
    @rule(data=st.data(), body=contents())
    def edit(self, data: st.DataObject, body: tuple[str, frozenset[str]]) -> None:
        sid, message = data.draw(st.sampled_from(self._all_messages()), label="message")
        session = self.model[sid]
        if session.status == "archived":
            FIRED["edit refused (archived)"] += 1
            with pytest.raises(SessionArchived):
                self.store.messages.edit(message.message_id, body[0])
            return
        FIRED["edit"] += 1
        edited = self.store.messages.edit(message.message_id, body[0])
        assert (edited.sequence_number, edited.content) == (message.seq, body[0])
        index = session.messages.index(message)
        session.messages[index] = replace(message, content=body[0], words=body[1])

    @precondition(_has_messages)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        sid, message = data.draw(st.sampled_from(self._all_messages()), label="message")
        session = self.model[sid]
        if session.status == "archived":
            FIRED["delete refused (archived)"] += 1
            with pytest.raises(SessionArchived):
                self.store.messages.delete(message.message_id)
            return
        FIRED["delete"] += 1
        self.store.messages.delete(message.message_id)
        session.messages.remove(message)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete_session(self, data: st.DataObject) -> None:
        FIRED["delete_session"] += 1
        sid = self._pick_session(data)
        self.store.sessions.delete(sid)
        if any(owner == sid for owner, _ in self.snapshots.values()):
            self.handed_out[sid] = self.model[sid].last_seq
        del self.model[sid]

    @precondition(_has_messages)
    @rule(word=st.sampled_from(VOCABULARY))
    def search(self, word: str) -> None:
        FIRED["search"] += 1
        hits = self.store.search.messages(word, limit=1000)
        expected = {m.message_id for _, m in self._all_messages() if word in m.words}
        found = [h.message.message_id for h in hits]
        assert sorted(found) == sorted(expected)
        sessions = [h.session.session_id for h in self.store.search.sessions(word, limit=1000)]
        holders = {sid for sid, m in self._all_messages() if word in m.words}
        assert sorted(sessions) == sorted(holders)

    @precondition(lambda self: any(m.status == "active" for m in self.model.values()))
    @rule(data=st.data())
    def archive(self, data: st.DataObject) -> None:
        FIRED["archive"] += 1
        active = sorted(sid for sid, m in self.model.items() if m.status == "active")
        sid = data.draw(st.sampled_from(active), label="active session")
        snapshot = self.store.lifecycle.archive(sid)
        session = self.model[sid]
        assert snapshot.message_count == len(session.messages)
        self.snapshots[snapshot.snapshot_id] = (
            sid,
            Model("active", list(session.messages), session.last_seq),
        )
        session.status = "archived"

    @precondition(lambda self: any(m.status == "archived" for m in self.model.values()))
    @rule(data=st.data())
    def reactivate(self, data: st.DataObject) -> None:
        FIRED["reactivate"] += 1
        archived = sorted(sid for sid, m in self.model.items() if m.status == "archived")
        sid = data.draw(st.sampled_from(archived), label="archived session")
        assert self.store.lifecycle.reactivate(sid).status == "active"
        self.model[sid].status = "active"

    @precondition(lambda self: self.snapshots)
    @rule(data=st.data())
    def restore(self, data: st.DataObject) -> None:
        snapshot_id = data.draw(st.sampled_from(sorted(self.snapshots)), label="snapshot")
        sid, taken = self.snapshots[snapshot_id]
        current = self.model.get(sid)
        newest = max(k for k, (owner, _) in self.snapshots.items() if owner == sid)
        if snapshot_id == newest and current is not None and current.status == "active":
            FIRED["restore refused (active)"] += 1
            with pytest.raises(SessionActive):
                self.store.lifecycle.restore(snapshot_id)
            return
        # Only the newest snapshot of an id, holding all the id ever handed out,
        # comes back over it: no sequence number is ever handed out twice.
        holds_all = (
            (current.last_seq, len(current.messages)) == (taken.last_seq, len(taken.messages))
            if current is not None
            else self.handed_out.get(sid, 0) <= taken.last_seq
        )
        if snapshot_id != newest or not holds_all:
            FIRED["restore refused (superseded)"] += 1
            with pytest.raises(SnapshotSuperseded):
                self.store.lifecycle.restore(snapshot_id)
            return
        FIRED["restore"] += 1
        record = self.store.lifecycle.restore(snapshot_id)
        assert record.session_id == sid
        self.model[sid] = Model(taken.status, list(taken.messages), taken.last_seq)

    @precondition(lambda self: any(m.status == "archived" for m in self.model.values()))
    @rule()
    def purge(self) -> None:
        FIRED["purge"] += 1
        report = self.store.lifecycle.purge(timedelta(0))
        archived = {sid for sid, m in self.model.items() if m.status == "archived"}
        assert {item.session_id for item in report.purged} == archived
        for item in report.purged:
            assert item.messages == len(self.model[item.session_id].messages)
            self.handed_out[item.session_id] = self.model[item.session_id].last_seq
            del self.model[item.session_id]

    # The costliest rule (two files, two dumps, a second store): once per run.
    @precondition(lambda self: self._has_messages() and self.backups == 0)
    @rule()
    def backup(self) -> None:
        FIRED["backup"] += 1
        self.backups += 1
        self.serial += 1
        copy = self.dir / f"backup-{self.serial}"
        self.store.backup(copy)
        target = type(self).new_url(self.dir)
        report = SessionStore.restore_backup(copy, target)
        assert report.moved_aside == ()
        assert logical_dump(target) == logical_dump(self.url)
        with SessionStore.open(target) as restored:
            self._check(restored)

    @precondition(lambda self: self.model)
    @rule()
    def reopen(self) -> None:
        FIRED["reopen"] += 1
        self.store.close()
        self.store = SessionStore.open(self.url, clock=self.clock)

    # --- the invariant ------------------------------------------------------------------

    def _check(self, store: SessionStore) -> None:
        listed = {s.session_id for s in store.sessions.list(limit=1000)}
        assert listed == set(self.model)
        assert store.sessions.count() == len(self.model)
        for sid, session in self.model.items():
            record = store.sessions.get(sid)
            assert record.status == session.status
            assert record.message_count == len(session.messages)
            assert record.last_seq == session.last_seq
            assert record.total_tokens == sum(m.tokens or 0 for m in session.messages)
            stored = [
                (m.message_id, m.sequence_number, m.role, m.content, m.tokens)
                for m in store.messages.history(sid, limit=1000)
            ]
            assert stored == [
                (m.message_id, m.seq, m.role, m.content, m.tokens) for m in session.messages
            ]
        report = store.health.check()
        assert report.ok, report.failed

    @invariant()
    def store_equals_model(self) -> None:
        FIRED["steps checked"] += 1
        self._check(self.store)


RULES = ("create", "append", "append_many", "edit", "delete", "delete_session", "search",
         "archive", "reactivate", "restore", "purge", "backup", "reopen",
         "append refused (archived)", "restore refused (active)")  # fmt: skip


def run_machine(
    new_url: Callable[[Path], str], examples: int, steps: int, required: tuple[str, ...] = RULES
) -> Counter[str]:
    """Run the machine on databases from ``new_url``; every ``required`` rule must fire."""
    FIRED.clear()
    machine = type("Machine", (StoreMachine,), {"new_url": staticmethod(new_url)})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    print(f"\n{examples} runs of up to {steps} steps; state checked {FIRED['steps checked']} "
          f"times; rules fired: {dict(sorted(FIRED.items()))}")  # fmt: skip
    assert {name: FIRED[name] for name in required if FIRED[name] == 0} == {}
    assert FIRED["steps checked"] >= examples * steps // 2
    return Counter(FIRED)


def test_random_operations_agree_with_the_model_sqlite() -> None:
    run_machine(sqlite_urls(), examples=20, steps=30)


@pytest.mark.postgres
def test_random_operations_agree_with_the_model_postgresql(
    postgres_server: PostgresServer,
) -> None:
    # Fewer runs: every rule fires, not necessarily both refusals.
    new_url = lambda _directory: postgres_server.create_database()  # noqa: E731
    run_machine(new_url, examples=12, steps=25, required=RULES[:13])
