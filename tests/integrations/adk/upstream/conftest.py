"""Google ADK's own session service tests, run against ``SessionStoreService``.

ADK's ``test_session_service.py`` and ``_conformance.py`` (its backend
registry for the shared contract tests) are not part of the project: google-adk
ships no tests, and ``scripts/upstream-tests`` copies the two files, unchanged
and verified by their SHA-256, from a google/adk-python checkout named by
``SESSIONSTORE_ADK_TESTS`` (see ``NOTICE``). While they are absent this
directory is reported as skipped.

Nothing in them is edited. At import, this conftest

* registers sessionstore's service in ADK's registry (``_conformance.BACKENDS``):
  on a SQLite file (``sessionstore``) and on PostgreSQL
  (``sessionstore_postgresql``, marked ``postgres``), with its one recorded
  divergence (:data:`DIVERGENCES`); ADK's test that every divergence names a
  contract test then checks ours too;
* leaves ADK's Redis backend out: its in-memory Redis fake lives in another
  directory of ADK's tests (``tests/unittests/integrations/redis``), which is
  not fetched, so a stand-in takes the name ``_conformance`` imports it by;
* declares the ``session_service`` fixture again over the registry as it now
  stands (pytest reads a fixture's parameters once, when ``_conformance``
  defines it), with ADK's own fixture function as its body.

Every test that takes ``session_service`` runs once per registered backend:
ADK's own ones too, which shows the fetched copy passes where ADK says it
should.

The tests that do not take that fixture exercise one named ADK class (the
database service's engine options, private session factories and tables,
the in-memory service's deprecated sync API, Vertex AI) and are deselected,
each with its reason (:data:`NOT_APPLICABLE`). What several of them state
about behaviour (a deleted session, a stale writer, a re-delivered event, a
state value JSON cannot hold) is tested against ``SessionStoreService`` in
``tests/integrations/adk/test_service.py``.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import sys
import types
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("google.adk")

from sessionstore.integrations.adk import SessionStoreService

from ...upstream_files import FETCH, deselect_not_applicable, missing, skip_collector

#: ADK's files this directory runs, as NOTICE lists them (fetched, never committed).
UPSTREAM = ("test_session_service.py", "_conformance.py")
ADK_COMMIT = "11cc093158fed8ad72b40fce0d0bf3d8b2f8aa18"

#: Contract test -> why sessionstore's service fails it (ADK xfails it, strictly).
DIVERGENCES = {
    "test_get_session_respects_user_id": (
        "sessionstore names a session by its id alone, store-wide (the id"
        " that search, export, backups and the lifecycle use), with the app"
        " and user as its owner: a second user cannot create a session under"
        " an id another user's session holds (AlreadyExistsError)."
    ),
}

# The PostgreSQL database of the running test. ADK's registry hands every
# backend the test's tmp_path; the fixture below resolves `postgres_url` for
# the one backend that needs it, before ADK's fixture body calls its factory.
_postgres_url: contextvars.ContextVar[str] = contextvars.ContextVar("postgres_url")


@contextlib.asynccontextmanager
async def _sessionstore_on(url: str) -> AsyncIterator[SessionStoreService]:
    service = SessionStoreService.from_url(url)
    try:
        yield service
    finally:
        await service.close()


@contextlib.asynccontextmanager
async def _make_sessionstore_sqlite(tmp_path: Path) -> AsyncIterator[SessionStoreService]:
    async with _sessionstore_on(f"sqlite:///{tmp_path / 'sessionstore.db'}") as service:
        yield service


@contextlib.asynccontextmanager
async def _make_sessionstore_postgresql(tmp_path: Path) -> AsyncIterator[SessionStoreService]:
    del tmp_path  # its own database on the throwaway server instead
    async with _sessionstore_on(_postgres_url.get()) as service:
        yield service


#: Backend name -> (factory, marks); the PostgreSQL one needs the postgres_url fixture.
SESSIONSTORE_BACKENDS: dict[str, tuple[Any, tuple[pytest.MarkDecorator, ...]]] = {
    "sessionstore": (_make_sessionstore_sqlite, ()),
    "sessionstore_postgresql": (_make_sessionstore_postgresql, (pytest.mark.postgres,)),
}


def _register(package: str) -> Any:
    """Import ADK's registry, register sessionstore in it, declare its fixture again."""
    # `from ..integrations.redis._fake_redis import FakeRedisAsync` in ADK's
    # tree; here that name resolves beside this package and holds nothing.
    fake_redis = f"{package.rpartition('.')[0]}.integrations.redis._fake_redis"
    stand_in = types.ModuleType(fake_redis, "ADK's Redis fake is not fetched: no Redis backend.")
    stand_in.FakeRedisAsync = None  # type: ignore[attr-defined]
    sys.modules.setdefault(fake_redis, stand_in)
    conformance = importlib.import_module(f"{package}._conformance")

    registry = conformance.BACKENDS
    registry[:] = [backend for backend in registry if backend.name != "redis"]
    for name, (make, _marks) in SESSIONSTORE_BACKENDS.items():
        registry.append(conformance._Backend(name, make, divergences=DIVERGENCES))

    adk_fixture = conformance.session_service.__wrapped__
    params = [
        pytest.param(
            backend,
            marks=SESSIONSTORE_BACKENDS.get(backend.name, (None, ()))[1],
            id=backend.name,
        )
        for backend in registry
    ]

    @pytest.fixture(name="session_service", params=params)
    async def session_service(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
        """ADK's ``session_service`` fixture, over the registry with sessionstore in it."""
        token = None
        if request.param.name == "sessionstore_postgresql":
            token = _postgres_url.set(str(request.getfixturevalue("postgres_url")))
        try:
            async for service in adk_fixture(request, tmp_path):
                yield service
        finally:
            if token is not None:
                _postgres_url.reset(token)

    # test_session_service.py imports the fixture from _conformance.
    conformance.session_service = session_service
    return conformance


_absent = missing(Path(__file__).parent, UPSTREAM)
if _absent:
    # Collect none of them (a partial set cannot import) and say why.
    collect_ignore = list(UPSTREAM)
    pytest_collect_file = skip_collector(
        Path(__file__).parent,
        _absent,
        "ADK's session service conformance tests",
        f"set SESSIONSTORE_ADK_TESTS to a google/adk-python checkout's tests/unittests/sessions"
        f" at commit {ADK_COMMIT}, then run {FETCH}",
    )
else:
    _register(__name__.rpartition(".")[0])

_DATABASE = "tests DatabaseSessionService itself: {}"
_SQLITE = "tests SqliteSessionService itself: {}"
_IN_MEMORY = "tests InMemorySessionService itself: {}"
_ONLY = (
    "parametrized over ADK's {} only, not the shared fixture; the behaviour is tested against"
    " SessionStoreService in test_service.py ({})"
)

#: Test name (without parameters) -> why it does not apply to another implementation.
NOT_APPLICABLE: dict[str, str] = {
    "test_database_session_service_enables_pool_pre_ping_by_default": _DATABASE.format(
        "the options it passes to create_async_engine (mocked)"
    ),
    "test_session_type_decorators_opt_into_statement_cache": _DATABASE.format(
        "the caching flags of its SQLAlchemy column types (DynamicJSON, DynamicPickleType)"
    ),
    "test_dynamic_json_column_statement_is_cacheable": _DATABASE.format(
        "the statement cache key of its StorageSession.state column"
    ),
    "test_database_session_service_uses_naive_datetime_for_dialect": _DATABASE.format(
        "its private _uses_naive_datetime() per dialect, on a mocked engine"
    ),
    "test_database_session_service_keeps_timezone_for_spanner": _DATABASE.format(
        "its private _uses_naive_datetime() on Spanner, on a mocked engine"
    ),
    "test_database_session_service_respects_pool_pre_ping_override": _DATABASE.format(
        "the options it passes to create_async_engine (mocked)"
    ),
    "test_database_session_service_creates_read_only_engine_for_spanner": _DATABASE.format(
        "the engines it binds its private sessionmakers to (mocked)"
    ),
    "test_database_session_service_creates_read_only_engine_for_other_dialects": (
        _DATABASE.format("the engines it binds its private sessionmakers to (mocked)")
    ),
    "test_sqlite_session_service_accepts_sqlite_urls": _SQLITE.format(
        "how its constructor parses sqlite URLs"
    ),
    "test_sqlite_session_service_preserves_uri_query_parameters": _SQLITE.format(
        "that its constructor keeps ?mode=ro and lets sqlite3.OperationalError through"
    ),
    "test_sqlite_session_service_accepts_absolute_sqlite_urls": _SQLITE.format(
        "how its constructor parses absolute sqlite URLs"
    ),
    "test_database_session_service_get_session_uses_read_only_factory": _DATABASE.format(
        "that get_session uses its private read-only session factory (mocked)"
    ),
    "test_database_session_service_list_sessions_uses_read_only_factory": _DATABASE.format(
        "that list_sessions uses its private read-only session factory (mocked)"
    ),
    "test_database_session_service_list_sessions_orders_by_update_time_then_id": (
        _DATABASE.format("writes update times into its own sessions table, then lists")
    ),
    "test_create_session_with_padded_duplicate_id_raises_error": _IN_MEMORY.format(
        "a padded duplicate id (SessionStoreService trims ids as the shared contract test"
        " test_padded_session_id_reads_and_deletes checks)"
    ),
    "test_create_session_with_blank_id_generates_one": _IN_MEMORY.format(
        "a blank id is replaced by a generated one (tested in test_service.py)"
    ),
    "test_append_event_with_non_serializable_state_delta": _ONLY.format(
        "database and sqlite services", "a state value JSON cannot hold is stored as text"
    ),
    "test_append_event_to_deleted_session_raises_session_not_found": _ONLY.format(
        "database and sqlite services", "SessionNotFoundError after delete"
    ),
    "test_append_event_to_stale_session": _ONLY.format(
        "database service", "a stale session is refused with StaleSessionError"
    ),
    "test_sqlite_append_event_uses_typed_stale_session_error": _ONLY.format(
        "sqlite service", "StaleSessionError, a ValueError"
    ),
    "test_append_event_raises_if_app_state_row_missing": _DATABASE.format(
        "deletes its app_states row behind its back (sessionstore needs no row per app)"
    ),
    "test_append_event_raises_if_user_state_row_missing": _DATABASE.format(
        "deletes its user_states row behind its back (sessionstore needs no row per user)"
    ),
    "test_append_event_concurrent_stale_sessions_reject_stale_writer": _ONLY.format(
        "database service", "of two concurrent writers of one revision, one is refused"
    ),
    "test_append_event_allows_timestamp_drift_for_current_session": _ONLY.format(
        "database service", "a current session whose float update time drifted is not stale"
    ),
    "test_append_event_allows_markerless_current_session": _ONLY.format(
        "database service", "a current session without a storage marker is not stale"
    ),
    "test_append_event_when_session_is_same_ref_as_storage_session": _IN_MEMORY.format(
        "appends to the very object its private sessions dict holds"
    ),
    "test_create_session_calls_rollback_on_commit_failure": _DATABASE.format(
        "replaces its private database_session_factory with a spy"
    ),
    "test_append_event_calls_rollback_on_commit_failure": _DATABASE.format(
        "replaces its private database_session_factory with a spy"
    ),
    "test_append_event_reads_storage_revision_before_commit": _DATABASE.format(
        "wraps methods of its StorageSession model and its private session factory"
    ),
    "test_create_session_reads_storage_revision_before_commit": _DATABASE.format(
        "wraps methods of its StorageSession model and its private session factory"
    ),
    "test_delete_session_calls_rollback_on_commit_failure": _DATABASE.format(
        "replaces its private database_session_factory with a spy"
    ),
    "test_service_recovers_after_multiple_failures": _DATABASE.format(
        "replaces its private database_session_factory with a spy"
    ),
    "test_concurrent_prepare_tables_no_race_condition": _DATABASE.format(
        "its private _tables_created and _db_schema_version flags"
    ),
    "test_prepare_tables_serializes_schema_detection_and_creation": _DATABASE.format(
        "its prepare_tables() and private flags"
    ),
    "test_get_or_create_state_returns_existing_row": _DATABASE.format(
        "its private _get_or_create_state() on its app_states table"
    ),
    "test_get_or_create_state_creates_new_row": _DATABASE.format(
        "its private _get_or_create_state() on its app_states table"
    ),
    "test_get_or_create_state_handles_race_condition": _DATABASE.format(
        "its private _get_or_create_state() with a patched ORM session"
    ),
    "test_create_session_sequential_same_app_name": _DATABASE.format(
        "reuse of its app_states row by a second session of the app"
    ),
    "test_prepare_tables_idempotent_after_creation": _DATABASE.format(
        "its prepare_tables() and private flags"
    ),
    "test_public_prepare_tables_eager_initialization": _DATABASE.format(
        "its prepare_tables() and private flags"
    ),
    "test_append_event_locks_only_scopes_with_deltas": _DATABASE.format(
        "the row locks its private _select_required_state() requests (patched)"
    ),
    "test_vertex_ai_session_service_raises_not_implemented_for_get_user_state": (
        "tests VertexAiSessionService itself (its get_user_state is not implemented)"
    ),
    "test_database_session_service_visible_in_module_namespace": (
        "tests the google.adk.sessions module's lazy exports"
    ),
    "test_database_session_service_with_db_url": _DATABASE.format("its db_url argument"),
    "test_database_session_service_with_db_engine": _DATABASE.format("its db_engine argument"),
    "test_database_session_service_caller_owned_engine_not_disposed_on_close": (
        _DATABASE.format("that close() leaves an engine the caller passed")
    ),
    "test_database_session_service_requires_one_argument": _DATABASE.format(
        "its db_url / db_engine argument check"
    ),
    "test_database_session_service_engine_error_hides_password": _DATABASE.format(
        "its engine-creation error text (create_async_engine mocked)"
    ),
    "test_database_session_service_malformed_url_reports_usable_error": _DATABASE.format(
        "its URL error text"
    ),
    "test_database_session_service_sqlite_file_timestamp_read_after_reopen": _DATABASE.format(
        "overwrites its events.timestamp column with raw sqlite3"
    ),
    "test_get_session_orders_tied_timestamps_by_id": _ONLY.format(
        "database and sqlite services",
        "events that share a timestamp come back in the order they were appended, a stable"
        " order; ADK's sqlite service 2.13.0 fails this test too",
    ),
    "test_delete_session_sync_removes_only_the_targeted_users_session": _IN_MEMORY.format(
        "its deprecated synchronous API"
    ),
    "test_delete_session_sync_unknown_session_is_a_noop": _IN_MEMORY.format(
        "its deprecated synchronous API"
    ),
    "test_list_sessions_sync_strips_events_and_merges_scoped_state": _IN_MEMORY.format(
        "its deprecated synchronous API"
    ),
    "test_list_sessions_sync_unknown_app_or_user_returns_empty_response": _IN_MEMORY.format(
        "its deprecated synchronous API"
    ),
    "test_append_event_is_idempotent_for_same_event_id": _ONLY.format(
        "in-memory service", "a re-delivered event is stored once, its delta applied once"
    ),
    "test_append_different_events_not_deduplicated": _ONLY.format(
        "in-memory service",
        "sessionstore keeps event ids unique within a session: a different event under a"
        " stored id is refused with AlreadyExistsError, never dropped",
    ),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    deselect_not_applicable(config, items, Path(__file__).parent, NOT_APPLICABLE)
