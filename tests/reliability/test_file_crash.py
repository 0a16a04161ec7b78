"""Crash injection at every step boundary of the store's multi-step file operations.

Each operation runs in a forked child in which ``sessionstore.files.step`` (the
hook called before each file operation and after each step of SQLite's backup
API) is replaced by one that ends the process with ``os._exit(137)`` at its
k-th call. k runs from 1 until the operation completes without reaching k, so
every boundary is a crash point. The backup API copies 4 pages a step here
(``files.STEP_PAGES``), so a database of a few dozen pages takes several steps.

After each crash the files are reopened the way a new process would
(``SessionStore.open``), and checked with the test's own ``sqlite3``
connections:

* **restore_backup** over a healthy database holding acknowledged writes still
  in its ``-wal``: the live path holds every acknowledged row of the old
  database, or exactly the backup's rows (and then the ``.replaced-`` copy
  holds every acknowledged row); never an empty or mixed database. Over a file
  that is not a database, with an orphaned ``-wal`` beside it: the file as it
  was, or exactly the backup's rows (the orphaned frames never replayed into
  it); into a missing path: nothing, or the whole backup.
* **backup**: the source keeps every acknowledged row and passes its health
  check; the destination is absent (or the older backup it was to replace) or
  the complete new copy, never partial.
* **upgrade of a legacy file**, with its pre-upgrade backup: the file is the
  legacy database or the adopted one (nothing between), each ``.bak-legacy-``
  file is a complete copy of the legacy database, and a re-run finishes.

And the scenario of a writer in another process that keeps its connection
across a restore: everything it acknowledged is in the live file or in the
kept copy, and what it acknowledged after the restore is in the live file.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import traceback
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from sessionstore import SessionStore, files

from ..legacy import build_legacy_db, copy_legacy
from .helpers_a import LineReader, dump, fork_call, quick_check, raw, wait_child

pytestmark = pytest.mark.reliability

CRASHED = 137
ACKED = 5
Rows = list[tuple[str, int, str]]


def crash_at(k: int, work: Callable[[], None]) -> tuple[int, list[str]]:
    """Run ``work`` in a child that dies at the k-th step boundary; its exit code and steps."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read_end)
        calls = 0

        def crashing(label: str) -> None:
            nonlocal calls
            calls += 1
            os.write(write_end, f"{label}\n".encode())
            if calls == k:
                os._exit(CRASHED)

        files.step = crashing  # type: ignore[assignment]
        files.STEP_PAGES = 4  # type: ignore[misc]
        code = 0
        try:
            work()
        except BaseException:
            traceback.print_exc()
            code = 1
        os._exit(code)
    os.close(write_end)
    chunks = []
    with os.fdopen(read_end, "rb") as reader:
        while chunk := reader.read(65536):
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode().split()


def rows(path: Path) -> Rows:
    with closing(raw(path)) as conn:
        return conn.execute(
            "SELECT session_id, sequence_number, content FROM messages ORDER BY 1, 2"
        ).fetchall()


def populate(url: str, tag: str, sessions: int = 3, per_session: int = 12) -> str:
    with SessionStore.open(url) as store:
        first = ""
        for s in range(sessions):
            sid = store.sessions.create("m", session_id=f"{tag}-{s}").session_id
            first = first or sid
            store.messages.append_many(
                sid,
                [{"role": "user", "content": f"{tag} {s}.{i} " + "words " * 60}
                 for i in range(per_session)],
            )  # fmt: skip
    return first


@dataclass(frozen=True)
class Pristine:
    live: Path
    backup: Path
    #: The live database as a rollback-journal file (what a backup is).
    rollback: Path
    sid: str
    base: Rows  # the live rows
    old: Rows  # the live rows plus the acknowledged ones the children append
    new: Rows  # the backup's rows


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Pristine:
    base = tmp_path_factory.mktemp("pristine")
    live, backup = base / "live.db", base / "backup.db"
    sid = populate(f"sqlite:///{live}", "old")
    populate(f"sqlite:///{backup}", "new", sessions=2, per_session=15)
    rollback = base / "rollback.db"
    with SessionStore.open(f"sqlite:///{live}") as store:
        store.backup(rollback)
    before = rows(live)
    last = max(seq for s, seq, _ in before if s == sid)
    acked = [(sid, last + 1 + i, f"acked {i}") for i in range(ACKED)]
    return Pristine(live, backup, rollback, sid, before, sorted(before + acked), rows(backup))


def append_acked(store: SessionStore, sid: str) -> None:
    for i in range(ACKED):
        store.messages.append(sid, "user", f"acked {i}")


def trial_files(pristine: Pristine, trial: Path) -> tuple[Path, Path]:
    trial.mkdir()
    live, backup = trial / "live.db", trial / "backup.db"
    shutil.copyfile(pristine.live, live)
    shutil.copyfile(pristine.backup, backup)
    return live, backup


def until_complete(name: str, run_trial: Callable[[int], int]) -> int:
    """Run trials k = 1, 2, ... until one completes; the number of crash points."""
    for k in range(1, 1000):
        code = run_trial(k)
        if code == 0:
            return k - 1
        assert code == CRASHED, f"{name}: the child failed at k={k} (exit {code})"
    raise AssertionError(f"{name}: never completed")


# --- restore ---------------------------------------------------------------------------------


def _write_then_restore(live: Path, backup: Path, sid: str) -> None:
    store = SessionStore.open(f"sqlite:///{live}")
    append_acked(store, sid)  # acknowledged, in the -wal: the process dies holding them there
    SessionStore.restore_backup(backup, live, force=True)
    store.close()


@pytest.mark.parametrize("journal", ["wal", "rollback"])
def test_restore_over_a_healthy_database_killed_at_every_step(
    pristine: Pristine, tmp_path: Path, journal: str
) -> None:
    outcomes: Counter[str] = Counter()
    labels: list[str] = []
    old = pristine.old if journal == "wal" else pristine.base

    def run_trial(k: int) -> int:
        live, backup = trial_files(pristine, tmp_path / f"k{k}")
        if journal == "wal":
            work = partial(_write_then_restore, live, backup, pristine.sid)
        else:  # a rollback-journal file, restored into without any store opening it first
            shutil.copyfile(pristine.rollback, live)
            work = partial(SessionStore.restore_backup, backup, live, force=True)
        code, steps = crash_at(k, work)
        labels[:] = steps
        with SessionStore.open(f"sqlite:///{live}") as store:
            assert store.health.check().ok, (k, store.health.check().failed)
        found = rows(live)
        kept = sorted(live.parent.glob("live.db.replaced-*"))
        for copy in kept:
            assert rows(copy) == old, f"k={k}: the kept copy lacks acknowledged rows"
        if found == old:
            outcomes["old"] += 1
        else:
            assert found == pristine.new, f"k={k}: the live database is neither old nor new"
            assert kept, f"k={k}: restored, but the replaced database was not kept"
            outcomes["new"] += 1
        return code

    points = until_complete("restore", run_trial)
    print(
        f"\n[restore over a healthy {journal} database] {points} crash points "
        f"({Counter(label.split(':')[0] for label in labels)}); after the crash: "
        f"old database {outcomes['old']}, restored {outcomes['new']}, empty or mixed 0; "
        f"acknowledged rows lost 0"
    )
    assert points >= 10 and outcomes["old"] >= 1 and outcomes["new"] >= 2


def _orphaned_wal(directory: Path) -> bytes:
    """The bytes of a -wal holding committed frames of a database that is gone."""
    gone = directory / "gone.db"
    conn = sqlite3.connect(gone, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE messages (session_id, sequence_number, content)")
    conn.execute("INSERT INTO messages VALUES ('ghost', 1, 'from the orphaned wal')")
    data = Path(f"{gone}-wal").read_bytes()
    conn.close()
    return data


@pytest.mark.parametrize("previous", ["not a database", "none"])
def test_restore_over_junk_or_nothing_killed_at_every_step(
    pristine: Pristine, tmp_path: Path, previous: str
) -> None:
    junk = b"notes, not a database\n" * 100
    wal = _orphaned_wal(tmp_path)
    outcomes: Counter[str] = Counter()

    def run_trial(k: int) -> int:
        trial = tmp_path / f"k{k}"
        live, backup = trial_files(pristine, trial)
        live.unlink()
        if previous != "none":
            live.write_bytes(junk)
        Path(f"{live}-wal").write_bytes(wal)
        restore = partial(SessionStore.restore_backup, backup, live, force=True)
        code, _ = crash_at(k, restore)
        if not live.exists():
            assert previous == "none"
            outcomes["as it was"] += 1
        elif live.read_bytes() == junk:
            outcomes["as it was"] += 1
        else:
            with SessionStore.open(f"sqlite:///{live}") as store:
                assert store.health.check().ok
            assert rows(live) == pristine.new, f"k={k}: the orphaned wal leaked into the restore"
            outcomes["restored"] += 1
        for copy in trial.glob("live.db.*"):
            if copy.name.endswith("-wal"):
                assert copy.read_bytes() == wal
            elif not copy.name.endswith("-shm"):
                assert copy.read_bytes() == junk
        return code

    points = until_complete(f"restore over {previous}", run_trial)
    print(
        f"\n[restore over {previous}, orphaned -wal beside it] {points} crash points; "
        f"left as it was {outcomes['as it was']}, restored {outcomes['restored']}, other 0"
    )
    assert outcomes["as it was"] >= 1 and outcomes["restored"] >= 1


# --- backup ----------------------------------------------------------------------------------


def _write_then_backup(live: Path, destination: Path, sid: str, overwrite: bool) -> None:
    store = SessionStore.open(f"sqlite:///{live}")
    append_acked(store, sid)
    store.backup(destination, overwrite=overwrite)
    store.close()


@pytest.mark.parametrize("existing", [False, True], ids=["new", "over-an-older-backup"])
def test_backup_killed_at_every_step(pristine: Pristine, tmp_path: Path, existing: bool) -> None:
    outcomes: Counter[str] = Counter()

    def run_trial(k: int) -> int:
        live, older = trial_files(pristine, tmp_path / f"k{k}")
        destination = older if existing else live.with_name("copy.db")
        code, _ = crash_at(
            k, partial(_write_then_backup, live, destination, pristine.sid, existing)
        )
        with SessionStore.open(f"sqlite:///{live}") as store:
            assert store.health.check().ok
        assert rows(live) == pristine.old, f"k={k}: the source lost acknowledged rows"
        if not destination.exists():
            assert not existing
            outcomes["none"] += 1
            return code
        assert quick_check(destination, "integrity_check") == "ok", f"k={k}: partial copy"
        assert not Path(f"{destination}-wal").exists()
        found = rows(destination)
        if existing and found == pristine.new:
            outcomes["older"] += 1
        else:
            assert found == pristine.old, f"k={k}: the destination is neither old nor new"
            outcomes["complete"] += 1
        return code

    points = until_complete("backup", run_trial)
    # What killed runs leave is in private directories; the next backup there removes them.
    trial = tmp_path / f"k{points}"
    assert any(trial.glob(".sessionstore-*")) or points == 0
    with SessionStore.open(f"sqlite:///{trial / 'live.db'}") as store:
        store.backup(trial / "later.db")
    assert not any(trial.glob(".sessionstore-*"))
    print(
        f"\n[backup, {'over an older backup' if existing else 'new file'}] {points} crash points;"
        f" destination absent {outcomes['none']}, the older backup {outcomes['older']}, complete"
        f" {outcomes['complete']}, partial 0; source rows lost 0"
    )
    assert points >= 5 and outcomes["complete"] >= 1


# --- the legacy upgrade and its backup -------------------------------------------------------


def test_legacy_upgrade_killed_at_every_step(tmp_path: Path) -> None:
    facts = build_legacy_db(
        tmp_path / "legacy-source.db", sessions=6, messages_per_session=5, seed=11
    )
    legacy_dump = dump(facts.path)
    ref = copy_legacy(facts, tmp_path / "ref" / "legacy.db")
    SessionStore.open(f"sqlite:///{ref.path}").close()
    head_dump = dump(ref.path, mask_quarantine_time=True)
    outcomes: Counter[str] = Counter()
    labels: list[str] = []

    def run_trial(k: int) -> int:
        copy = copy_legacy(facts, tmp_path / f"k{k}" / "legacy.db")
        os.chmod(copy.path, 0o600)
        url = f"sqlite:///{copy.path}"
        code, steps = crash_at(k, lambda: SessionStore.open(url).close())
        labels[:] = steps
        state = dump(copy.path, mask_quarantine_time=True)
        if state == legacy_dump:
            outcomes["legacy"] += 1
        else:
            assert state == head_dump, f"k={k}: a state between legacy and head"
            outcomes["head"] += 1
        for bak in copy.path.parent.glob("legacy.db.bak-legacy-*"):
            assert dump(bak) == legacy_dump, f"k={k}: an incomplete pre-upgrade backup"
            assert stat.S_IMODE(bak.stat().st_mode) == 0o600
        with SessionStore.open(url) as store:  # the upgrade re-run
            assert store.health.check().ok
        assert dump(copy.path, mask_quarantine_time=True) == head_dump
        return code

    points = until_complete("upgrade", run_trial)
    print(
        f"\n[legacy upgrade with its pre-upgrade backup] {points} crash points "
        f"({Counter(label.split(':')[0] for label in labels)}); legacy {outcomes['legacy']}, "
        f"at head {outcomes['head']}, between 0"
    )
    assert {"upgrade:stamp", "upgrade:migrate", "upgrade:commit"} <= set(labels)
    assert outcomes["legacy"] >= 5 and outcomes["head"] >= 1


# --- a writer that keeps its connection across a restore -------------------------------------


def _writer(url: str, sid: str, stop: Path, ack: int) -> None:
    """Append until the stop file appears, then 10 more; report each acknowledged one."""
    store = SessionStore.open(url)
    os.write(ack, b"R\n")
    i = 0
    while not stop.exists():
        store.messages.append(sid, "user", f"w{i}")
        os.write(ack, f"w{i}\n".encode())
        i += 1
    for j in range(10):
        store.messages.append(sid, "user", f"final{j}")
        os.write(ack, f"final{j}\n".encode())
    store.close()


def test_a_writer_that_keeps_its_connection_across_a_restore(tmp_path: Path) -> None:
    live = tmp_path / "live.db"
    url = f"sqlite:///{live}"
    sid = populate(url, "base", sessions=2, per_session=20)
    backup = tmp_path / "backup.db"
    with SessionStore.open(url) as store:
        store.backup(backup)
    stop = tmp_path / "stop"
    ack_r, ack_w = os.pipe()
    pid = fork_call(partial(_writer, url, sid, stop, ack_w))
    os.close(ack_w)
    reader = LineReader(ack_r)
    acked: list[str] = []
    try:
        assert reader.line(30) == "R"
        while len(acked) < 30:
            acked.append(reader.line(30))
        report = SessionStore.restore_backup(backup, live, force=True)
        stop.touch()
        acked += reader.rest()
    finally:
        reader.close()
    assert wait_child(pid, 60) == 0
    in_live = {content for _, _, content in rows(live)}
    (kept,) = report.moved_aside
    in_kept = {content for _, _, content in rows(kept)}
    lost = [c for c in acked if c not in in_live and c not in in_kept]
    finals = [c for c in acked if c.startswith("final")]
    with SessionStore.open(url) as store:
        assert store.health.check().ok
    print(
        f"\n[writer across a restore] {len(acked)} acknowledged writes: "
        f"{sum(c in in_live for c in acked)} in the live file, "
        f"{sum(c in in_kept and c not in in_live for c in acked)} only in the kept copy, "
        f"lost {len(lost)}; after the restore: {len(finals)} acknowledged, all in the live file"
    )
    assert lost == []
    assert len(finals) == 10 and set(finals) <= in_live
    assert set(acked[:30]) <= in_kept
