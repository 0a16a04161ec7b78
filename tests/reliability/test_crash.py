"""kill -9 in the middle of writes, lifecycle operations and a legacy upgrade (items 1 and 2).

What is proved here, with real forked processes and a real ``SIGKILL`` at a
random moment, on real SQLite files:

* **mid-stream** (200 kills on one file, a fresh writer each time, single
  appends and ``append_many`` batches): every append the writer had
  acknowledged (written to a pipe only after the call returned) is stored
  with its sequence number and content; a batch is stored whole or not at
  all, including the batches committed just before the kill but never
  acknowledged; every session is numbered 1..n with ``message_count`` and
  ``last_seq`` equal to n; ``PRAGMA quick_check`` is ok after every kill and
  the full health check (integrity, counts, search index) is ok at the end.
  Losses must be 0.
* **lifecycle and migration** (100 kills: 25 archives, 25 purges, 25
  restores, 25 upgrades of a damaged legacy file): the whole database's
  logical dump is exactly the dump before the operation or exactly the dump
  an uninterrupted run of the same operation produces on a copy, never
  anything between; that "after" is checked for what it must mean (archive:
  status archived, one more snapshot, an event, messages untouched; purge:
  the session and all its messages gone, its snapshots kept; restore: the
  session back with the same ids, numbers and text; upgrade: at head, health
  ok, every live legacy message kept and every orphan quarantined); the
  operation re-run afterwards reaches exactly that state (or, when it had
  already happened, refuses or does nothing).
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest

from sessionstore import SessionStore
from sessionstore.errors import InvalidStateError
from sessionstore.lifecycle import SessionActive

from ..legacy import build_legacy_db, copy_legacy
from .helpers_a import (
    LineReader,
    assert_sequences_exact,
    dump,
    fork_call,
    open_at_head,
    quick_check,
    raw,
    read_sessions,
    sigkill,
)

pytestmark = pytest.mark.reliability

STREAM_TRIALS = 200
LIFECYCLE_TRIALS_PER_OP = 25
UPGRADE_TRIALS = 25
CHILD_TIMEOUT = 30.0


# --- 1. kill -9 mid-stream ----------------------------------------------------------


def _stream_writer(path: Path, session_id: str, trial: int, ack: int) -> None:
    """Append for ever; after each call returns, acknowledge it on the pipe (one write)."""
    # Every tenth child opens the store the full way (and may be killed doing it).
    store = SessionStore.open(f"sqlite:///{path}") if trial % 10 == 9 else open_at_head(path)
    os.write(ack, b"R\n")
    rng = random.Random(trial)
    call = 0
    while True:
        call += 1
        tag = f"t{trial}c{call}"
        if rng.random() < 0.5:
            records = [store.messages.append(session_id, "user", f"{tag}-1of1")]
        else:
            k = rng.randint(2, 8)
            records = store.messages.append_many(
                session_id,
                [{"role": "assistant", "content": f"{tag}-{i}of{k}"} for i in range(1, k + 1)],
            )
        line = " ".join(f"{r.message_id}:{r.sequence_number}:{r.content}" for r in records)
        os.write(ack, (line + "\n").encode())


@dataclass
class StreamFigures:
    trials: int = 0
    killed_while_opening: int = 0
    acknowledged_calls: int = 0
    acknowledged_messages: int = 0
    committed_unacknowledged: int = 0
    losses: int = 0
    partial_batches: int = 0


def _check_batches(rows: list[tuple[int, int, str]]) -> int:
    """How many batches are stored in part (each must be whole: 1..k, consecutive numbers)."""
    batches: dict[str, list[tuple[int, int, int]]] = {}
    for seq, _mid, content in rows:
        tag, _, part = content.partition("-")
        index, _, total = part.partition("of")
        batches.setdefault(tag, []).append((int(index), int(total), seq))
    partial = 0
    for members in batches.values():
        members.sort()
        size = members[0][1]
        indexes = [m[0] for m in members]
        seqs = [m[2] for m in members]
        if indexes != list(range(1, size + 1)) or seqs != list(range(seqs[0], seqs[0] + size)):
            partial += 1
    return partial


def test_kill9_mid_stream_200_trials_loses_no_acknowledged_write(tmp_path: Path) -> None:
    path = tmp_path / "stream.db"
    url = f"sqlite:///{path}"
    with SessionStore.open(url) as store:
        session_id = store.sessions.create("gpt-4o").session_id
    rng = random.Random(20261125)
    acknowledged: dict[int, tuple[int, str]] = {}
    figures = StreamFigures()
    started = time.monotonic()
    wal_sizes: list[int] = []
    for trial in range(STREAM_TRIALS):
        r, w = os.pipe()
        pid = fork_call(partial(_stream_writer, path, session_id, trial, w))
        os.close(w)
        reader = LineReader(r)
        lines: list[str] = []
        try:
            if trial % 10 == 9:
                # Now and then the kill lands while the child is still opening the store.
                time.sleep(rng.uniform(0, 0.03))
            else:
                # The moment is random relative to the writer's progress (so the load on
                # the machine does not decide it): after a random number of acknowledged
                # calls, plus a random fraction of the next one.
                assert reader.line(CHILD_TIMEOUT) == "R", "the writer did not start"
                for _ in range(rng.randint(0, 12)):
                    line = reader.line(CHILD_TIMEOUT)
                    assert line is not None, "the writer died on its own"
                    lines.append(line)
                time.sleep(rng.uniform(0.0, 0.002))
            sigkill(pid)
            lines += reader.rest()
        finally:
            reader.close()
        if trial % 10 == 9 and (not lines or lines[0] != "R"):
            figures.killed_while_opening += 1
        for line in lines:
            if line == "R":
                continue
            figures.acknowledged_calls += 1
            for item in line.split():
                mid, seq, content = item.split(":")
                acknowledged[int(mid)] = (int(seq), content)
                figures.acknowledged_messages += 1
        figures.trials += 1

        # Read-only, so that closing it does not checkpoint: the next child starts from
        # the WAL exactly as the killed one left it. No connection is open across fork.
        with closing(raw(path, readonly=True)) as checker:
            check = quick_check(checker)
            assert check == "ok", f"trial {trial}: quick_check failed after kill -9: {check}"
            views = read_sessions(checker)
        assert_sequences_exact(views)
        stored = {mid: (seq, content) for seq, mid, content in views[session_id].messages}
        lost = [mid for mid, row in acknowledged.items() if stored.get(mid) != row]
        figures.losses = len(lost)
        assert lost == [], f"trial {trial}: acknowledged messages lost or altered: {lost[:10]}"
        figures.partial_batches = _check_batches(views[session_id].messages)
        assert figures.partial_batches == 0, f"trial {trial}: a batch is stored in part"
        figures.committed_unacknowledged = len(stored) - len(acknowledged)
        wal_sizes.append(Path(f"{path}-wal").stat().st_size)

    with SessionStore.open(url) as store:
        report = store.health.check()
        assert report.ok, report.failed
        assert store.sessions.get(session_id).message_count == len(stored)
    print(
        f"\n[kill -9 mid-stream] trials={figures.trials} "
        f"(killed while opening: {figures.killed_while_opening}), "
        f"acknowledged calls={figures.acknowledged_calls}, "
        f"acknowledged messages={figures.acknowledged_messages}, "
        f"committed but unacknowledged={figures.committed_unacknowledged}, "
        f"stored={len(stored)}, partial batches={figures.partial_batches}, "
        f"losses={figures.losses}, WAL left by the kills up to {max(wal_sizes) // 1024} KiB, "
        f"wall={time.monotonic() - started:.1f}s"
    )
    assert figures.trials == STREAM_TRIALS
    assert figures.losses == 0
    # The kills must have interrupted a stream that was really writing.
    assert figures.acknowledged_messages >= 10 * STREAM_TRIALS


# --- 2. kill -9 during archive, purge, restore --------------------------------------

BASE_TIME = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
Op = Callable[[SessionStore], object]


def _lifecycle_op(kind: str, session_id: str, snapshot_id: int | None, now: datetime) -> Op:
    def archive(store: SessionStore) -> object:
        return store.lifecycle.archive(session_id, now=now)

    def purge(store: SessionStore) -> object:
        return store.lifecycle.purge(timedelta(0), now=now)

    def restore(store: SessionStore) -> object:
        assert snapshot_id is not None
        return store.lifecycle.restore(snapshot_id, now=now)

    return {"archive": archive, "purge": purge, "restore": restore}[kind]


def _rerun_after_done(kind: str, op: Op, store: SessionStore) -> None:
    """The operation had already happened: a second run must refuse or change nothing."""
    if kind == "archive":
        with pytest.raises(InvalidStateError):
            op(store)
    elif kind == "purge":
        report = op(store)
        assert report.purged == ()  # type: ignore[attr-defined]
    else:
        with pytest.raises(SessionActive):
            op(store)


def _reference(path: Path, reference: Path, op: Op) -> tuple[list[str], float]:
    """The dump an uninterrupted run of ``op`` leaves on a copy, and how long it took."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{reference}{suffix}").unlink(missing_ok=True)
    with closing(raw(path)) as src, closing(sqlite3.connect(reference)) as dst:
        src.backup(dst)
    with open_at_head(reference) as store:
        started = time.perf_counter()
        op(store)
        elapsed = time.perf_counter() - started
    return dump(reference), elapsed


@dataclass(frozen=True)
class Victim:
    """What the lifecycle operations change about one session."""

    status: str | None
    #: (message_id, sequence_number, role, content) in sequence order.
    messages: tuple[tuple[int, int, str, str], ...]
    snapshots: int
    events: tuple[str, ...]


def _victim(path: Path, session_id: str) -> Victim:
    with closing(raw(path)) as conn:
        row = conn.execute(
            "SELECT status FROM sessions WHERE session_id = ?", (session_id,)
        ).fetchone()
        messages = conn.execute(
            "SELECT message_id, sequence_number, role, content FROM messages"
            " WHERE session_id = ? ORDER BY sequence_number",
            (session_id,),
        ).fetchall()
        (snapshots,) = conn.execute(
            "SELECT COUNT(*) FROM session_snapshots WHERE session_id = ?", (session_id,)
        ).fetchone()
        events = conn.execute(
            "SELECT action FROM lifecycle_events WHERE session_id = ? ORDER BY event_id",
            (session_id,),
        ).fetchall()
    return Victim(row[0] if row else None, tuple(messages), snapshots, tuple(e[0] for e in events))


def _check_transition(kind: str, before: Victim, after: Victim, original: Victim) -> None:
    """What "after" means, stated independently of the code under test."""
    assert after.events == (*before.events, kind)
    if kind == "archive":
        assert (before.status, after.status) == ("active", "archived")
        assert after.messages == before.messages == original.messages
        assert after.snapshots == before.snapshots + 1
    elif kind == "purge":
        # Gone, every message with it; its snapshots kept.
        assert (before.status, after.status) == ("archived", None)
        assert (before.messages, after.messages) == (original.messages, ())
        assert after.snapshots == before.snapshots
    else:
        # Back complete: the same ids, numbers, roles and text.
        assert (before.status, after.status) == (None, "active")
        assert after.messages == original.messages
        assert after.snapshots == before.snapshots


def _op_child(path: Path, op: Op, go: int, ack: int) -> None:
    store = open_at_head(path)
    os.write(ack, b"R\n")
    os.read(go, 1)
    os.write(ack, b"S\n")
    op(store)
    os.write(ack, b"D\n")


@dataclass
class KillOutcome:
    state: str  # "before" or "after"
    inside_call: bool


def _kill_during(path: Path, op: Op, delay: float) -> list[str]:
    """Run ``op`` in a child, SIGKILL it ``delay`` seconds after it is told to go."""
    go_r, go_w = os.pipe()
    ack_r, ack_w = os.pipe()
    pid = fork_call(partial(_op_child, path, op, go_r, ack_w))
    os.close(ack_w)
    os.close(go_r)
    reader = LineReader(ack_r)
    try:
        assert reader.line(CHILD_TIMEOUT) == "R", "the child did not open the store"
        os.write(go_w, b"G")
        time.sleep(delay)
        sigkill(pid)
        return ["R", *reader.rest()]
    finally:
        reader.close()
        os.close(go_w)


def test_kill9_during_archive_purge_restore_75_trials_before_or_after(tmp_path: Path) -> None:
    path = tmp_path / "lifecycle.db"
    url = f"sqlite:///{path}"
    reference = tmp_path / "reference.db"
    with SessionStore.open(url) as store:
        victim = store.sessions.create(
            "gpt-4o", title="victim", metadata={"team": "ml", "tags": '["a"]'}
        ).session_id
        store.messages.append_many(
            victim,
            [
                {"role": "user" if i % 2 else "assistant",
                 "content": f"message {i} " + "lorem ipsum dolor sit amet " * 12,
                 "tokens": i, "duration": 0.25}
                for i in range(150)
            ],
        )  # fmt: skip
        bystander = store.sessions.create("llama3").session_id
        for i in range(20):
            store.messages.append(bystander, "user", f"bystander {i}")
    bystander_rows = None
    original = _victim(path, victim)
    rng = random.Random(4242)
    outcomes: dict[str, list[KillOutcome]] = {"archive": [], "purge": [], "restore": []}
    started = time.monotonic()
    step = 0
    for _cycle in range(LIFECYCLE_TRIALS_PER_OP):
        for kind in ("archive", "purge", "restore"):
            step += 1
            now = BASE_TIME + timedelta(minutes=step)
            snapshot_id = None
            if kind == "restore":
                with closing(raw(path)) as conn:
                    snapshot_id = conn.execute(
                        "SELECT MAX(snapshot_id) FROM session_snapshots WHERE session_id = ?",
                        (victim,),
                    ).fetchone()[0]
            op = _lifecycle_op(kind, victim, snapshot_id, now)
            before = dump(path)
            victim_before = _victim(path, victim)
            after, duration = _reference(path, reference, op)
            _check_transition(kind, victim_before, _victim(reference, victim), original)
            lines = _kill_during(path, op, rng.uniform(0, 2 * duration + 0.002))

            assert quick_check(path) == "ok", f"step {step} ({kind}): quick_check failed"
            state = dump(path)
            if state == before:
                outcome = "before"
            elif state == after:
                outcome = "after"
            else:
                changed = sorted(set(state) ^ set(before) ^ set(after))[:5]
                raise AssertionError(f"step {step}: {kind} killed left a state between: {changed}")
            outcomes[kind].append(KillOutcome(outcome, "S" in lines and "D" not in lines))

            with open_at_head(path) as store:
                if outcome == "before":
                    op(store)
                else:
                    _rerun_after_done(kind, op, store)
                assert store.health.check(quick=True).ok
            assert dump(path) == after, f"step {step}: re-running {kind} did not reach the result"
            with closing(raw(path)) as conn:
                rows = read_sessions(conn)[bystander].messages
            assert bystander_rows in (None, rows), "a lifecycle operation touched another session"
            bystander_rows = rows

    total = sum(len(v) for v in outcomes.values())
    summary = ", ".join(
        f"{kind}: {len(v)} kills (before={sum(o.state == 'before' for o in v)}, "
        f"after={sum(o.state == 'after' for o in v)}, "
        f"inside the call={sum(o.inside_call for o in v)})"
        for kind, v in outcomes.items()
    )
    print(
        f"\n[kill -9 lifecycle] {total} kills; {summary}; states between=0; "
        f"wall={time.monotonic() - started:.1f}s"
    )
    assert total == 3 * LIFECYCLE_TRIALS_PER_OP
    inside = sum(o.inside_call for v in outcomes.values() for o in v)
    assert inside >= 10, f"only {inside} kills landed inside a call; the timing is off"


# --- 2b. kill -9 during the upgrade of a legacy file --------------------------------


def _upgrade_child(url: str, go: int, ack: int) -> None:
    os.write(ack, b"R\n")
    os.read(go, 1)
    os.write(ack, b"S\n")
    SessionStore.open(url).close()
    os.write(ack, b"D\n")


def test_kill9_during_legacy_upgrade_25_trials_before_or_at_head(tmp_path: Path) -> None:
    facts = build_legacy_db(tmp_path / "legacy-source.db", sessions=8, messages_per_session=6)
    legacy_dump = dump(facts.path)
    ref = copy_legacy(facts, tmp_path / "ref" / "legacy.db")
    started_ref = time.perf_counter()
    SessionStore.open(f"sqlite:///{ref.path}").close()
    duration = time.perf_counter() - started_ref
    head_dump = dump(ref.path, mask_quarantine_time=True)
    assert head_dump != legacy_dump
    # What "at head" must hold, from the builder's own bookkeeping: every live message,
    # and every orphan in quarantine.
    with closing(raw(ref.path)) as conn:
        live = dict(conn.execute("SELECT message_id, content FROM messages").fetchall())
        quarantined = {r[0] for r in conn.execute("SELECT message_id FROM quarantined_messages")}
    assert live == {mid: m.content for mid, m in facts.messages.items()}
    assert quarantined == set(facts.orphan_messages)

    rng = random.Random(777)
    counts = {"before": 0, "after": 0, "inside": 0}
    litter: list[str] = []
    started = time.monotonic()
    for trial in range(UPGRADE_TRIALS):
        copy = copy_legacy(facts, tmp_path / f"trial{trial}" / "legacy.db")
        url = f"sqlite:///{copy.path}"
        go_r, go_w = os.pipe()
        ack_r, ack_w = os.pipe()
        pid = fork_call(partial(_upgrade_child, url, go_r, ack_w))
        os.close(ack_w)
        os.close(go_r)
        reader = LineReader(ack_r)
        try:
            assert reader.line(CHILD_TIMEOUT) == "R"
            os.write(go_w, b"G")
            time.sleep(rng.uniform(0, 1.5 * duration))
            sigkill(pid)
            lines = ["R", *reader.rest()]
        finally:
            reader.close()
            os.close(go_w)
        counts["inside"] += "S" in lines and "D" not in lines

        assert quick_check(copy.path, "integrity_check") == "ok"
        state = dump(copy.path, mask_quarantine_time=True)
        if state == legacy_dump:
            counts["before"] += 1
        elif state == head_dump:
            counts["after"] += 1
            with SessionStore.open(url, upgrade=False) as store:
                assert store.health.check().ok
        else:
            changed = sorted(set(state) ^ set(legacy_dump) ^ set(head_dump))[:5]
            raise AssertionError(
                f"trial {trial}: the killed upgrade left a state between: {changed}"
            )
        with SessionStore.open(url) as store:  # the upgrade re-run
            assert store.health.check().ok, store.health.check().failed
        assert dump(copy.path, mask_quarantine_time=True) == head_dump
        # Killed runs leave their private staging directories; the re-run clears them.
        litter += [
            p.name for p in copy.path.parent.iterdir() if p.name.startswith(".sessionstore-")
        ]

    print(
        f"\n[kill -9 upgrade] {UPGRADE_TRIALS} kills (before={counts['before']}, "
        f"at head={counts['after']}, inside the call={counts['inside']}), states between=0, "
        f"uninterrupted upgrade={duration * 1000:.0f} ms, "
        f"partial backup files left behind by killed runs={len(litter)}, "
        f"wall={time.monotonic() - started:.1f}s"
    )
    assert counts["before"] + counts["after"] == UPGRADE_TRIALS
    assert not litter, litter
    assert counts["inside"] >= 3, "too few kills landed inside the upgrade"
