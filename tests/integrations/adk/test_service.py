"""``SessionStoreService`` beyond ADK's own contract tests: what it stores, and how.

Events come back equal (bytes, function calls, actions, state deltas); state
lands in the store's three scopes and ``temp:`` keys never do; stale writers
are refused atomically; re-delivered events are stored once; archived
sessions follow the lifecycle; ADK's behaviours that its own tests check
only on its own backends hold here too. On SQLite files and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

pytest.importorskip("google.adk")

from google.adk.errors import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.sessions.base_session_service import GetSessionConfig
from google.adk.sessions.session import Session
from google.adk.tools.tool_confirmation import ToolConfirmation
from google.genai import types

from sessionstore import SessionStore
from sessionstore.integrations.adk import SessionStoreService, readable_text

APP, USER = "weather", "ann"


@pytest.fixture
async def service(backend_url: str) -> AsyncIterator[SessionStoreService]:
    service = SessionStoreService.from_url(backend_url)
    try:
        yield service
    finally:
        await service.close()


def _rich_events(base: float) -> list[Event]:
    """Events with every kind of part ADK sends, and actions with state deltas."""
    call = types.FunctionCall(id="call-1", name="get_weather", args={"city": "Oslo", "days": 3})
    reply = types.FunctionResponse(id="call-1", name="get_weather", response={"temp_c": -3.5})
    return [
        Event(
            invocation_id="inv-1",
            author="user",
            timestamp=base + 1,
            content=types.Content(
                role="user",
                parts=[
                    types.Part(text="What is the weather in Oslo?\x00 (with NUL)"),
                    types.Part.from_bytes(data=b"\x00\xff\x89PNG", mime_type="image/png"),
                ],
            ),
            actions=EventActions(state_delta={"app:units": "metric", "user:city": "Oslo"}),
        ),
        Event(
            invocation_id="inv-1",
            author="weather_agent",
            timestamp=base + 2,
            content=types.Content(role="model", parts=[types.Part(function_call=call)]),
            long_running_tool_ids={"call-1"},
        ),
        Event(
            invocation_id="inv-1",
            author="weather_agent",
            timestamp=base + 3,
            content=types.Content(role="user", parts=[types.Part(function_response=reply)]),
            actions=EventActions(
                state_delta={"last_city": "Oslo", "forecast": {"days": [1, 2, 3], "ok": True}},
                requested_tool_confirmations={
                    "call-1": ToolConfirmation(hint="really?", confirmed=False, payload={"a": 1})
                },
                artifact_delta={"map.png": 2},
            ),
        ),
        Event(
            invocation_id="inv-1",
            author="weather_agent",
            timestamp=base + 4,
            content=types.Content(role="model", parts=[types.Part(text="It is -3.5 °C.")]),
            usage_metadata=types.GenerateContentResponseUsageMetadata(
                prompt_token_count=10, candidates_token_count=5, total_token_count=15
            ),
            grounding_metadata=types.GroundingMetadata(
                search_entry_point=types.SearchEntryPoint(sdk_blob=b"\x01\x02")
            ),
            turn_complete=True,
        ),
    ]


async def test_events_round_trip_equal(service: SessionStoreService) -> None:
    session = await service.create_session(app_name=APP, user_id=USER)
    events = _rich_events(datetime.now(UTC).timestamp())
    for event in events:
        await service.append_event(session, event)

    got = await service.get_session(app_name=APP, user_id=USER, session_id=session.id)

    assert got is not None
    assert got.events == events
    assert got == session
    stored = service.store.messages.recent(session.id, 10)
    assert [m.kind for m in stored] == ["event"] * 4
    assert [m.client_msg_id for m in stored] == [e.id for e in events]
    assert [m.timestamp for m in stored] == [
        datetime.fromtimestamp(e.timestamp, UTC) for e in events
    ]
    assert stored[0].content == "What is the weather in Oslo?\x00 (with NUL)\n[image/png, 6 bytes]"
    assert stored[1].content == 'get_weather({"city":"Oslo","days":3})'
    assert stored[2].content == 'get_weather -> {"temp_c":-3.5}'
    assert stored[0].role == "user" and stored[3].role == "assistant"


async def test_event_text_is_searchable(service: SessionStoreService) -> None:
    session = await service.create_session(app_name=APP, user_id=USER)
    for event in _rich_events(datetime.now(UTC).timestamp()):
        await service.append_event(session, event)

    hits = service.store.search.messages("Oslo weather")

    assert {hit.message.session_id for hit in hits.items} == {session.id}


async def test_state_lives_at_three_scopes(service: SessionStoreService) -> None:
    state = {"app:units": "metric", "user:name": "Ann", "step": 1, "temp:scratch": "x"}
    first = await service.create_session(app_name=APP, user_id=USER, state=state)
    await service.append_event(
        first,
        Event(
            author="user",
            actions=EventActions(
                state_delta={"app:theme": "dark", "user:lang": "nb", "step": 2, "temp:t": 1}
            ),
        ),
    )
    second = await service.create_session(app_name=APP, user_id=USER)
    other_user = await service.create_session(app_name=APP, user_id="bob")
    other_app = await service.create_session(app_name="other", user_id=USER)

    store = service.store
    assert store.state.get_app(APP) == {"units": "metric", "theme": "dark"}
    assert store.state.get_user(APP, USER) == {"name": "Ann", "lang": "nb"}
    assert store.state.get(first.id) == {"step": 2}
    assert second.state == {
        "app:units": "metric",
        "app:theme": "dark",
        "user:name": "Ann",
        "user:lang": "nb",
    }
    assert other_user.state == {"app:units": "metric", "app:theme": "dark"}
    assert other_app.state == {}
    assert first.state["temp:t"] == 1  # the caller's object holds it for the invocation
    reread = await service.get_session(app_name=APP, user_id=USER, session_id=first.id)
    assert reread is not None
    assert reread.state == {
        "app:units": "metric", "app:theme": "dark", "user:name": "Ann", "user:lang": "nb",
        "step": 2,
    }  # fmt: skip
    sessions = store.sessions.list(app=APP, user_id=USER, limit=10).items
    assert {s.session_id for s in sessions} == {first.id, second.id}  # no pseudo-sessions


async def test_temp_keys_are_never_stored(service: SessionStoreService) -> None:
    session = await service.create_session(
        app_name=APP, user_id=USER, state={"temp:seed": 1, "kept": 1}
    )
    event = Event(author="agent", actions=EventActions(state_delta={"temp:out": "x", "k": 2}))
    await service.append_event(session, event)

    store = service.store
    assert store.state.get(session.id) == {"kept": 1, "k": 2}
    (message,) = store.messages.recent(session.id, 1)
    assert message.payload["actions"]["state_delta"] == {"k": 2}
    assert session.state["temp:out"] == "x"


async def test_a_stale_session_is_refused_and_nothing_is_written(
    service: SessionStoreService,
) -> None:
    session = await service.create_session(app_name=APP, user_id=USER, state={"n": 0})
    stale = session.model_copy(deep=True)
    await service.append_event(
        session, Event(author="user", actions=EventActions(state_delta={"n": 1}))
    )

    with pytest.raises(StaleSessionError, match="modified in storage"):
        await service.append_event(
            stale, Event(author="user", actions=EventActions(state_delta={"n": 2, "app:x": 1}))
        )

    got = await service.get_session(app_name=APP, user_id=USER, session_id=session.id)
    assert got is not None
    assert len(got.events) == 1
    assert got.state == {"n": 1}
    assert isinstance(StaleSessionError(), ValueError)


async def test_of_two_concurrent_writers_of_one_revision_one_is_refused(
    service: SessionStoreService,
) -> None:
    session = await service.create_session(app_name=APP, user_id=USER)
    for i in range(8):
        latest = await service.get_session(app_name=APP, user_id=USER, session_id=session.id)
        assert latest is not None
        copies = [latest.model_copy(deep=True) for _ in range(2)]
        results = await asyncio.gather(
            *(
                service.append_event(
                    copy, Event(author="user", actions=EventActions(state_delta={f"k{i}": n}))
                )
                for n, copy in enumerate(copies)
            ),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1
        assert isinstance(errors[0], StaleSessionError)

    final = await service.get_session(app_name=APP, user_id=USER, session_id=session.id)
    assert final is not None
    assert len(final.events) == 8
    assert len([key for key in final.state if key.startswith("k")]) == 8


async def test_an_append_committed_while_this_one_waits_makes_it_stale(backend_url: str) -> None:
    """Another writer appends after this append read the session, before it stored the event.

    On PostgreSQL this append's read of the session does not wait for the other
    transaction; its insert waits for the session's row lock, then gets the
    number after the other's: the check of that number refuses it.
    """
    store, other = SessionStore.open(backend_url), SessionStore.open(backend_url)
    service = SessionStoreService(store)
    try:
        session = await service.create_session(app_name=APP, user_id=USER)
        holding, release = threading.Event(), threading.Event()

        def slip_in() -> None:
            with other.transaction() as tx:
                tx.messages.append(session.id, "user", "slipped in")
                holding.set()
                release.wait(10)

        writer = threading.Thread(target=slip_in)
        writer.start()
        assert holding.wait(10)
        event = Event(author="user", actions=EventActions(state_delta={"mine": 1}))
        append = asyncio.ensure_future(service.append_event(session, event))
        await asyncio.sleep(0.3)  # this append reads the session and waits for the lock
        release.set()
        await asyncio.to_thread(writer.join)

        with pytest.raises(StaleSessionError):
            await append
        assert [m.content for m in store.messages.recent(session.id, 10)] == ["slipped in"]
        assert store.state.get(session.id) == {}
    finally:
        await service.close()
        store.close()
        other.close()


async def test_a_current_session_without_a_marker_is_accepted(
    service: SessionStoreService,
) -> None:
    session = await service.create_session(app_name=APP, user_id=USER)
    first = Event(author="user", timestamp=session.last_update_time + 10)
    await service.append_event(session, first)
    copy = Session(
        id=session.id,
        app_name=APP,
        user_id=USER,
        events=list(session.events),
        last_update_time=session.last_update_time - 0.0001,
    )
    await service.append_event(copy, Event(author="user", timestamp=first.timestamp + 10))

    behind = Session(id=session.id, app_name=APP, user_id=USER, events=[first])
    with pytest.raises(StaleSessionError):
        await service.append_event(behind, Event(author="user"))
    got = await service.get_session(app_name=APP, user_id=USER, session_id=session.id)
    assert got is not None
    assert len(got.events) == 2


async def test_a_redelivered_event_is_stored_once(service: SessionStoreService) -> None:
    session = await service.create_session(app_name=APP, user_id=USER)
    event = Event(author="user", actions=EventActions(state_delta={"user:count": 1}))
    await service.append_event(session, event)
    await service.append_event(session, event)
    await service.append_event(session, event.model_copy(deep=True))

    got = await service.get_session(app_name=APP, user_id=USER, session_id=session.id)
    assert got is not None
    assert [e.id for e in got.events] == [event.id]
    assert len(session.events) == 1


async def test_another_event_under_a_stored_id_is_refused(service: SessionStoreService) -> None:
    session = await service.create_session(app_name=APP, user_id=USER)
    await service.append_event(session, Event(id="e-1", author="user"))

    with pytest.raises(AlreadyExistsError, match="e-1"):
        await service.append_event(
            session, Event(id="e-1", author="agent", actions=EventActions(state_delta={"x": 1}))
        )

    got = await service.get_session(app_name=APP, user_id=USER, session_id=session.id)
    assert got is not None
    assert [e.author for e in got.events] == ["user"]
    assert got.state == {}


async def test_get_session_config_reads_on_the_timestamp_index(
    service: SessionStoreService,
) -> None:
    session = await service.create_session(app_name=APP, user_id=USER)
    base = 1_800_000_000.25
    for i in range(20):
        await service.append_event(session, Event(author="user", timestamp=base + i))

    async def read(**config: Any) -> list[float]:
        got = await service.get_session(
            app_name=APP, user_id=USER, session_id=session.id, config=GetSessionConfig(**config)
        )
        assert got is not None
        return [e.timestamp for e in got.events]

    assert await read(after_timestamp=base + 15) == [base + i for i in range(15, 20)]
    assert await read(after_timestamp=base + 14.5) == [base + i for i in range(15, 20)]
    assert await read(num_recent_events=3) == [base + 17, base + 18, base + 19]
    assert await read(num_recent_events=2, after_timestamp=base + 10) == [base + 18, base + 19]
    assert await read(num_recent_events=0) == []
    assert await read(after_timestamp=base + 100) == []


def test_after_timestamp_query_plan_uses_the_index(tmp_path: Any) -> None:
    """The statement ``GetSessionConfig(after_timestamp=...)`` runs, as SQLite plans it."""
    import sqlite3

    from sqlalchemy import create_engine, event

    statements: list[str] = []
    engine = create_engine(f"sqlite:///{tmp_path / 'plan.db'}")
    event.listen(engine, "connect", lambda conn, _: conn.set_trace_callback(statements.append))
    store = SessionStore.from_engine(engine)

    async def run() -> None:
        service = SessionStoreService(store)
        session = await service.create_session(app_name=APP, user_id=USER)
        for i in range(50):
            await service.append_event(session, Event(author="user", timestamp=1e9 + i))
        statements.clear()
        got = await service.get_session(
            app_name=APP,
            user_id=USER,
            session_id=session.id,
            config=GetSessionConfig(after_timestamp=1e9 + 40),
        )
        assert got is not None
        assert len(got.events) == 10
        await service.close()

    asyncio.run(run())
    reads = [s for s in statements if "FROM messages" in s and "timestamp >" in s]
    assert len(reads) == 1
    with sqlite3.connect(tmp_path / "plan.db") as conn:
        plan = " ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + reads[0]))
    assert "USING INDEX ix_messages_session_id_timestamp" in plan, plan
    assert "TEMP B-TREE" not in plan, plan
    store.close()
    engine.dispose()


async def test_sessions_of_one_user_page_on_the_owner_index(
    service: SessionStoreService,
) -> None:
    ids = [(await service.create_session(app_name=APP, user_id=USER)).id for _ in range(5)]
    await service.create_session(app_name=APP, user_id="bob")

    listed = await service.list_sessions(app_name=APP, user_id=USER)
    first = await service.list_sessions_page(app_name=APP, user_id=USER, page_size=3)
    assert first.next_page_token is not None
    rest = await service.list_sessions_page(
        app_name=APP, user_id=USER, page_size=3, page_token=first.next_page_token
    )

    assert [s.id for s in listed.sessions] == ids
    assert [s.id for s in first.sessions + rest.sessions] == ids[::-1]
    assert rest.next_page_token is None
    assert all(not s.events for s in listed.sessions)
    assert len((await service.list_sessions(app_name=APP)).sessions) == 6


async def test_another_owners_session_reads_as_missing(service: SessionStoreService) -> None:
    session = await service.create_session(app_name=APP, user_id=USER, session_id="s-1")
    await service.append_event(session, Event(author="user"))

    assert await service.get_session(app_name=APP, user_id="bob", session_id="s-1") is None
    assert await service.get_session(app_name="other", user_id=USER, session_id="s-1") is None
    await service.delete_session(app_name=APP, user_id="bob", session_id="s-1")
    with pytest.raises(AlreadyExistsError):
        await service.create_session(app_name=APP, user_id="bob", session_id="s-1")
    bobs = Session(id="s-1", app_name=APP, user_id="bob")
    with pytest.raises(SessionNotFoundError):
        await service.append_event(bobs, Event(author="user"))
    assert await service.get_session(app_name=APP, user_id=USER, session_id="s-1") is not None


async def test_appending_to_a_deleted_or_unknown_session_is_session_not_found(
    service: SessionStoreService,
) -> None:
    session = await service.create_session(app_name=APP, user_id=USER)
    await service.delete_session(app_name=APP, user_id=USER, session_id=session.id)
    await service.delete_session(app_name=APP, user_id=USER, session_id=session.id)  # no-op

    with pytest.raises(SessionNotFoundError):
        await service.append_event(session, Event(author="user"))
    with pytest.raises(SessionNotFoundError):
        await service.append_event(
            Session(id="never", app_name=APP, user_id=USER), Event(author="user")
        )


async def test_a_value_json_cannot_hold_is_stored_as_text(service: SessionStoreService) -> None:
    session = await service.create_session(app_name=APP, user_id=USER)
    event = Event(author="user", actions=EventActions(state_delta={"callback": len, "ok": 2}))
    await service.append_event(session, event)

    got = await service.get_session(app_name=APP, user_id=USER, session_id=session.id)
    assert got is not None
    assert len(got.events) == 1
    assert got.state["ok"] == 2
    assert isinstance(got.state["callback"], str)


async def test_a_blank_id_is_generated_and_padded_ids_are_trimmed(
    service: SessionStoreService,
) -> None:
    blank = await service.create_session(app_name=APP, user_id=USER, session_id="   ")
    padded = await service.create_session(app_name=APP, user_id=USER, session_id=" s-2\t")

    assert blank.id.strip() == blank.id and blank.id
    assert padded.id == "s-2"
    assert await service.get_session(app_name=APP, user_id=USER, session_id="s-2 ") is not None


async def test_a_plain_message_of_another_writer_reads_as_a_text_event(
    service: SessionStoreService,
) -> None:
    session = await service.create_session(app_name=APP, user_id=USER)
    service.store.messages.append(session.id, "assistant", "Written by another framework")

    got = await service.get_session(app_name=APP, user_id=USER, session_id=session.id)

    assert got is not None
    (event,) = got.events
    assert event.author == "assistant"
    assert readable_text(event) == "Written by another framework"


async def test_an_archived_session_reads_and_the_next_append_brings_it_back(
    backend_url: str,
) -> None:
    store = SessionStore.open(backend_url)  # the store's default lifecycle
    service = SessionStoreService(store)
    try:
        session = await service.create_session(app_name=APP, user_id=USER, state={"n": 1})
        await service.append_event(session, Event(author="user"))
        report = store.lifecycle.sweep(datetime.now(UTC) + timedelta(hours=2))
        assert [item.session_id for item in report.archived] == [session.id]

        got = await service.get_session(app_name=APP, user_id=USER, session_id=session.id)
        assert got is not None
        assert len(got.events) == 1
        await service.append_event(
            session, Event(author="user", actions=EventActions(state_delta={"n": 2}))
        )

        assert store.sessions.get(session.id).status == "active"
        assert store.state.get(session.id) == {"n": 2}
        assert "reactivate" in [event.action for event in store.lifecycle.history(session.id)]
    finally:
        await service.close()
        store.close()


async def test_with_on_archived_raise_an_archived_session_is_session_not_found(
    backend_url: str,
) -> None:
    store = SessionStore.open(backend_url)
    service = SessionStoreService(store, on_archived="raise")
    try:
        session = await service.create_session(app_name=APP, user_id=USER)
        store.lifecycle.archive(session.id)

        with pytest.raises(SessionNotFoundError, match="archived"):
            await service.append_event(
                session, Event(author="user", actions=EventActions(state_delta={"n": 2}))
            )

        assert store.sessions.get(session.id).status == "archived"
        assert store.state.get(session.id) == {}
        got = await service.get_session(app_name=APP, user_id=USER, session_id=session.id)
        assert got is not None and got.events == []
    finally:
        await service.close()
        store.close()


async def test_sqlite_aiosqlite_urls_are_accepted(tmp_path: Any) -> None:
    async with SessionStoreService.from_url(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}") as service:
        session = await service.create_session(app_name=APP, user_id=USER)
        assert await service.get_session(app_name=APP, user_id=USER, session_id=session.id)
    assert (tmp_path / "a.db").exists()
