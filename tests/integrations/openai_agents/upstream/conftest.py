"""The Agents SDK's own session tests, run against ``SessionStoreSession``.

The SDK's test files beside this one are not part of the project:
``scripts/upstream-tests`` extracts them, unchanged and verified by their
SHA-256, from the openai-agents 0.24.0 source distribution (see ``NOTICE``);
while they are absent this directory is reported as skipped. Nothing in them
is edited: this conftest

* makes their imports of the SDK's test helpers (``tests.test_responses``,
  ``tests.memory.test_session``) find the copies here;
* replaces, in each test module, ``SQLiteSession`` and ``SQLAlchemySession``
  with classes that take those constructors' arguments and build a
  ``SessionStoreSession`` on a sessionstore database at the same place
  (``:memory:`` and ``sqlite+aiosqlite:///:memory:`` become a fresh file of
  the test's temporary directory, as each of those is a fresh database);
* deselects the tests that do not apply to another implementation, each
  with its reason (:data:`NOT_APPLICABLE`).
"""

from __future__ import annotations

import importlib
import itertools
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("agents")

from agents import set_tracing_disabled
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from sessionstore.integrations import StoreLink
from sessionstore.integrations.openai_agents import SessionStoreSession

from ...upstream_files import FETCH, deselect_not_applicable, missing, skip_collector

#: The SDK's files this directory runs, as NOTICE lists them (fetched, never committed).
UPSTREAM = (
    "test_session.py",
    "test_session_limit.py",
    "test_sqlalchemy_session.py",
    "test_responses.py",
)
HERE = __name__.rpartition(".")[0]
_absent = missing(Path(__file__).parent, UPSTREAM)
if _absent:
    # Collect none of them (a partial set cannot import) and say why.
    collect_ignore = list(UPSTREAM)
    pytest_collect_file = skip_collector(
        Path(__file__).parent, _absent, "the OpenAI Agents SDK's session tests", f"run {FETCH}"
    )
else:
    # The SDK's tests import its helpers from its own `tests` package.
    for alias, module in {
        "tests.test_responses": f"{HERE}.test_responses",
        "tests.memory.test_session": f"{HERE}.test_session",
    }.items():
        sys.modules.setdefault(alias, importlib.import_module(module))

_PRIVATE = "inspects or replaces the SDK class's private attributes ({})"
_TABLES = "reads or writes the SDK's own tables ({})"
#: Test name (without parameters) -> why it does not apply to another implementation.
NOT_APPLICABLE: dict[str, str] = {
    # test_session.py (SQLiteSession)
    "test_sqlite_session_close_closes_worker_thread_connections": _PRIVATE.format(
        "_connections: per-thread sqlite3 connections"
    ),
    "test_sqlite_session_reaps_connections_from_exited_worker_threads": _PRIVATE.format(
        "_connections"
    ),
    "test_sqlite_session_closes_retired_connections_before_the_next_allocation": (
        _PRIVATE.format("_connections; patches sqlite3.connect")
    ),
    "test_sqlite_session_keeps_connections_of_live_worker_threads": _PRIVATE.format("_connections"),
    "test_sqlite_session_closed_rejects_empty_add_items": (
        "asserts the SDK class's name in the error text ('SQLiteSession is closed'); a closed "
        "SessionStoreSession raises StoreClosedError, tested in test_items.py"
    ),
    "test_sqlite_session_pop_item_skips_corrupt_most_recent": _TABLES.format(
        "inserts a row that is not JSON into agent_messages through _locked_connection"
    ),
    "test_sqlite_session_pop_item_returns_none_after_dropping_only_corrupt_rows": _TABLES.format(
        "agent_messages, through _locked_connection"
    ),
    "test_sqlite_session_get_items_limit_skips_corrupt_newest_rows": _TABLES.format(
        "agent_messages, through _locked_connection"
    ),
    "test_sqlite_session_get_items_session_settings_limit_skips_corrupt_rows": _TABLES.format(
        "agent_messages, through _locked_connection"
    ),
    "test_sqlite_session_file_lock_is_shared_across_instances": _PRIVATE.format(
        "_lock, _file_lock_counts"
    ),
    "test_sqlite_session_failed_add_items_releases_write_lock": _TABLES.format(
        "probes agent_sessions with a raw sqlite3 connection"
    ),
    "test_sqlite_session_failed_clear_session_rolls_back": _TABLES.format(
        "drops agent_sessions, then inspects _connections"
    ),
    "test_sqlite_session_failed_pop_item_releases_write_lock": _TABLES.format(
        "drops agent_messages, then inspects _connections"
    ),
    "test_sqlite_session_rollback_failure_evicts_connection": _PRIVATE.format(
        "_connections, _get_connection: a sqlite3.Connection factory"
    ),
    "test_sqlite_session_close_retries_quarantined_connection": _PRIVATE.format(
        "_quarantined_connections, _get_connection"
    ),
    "test_sqlite_session_post_commit_cancellation_propagates_after_known_outcome": (
        _PRIVATE.format("_get_connection: pauses a sqlite3 commit")
    ),
    # test_sqlalchemy_session.py (SQLAlchemySession)
    "test_sqlalchemy_session_defaults_to_escaped_non_ascii_storage": _TABLES.format(
        "_session_factory, _messages: how message_data is escaped"
    ),
    "test_sqlalchemy_session_can_store_non_ascii_without_escaping": _TABLES.format(
        "_session_factory, _messages: how message_data is escaped"
    ),
    "test_sqlite_fallback_reserves_writer_before_tail_claim": (
        "asserts the SDK's SQL ('UPDATE agent_sessions SET') when the dialect's DELETE "
        "RETURNING is switched off"
    ),
    "test_pop_item_supports_unknown_delete_rowcount": _PRIVATE.format(
        "_session_factory, _ensure_tables replaced with fakes"
    ),
    "test_pop_item_retries_returning_claim_lost_to_concurrent_delete": _PRIVATE.format(
        "_session_factory, _ensure_tables replaced with fakes"
    ),
    "test_mutation_cancellation_waits_for_transaction_exit": _PRIVATE.format(
        "_session_factory, _ensure_tables replaced with fakes"
    ),
    "test_pop_item_skips_corrupt_most_recent": _TABLES.format(
        "inserts a row that is not JSON into _messages"
    ),
    "test_get_items_limit_skips_corrupt_newest_rows": _TABLES.format(
        "inserts a row that is not JSON into _messages"
    ),
    "test_pop_item_returns_none_after_dropping_only_corrupt_rows": _TABLES.format(
        "inserts a row that is not JSON into _messages"
    ),
    "test_add_items_cancelled_waiter_does_not_strand_table_init_lock": _PRIVATE.format(
        "_init_lock"
    ),
    "test_create_tables_false_does_not_allocate_shared_init_lock": _PRIVATE.format(
        "_init_lock, _table_init_locks"
    ),
    "test_get_items_same_timestamp_consistent_order": _TABLES.format(
        "rewrites created_at in _messages through _session_factory"
    ),
    "test_pop_item_same_timestamp_returns_latest": _TABLES.format(
        "rewrites agent_messages.created_at"
    ),
    "test_get_items_orders_by_id_for_ties": (
        "asserts the ORDER BY clauses of the SDK's statements, recorded through _session_factory"
    ),
    "test_engine_property_from_url": (
        "tests the SDK class's engine property (an AsyncEngine); SessionStoreSession exposes "
        "its store instead"
    ),
    "test_engine_property_from_external_engine": (
        "tests the SDK class's engine property (an AsyncEngine) on an external engine"
    ),
    "test_engine_property_is_read_only": "tests the SDK class's engine property (read-only)",
    "test_sqlite_configuration_registry_releases_collected_engines": _PRIVATE.format(
        "_sqlite_configured_engines"
    ),
    "test_sqlite_configuration_registry_does_not_grow_unbounded": _PRIVATE.format(
        "_sqlite_configured_engines"
    ),
}

_opened: list[SessionStoreSession] = []
_memory_dir: list[Path] = []
_serial = itertools.count()


def _fresh_file() -> Path:
    return _memory_dir[-1] / f"memory-{next(_serial)}.db"


class SQLiteSessionOnStore(SessionStoreSession):
    """``SQLiteSession(session_id, db_path, ...)``, stored by sessionstore in ``db_path``."""

    def __init__(
        self,
        session_id: str,
        db_path: str | Path = ":memory:",
        sessions_table: str = "agent_sessions",
        messages_table: str = "agent_messages",
        session_settings: Any = None,
    ) -> None:
        path = _fresh_file() if str(db_path) == ":memory:" else Path(db_path)
        link = StoreLink.from_url(f"sqlite:///{path}")
        try:
            super().__init__(session_id, link, session_settings=session_settings)
        except BaseException:
            link.close()
            raise
        _opened.append(self)


class SQLAlchemySessionOnStore(SessionStoreSession):
    """``SQLAlchemySession(session_id, engine=...)`` and ``.from_url``, on sessionstore.

    The session is stored in the engine's SQLite file (a fresh file for an
    in-memory URL); ``engine`` stays the caller's engine on that file, which
    some tests use to reach the database beside the session.
    """

    def __init__(
        self,
        session_id: str,
        *,
        engine: AsyncEngine,
        create_tables: bool = False,
        sessions_table: str = "agent_sessions",
        messages_table: str = "agent_messages",
        session_settings: Any = None,
        ensure_ascii: bool = True,
    ) -> None:
        database = make_url(str(engine.url)).database
        path = _fresh_file() if database in (None, "", ":memory:") else Path(database)
        link = StoreLink.from_url(f"sqlite:///{path}")
        try:
            super().__init__(session_id, link, session_settings=session_settings)
        except BaseException:
            link.close()
            raise
        self.engine = engine
        _opened.append(self)

    @classmethod
    def from_url(  # type: ignore[override]
        cls,
        session_id: str,
        *,
        url: str,
        engine_kwargs: dict[str, Any] | None = None,
        session_settings: Any = None,
        **kwargs: Any,
    ) -> SQLAlchemySessionOnStore:
        database = make_url(url).database
        if database in (None, "", ":memory:"):
            url = f"sqlite+aiosqlite:///{_fresh_file()}"
        engine = create_async_engine(url, **(engine_kwargs or {}))
        return cls(session_id, engine=engine, session_settings=session_settings, **kwargs)


_REPLACEMENTS = {
    "SQLiteSession": SQLiteSessionOnStore,
    "SQLAlchemySession": SQLAlchemySessionOnStore,
}


@pytest.fixture(autouse=True)
def _sessionstore_in_place_of_the_sdk_stores(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    set_tracing_disabled(True)
    _memory_dir.append(tmp_path)
    for name, replacement in _REPLACEMENTS.items():
        if hasattr(request.module, name):
            monkeypatch.setattr(request.module, name, replacement)
    try:
        yield
    finally:
        while _opened:
            _opened.pop().close()
        _memory_dir.pop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    deselect_not_applicable(config, items, Path(__file__).parent, NOT_APPLICABLE)
