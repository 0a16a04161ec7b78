"""The lifecycle commands: sweep, archive, reactivate, snapshots, purge, restore-snapshot.

The command line runs on the real clock, so the seeded sessions are placed
relative to the real ``now`` (a store opened with a ``FakeClock`` set days
back writes them). What is proved here: ``sweep --dry-run`` reports the due
session and changes nothing; ``sweep`` archives it and prints its snapshot;
``archive``, ``reactivate``, ``snapshots``, ``purge --older-than 30d`` and
``restore-snapshot`` do what they say, as tables and as ``--json``, with exit
status 0; ``sweep --purge-after`` purges too; ``sweep --every`` keeps sweeping
in the foreground until interrupted; bad durations and library errors exit
with status 2 and one clean message, never a traceback.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from sessionstore import SessionStore
from sessionstore.cli import main

from .conftest import FakeClock


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def seed(url: str) -> dict[str, str]:
    """On the store's default timeouts (idle 1 h): one session idle for two days, one fresh."""
    real_now = datetime.now(UTC)
    clock = FakeClock(real_now - timedelta(days=2))
    with SessionStore.open(url, clock=clock) as store:
        stale = store.sessions.create("gpt-4o", title="stale").session_id
        for i in range(3):
            store.messages.append(stale, "user", f"old message {i}")
        clock.now = real_now
        fresh = store.sessions.create("gpt-4o", title="fresh").session_id
        store.messages.append(fresh, "user", "new message")
    return {"stale": stale, "fresh": fresh}


def status(url: str, session_id: str) -> str | None:
    with SessionStore.open(url) as store:
        if not store.sessions.exists(session_id):
            return None
        return store.sessions.get(session_id).status


def test_sweep_dry_run_then_sweep(sqlite_url: str) -> None:
    ids = seed(sqlite_url)
    code, out, _ = run("sweep", "--dry-run", "--db", sqlite_url)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["session", "timed", "out", "deadline", "snapshot"]
    [row] = [line for line in lines if ids["stale"] in line]
    assert row.split()[1] == "idle" and row.split()[-1] == "-"
    assert ids["fresh"] not in out
    assert "would archive 1 session(s)" in out
    assert status(sqlite_url, ids["stale"]) == "active"

    code, out, _ = run("sweep", "--dry-run", "--json", "--db", sqlite_url)
    assert code == 0
    doc = json.loads(out)
    assert doc["purge"] is None and doc["sweep"]["dry_run"] is True
    [item] = doc["sweep"]["archived"]
    assert (item["session_id"], item["reason"], item["snapshot_id"]) == (ids["stale"], "idle", None)
    assert datetime.fromisoformat(item["deadline"]) < datetime.now(UTC)

    code, out, _ = run("sweep", "--db", sqlite_url)
    assert code == 0
    [row] = [line for line in out.splitlines() if ids["stale"] in line]
    snapshot_id = int(row.split()[-1])
    assert "archived 1 session(s)" in out
    assert status(sqlite_url, ids["stale"]) == "archived"
    assert status(sqlite_url, ids["fresh"]) == "active"
    with SessionStore.open(sqlite_url) as store:
        assert [s.snapshot_id for s in store.lifecycle.snapshots(ids["stale"])] == [snapshot_id]

    code, out, _ = run("sweep", "--json", "--db", sqlite_url)
    assert code == 0 and json.loads(out)["sweep"]["archived"] == []


def test_archive_snapshots_reactivate(sqlite_url: str) -> None:
    ids = seed(sqlite_url)
    code, out, _ = run("archive", ids["fresh"], "--db", sqlite_url)
    assert code == 0
    assert out.startswith(f"archived {ids['fresh']}: snapshot ")
    assert "(1 messages," in out
    assert status(sqlite_url, ids["fresh"]) == "archived"

    code, out, _ = run(
        "archive", ids["stale"], "--reason", "cli test", "--json", "--db", sqlite_url
    )
    assert code == 0
    info = json.loads(out)
    assert (info["session_id"], info["reason"], info["message_count"]) == (
        ids["stale"],
        "cli test",
        3,
    )
    assert info["stored_bytes"] > 0 and info["raw_bytes"] > 0

    code, out, _ = run("snapshots", ids["stale"], "--db", sqlite_url)
    assert code == 0
    assert out.splitlines()[0].split() == ["snapshot", "taken", "reason", "messages", "bytes"]
    assert f"{info['snapshot_id']}" in out and "cli test" in out and "archive" in out

    code, out, _ = run("reactivate", ids["stale"], "--db", sqlite_url)
    assert (code, out.strip()) == (0, f"reactivated {ids['stale']}")
    assert status(sqlite_url, ids["stale"]) == "active"

    code, out, _ = run("snapshots", ids["stale"], "--json", "--db", sqlite_url)
    assert code == 0
    doc = json.loads(out)
    assert [s["snapshot_id"] for s in doc["snapshots"]] == [info["snapshot_id"]]
    assert [(e["action"], e["reason"], e["snapshot_id"]) for e in doc["history"]] == [
        ("archive", "cli test", info["snapshot_id"]),
        ("reactivate", None, None),
    ]

    # Library errors: one line, exit status 2.
    code, _, err = run("archive", ids["fresh"], "--db", sqlite_url)
    assert code == 2 and err.startswith("error: ") and "already archived" in err
    code, _, err = run("reactivate", ids["stale"], "--db", sqlite_url)
    assert code == 2 and "not archived" in err
    code, _, err = run("archive", "no-such-session", "--db", sqlite_url)
    assert code == 2 and "no session with id" in err
    assert "Traceback" not in err


def archive_long_ago(url: str, session_id: str, days: int) -> int:
    with SessionStore.open(url) as store:
        when = datetime.now(UTC) - timedelta(days=days)
        return store.lifecycle.archive(session_id, now=when).snapshot_id


def test_purge_and_restore_snapshot(sqlite_url: str) -> None:
    ids = seed(sqlite_url)
    with SessionStore.open(sqlite_url) as store:
        before = store.export(ids["stale"])
    snapshot_id = archive_long_ago(sqlite_url, ids["stale"], days=31)
    archive_long_ago(sqlite_url, ids["fresh"], days=29)

    code, out, _ = run("purge", "--older-than", "30d", "--db", sqlite_url)
    assert code == 0
    assert out.splitlines()[0].split() == ["session", "messages", "snapshot"]
    [row] = [line for line in out.splitlines() if ids["stale"] in line]
    assert row.split()[1:] == ["3", str(snapshot_id)]
    # No "freed 0 bytes": a byte count only when pages really went to the free list.
    assert re.search(
        r"^purged 1 session\(s\)(; \d+ bytes free for reuse inside the database)?$",
        out.splitlines()[-1],
    )
    assert "freed 0" not in out
    assert status(sqlite_url, ids["stale"]) is None
    assert status(sqlite_url, ids["fresh"]) == "archived"  # 29 days: kept

    code, out, _ = run("purge", "--older-than", "4w", "--json", "--db", sqlite_url)
    assert code == 0
    doc = json.loads(out)
    assert [(p["session_id"], p["messages"]) for p in doc["purged"]] == [(ids["fresh"], 1)]
    assert doc["bytes_freed"] >= 0

    code, out, _ = run("snapshots", ids["stale"], "--db", sqlite_url)
    assert code == 0 and str(snapshot_id) in out and "purge" in out  # outlived the purge

    code, out, _ = run("restore-snapshot", str(snapshot_id), "--db", sqlite_url)
    assert (code, out.strip()) == (0, f"restored {ids['stale']} (3 messages)")
    with SessionStore.open(sqlite_url) as store:
        assert store.export(ids["stale"]) == before

    code, _, err = run("restore-snapshot", str(snapshot_id), "--db", sqlite_url)
    assert code == 2 and err.startswith("error: ") and "is active" in err
    code, _, err = run("restore-snapshot", "424242", "--db", sqlite_url)
    assert code == 2 and "no snapshot with id 424242" in err
    code, _, err = run("restore-snapshot", "abc", "--db", sqlite_url)
    assert code == 2 and "Traceback" not in err

    code, out, _ = run("restore-snapshot", str(snapshot_id), "--json", "--db", sqlite_url)
    assert code == 2  # still active: the JSON form refuses the same way


def test_sweep_purge_after(sqlite_url: str) -> None:
    ids = seed(sqlite_url)
    archive_long_ago(sqlite_url, ids["fresh"], days=40)
    code, out, _ = run("sweep", "--purge-after", "30d", "--db", sqlite_url)
    assert code == 0
    assert "archived 1 session(s)" in out and "purged 1 session(s)" in out
    assert status(sqlite_url, ids["stale"]) == "archived"
    assert status(sqlite_url, ids["fresh"]) is None
    code, out, _ = run("sweep", "--purge-after", "1h30m", "--json", "--db", sqlite_url)
    assert code == 0 and json.loads(out)["purge"]["purged"] == []


@pytest.mark.parametrize(
    "args",
    [
        ("purge", "--older-than", "30x"),
        ("purge", "--older-than", ""),
        ("purge", "--older-than", "30"),
        ("purge", "--older-than", "-5d"),
        ("purge", "--older-than", "30 days"),
        ("sweep", "--every", "soon"),
        ("sweep", "--every", "10"),
        ("sweep", "--purge-after", "1y"),
    ],
)
def test_bad_durations_exit_2_with_a_clean_message(sqlite_url: str, args: tuple[str, ...]) -> None:
    code, out, err = run(*args, "--db", sqlite_url)
    assert code == 2
    assert "is not a duration like 90s, 10m, 1h30m or 30d" in err
    assert "Traceback" not in err + out


def test_other_bad_sweep_and_purge_options_exit_2(sqlite_url: str) -> None:
    seed(sqlite_url)
    code, _, err = run("purge", "--db", sqlite_url)
    assert code == 2 and "--older-than" in err
    code, _, err = run("sweep", "--every", "0s", "--db", sqlite_url)
    assert code == 2 and err.strip().startswith("error: every must be a positive timedelta")
    assert len(err.strip().splitlines()) == 1
    code, _, err = run("sweep", "--every", "10m", "--dry-run", "--db", sqlite_url)
    assert code == 2 and "--dry-run sweeps once" in err


@pytest.mark.parametrize("span", ["9999999999d", "999999999d"])
def test_out_of_range_durations_exit_2(sqlite_url: str, span: str) -> None:
    result = CliRunner().invoke(main, ["purge", "--older-than", span, "--db", sqlite_url])
    assert result.exit_code == 2
    assert not isinstance(result.exception, OverflowError)


def test_sweep_every_keeps_sweeping_until_interrupted(sqlite_url: str, tmp_path: Path) -> None:
    """The foreground loop: sweeps at once, reports each turn, stops cleanly on Ctrl-C."""
    ids = seed(sqlite_url)
    script = Path(sys.executable).with_name("sessionstore")
    # Ctrl-C as a terminal sends it: a shell that started this run in the
    # background made SIGINT ignored, and an ignored signal stays so across exec.
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            [str(script), "sweep", "--every", "1h", "--db", sqlite_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        deadline = time.monotonic() + 30
        while status(sqlite_url, ids["stale"]) != "archived" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status(sqlite_url, ids["stale"]) == "archived"
        assert proc.poll() is None  # still running: it sweeps every hour
        time.sleep(0.7)  # let the loop print the turn it saw (it looks twice a second)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "sweeping every 1:00:00" in err and "stopping" in err
    assert "archived 1" in out
    with SessionStore.open(sqlite_url) as store:  # the lease was handed back on the way out
        assert store.lifecycle.acquire_lease("sweep", "next", timedelta(minutes=1))


def test_snapshots_of_an_unknown_session_say_no_session(sqlite_url: str) -> None:
    ids = seed(sqlite_url)
    code, out, err = run("snapshots", "nope", "--db", sqlite_url)
    assert (code, out) == (2, "")
    assert err.strip() == "error: no session with id 'nope'"
    # A session that exists but was never archived: its (empty) tables, exit 0.
    code, out, _ = run("snapshots", ids["fresh"], "--db", sqlite_url)
    assert code == 0 and out.count("(none)") == 2
    # A purged session is gone from `show`, but its snapshots and history still list.
    snapshot_id = archive_long_ago(sqlite_url, ids["stale"], days=40)
    assert run("purge", "--older-than", "30d", "--db", sqlite_url)[0] == 0
    assert run("show", ids["stale"], "--db", sqlite_url)[0] == 2
    code, out, _ = run("snapshots", ids["stale"], "--db", sqlite_url)
    assert code == 0 and str(snapshot_id) in out and "purge" in out


def test_lifecycle_commands_never_create_a_database(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    for args in (
        ("sweep",),
        ("sweep", "--dry-run"),
        ("archive", "s1"),
        ("reactivate", "s1"),
        ("purge", "--older-than", "30d"),
        ("restore-snapshot", "1"),
        ("snapshots", "s1"),
    ):
        code, _, err = run(*args, "--db", f"sqlite:///{missing}")
        assert code == 2, args
        assert err.strip().startswith(f"error: no database at {missing};"), err
        assert len(err.strip().splitlines()) == 1
        assert not missing.exists()
