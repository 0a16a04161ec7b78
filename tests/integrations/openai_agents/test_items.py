"""SessionStoreSession keeps every Agents SDK item exactly, and its text searchable."""

from __future__ import annotations

import json
import typing
from typing import Any

import pytest

pytest.importorskip("agents")

from agents import Agent, Runner
from agents.testing import ScriptedModel
from openai.types.responses import ResponseOutputMessage, ResponseOutputText
from openai.types.responses.response_input_item_param import ResponseInputItemParam

from sessionstore import InvalidInput, SessionStore, StoreClosedError
from sessionstore.integrations.openai_agents import (
    SessionStoreSession,
    item_text,
)

#: A conversation with a tool call, as the Runner stores it (roles and types mixed).
CONVERSATION: list[Any] = [
    {"role": "developer", "content": "Answer in French."},
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is the weather in Lyon?"},
    {
        "type": "message",
        "role": "user",
        "content": [
            {"type": "input_text", "text": "And a picture"},
            {"type": "input_image", "image_url": "https://example.com/x.png", "detail": "auto"},
        ],
    },
    {
        "id": "rs_1",
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "Need the forecast tool."}],
        "encrypted_content": "gAAAA\u0000binary-ish",
    },
    {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_1",
        "name": "get_forecast",
        "arguments": json.dumps({"city": "Lyon", "days": 2}),
        "status": "completed",
    },
    {"type": "function_call_output", "call_id": "call_1", "output": "Ensoleillé, 21°C"},
    {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [
            {
                "type": "output_text",
                "text": "Il fait beau à Lyon.",
                "annotations": [],
                "logprobs": [],
            },
            {"type": "refusal", "refusal": "No pictures."},
        ],
    },
    {
        "type": "web_search_call",
        "id": "ws_1",
        "status": "completed",
        "action": {"type": "search", "query": "lyon forecast"},
    },
    {"type": "item_reference", "id": "msg_0"},
    {
        "role": "user",
        "content": "emoji 😊, quotes \" ' and a NUL \u0000 in text",
        "extra": [1.5, 2**70],
    },
]


def _type_literals() -> list[str]:
    """Every item ``type`` the Responses API input union names (read from the SDK's types)."""
    kinds = set()
    for member in typing.get_args(ResponseInputItemParam):
        args = typing.get_args(typing.get_type_hints(member, include_extras=True)["type"])
        while args and not isinstance(args[0], str):
            args = typing.get_args(args[0])
        kinds.update(args)
    return sorted(kinds)


@pytest.fixture
def session(store: SessionStore) -> SessionStoreSession:
    return SessionStoreSession("conv-1", store)


async def test_a_conversation_comes_back_equal_in_order(
    session: SessionStoreSession, store: SessionStore
) -> None:
    await session.add_items(CONVERSATION[:5])
    await session.add_items(CONVERSATION[5:])
    assert await session.get_items() == CONVERSATION
    assert await session.get_items(limit=3) == CONVERSATION[-3:]
    assert await session.pop_item() == CONVERSATION[-1]
    assert await session.get_items() == CONVERSATION[:-1]

    rows = list(store.messages.iterate("conv-1"))
    assert [(row.role, row.kind) for row in rows[:8]] == [
        ("developer", "message"),
        ("system", "message"),
        ("user", "message"),
        ("user", "message"),
        ("assistant", "reasoning"),
        ("assistant", "function_call"),
        ("tool", "function_call_output"),
        ("assistant", "message"),
    ]
    assert rows[5].content == 'get_forecast\n{"city": "Lyon", "days": 2}'
    assert rows[7].content == "Il fait beau à Lyon.\nNo pictures."
    assert store.sessions.get("conv-1").model_id is None


async def test_every_item_type_of_the_responses_api_round_trips(
    session: SessionStoreSession, store: SessionStore
) -> None:
    kinds = _type_literals()
    assert {"function_call", "reasoning", "mcp_call", "compaction"} <= set(kinds)
    items = [
        {"type": kind, "id": f"{kind}_1", "status": "completed", "output": f"said by {kind}"}
        for kind in kinds
    ]
    await session.add_items(items)
    assert await session.get_items() == items
    rows = list(store.messages.iterate("conv-1"))
    assert [row.kind for row in rows] == kinds
    assert all(
        row.role == ("tool" if row.kind.endswith("_output") else "assistant") for row in rows
    )


async def test_item_text_is_what_search_finds(
    session: SessionStoreSession, store: SessionStore
) -> None:
    await session.add_items(CONVERSATION)
    found = {hit.message.sequence_number for hit in store.search.messages("ensoleillé").items}
    assert found == {7}  # the function_call_output
    assert {hit.message.sequence_number for hit in store.search.messages("forecast").items} == {
        5,
        6,
        9,
    }
    assert store.search.sessions("get_forecast").items[0].session.session_id == "conv-1"


def test_item_text_of_each_shape() -> None:
    assert item_text({"role": "user", "content": "hi"}) == "hi"
    assert item_text({"type": "function_call", "name": "f", "arguments": "{}"}) == "f\n{}"
    assert item_text({"type": "reasoning", "summary": [{"text": "a"}, {"text": "b"}]}) == "a\nb"
    assert item_text({"type": "computer_call", "action": {"type": "click", "x": 1}}) == ""
    deep: Any = {"content": "x"}
    for _ in range(100):
        deep = {"content": [deep]}
    assert item_text(deep) == ""  # bounded depth, no recursion error


async def test_text_longer_than_a_message_is_clipped_but_the_item_is_whole(
    tmp_path: Any,
) -> None:
    with SessionStore.open(f"sqlite:///{tmp_path / 'small.db'}", max_content_bytes=64) as small:
        session = SessionStoreSession("big", small)
        item = {"type": "function_call_output", "call_id": "c", "output": "é" * 1000}
        await session.add_items([item])
        assert await session.get_items() == [item]
        (row,) = small.messages.recent("big", 1)
        assert row.content == "é" * 32


async def test_rows_another_writer_stored_read_as_messages(
    session: SessionStoreSession, store: SessionStore
) -> None:
    await session.add_items([{"role": "user", "content": "from the agent"}])
    store.messages.append("conv-1", "assistant", "from the router")
    store.messages.append("conv-1", "tool", '{"result": 42}')
    assert await session.get_items() == [
        {"role": "user", "content": "from the agent"},
        {"role": "assistant", "content": "from the router"},
        {"role": "user", "content": '{"result": 42}'},
    ]


async def test_a_history_not_written_yet_reads_empty_and_is_not_created(
    session: SessionStoreSession, store: SessionStore
) -> None:
    assert await session.get_items() == []
    assert await session.get_items(limit=5) == []
    assert await session.pop_item() is None
    await session.clear_session()
    assert not store.sessions.exists("conv-1")
    await session.add_items([])
    assert not store.sessions.exists("conv-1")


async def test_limits_follow_the_sdk(store: SessionStore) -> None:
    session = SessionStoreSession("lim", store, session_settings={"limit": 2})
    items = [{"role": "user", "content": str(i)} for i in range(5)]
    await session.add_items(items)
    assert await session.get_items() == items[-2:]
    assert await session.get_items(limit=0) == []
    assert await session.get_items(limit=-1) == items  # SQLite's LIMIT -1: no limit
    assert await session.get_items(limit=10) == items
    for bad in ("2", 2.0, True):
        with pytest.raises(InvalidInput):
            await session.get_items(limit=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Unknown session settings: limitt"):
        SessionStoreSession("lim", store, session_settings={"limitt": 1})


async def test_bad_items_are_refused_and_nothing_is_stored(
    session: SessionStoreSession, store: SessionStore
) -> None:
    await session.add_items([{"role": "user", "content": "kept"}])
    bad_batches: list[list[Any]] = [
        [{"role": "user", "content": object()}],
        [{"role": "user", "content": float("nan")}],
        ["not a dict"],
        [{"role": "user", "content": ("a", "tuple")}],
    ]
    for bad in bad_batches:
        with pytest.raises(InvalidInput):
            await session.add_items([{"role": "user", "content": "first of the batch"}, *bad])
    with pytest.raises(InvalidInput):
        await session.add_items({"role": "user", "content": "a dict, not a list"})  # type: ignore[arg-type]
    assert await session.get_items() == [{"role": "user", "content": "kept"}]
    with pytest.raises(InvalidInput):
        SessionStoreSession("", store)
    with pytest.raises(InvalidInput):
        SessionStoreSession("x", object())  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        SessionStoreSession("x", store, on_archived="ignore")  # type: ignore[arg-type]


async def test_clear_keeps_the_session_and_its_sequence_numbers(
    session: SessionStoreSession, store: SessionStore
) -> None:
    await session.add_items(CONVERSATION[:3])
    store.sessions.set_metadata("conv-1", "topic", "weather")
    await session.clear_session()
    assert await session.get_items() == []
    assert store.sessions.get_metadata("conv-1", "topic") == "weather"
    await session.add_items(CONVERSATION[3:4])
    (row,) = store.messages.recent("conv-1", 5)
    assert row.sequence_number == 4


async def test_the_runner_stores_each_turn(store: SessionStore) -> None:
    model = ScriptedModel()
    agent = Agent(name="test", model=model)
    session = SessionStoreSession("runner", store)
    reply = ResponseOutputMessage(
        id="1", type="message", role="assistant", status="completed",
        content=[ResponseOutputText(text="Paris", type="output_text", annotations=[])],
    )  # fmt: skip
    model.enqueue([reply])
    await Runner.run(agent, "Capital of France?", session=session)
    model.enqueue([reply])
    await Runner.run(agent, "Again?", session=session)
    assert [item.get("content") for item in model.calls[-1].input][:1] == ["Capital of France?"]
    assert len(await session.get_items()) == 4
    assert store.search.messages("Paris").items


async def test_from_url_shares_one_store_until_the_last_close(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first = SessionStoreSession.from_url("a", url)
    second = SessionStoreSession.from_url("b", url)
    assert first.store is second.store
    await first.add_items([{"role": "user", "content": "one"}])
    first.close()
    first.close()
    await second.add_items([{"role": "user", "content": "two"}])
    with pytest.raises(StoreClosedError):
        await first.get_items()
    second.close()
    with pytest.raises(StoreClosedError):
        second.store.sessions.get("a")
    third = SessionStoreSession.from_url("a", url.replace("sqlite:", "sqlite+aiosqlite:"))
    assert await third.get_items() == [{"role": "user", "content": "one"}]  # the same file
    third.close()


async def test_a_store_passed_in_stays_open(store: SessionStore) -> None:
    session = SessionStoreSession("conv-1", store)
    session.close()
    with pytest.raises(StoreClosedError):
        await session.add_items([{"role": "user", "content": "x"}])
    with pytest.raises(StoreClosedError):
        await session.add_items([])  # the empty batch is no way around the check
    assert store.sessions.count() == 0
