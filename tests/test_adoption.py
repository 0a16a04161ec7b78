"""Adopting a damaged legacy `.ai-router-sessions.db`: nothing lost, everything repaired.

The file comes from ``tests/legacy.py`` (300 sessions, ~14,000 messages, all
five kinds of damage from the field report). It is adopted twice, once by
``SessionStore.open(url)`` and once by ``store.upgrade()`` on a store built
without upgrading, and every read-only check runs on both:

* every message of every live session kept byte for byte (ids, session,
  sequence number, role, content, tokens, duration, metadata text, invalid
  JSON included), and the same through the store's own API;
* every orphan moved to quarantine with its reason and time, none lost, none
  left in the live tables;
* the :class:`UpgradeReport` counts equal to the damage injected;
* every count and total equal to the real sums; every live message findable
  through ``messages_fts`` by a token planted in it, and nothing else;
* ``store.health.check()`` all green, and the users' five checks done by
  hand with raw ``sqlite3``;
* the legacy views answering with their legacy columns and right figures;
* the backup a consistent copy of the legacy file, row for row.

Then, on fresh copies: appends continue after the highest old sequence number
and never reuse an id (quarantined ones included), edits and deletes no longer
wipe a session's search rows, reopening changes nothing, and an empty legacy
file is adopted the same way. A legacy file in a directory whose name holds
``#`` or ``%`` is adopted and backed up like any other (the backup check once
opened such paths as URIs: it verified the wrong file and left a stray one).
The first test checks that the builder's file really carries the damage it
claims, with raw SQL, so the other tests cannot pass on an undamaged file.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from sessionstore import (
    DatabaseCorruptError,
    MessageRecord,
    SessionStore,
    StoreConfig,
    UpgradeReport,
)
from sessionstore.backup import backup_sqlite_file, verify_sqlite_file
from sessionstore.engine import build_engine
from sessionstore.migrations import LEGACY_BASELINE, alembic_config, head_revision

from .legacy import (
    LegacyFacts,
    build_empty_legacy_db,
    build_legacy_db,
    copy_legacy,
    logical_dump,
    shared_legacy_db,
)

HEALTH_CHECKS = {
    "integrity",
    "foreign_keys",
    "schema",
    "orphans",
    "counts",
    "readable",
    "count_triggers",
    "search_index",
    "journal",
    "version",
}
COUNT_TRIGGERS = {
    "trg_messages_after_insert",
    "trg_messages_after_delete",
    "trg_messages_after_update_totals",
}
LEGACY_TRIGGERS = {
    "update_session_timestamp",
    "decrement_message_count",
    "sessions_fts_insert",
    "sessions_fts_update",
    "sessions_fts_delete",
    "auto_generate_title",
}
RECENT_COLUMNS = [
    "session_id", "title", "model_id", "model_name", "message_count", "total_tokens",
    "total_duration_seconds", "created_at", "updated_at", "last_activity", "first_prompt",
    "last_message",
]  # fmt: skip
STATS_COLUMNS = [
    "model_id", "session_count", "total_messages", "total_tokens", "avg_duration",
    "first_session", "last_session",
]  # fmt: skip
BACKUP_NAME = re.compile(r"\.bak-legacy-\d{8}T\d{12}Z$")


def connect(path: Path) -> contextlib.closing[sqlite3.Connection]:
    return contextlib.closing(sqlite3.connect(path))


def canonical(legacy_time: str) -> str:
    """What adoption turns a legacy ``YYYY-MM-DD HH:MM:SS`` into."""
    return f"{legacy_time}.000000"


def applied_after_baseline() -> tuple[str, ...]:
    script = ScriptDirectory.from_config(alembic_config())
    revisions = [rev.revision for rev in script.walk_revisions()]
    return tuple(r for r in reversed(revisions) if r != LEGACY_BASELINE)


def fts_hits(conn: sqlite3.Connection, token: str) -> list[int]:
    rows = conn.execute(
        "SELECT rowid FROM messages_fts WHERE messages_fts MATCH ? ORDER BY rowid", (f'"{token}"',)
    )
    return [int(r[0]) for r in rows]


@pytest.fixture(scope="session")
def master(tmp_path_factory: pytest.TempPathFactory) -> LegacyFacts:
    return shared_legacy_db(tmp_path_factory.getbasetemp() / "legacy-master")


@pytest.fixture(scope="session")
def master_dump(master: LegacyFacts) -> list[str]:
    return logical_dump(master.path)


@dataclass(frozen=True)
class Adoption:
    facts: LegacyFacts
    store: SessionStore
    report: UpgradeReport
    started: datetime
    finished: datetime
    seconds: float


def _adopt(facts: LegacyFacts, how: str) -> Adoption:
    url = f"sqlite:///{facts.path}"
    started = datetime.now(UTC).replace(tzinfo=None)
    clock = time.perf_counter()
    if how == "open":
        store = SessionStore.open(url)
        report = store.upgrade_report
    else:
        store = SessionStore(build_engine(StoreConfig.from_env(url)), owns_engine=True)
        report = store.upgrade()
    seconds = time.perf_counter() - clock
    finished = datetime.now(UTC).replace(tzinfo=None)
    assert isinstance(report, UpgradeReport)
    return Adoption(facts, store, report, started, finished, seconds)


@pytest.fixture(scope="module", params=["open", "store.upgrade"])
def adopted(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, master: LegacyFacts
) -> Iterator[Adoption]:
    """The master legacy file, copied and adopted once per way in; read-only tests share it."""
    how = str(request.param)
    directory = tmp_path_factory.mktemp(f"adopted-{how.replace('.', '-')}")
    adoption = _adopt(copy_legacy(master, directory / ".ai-router-sessions.db"), how)
    yield adoption
    adoption.store.close()


@pytest.fixture
def fresh(tmp_path: Path, master: LegacyFacts) -> Iterator[Adoption]:
    """A copy of its own, adopted, for tests that write."""
    adoption = _adopt(copy_legacy(master, tmp_path / ".ai-router-sessions.db"), "open")
    yield adoption
    adoption.store.close()


# --- the fixture itself ----------------------------------------------------------------


def test_legacy_fixture_carries_all_five_kinds_of_damage(master: LegacyFacts) -> None:
    facts = master
    with connect(facts.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        assert "alembic_version" not in {
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        rows = {
            r[0]: r
            for r in conn.execute(
                "SELECT message_id, session_id, sequence_number, role, content, timestamp,"
                " tokens_used, duration_seconds, metadata FROM messages"
            )
        }
        # Every row in the file is accounted for, as a live message or an orphan.
        assert rows == {k: m.row() for k, m in (facts.messages | facts.orphan_messages).items()}
        sessions = {r[0] for r in conn.execute("SELECT session_id FROM sessions")}
        assert sessions == facts.live_session_ids

        # (a) orphans, and foreign keys that were never enforced.
        orphans = {
            r[0]
            for r in conn.execute(
                "SELECT message_id FROM messages m WHERE NOT EXISTS"
                " (SELECT 1 FROM sessions s WHERE s.session_id = m.session_id)"
            )
        }
        assert orphans == facts.orphan_message_ids
        assert len(orphans) >= 100
        orphan_meta = {
            r[0]
            for r in conn.execute(
                "SELECT metadata_id FROM session_metadata d WHERE NOT EXISTS"
                " (SELECT 1 FROM sessions s WHERE s.session_id = d.session_id)"
            )
        }
        assert orphan_meta == facts.orphan_metadata_ids
        assert len(orphan_meta) >= 5
        assert conn.execute("PRAGMA foreign_key_check").fetchall()

        # (b) counts and totals that differ from the messages.
        drifted = {
            r[0]
            for r in conn.execute(
                "SELECT s.session_id FROM sessions s LEFT JOIN (SELECT session_id, COUNT(*) n,"
                " SUM(COALESCE(tokens_used, 0)) t, SUM(COALESCE(duration_seconds, 0)) d"
                " FROM messages GROUP BY session_id) a ON a.session_id = s.session_id"
                " WHERE s.message_count IS NULL OR s.message_count != COALESCE(a.n, 0)"
                " OR s.total_tokens != COALESCE(a.t, 0)"
                " OR ABS(s.total_duration_seconds - COALESCE(a.d, 0)) > 1e-6"
            )
        }
        assert drifted == facts.drifted_session_ids
        assert len(drifted) >= 20
        count_only = conn.execute(
            "SELECT COUNT(*) FROM sessions s WHERE s.message_count !="
            " (SELECT COUNT(*) FROM messages m WHERE m.session_id = s.session_id)"
        ).fetchone()[0]
        assert count_only >= 10

        # (c) FTS rows missing for live messages, and left for deleted sessions.
        indexed = dict(
            conn.execute("SELECT session_id, COUNT(*) FROM sessions_fts GROUP BY session_id")
        )
        for sid in facts.live_session_ids:
            live = sum(1 for m in facts.messages.values() if m.session_id == sid)
            missing = sum(
                1 for k in facts.fts_missing_message_ids if facts.messages[k].session_id == sid
            )
            assert indexed.get(sid, 0) == live - missing, sid
        assert len(facts.fts_missing_message_ids) >= 500
        stale = set(indexed) - facts.live_session_ids
        assert stale == set(facts.stale_fts_session_ids)
        assert stale

        # (d) metadata that is not JSON, in live and in orphaned messages.
        invalid = [
            r[0]
            for r in conn.execute(
                "SELECT message_id FROM messages WHERE metadata IS NOT NULL"
                " AND NOT json_valid(metadata) ORDER BY message_id"
            )
        ]
        live_invalid = tuple(k for k in invalid if k in facts.messages)
        assert live_invalid == facts.invalid_json_message_ids
        assert len(live_invalid) >= 50
        assert any(k in facts.orphan_messages for k in invalid)

        # (e) gaps in the sequence numbers.
        assert len(facts.gap_session_ids) >= 5

    # The rest of what the brief asks of the content.
    contents = [m.content for m in facts.messages.values()]
    assert all("\x00" not in c for c in contents)
    for needle in ("👨\u200d👩\u200d👧\u200d👦", "日本語", "세션", "e\u0301", "\r\n", "𠀀"):
        assert any(needle in c for c in contents), needle
    assert any(len(c) > 10_000 for c in contents)
    assert len(facts.empty_session_ids) >= 3
    stamp = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
    assert all(stamp.match(m.timestamp) for m in facts.messages.values())
    assert max(facts.orphan_message_ids) == facts.max_message_id


# --- what the upgrade says it did --------------------------------------------------------


def test_report_counts_equal_the_injected_damage(adopted: Adoption) -> None:
    facts, report = adopted.facts, adopted.report
    assert report.found == "legacy"
    assert report.from_revision is None
    assert report.to_revision == head_revision()
    assert report.applied == applied_after_baseline()
    assert report.changed
    assert report.orphaned_messages_quarantined == len(facts.orphan_messages)
    assert report.orphaned_metadata_quarantined == len(facts.orphan_metadata)
    assert report.counts_repaired == len(facts.drifted_session_ids)
    assert report.invalid_json_message_ids == facts.invalid_json_message_ids
    assert report.index_rows_missing == len(facts.fts_missing_message_ids)
    assert report.index_rows_rebuilt == len(facts.messages)
    assert report.backup_path is not None and report.backup_path.is_file()


def test_adoption_takes_seconds_not_minutes(adopted: Adoption) -> None:
    # ~14,000 messages, backup included; the legacy file took minutes to fix by hand.
    assert adopted.seconds < 5.0, f"adoption took {adopted.seconds:.1f} s"


# --- nothing lost -------------------------------------------------------------------------


def test_every_live_message_is_kept_byte_for_byte(adopted: Adoption) -> None:
    facts = adopted.facts
    with connect(facts.path) as conn:
        rows = {
            r[0]: r
            for r in conn.execute(
                "SELECT message_id, session_id, sequence_number, role, content, timestamp,"
                " tokens_used, duration_seconds, metadata, CAST(content AS BLOB),"
                " CAST(metadata AS BLOB), client_msg_id FROM messages"
            )
        }
    assert set(rows) == set(facts.messages)
    wrong = []
    for mid, m in facts.messages.items():
        row = rows[mid]
        expected = (*m.row()[:5], canonical(m.timestamp), *m.row()[6:])
        if (
            row[:9] != expected
            or row[9] != m.content.encode("utf-8")
            or row[10] != (None if m.metadata is None else m.metadata.encode("utf-8"))
            or row[11] is not None
        ):
            wrong.append((mid, row[:9], expected))
    assert not wrong, wrong[:3]


def test_the_store_reads_the_legacy_messages_back(adopted: Adoption) -> None:
    facts, store = adopted.facts, adopted.store
    for sid in sorted(facts.live_session_ids):
        got: list[MessageRecord] = []
        cursor = None
        while True:
            page = store.messages.history(sid, limit=100, cursor=cursor)
            got.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        expected = facts.messages_of(sid)
        assert [
            (r.message_id, r.sequence_number, r.role, r.content, r.tokens, r.duration) for r in got
        ] == [
            (m.message_id, m.sequence_number, m.role, m.content, m.tokens_used, m.duration_seconds)
            for m in expected
        ]
        assert [r.metadata_json for r in got] == [m.metadata for m in expected]
        assert [r.timestamp for r in got] == [
            datetime.strptime(m.timestamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            for m in expected
        ]


def test_sessions_are_kept_and_every_count_and_total_is_repaired(adopted: Adoption) -> None:
    facts = adopted.facts
    totals = facts.totals()
    with connect(facts.path) as conn:
        rows = {
            r[0]: r
            for r in conn.execute(
                "SELECT session_id, model_id, model_name, title, created_at, message_count,"
                " total_tokens, total_duration_seconds, last_seq, status FROM sessions"
            )
        }
    assert set(rows) == facts.live_session_ids
    for sid, s in facts.sessions.items():
        row = rows[sid]
        assert row[1:5] == (s.model_id, s.model_name, s.title, canonical(s.created_at))
        n, tokens, duration, last_seq = totals[sid]
        assert (row[5], row[6], row[8], row[9]) == (n, tokens, last_seq, "active"), sid
        assert row[7] == pytest.approx(duration, abs=1e-6), sid
    # The store's API agrees.
    for sid in sorted(facts.drifted_session_ids):
        record = adopted.store.sessions.get(sid)
        assert (record.message_count, record.total_tokens, record.last_seq) == (
            totals[sid][0],
            totals[sid][1],
            totals[sid][3],
        )


def test_session_metadata_rows_are_kept(adopted: Adoption) -> None:
    facts = adopted.facts
    with connect(facts.path) as conn:
        rows = {
            r[0]: r
            for r in conn.execute(
                "SELECT metadata_id, session_id, key, value FROM session_metadata"
            )
        }
    assert rows == {
        k: (d.metadata_id, d.session_id, d.key, d.value) for k, d in facts.metadata.items()
    }


def test_orphans_are_quarantined_with_reason_and_time_none_lost(adopted: Adoption) -> None:
    facts = adopted.facts
    earliest = adopted.started - timedelta(seconds=1)
    latest = adopted.finished + timedelta(seconds=1)
    with connect(facts.path) as conn:
        quarantined = {
            r[0]: r
            for r in conn.execute(
                "SELECT message_id, session_id, sequence_number, role, content, timestamp,"
                " tokens_used, duration_seconds, metadata, reason, quarantined_at"
                " FROM quarantined_messages"
            )
        }
        quarantined_meta = {
            r[0]: r
            for r in conn.execute(
                "SELECT metadata_id, session_id, key, value, reason, quarantined_at"
                " FROM quarantined_metadata"
            )
        }
        live_ids = {r[0] for r in conn.execute("SELECT message_id FROM messages")}
        live_meta = {r[0] for r in conn.execute("SELECT metadata_id FROM session_metadata")}
    assert set(quarantined) == facts.orphan_message_ids
    for mid, m in facts.orphan_messages.items():
        row = quarantined[mid]
        assert row[:9] == m.row(), mid  # as found: the legacy timestamp text too
        assert "orphan" in row[9]
        assert earliest <= datetime.fromisoformat(row[10]) <= latest
    assert set(quarantined_meta) == facts.orphan_metadata_ids
    for key, d in facts.orphan_metadata.items():
        row = quarantined_meta[key]
        assert row[:4] == (d.metadata_id, d.session_id, d.key, d.value)
        assert "orphan" in row[4]
        assert earliest <= datetime.fromisoformat(row[5]) <= latest
    assert not live_ids & facts.orphan_message_ids
    assert not live_meta & facts.orphan_metadata_ids


# --- search -------------------------------------------------------------------------------


def test_every_live_message_is_findable_and_nothing_else(adopted: Adoption) -> None:
    facts = adopted.facts
    with connect(facts.path) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "sessions_fts" not in names
        not_found = [
            m.message_id
            for m in facts.messages.values()
            if fts_hits(conn, m.token) != [m.message_id]
        ]
        assert not not_found, f"{len(not_found)} live messages not findable: {not_found[:10]}"
        found_orphans = [
            m.message_id for m in facts.orphan_messages.values() if fts_hits(conn, m.token)
        ]
        assert not found_orphans
        docs = {r[0] for r in conn.execute("SELECT id FROM messages_fts_docsize")}
        assert docs == set(facts.messages)
        conn.execute("INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)")
        # A plain word: every live message that has it, once each, and no orphan.
        expected = {k for k, m in facts.messages.items() if "revers" in m.content.lower()}
        hits = [r[0] for r in conn.execute(
            "SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'reverse'"
        )]  # fmt: skip
        assert len(hits) == len(set(hits))
        assert set(hits) == expected
        sessions = [
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT m.session_id FROM messages_fts f JOIN messages m"
                " ON m.message_id = f.rowid WHERE messages_fts MATCH 'reverse'"
            )
        ]
        assert set(sessions) == {facts.messages[k].session_id for k in expected}


# --- health, by the store and by hand -------------------------------------------------------


def test_every_health_check_passes(adopted: Adoption) -> None:
    report = adopted.store.health.check()
    assert {c.name for c in report.checks} == HEALTH_CHECKS
    assert report.ok, report.failed
    assert report["orphans"].count == 0
    assert report["counts"].count == 0


def test_the_users_five_checks_by_hand(adopted: Adoption) -> None:
    path = adopted.facts.path
    with connect(path) as conn:
        # 1. integrity_check answers ok.
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        # 3. no message and no metadata row without its session.
        assert conn.execute(
            "SELECT COUNT(*) FROM messages m LEFT JOIN sessions s USING (session_id)"
            " WHERE s.session_id IS NULL"
        ).fetchone() == (0,)
        assert conn.execute(
            "SELECT COUNT(*) FROM session_metadata d LEFT JOIN sessions s USING (session_id)"
            " WHERE s.session_id IS NULL"
        ).fetchone() == (0,)
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        # 4. every message_count equals the real count.
        assert conn.execute(
            "SELECT COUNT(*) FROM sessions s WHERE s.message_count !="
            " (SELECT COUNT(*) FROM messages m WHERE m.session_id = s.session_id)"
        ).fetchone() == (0,)
        # 5. the count-maintaining triggers exist; the legacy ones are gone.
        triggers = {
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        }
        assert triggers >= COUNT_TRIGGERS
        assert not triggers & LEGACY_TRIGGERS
    # 2. foreign keys are on, on every connection the application's engine hands out.
    engine = adopted.store.engine
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        conn.rollback()
    pooled = [engine.raw_connection() for _ in range(3)]  # three at once: three connections
    try:
        for raw in pooled:
            assert raw.driver_connection is not None
            assert raw.driver_connection.execute("PRAGMA foreign_keys").fetchone() == (1,)
    finally:
        for raw in pooled:
            raw.close()


def test_legacy_views_still_answer_with_their_columns(
    adopted: Adoption, master: LegacyFacts
) -> None:
    facts = adopted.facts
    totals = facts.totals()
    with connect(master.path) as conn:
        legacy_views = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type='view'"))
    with connect(facts.path) as conn:
        views = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'view'"))
        assert views == legacy_views  # other programs' SQL, kept as it was

        cur = conn.execute("SELECT * FROM recent_sessions")
        assert [d[0] for d in cur.description] == RECENT_COLUMNS
        recent = cur.fetchall()
        assert len(recent) == len(facts.sessions)
        for row in recent:
            sid = row[0]
            msgs = facts.messages_of(sid)
            users = [m for m in msgs if m.role == "user"]
            assert row[4] == totals[sid][0]
            assert row[10] == (users[0].content if users else None)
            assert row[11] == (msgs[-1].content if msgs else None)

        cur = conn.execute("SELECT * FROM session_stats")
        assert [d[0] for d in cur.description] == STATS_COLUMNS
        stats = {r[0]: r for r in cur.fetchall()}
    by_model: dict[str, list[str]] = {}
    for sid, s in facts.sessions.items():
        by_model.setdefault(s.model_id, []).append(sid)
    assert set(stats) == set(by_model)
    for model, sids in by_model.items():
        assert stats[model][1] == len(sids)
        assert stats[model][2] == sum(totals[s][0] for s in sids)
        assert stats[model][3] == sum(totals[s][1] for s in sids)


# --- the backup ------------------------------------------------------------------------------


def test_backup_is_a_consistent_copy_of_the_legacy_file(
    adopted: Adoption, master_dump: list[str]
) -> None:
    path = adopted.facts.path
    backup = adopted.report.backup_path
    assert backup is not None
    assert backup.parent == path.parent
    assert backup.name.startswith(path.name)
    assert BACKUP_NAME.search(backup.name), backup.name
    # One backup, no partial copies left beside it.
    siblings = sorted(p.name for p in path.parent.iterdir() if p.name != path.name)
    assert [s for s in siblings if not s.startswith(f"{path.name}-")] == [backup.name]
    with connect(backup) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    assert not Path(f"{backup}-wal").exists()
    assert logical_dump(backup) == master_dump


@pytest.mark.parametrize("directory", ["chats#1", "100%41"])
def test_adoption_in_a_directory_whose_name_has_uri_characters(
    tmp_path: Path, directory: str
) -> None:
    path = tmp_path / directory / ".ai-router-sessions.db"
    path.parent.mkdir()
    facts = build_legacy_db(path, sessions=10, messages_per_session=4, seed=3)
    url = "sqlite:///" + str(path).replace("%", "%25")  # SQLAlchemy URLs decode %xx
    before = logical_dump(path)
    with SessionStore.open(url) as store:
        report = store.upgrade_report
        assert report is not None and report.backup_path is not None
        assert report.backup_path.parent == path.parent
        assert store.health.check().ok
    assert logical_dump(report.backup_path) == before
    assert report.orphaned_messages_quarantined == len(facts.orphan_messages)
    # Nothing written outside the database's own directory.
    assert [p.name for p in tmp_path.iterdir()] == [directory]


@pytest.mark.parametrize("directory", ["plain", "chats#1", "100%41"])
def test_backup_verification_rejects_a_damaged_file(tmp_path: Path, directory: str) -> None:
    junk = tmp_path / directory / "copy.db"
    junk.parent.mkdir()
    junk.write_bytes(b"not a database, whatever the name says " * 200)
    with pytest.raises(DatabaseCorruptError):
        verify_sqlite_file(junk)
    # A real copy of a real file passes.
    source = build_empty_legacy_db(tmp_path / directory / "source.db")
    assert backup_sqlite_file(source, tmp_path / directory / "backup.db").is_file()


# --- after adoption --------------------------------------------------------------------------


def test_appends_continue_after_the_old_numbering_and_never_reuse_an_id(
    fresh: Adoption,
) -> None:
    facts, store = fresh.facts, fresh.store
    totals = facts.totals()
    gap = sorted(facts.gap_session_ids)[0]
    empty = sorted(facts.empty_session_ids)[0]
    drifted = sorted(facts.drifted_session_ids - facts.gap_session_ids)[0]
    plain = sorted(facts.live_session_ids - facts.drifted_session_ids)[0]
    assert totals[gap][3] > totals[gap][0]  # a real gap: highest seq above the count
    last_id = max(facts.max_message_id, *facts.orphan_message_ids)
    for sid in (gap, empty, drifted, plain):
        n, tokens, _, last_seq = totals[sid]
        record = store.messages.append(sid, "user", f"after adoption {sid}", tokens=7)
        assert record.sequence_number == last_seq + 1, sid
        assert record.message_id > last_id
        assert record.message_id not in facts.orphan_message_ids
        last_id = record.message_id
        session = store.sessions.get(sid)
        assert (session.message_count, session.total_tokens, session.last_seq) == (
            n + 1,
            tokens + 7,
            last_seq + 1,
        )
    batch = store.messages.append_many(
        plain, [{"role": "assistant", "content": "one"}, {"role": "user", "content": "two"}]
    )
    assert [m.sequence_number for m in batch] == [totals[plain][3] + 2, totals[plain][3] + 3]
    assert all(m.message_id > last_id for m in batch)

    store.sessions.set_metadata(plain, "after-adoption", "yes")
    with connect(facts.path) as conn:
        (metadata_id,) = conn.execute(
            "SELECT metadata_id FROM session_metadata WHERE key = 'after-adoption'"
        ).fetchone()
        assert conn.execute("SELECT COUNT(*) FROM quarantined_messages").fetchone() == (
            len(facts.orphan_messages),
        )
    assert metadata_id > max(facts.max_metadata_id, *facts.orphan_metadata_ids)

    created = store.sessions.create("gpt-4o")
    first = store.messages.append(created.session_id, "user", "a new session after adoption")
    assert first.sequence_number == 1
    assert first.message_id > last_id
    assert store.health.check().ok


def test_edits_and_deletes_no_longer_wipe_the_sessions_search_rows(fresh: Adoption) -> None:
    facts, store = fresh.facts, fresh.store
    sid = max(facts.live_session_ids, key=lambda s: len(facts.messages_of(s)))
    msgs = facts.messages_of(sid)
    edited, deleted, rest = msgs[1], msgs[2], [msgs[0], *msgs[3:]]
    store.messages.edit(edited.message_id, "rewritten entirely: zebrafinch")
    store.messages.delete(deleted.message_id)
    with connect(facts.path) as conn:
        assert fts_hits(conn, "zebrafinch") == [edited.message_id]
        assert fts_hits(conn, edited.token) == []
        assert fts_hits(conn, deleted.token) == []
        lost = [m.message_id for m in rest if fts_hits(conn, m.token) != [m.message_id]]
        assert not lost, f"{len(lost)} of {len(rest)} messages of the session became unsearchable"
    report = store.health.check()
    assert report.ok, report.failed
    session = store.sessions.get(sid)
    assert session.message_count == len(msgs) - 1
    assert session.last_seq == msgs[-1].sequence_number


def test_reopening_an_adopted_file_changes_nothing(fresh: Adoption) -> None:
    path = fresh.facts.path
    fresh.store.close()
    before = logical_dump(path)
    backups = sorted(path.parent.glob(f"{path.name}.bak-*"))
    with SessionStore.open(f"sqlite:///{path}") as again:
        report = again.upgrade_report
        assert report is not None
        assert (report.found, report.applied, report.backup_path) == ("versioned", (), None)
    assert logical_dump(path) == before
    assert sorted(path.parent.glob(f"{path.name}.bak-*")) == backups


# --- an empty legacy file ----------------------------------------------------------------------


def test_an_empty_legacy_file_is_adopted_the_same_way(tmp_path: Path) -> None:
    path = build_empty_legacy_db(tmp_path / ".ai-router-sessions.db")
    before = logical_dump(path)
    with SessionStore.open(f"sqlite:///{path}") as store:
        report = store.upgrade_report
        assert report is not None
        assert report.found == "legacy"
        assert report.to_revision == head_revision()
        assert report.applied == applied_after_baseline()
        assert (
            report.orphaned_messages_quarantined,
            report.orphaned_metadata_quarantined,
            report.counts_repaired,
            report.index_rows_missing,
            report.index_rows_rebuilt,
            report.invalid_json_message_ids,
        ) == (0, 0, 0, 0, 0, ())
        assert report.backup_path is not None
        assert logical_dump(report.backup_path) == before
        health = store.health.check()
        assert health.ok, health.failed
        with connect(path) as conn:
            cur = conn.execute("SELECT * FROM recent_sessions")
            assert [d[0] for d in cur.description] == RECENT_COLUMNS
            assert cur.fetchall() == []
            cur = conn.execute("SELECT * FROM session_stats")
            assert [d[0] for d in cur.description] == STATS_COLUMNS
            assert cur.fetchall() == []
            for table in ("quarantined_messages", "quarantined_metadata", "messages"):
                assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone() == (0,)
        session = store.sessions.create("gpt-4o")
        first = store.messages.append(session.session_id, "user", "Hello after adoption 👋")
        assert (first.message_id, first.sequence_number) == (1, 1)
        with connect(path) as conn:
            assert conn.execute(
                "SELECT first_prompt, message_count FROM recent_sessions"
            ).fetchone() == ("Hello after adoption 👋", 1)
            assert fts_hits(conn, "adoption") == [1]
