"""Archive, purge, restore, sweep and reactivate killed before every SQL statement.

The lifecycle operations write no file of their own: each is one transaction
(a purge, one per session) on the database. So their step boundaries are
their statements. Each operation runs in a forked child that ends itself with
``os._exit`` just before its k-th SQLite statement (the driver's ``BEGIN``
and ``COMMIT`` included), for k = 1, 2, … until a run completes; after each
kill the file passes ``PRAGMA integrity_check`` and its logical dump is
exactly the dump before the operation or exactly the dump of an
uninterrupted run, and a re-run reaches that state. The clock is fixed, so
"after" is one state (snapshot payloads, events and their times included).

Acknowledged writes lost: a kill before the commit leaves every message as it
was (the dump is equal), a kill after it leaves the finished operation.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sessionstore import SessionStore, files, migrations

from ..test_redteam_items import kill_at_every_statement
from .helpers_a import dump

pytestmark = pytest.mark.reliability

FIXED = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _populated(path: Path) -> None:
    """s0 active, s1 archived, s2 purged (its snapshot kept), each with messages."""
    with SessionStore.open(f"sqlite:///{path}", clock=lambda: FIXED) as store:
        for s in range(3):
            sid = store.sessions.create(
                "m", session_id=f"s{s}", title=f"t{s}", metadata={"k": "v"}
            ).session_id
            store.messages.append_many(
                sid,
                [{"role": "user", "content": f"{s}.{i} words", "tokens": i} for i in range(6)],
            )
        store.lifecycle.archive("s2")
        store.lifecycle.purge(timedelta(0))
        store.lifecycle.archive("s1")


def _operation(name: str) -> Callable[[str], None]:
    def work(url: str) -> None:
        with SessionStore.open(url, clock=lambda: FIXED) as store:
            files.step("op:start")
            if name == "archive":
                store.lifecycle.archive("s0")
            elif name == "purge":
                store.lifecycle.purge(timedelta(0))
            elif name == "restore":
                store.lifecycle.restore(store.lifecycle.snapshots("s2")[0].snapshot_id)
            elif name == "restore-copy":
                snapshot = store.lifecycle.snapshots("s2")[0].snapshot_id
                store.lifecycle.restore(snapshot, session_id="s2-copy")
            elif name == "sweep":
                store.lifecycle.sweep(now=FIXED + timedelta(days=2))
            else:
                store.lifecycle.reactivate("s1")

    return work


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["archive", "purge", "restore", "restore-copy", "sweep", "reactivate"]
)
def test_lifecycle_operation_killed_before_every_statement(tmp_path: Path, name: str) -> None:
    pristine = tmp_path / "pristine" / f"{name}.db"
    pristine.parent.mkdir()
    _populated(pristine)
    before = dump(pristine)
    points = kill_at_every_statement(
        tmp_path, pristine, _operation(name), None, expected_after=migrations.head_revision()
    )
    # Every operation reads, writes and commits: at least BEGIN, one write and COMMIT.
    assert points >= 3
    assert dump(pristine) == before  # the pristine file itself was never touched
