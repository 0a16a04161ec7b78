"""Backups under load (issue item 7), with real writer processes and a real SIGKILL.

What is proved here, on real SQLite files:

* **20 backups during an append storm** (2 processes x 2 threads appending
  singles and batches the whole time) are each consistent — ``integrity_check``
  ok, every session's ``message_count`` and ``last_seq`` equal to its messages,
  numbered 1..n, every session a prefix of the final database — standalone
  (no ``-wal`` beside them) and restorable: ``SessionStore.restore_backup`` to
  a new path, opened, passes the full health check with the same rows.
* **a backup taken while the caller holds a write transaction** finishes well
  within a timeout (it does not wait for the caller's lock) and contains
  none of the uncommitted rows, all of the committed ones.
* **a backup killed midway** (SIGKILL of a child running ``store.backup`` onto
  a path where a good backup already is, 20 times at random moments) never
  leaves anything but a complete, intact backup at that path: the old one
  untouched, or (when the kill came after the rename) the complete new one.
* once a later backup completes, no partial copy of
  the killed ones is left beside the target.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest

from sessionstore import SessionStore

from .helpers_a import (
    LineReader,
    SessionView,
    assert_sequences_exact,
    fork_call,
    quick_check,
    raw,
    read_sessions,
    sigkill,
    wait_child,
)

pytestmark = pytest.mark.reliability

BACKUPS = 20
KILLED_BACKUPS = 20
WRITER_PROCESSES = 2
WRITER_THREADS = 2


def _storm_writer(url: str, sessions: list[str], process: int, stop: Path, ack: int) -> None:
    """Append (singles and batches of 2-5) until the stop file appears; any error fails."""
    store = SessionStore.open(url)
    os.write(ack, b"R\n")
    errors: list[BaseException] = []

    def writer(thread: int) -> None:
        rng = random.Random(process * 100 + thread)
        i = 0
        try:
            while not stop.exists():
                sid = rng.choice(sessions)
                i += 1
                if rng.random() < 0.5:
                    store.messages.append(sid, "user", f"p{process} t{thread} i{i}")
                else:
                    store.messages.append_many(
                        sid,
                        [
                            {"role": "assistant", "content": f"p{process} t{thread} i{i} b{k}"}
                            for k in range(rng.randint(2, 5))
                        ],
                    )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(WRITER_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    if errors:
        raise errors[0]


def _check_backup(path: Path, final: dict[str, SessionView]) -> int:
    """A consistent, standalone copy whose every session is a prefix of the final one."""
    assert quick_check(path, "integrity_check") == "ok", f"{path.name}: integrity_check failed"
    assert not Path(f"{path}-wal").exists(), f"{path.name} has a -wal file beside it"
    with closing(raw(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        views = read_sessions(conn)
    rows = assert_sequences_exact(views)
    for sid, view in views.items():
        prefix = final[sid].messages[: len(view.messages)]
        assert view.messages == prefix, f"{path.name}: {sid} is not a prefix of the final rows"
    return rows


def test_twenty_backups_during_an_append_storm_are_consistent_and_restorable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "live.db"
    url = f"sqlite:///{path}"
    with SessionStore.open(url) as store:
        sessions = [store.sessions.create(f"model-{i}").session_id for i in range(6)]
    stop = tmp_path / "stop"
    pids = []
    for process in range(WRITER_PROCESSES):
        ack_r, ack_w = os.pipe()
        pids.append(fork_call(partial(_storm_writer, url, sessions, process, stop, ack_w)))
        os.close(ack_w)
        reader = LineReader(ack_r)
        assert reader.line(30) == "R"
        reader.close()

    backups = tmp_path / "backups"
    backups.mkdir()
    seconds: list[float] = []
    started = time.monotonic()
    try:
        with SessionStore.open(url) as store:
            time.sleep(0.1)  # let the storm get going
            for i in range(BACKUPS):
                report = store.backup(backups / f"backup{i:02d}.db")
                seconds.append(report.seconds)
                time.sleep(0.03)
    finally:
        stop.touch()
        codes = [wait_child(pid, 60) for pid in pids]
    storm = time.monotonic() - started
    assert codes == [0] * WRITER_PROCESSES, f"writers failed: {codes}"

    with closing(raw(path)) as conn:
        final = read_sessions(conn)
    final_rows = assert_sequences_exact(final)
    totals = []
    for i in range(BACKUPS):
        backup = backups / f"backup{i:02d}.db"
        totals.append(_check_backup(backup, final))
        target = tmp_path / "restored" / f"restored{i:02d}.db"
        target.parent.mkdir(exist_ok=True)
        SessionStore.restore_backup(backup, target)
        with SessionStore.open(f"sqlite:///{target}") as restored:
            health = restored.health.check()
            assert health.ok, (backup.name, health.failed)
            assert sum(s.message_count for s in restored.sessions.list(limit=100)) == totals[i]
    print(
        f"\n[backup under load] {BACKUPS} backups during a {storm:.1f} s storm "
        f"({WRITER_PROCESSES}x{WRITER_THREADS} writers): all consistent and restorable; "
        f"rows per backup {totals[0]}..{totals[-1]} ({len(set(totals))} distinct), final rows "
        f"{final_rows}, backup time max {max(seconds) * 1000:.0f} ms"
    )
    assert totals == sorted(totals), "a later backup holds fewer rows than an earlier one"
    assert len(set(totals)) >= BACKUPS // 2, "the backups were not taken while rows were added"
    assert final_rows > totals[-1] > totals[0] > 0


@contextmanager
def _watchdog(seconds: float) -> Iterator[None]:
    """Turn a hang of the main thread into a failure (SIGALRM raises in the main thread)."""

    def expired(_signum: int, _frame: object) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_backup_while_caller_holds_a_write_transaction(tmp_path: Path) -> None:
    path = tmp_path / "held.db"
    busy = 3.0
    timeout = busy + 5
    same_thread = tmp_path / "same-thread-backup.db"
    other_thread = tmp_path / "other-thread-backup.db"
    with SessionStore.open(f"sqlite:///{path}", busy_timeout=timedelta(seconds=busy)) as store:
        sid = store.sessions.create("m").session_id
        store.messages.append_many(sid, [{"role": "user", "content": f"committed {i}"}
                                         for i in range(10)])  # fmt: skip
        outcome: dict[str, BaseException] = {}

        def take_backup() -> None:
            try:
                store.backup(other_thread)
            except BaseException as exc:
                outcome["error"] = exc

        with store.transaction() as tx:
            tx.messages.append(sid, "user", "uncommitted secret")
            tx.sessions.rename(sid, "uncommitted title")
            # As the issue writes it: the backup called inside the caller's own block.
            started = time.monotonic()
            with _watchdog(timeout):
                store.backup(same_thread)
            same_seconds = time.monotonic() - started
            # And from another thread of the process while this one holds the lock.
            started = time.monotonic()
            thread = threading.Thread(target=take_backup, daemon=True)
            thread.start()
            thread.join(timeout=timeout)
            assert not thread.is_alive(), "the backup hung behind the caller's transaction"
            other_seconds = time.monotonic() - started
        assert "error" not in outcome, outcome.get("error")
        print(
            f"\n[backup inside a write transaction] same thread {same_seconds * 1000:.0f} ms, "
            f"other thread {other_seconds * 1000:.0f} ms (timeout {timeout:.0f} s); "
            "uncommitted rows in the backups: 0"
        )
        assert same_seconds < busy and other_seconds < busy
        assert store.messages.history(sid, limit=20).items[-1].content == "uncommitted secret"
    for target in (same_thread, other_thread):
        assert quick_check(target, "integrity_check") == "ok"
        with closing(raw(target)) as conn:
            contents = [r[0] for r in conn.execute("SELECT content FROM messages ORDER BY 1")]
            title = conn.execute("SELECT title FROM sessions").fetchone()[0]
        assert contents == sorted(f"committed {i}" for i in range(10)), target.name
        assert title != "uncommitted title", target.name


def _backup_child(url: str, target: Path, go: int, ack: int) -> None:
    store = SessionStore.open(url)
    os.write(ack, b"R\n")
    os.read(go, 1)
    os.write(ack, b"S\n")
    store.backup(target, overwrite=True)
    os.write(ack, b"D\n")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_backup_killed_midway_never_replaces_the_good_one(tmp_path: Path) -> None:
    path = tmp_path / "big.db"
    url = f"sqlite:///{path}"
    target = tmp_path / "good-backup.db"
    with SessionStore.open(url) as store:
        sid = store.sessions.create("m").session_id
        for batch in range(8):
            store.messages.append_many(
                sid,
                [{"role": "user", "content": f"b{batch} m{i} " + "padding text " * 80}
                 for i in range(250)],
            )  # fmt: skip
        store.backup(target)
        good_rows = 2000
        pristine = tmp_path / "pristine-copy-of-good-backup"
        shutil.copyfile(target, pristine)
        store.messages.append_many(sid, [{"role": "user", "content": "newer"}] * 50)
        started = time.perf_counter()
        store.backup(tmp_path / "timing.db")
        duration = time.perf_counter() - started
    good = _sha(target)
    rng = random.Random(99)
    kept = replaced = inside = 0
    for trial in range(KILLED_BACKUPS):
        go_r, go_w = os.pipe()
        ack_r, ack_w = os.pipe()
        pid = fork_call(partial(_backup_child, url, target, go_r, ack_w))
        os.close(ack_w)
        os.close(go_r)
        reader = LineReader(ack_r)
        try:
            assert reader.line(30) == "R"
            os.write(go_w, b"G")
            time.sleep(rng.uniform(0, 1.3 * duration))
            sigkill(pid)
            lines = ["R", *reader.rest()]
        finally:
            reader.close()
            os.close(go_w)
        inside += "S" in lines and "D" not in lines
        assert target.exists(), f"trial {trial}: the good backup is gone"
        assert quick_check(target, "integrity_check") == "ok", f"trial {trial}: damaged"
        with closing(raw(target)) as conn:
            rows = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        if _sha(target) == good:
            kept += 1
            assert rows == good_rows
        else:
            # Replaced: only ever by the complete new backup (the kill came after the rename).
            replaced += 1
            assert rows == good_rows + 50, f"trial {trial}: replaced by {rows} rows"
            # Put the old good backup back so every trial starts from it.
            shutil.copyfile(pristine, target)
    # What the killed runs leave behind (their finally never ran): reported, not required.
    litter = [p for p in tmp_path.glob(".sessionstore-*/*") if p.is_file()]
    litter_bytes = sum(p.stat().st_size for p in litter)
    print(
        f"\n[backup killed midway] {KILLED_BACKUPS} kills (inside the call: {inside}): "
        f"good backup kept {kept}, replaced by the complete new one {replaced}, "
        f"damaged or partial 0; uninterrupted backup {duration * 1000:.0f} ms; "
        f"partial copies left behind: {len(litter)} ({litter_bytes / 1e6:.0f} MB)"
    )
    assert kept + replaced == KILLED_BACKUPS
    assert inside >= 3, "too few kills landed inside the backup"


def test_backup_after_killed_ones_leaves_no_partial_copies(tmp_path: Path) -> None:
    path = tmp_path / "source.db"
    url = f"sqlite:///{path}"
    target = tmp_path / "nightly.db"
    with SessionStore.open(url) as store:
        sid = store.sessions.create("m").session_id
        store.messages.append_many(
            sid, [{"role": "user", "content": f"m{i} " + "padding " * 200} for i in range(1500)]
        )
    killed = 0
    for _ in range(3):
        go_r, go_w = os.pipe()
        ack_r, ack_w = os.pipe()
        pid = fork_call(partial(_backup_child, url, target, go_r, ack_w))
        os.close(ack_w)
        os.close(go_r)
        reader = LineReader(ack_r)
        try:
            assert reader.line(30) == "R"
            os.write(go_w, b"G")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                # The copy is written in the child's private directory beside the target.
                with contextlib.suppress(FileNotFoundError):
                    copies = list(tmp_path.glob(f".sessionstore-{pid}-*/backup.db"))
                    if copies and copies[0].stat().st_size >= 256 * 1024:
                        break
                time.sleep(0.0002)
            sigkill(pid)  # the copy is being written: the kill lands inside the backup
            killed += "D" not in reader.rest()
        finally:
            reader.close()
            os.close(go_w)
    with SessionStore.open(url) as store:
        store.backup(target, overwrite=True)  # a later backup that completes
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".sessionstore-"))
    size = sum(p.stat().st_size for p in tmp_path.glob(".sessionstore-*/*") if p.is_file())
    print(
        f"\n[partial copies after {killed} killed backups and one good one] "
        f"{len(left)} files, {size / 1e6:.1f} MB: {left}"
    )
    assert killed >= 1
    assert quick_check(target, "integrity_check") == "ok"
    assert left == []
