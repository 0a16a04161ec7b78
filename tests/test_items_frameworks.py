"""Round trips of every item shape three agent frameworks store, on both backends.

* OpenAI Responses input items: every member of ``ResponseInputItemParam`` in
  the installed ``openai`` package, generated from its TypedDicts (every key
  filled, nested item types and content parts included, one variant per
  value of each ``Literal`` role or status), so a new item type in a newer
  SDK is covered without editing this file;
* LangChain messages of every class, dumped with ``message_to_dict`` and
  loaded back with ``messages_from_dict``: tool calls, additional kwargs,
  response and usage metadata, ids, names, a custom-role ``ChatMessage``,
  multimodal content blocks;
* ADK events (``Event.model_dump(mode="json")``): author, content parts with
  bytes, function calls and responses, actions with state deltas.

Each item is appended (one at a time and in a batch), read back and compared
with ``==`` against the original, and against the framework's own object.
Strings carry NUL and non-ASCII text, on both backends.
"""

from __future__ import annotations

import base64
import json
import types
import typing
from collections.abc import Iterator
from typing import Any

import pytest
import typing_extensions
from google.adk.events import Event, EventActions
from google.genai import types as genai
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    HumanMessageChunk,
    SystemMessage,
    ToolMessage,
    message_to_dict,
    messages_from_dict,
)
from openai.types.responses import response_input_item_param

from sessionstore import NewMessage, SessionStore

TEXT = "ünïcode 🎉 with NUL \x00 inside"


@pytest.fixture
def store(backend_url: str) -> Iterator[SessionStore]:
    with SessionStore.open(backend_url) as opened:
        yield opened


def round_trip(store: SessionStore, items: list[tuple[str, str, str, Any]]) -> list[Any]:
    """Append (role, content, kind, payload) one by one and as a batch; the payloads read back."""
    one = store.sessions.create().session_id
    for role, content, kind, payload in items:
        store.messages.append(one, role, content, kind=kind, payload=payload)
    batch = store.sessions.create().session_id
    store.messages.append_many(
        batch,
        [
            NewMessage(role, content, kind=kind, payload=payload)
            for role, content, kind, payload in items
        ],
    )
    singles = [(m.role, m.content, m.kind, m.payload) for m in store.messages.iterate(one)]
    batched = [(m.role, m.content, m.kind, m.payload) for m in store.messages.iterate(batch)]
    assert singles == batched == items
    return [payload for *_, payload in singles]


# --- OpenAI Responses input items, generated from the SDK's own types ---------------------------


def _strip(annotation: Any) -> Any:
    """The type inside Required[...] / NotRequired[...] / Annotated[...]."""
    while typing.get_origin(annotation) in (
        typing.Required, typing.NotRequired, typing.Annotated,
    ):  # fmt: skip
        annotation = typing.get_args(annotation)[0]
    return annotation


def _is_typeddict(annotation: Any) -> bool:
    return isinstance(annotation, type) and typing_extensions.is_typeddict(annotation)


def _value(annotation: Any, depth: int) -> Any:
    """One value of ``annotation``: lists hold one value of every member of their union."""
    annotation = _strip(annotation)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if _is_typeddict(annotation):
        return _typeddict(annotation, depth + 1)[0]
    if origin is typing.Literal:
        return args[0]
    if origin in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        return _value(members[-1] if depth > 6 else members[0], depth)
    if origin in (list, typing.List, typing.Iterable, typing.Sequence) or (  # noqa: UP006
        origin is not None and getattr(origin, "__name__", "") in ("Iterable", "Sequence")
    ):
        (member,) = args
        member = _strip(member)
        if typing.get_origin(member) in (typing.Union, types.UnionType) and depth < 6:
            return [_value(a, depth + 1) for a in typing.get_args(member) if a is not type(None)]
        return [_value(member, depth + 1)]
    if origin in (dict, typing.Dict) or annotation is dict:  # noqa: UP006
        return {"key\x00": TEXT, "n": 1}
    if annotation is str:
        return TEXT
    if annotation is bool:
        return True
    if annotation is int:
        return 2**53 + 1
    if annotation is float:
        return 0.1
    if annotation is type(None):
        return None
    return {"any": [TEXT, 1, None]}


def _typeddict(cls: Any, depth: int = 0) -> list[dict[str, Any]]:
    """Every key filled; one variant more per extra value of a Literal role or status."""
    hints = typing.get_type_hints(cls, include_extras=True)
    base = {key: _value(hint, depth) for key, hint in hints.items()}
    variants = [base]
    if depth == 0:
        # Top-level unions (a message's content: text or a list of parts): each member.
        for key, raw in hints.items():
            hint = _strip(raw)
            if typing.get_origin(hint) in (typing.Union, types.UnionType):
                members = [a for a in typing.get_args(hint) if a is not type(None)]
                variants += [{**base, key: _value(a, depth)} for a in members[1:]]
    for key in ("role", "status"):
        hint = _strip(hints.get(key))
        literal = [a for a in typing.get_args(hint) if typing.get_origin(a) is typing.Literal]
        if typing.get_origin(hint) is typing.Literal:
            literal = [hint]
        for lit in literal:
            variants += [{**base, key: value} for value in typing.get_args(lit)[1:]]
    return variants


def openai_items() -> list[dict[str, Any]]:
    members = typing.get_args(response_input_item_param.ResponseInputItemParam)
    return [item for member in members for item in _typeddict(member)]


def test_the_generator_covers_every_openai_input_item_type() -> None:
    found = {item.get("type") for item in openai_items()}
    for expected in (
        "message", "function_call", "function_call_output", "reasoning", "file_search_call",
        "web_search_call", "computer_call", "computer_call_output", "custom_tool_call",
        "custom_tool_call_output", "mcp_call", "mcp_list_tools", "mcp_approval_request",
        "mcp_approval_response", "item_reference", "image_generation_call",
        "code_interpreter_call", "local_shell_call", "local_shell_call_output",
    ):  # fmt: skip
        assert expected in found, expected
    roles = {item["role"] for item in openai_items() if item.get("type") == "message"}
    assert {"user", "assistant", "system", "developer"} <= roles
    parts = {
        part.get("type")
        for item in openai_items()
        if isinstance(item.get("content"), list)
        for part in item["content"]
        if isinstance(part, dict)
    }
    assert {"input_text", "input_image", "input_file"} <= parts
    reasoning = next(item for item in openai_items() if item.get("type") == "reasoning")
    assert reasoning["summary"] and reasoning["encrypted_content"] == TEXT


def test_openai_input_items_come_back_equal(store: SessionStore) -> None:
    items = openai_items()
    assert len(items) > 40
    stored = [
        (
            str(item.get("role", "assistant")),
            json.dumps(item, ensure_ascii=False)[:200],
            str(item.get("type", "message")),
            item,
        )
        for item in items
    ]
    assert round_trip(store, stored) == items


# --- LangChain messages of every class -------------------------------------------------------


def langchain_messages() -> list[BaseMessage]:
    blocks: list[str | dict[str, Any]] = [
        {"type": "text", "text": TEXT},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAH/"}},
        {"type": "image", "source_type": "base64", "data": "AAH/", "mime_type": "image/png"},
        "a bare string block",
    ]
    return [
        SystemMessage(content="You are terse.\x00", id="sys-1"),
        HumanMessage(content=TEXT, id="h-1", name="ann", additional_kwargs={"k": [1, None]}),
        HumanMessage(content=blocks, id="h-2"),
        AIMessage(
            content=[{"type": "text", "text": "calling"}],
            tool_calls=[{"name": "get_weather", "args": {"city": "Zürich\x00"}, "id": "call_1"}],
            invalid_tool_calls=[
                {"name": "broken", "args": "{not json", "id": "call_2", "error": "bad json"}
            ],
            usage_metadata={
                "input_tokens": 10,
                "output_tokens": 2,
                "total_tokens": 12,
                "input_token_details": {"cache_read": 3},
            },
            response_metadata={"model_name": "gpt-4o", "finish_reason": "tool_calls"},
            additional_kwargs={"refusal": None},
            id="ai-1",
            name="assistant-bot",
        ),
        ToolMessage(
            content="42",
            tool_call_id="call_1",
            artifact={"rows": [1, 2]},
            status="success",
            id="t-1",
            name="get_weather",
        ),
        ToolMessage(content=[{"type": "text", "text": "err"}], tool_call_id="c", status="error"),
        FunctionMessage(content="{}", name="legacy_fn", id="f-1"),
        ChatMessage(content="I moderate.", role="moderator", id="c-1"),
        AIMessageChunk(content="partial", id="chunk-1"),
        HumanMessageChunk(content="partial human"),
    ]


def test_langchain_messages_of_every_class_come_back_equal(store: SessionStore) -> None:
    messages = langchain_messages()
    dumped = [message_to_dict(message) for message in messages]
    stored = [
        (
            m.role if isinstance(m, ChatMessage) else m.type,
            m.text if isinstance(m.text, str) else str(m.content),
            "message",
            d,
        )
        for m, d in zip(messages, dumped, strict=True)
    ]
    back = round_trip(store, stored)
    assert back == dumped
    assert messages_from_dict(back) == messages


# --- ADK events -----------------------------------------------------------------------------


def adk_events() -> list[Event]:
    return [
        Event(
            author="user",
            invocation_id="inv-1",
            content=genai.Content(role="user", parts=[genai.Part(text=TEXT)]),
            timestamp=1764400000.123456,
        ),
        Event(
            author="agent",
            invocation_id="inv-1",
            content=genai.Content(
                role="model",
                parts=[
                    genai.Part(
                        inline_data=genai.Blob(mime_type="image/png", data=b"\x00\x01\xfe\xff")
                    ),
                    genai.Part(
                        function_call=genai.FunctionCall(
                            id="fc-1", name="lookup", args={"q": TEXT, "n": [1, 2.5]}
                        )
                    ),
                ],
            ),
            actions=EventActions(
                state_delta={"app:theme": "dark", "user:name": "Ann", "temp:x": 1, "step": 2},
                artifact_delta={"report.txt": 1},
            ),
            long_running_tool_ids={"fc-1"},
        ),
        Event(
            author="agent",
            invocation_id="inv-1",
            content=genai.Content(
                role="user",
                parts=[
                    genai.Part(
                        function_response=genai.FunctionResponse(
                            id="fc-1", name="lookup", response={"result": TEXT}
                        )
                    )
                ],
            ),
            actions=EventActions(escalate=True, transfer_to_agent="other"),
            branch="root.agent",
        ),
    ]


def test_adk_events_come_back_equal(store: SessionStore) -> None:
    events = adk_events()
    dumped = [event.model_dump(mode="json") for event in events]
    # Bytes travel as base64 in ADK's own JSON form.
    data = dumped[1]["content"]["parts"][0]["inline_data"]["data"]
    assert base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)) == b"\x00\x01\xfe\xff"
    stored = [(e.author, _event_text(e), "event", d) for e, d in zip(events, dumped, strict=True)]
    back = round_trip(store, stored)
    assert back == dumped
    restored = [Event.model_validate(payload) for payload in back]
    assert restored == events
    blob = restored[1].content.parts[0].inline_data  # type: ignore[union-attr,index]
    assert blob is not None and blob.data == b"\x00\x01\xfe\xff"


def _event_text(event: Event) -> str:
    parts = event.content.parts if event.content and event.content.parts else []
    return "".join(part.text or "" for part in parts)
