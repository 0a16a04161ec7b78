"""Downgrades: every reversible revision goes down one step and up again, data kept.

On both backends, with sessions, messages, metadata, an archived session and
its snapshot in the database: from head, each revision that can be undone is
downgraded one step (``-1``), rows are written at that older revision with
plain SQL, and the database goes back up one step (``+1``); after every step
the sessions, messages and metadata the older schema can hold are exactly
what they were, and at head the store is healthy and finds them by search.

What cannot be undone refuses before anything changes, with a
:class:`MigrationError` naming the way back: ``0002_adopt`` (point to the
``.bak-legacy-*`` copy), and ``0004_lifecycle`` while a purged session exists
only as snapshots. ``0001_legacy_baseline`` goes to ``base`` by dropping the
empty layout it made, or, when its tables hold rows, by only removing the
stamp: the file is a legacy file again and the next upgrade adopts it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from sessionstore import MigrationError, SessionStore, StoreConfig, migrations
from sessionstore.downgrades import downgrade
from sessionstore.engine import build_engine
from sessionstore.migrations import LEGACY_BASELINE, head_revision

FIRST_REVERSIBLE = "0002_adopt"  # the lowest revision a database can be downgraded to


def revisions() -> list[str]:
    scripts = migrations._scripts()
    return [r.revision for r in reversed(list(scripts.walk_revisions()))]


@contextmanager
def engine_for(url: str) -> Iterator[Engine]:
    engine = build_engine(StoreConfig(url=url))
    try:
        yield engine
    finally:
        engine.dispose()


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        state = migrations.database_state(conn)
        conn.rollback()
    return state.revision


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """What every revision from 0002 on holds: sessions, messages, metadata."""
    queries = {
        "sessions": "SELECT session_id, model_id, title, message_count, total_tokens, status"
        " FROM sessions ORDER BY session_id",
        "messages": "SELECT session_id, sequence_number, role, content, tokens_used"
        " FROM messages ORDER BY session_id, sequence_number",
        "metadata": "SELECT session_id, key, value FROM session_metadata ORDER BY session_id, key",
    }
    with engine.connect() as conn:
        out = {name: [tuple(r) for r in conn.execute(sa.text(q))] for name, q in queries.items()}
        conn.rollback()
    return out


def seed(url: str) -> dict[str, str]:
    with SessionStore.open(url) as store:
        kept = store.sessions.create("gpt-4o", title="Routing tables", metadata={"team": "net"})
        store.messages.append(kept.session_id, "user", "How do routers pick a path?", tokens=6)
        store.messages.append(kept.session_id, "assistant", "Longest prefix match.", tokens=3)
        old = store.sessions.create("gpt-4o-mini", title="Archived chat")
        store.messages.append(old.session_id, "user", "archive me")
        store.lifecycle.archive(old.session_id)
    return {"kept": kept.session_id, "archived": old.session_id}


def write_at_older_revision(engine: Engine, tag: str) -> None:
    """Rows written by an older release, in the older schema's own columns."""
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO sessions (session_id, model_id, title) VALUES (:s, 'm', :t)"),
            {"s": f"older-{tag}", "t": f"written at {tag}"},
        )
        conn.execute(
            sa.text(
                "INSERT INTO messages (session_id, sequence_number, role, content)"
                " VALUES (:s, 1, 'user', :c)"
            ),
            {"s": f"older-{tag}", "c": f"hello from {tag}"},
        )


def test_every_reversible_revision_goes_down_and_up_again_with_its_data(
    backend_url: str,
) -> None:
    ids = seed(backend_url)
    chain = revisions()
    assert chain[-1] == head_revision()
    with engine_for(backend_url) as engine:
        expected = dump(engine)
        # Down one step at a time, up again one step, from head to the first reversible pair.
        for upper_index in range(len(chain) - 1, chain.index(FIRST_REVERSIBLE), -1):
            upper, lower = chain[upper_index], chain[upper_index - 1]
            assert current(engine) == upper
            report = downgrade(engine, "-1")
            assert (report.from_revision, report.to_revision, report.undone) == (
                upper,
                lower,
                (upper,),
            )
            assert current(engine) == lower
            assert dump(engine) == expected, f"{upper} -> {lower} lost data"
            write_at_older_revision(engine, lower)
            expected = dump(engine)
            up = migrations.upgrade(engine, "+1")
            assert up.applied == (upper,)
            assert dump(engine) == expected, f"{lower} -> {upper} lost data"
            # Back down again for the next pair.
            downgrade(engine, "-1")
        assert current(engine) == FIRST_REVERSIBLE
        migrations.upgrade(engine, "head")
        assert dump(engine) == expected
    with SessionStore.open(backend_url, upgrade=False) as store:
        health = store.health.check()
        assert health.ok, health.failed
        assert store.sessions.get(ids["archived"]).status == "archived"
        found = {h.session.session_id for h in store.search.sessions("routers").items}
        assert ids["kept"] in found
        titles = {h.session.session_id for h in store.search.sessions("written").items}
        assert titles == {f"older-{r}" for r in chain[chain.index(FIRST_REVERSIBLE) : -1]}
        # The store writes on after the round trips, sequence numbers and all.
        assert store.messages.append(ids["kept"], "user", "still here?").sequence_number == 3
        store.messages.append(f"older-{FIRST_REVERSIBLE}", "assistant", "hi")


def test_the_adoption_cannot_be_undone_and_nothing_changes(backend_url: str) -> None:
    seed(backend_url)
    with engine_for(backend_url) as engine:
        before = dump(engine)
        with pytest.raises(MigrationError, match=r"0002_adopt.*bak-legacy.*nothing was changed"):
            downgrade(engine, "base")
        assert current(engine) == head_revision()
        assert dump(engine) == before
        while current(engine) != FIRST_REVERSIBLE:
            downgrade(engine, "-1")
        with pytest.raises(MigrationError, match="restore-backup"):
            downgrade(engine, "-1")
        assert current(engine) == FIRST_REVERSIBLE
        assert dump(engine) == before


def test_a_purged_session_living_only_in_snapshots_blocks_the_lifecycle_downgrade(
    backend_url: str,
) -> None:
    from datetime import timedelta

    ids = seed(backend_url)
    with SessionStore.open(backend_url) as store:
        report = store.lifecycle.purge(timedelta(0))
        assert [p.session_id for p in report.purged] == [ids["archived"]]
        snapshot = report.purged[0].snapshot_id
    with engine_for(backend_url) as engine:
        before = dump(engine)
        with pytest.raises(MigrationError, match=r"1 purged session.*restore-snapshot"):
            downgrade(engine, "0003_search")
        assert current(engine) == head_revision()
        assert dump(engine) == before
    with SessionStore.open(backend_url) as store:
        store.lifecycle.restore(snapshot)
    with engine_for(backend_url) as engine:
        assert downgrade(engine, "0003_search").undone[-1] == "0004_lifecycle"


def test_targets_that_are_not_below_the_current_revision_are_refused(sqlite_url: str) -> None:
    seed(sqlite_url)
    with engine_for(sqlite_url) as engine:
        assert downgrade(engine, head_revision()).undone == ()  # already there
        for target, message in (
            ("-9", "below the first revision"),
            ("nonsense", "no revision"),
        ):
            with pytest.raises(MigrationError, match=message):
                downgrade(engine, target)
            assert current(engine) == head_revision()


def test_the_baseline_goes_to_base_dropping_only_an_empty_layout(tmp_path: Path) -> None:
    empty, legacy = tmp_path / "empty.db", tmp_path / "legacy.db"
    for path in (empty, legacy):
        with engine_for(f"sqlite:///{path}") as engine:
            migrations.upgrade(engine, LEGACY_BASELINE)
    with engine_for(f"sqlite:///{legacy}") as engine, engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO sessions (session_id, model_id, created_at, updated_at, last_activity)"
            " VALUES ('s1', 'm', '2026-01-01', '2026-01-01', '2026-01-01')"
        )
        conn.exec_driver_sql(
            "INSERT INTO messages (session_id, sequence_number, role, content, timestamp)"
            " VALUES ('s1', 1, 'user', 'kept', '2026-01-01')"
        )

    with engine_for(f"sqlite:///{empty}") as engine:
        assert downgrade(engine, "base").undone == (LEGACY_BASELINE,)
        with engine.connect() as conn:
            assert migrations.database_state(conn).kind == "empty"
            conn.rollback()

    with engine_for(f"sqlite:///{legacy}") as engine:
        downgrade(engine, "base")
        with engine.connect() as conn:
            assert migrations.database_state(conn).kind == "legacy"
            conn.rollback()
    # The next upgrade adopts it as the legacy file it is again, with its backup.
    with SessionStore.open(f"sqlite:///{legacy}") as store:
        assert store.upgrade_report is not None
        assert store.upgrade_report.found == "legacy"
        assert store.upgrade_report.backup_path is not None
        assert [m.content for m in store.messages.recent("s1", 5)] == ["kept"]
