"""SessionStoreChatMessageHistory gives back what InMemoryChatMessageHistory gives back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from langchain_core.chat_history import InMemoryChatMessageHistory
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    ChatMessageChunk,
    FunctionMessage,
    FunctionMessageChunk,
    HumanMessage,
    HumanMessageChunk,
    SystemMessage,
    SystemMessageChunk,
    ToolMessage,
    ToolMessageChunk,
)
from langchain_core.runnables import RunnableLambda
from langchain_core.runnables.history import RunnableWithMessageHistory

from sessionstore import InvalidInput, SessionArchived, SessionStore, StoreClosedError
from sessionstore.integrations.langchain import SessionStoreChatMessageHistory

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def every_message() -> list[BaseMessage]:
    """One of each message class, with the fields each class adds, text and block content."""
    return [
        SystemMessage(content="You are terse.", id="s1"),
        HumanMessage(content="Weather in Lyon?", id="h1", name="ana"),
        HumanMessage(
            content=[
                {"type": "text", "text": "And this picture"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
            ]
        ),
        AIMessage(
            content="",
            id="a1",
            tool_calls=[{"name": "forecast", "args": {"city": "Lyon", "days": 2}, "id": "call_1"}],
            invalid_tool_calls=[
                {"name": "broken", "args": "{oops", "id": "call_2", "error": "bad json"}
            ],
            usage_metadata={"input_tokens": 12, "output_tokens": 3, "total_tokens": 15},
            response_metadata={"model_name": "gpt-x", "finish_reason": "tool_calls"},
            additional_kwargs={"refusal": None},
        ),
        ToolMessage(
            content="Ensoleillé, 21°C",
            tool_call_id="call_1",
            artifact={"raw": [21, 22], "unit": "C"},
            status="success",
            name="forecast",
        ),
        ToolMessage(
            content=[{"type": "text", "text": "error"}], tool_call_id="call_2", status="error"
        ),
        FunctionMessage(content='{"temp": 21}', name="legacy_forecast"),
        ChatMessage(content="Looks right.", role="critic"),
        AIMessage(content="Il fait beau, NUL \u0000 kept, emoji 😊", id="a2"),
        AIMessageChunk(
            content="stream",
            tool_call_chunks=[{"name": "f", "args": '{"a": 1}', "id": "c9", "index": 0}],
        ),
        HumanMessageChunk(content="human chunk"),
        SystemMessageChunk(content="system chunk"),
        ToolMessageChunk(content="tool chunk", tool_call_id="call_3"),
        FunctionMessageChunk(content="function chunk", name="fn"),
        ChatMessageChunk(content="chat chunk", role="narrator"),
    ]


@pytest.fixture
def history(store: SessionStore) -> SessionStoreChatMessageHistory:
    return SessionStoreChatMessageHistory("chat-1", store)


def test_every_message_class_round_trips_as_in_memory(
    history: SessionStoreChatMessageHistory, store: SessionStore
) -> None:
    reference = InMemoryChatMessageHistory()
    reference.add_messages(every_message())
    history.add_messages(every_message())
    got = history.messages
    assert got == reference.messages
    assert [type(m) for m in got] == [type(m) for m in reference.messages]
    rows = list(store.messages.iterate("chat-1"))
    assert [row.role for row in rows] == [
        "system", "user", "user", "assistant", "tool", "tool", "function", "critic",
        "assistant", "assistant", "user", "system", "tool", "function", "narrator",
    ]  # fmt: skip
    assert rows[3].kind == "langchain.ai"
    assert rows[9].kind == "langchain.aimessagechunk"
    assert rows[3].content == 'forecast {"city": "Lyon", "days": 2}'
    assert rows[2].content == "And this picture"
    assert store.sessions.get("chat-1").model_id is None


async def test_every_message_class_round_trips_async(
    history: SessionStoreChatMessageHistory,
) -> None:
    reference = InMemoryChatMessageHistory()
    await reference.aadd_messages(every_message())
    await history.aadd_messages(every_message())
    assert await history.aget_messages() == await reference.aget_messages()
    await history.aclear()
    assert await history.aget_messages() == []


def test_their_text_is_what_search_finds(
    history: SessionStoreChatMessageHistory, store: SessionStore
) -> None:
    history.add_messages(every_message())
    assert {hit.message.sequence_number for hit in store.search.messages("ensoleillé").items} == {5}
    assert {hit.message.sequence_number for hit in store.search.messages("forecast").items} == {4}
    assert {hit.message.sequence_number for hit in store.search.messages("looks").items} == {8}


def test_clear_keeps_the_session(
    history: SessionStoreChatMessageHistory, store: SessionStore
) -> None:
    history.add_messages([HumanMessage(content="hello")])
    store.sessions.set_metadata("chat-1", "topic", "greetings")
    history.clear()
    assert history.messages == []
    assert store.sessions.get_metadata("chat-1", "topic") == "greetings"
    history.clear()  # twice is fine
    SessionStoreChatMessageHistory("never-written", store).clear()
    assert not store.sessions.exists("never-written")


def test_rows_another_writer_stored_read_by_role(
    history: SessionStoreChatMessageHistory, store: SessionStore
) -> None:
    history.add_message(HumanMessage(content="from langchain"))
    for role, text in [("assistant", "a"), ("system", "s"), ("developer", "d"), ("tool", "t"),
                       ("function", "f"), ("user", "u")]:  # fmt: skip
        store.messages.append("chat-1", role, text)
    assert history.messages == [
        HumanMessage(content="from langchain"),
        AIMessage(content="a"),
        SystemMessage(content="s"),
        SystemMessage(content="d"),
        ChatMessage(role="tool", content="t"),
        FunctionMessage(name="function", content="f"),
        HumanMessage(content="u"),
    ]


def test_runnable_with_message_history(store: SessionStore) -> None:
    def reply(messages: list[BaseMessage]) -> AIMessage:
        return AIMessage(content=f"heard {len(messages)}: {messages[-1].content}")

    chain = RunnableWithMessageHistory(
        RunnableLambda(reply), lambda session_id: SessionStoreChatMessageHistory(session_id, store)
    )
    config: Any = {"configurable": {"session_id": "rwmh"}}
    assert chain.invoke([HumanMessage(content="one")], config).content == "heard 1: one"
    assert chain.invoke([HumanMessage(content="two")], config).content == "heard 3: two"
    assert asyncio.run(chain.ainvoke([HumanMessage(content="three")], config)).content == (
        "heard 5: three"
    )
    stored = SessionStoreChatMessageHistory("rwmh", store).messages
    assert [m.content for m in stored] == [
        "one", "heard 1: one", "two", "heard 3: two", "three", "heard 5: three",
    ]  # fmt: skip


def test_an_archived_history_comes_back_or_is_refused(store: SessionStore) -> None:
    history = SessionStoreChatMessageHistory("arch", store)
    history.add_messages([HumanMessage(content="a")])
    store.lifecycle.archive("arch")
    assert history.messages == [HumanMessage(content="a")]
    strict = SessionStoreChatMessageHistory("arch", store, on_archived="raise")
    with pytest.raises(SessionArchived):
        strict.add_messages([HumanMessage(content="refused")])
    with pytest.raises(SessionArchived):
        strict.clear()
    assert history.messages == [HumanMessage(content="a")]
    history.add_messages([HumanMessage(content="b")])
    assert store.sessions.get("arch").status == "active"
    assert [m.content for m in history.messages] == ["a", "b"]


async def test_eight_concurrent_writers_lose_nothing(store: SessionStore) -> None:
    histories = [SessionStoreChatMessageHistory("busy", store) for _ in range(8)]

    async def writer(index: int, history: SessionStoreChatMessageHistory) -> None:
        for turn in range(10):
            await history.aadd_messages([HumanMessage(content=f"{index}-{turn}")])

    await asyncio.gather(*(writer(i, h) for i, h in enumerate(histories)))
    contents = sorted(str(m.content) for m in await histories[0].aget_messages())
    assert contents == sorted(f"{i}-{t}" for i in range(8) for t in range(10))


def test_bad_input_is_refused_and_nothing_is_stored(
    history: SessionStoreChatMessageHistory, store: SessionStore
) -> None:
    history.add_messages([HumanMessage(content="kept")])
    with pytest.raises(InvalidInput):
        history.add_messages([HumanMessage(content="first"), "not a message"])  # type: ignore[list-item]
    with pytest.raises(InvalidInput):
        history.add_messages(HumanMessage(content="not a list"))  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        history.add_messages([ToolMessage(content="x", tool_call_id="c", artifact=object())])
    assert history.messages == [HumanMessage(content="kept")]


def test_from_url_and_close(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lc.db'}"
    one = SessionStoreChatMessageHistory.from_url("x", url)
    two = SessionStoreChatMessageHistory.from_url("x", url)
    one.add_messages([HumanMessage(content="hi")])
    one.close()
    assert two.messages == [HumanMessage(content="hi")]
    with pytest.raises(StoreClosedError):
        one.messages  # noqa: B018
    two.close()
