"""One store under both frameworks: each reads the other's messages, search finds all."""

from __future__ import annotations

import pytest

pytest.importorskip("agents")
pytest.importorskip("langchain_core")

from langchain_core.messages import AIMessage, ChatMessage, HumanMessage

from sessionstore import SessionExists, SessionStore
from sessionstore.integrations.langchain import SessionStoreChatMessageHistory
from sessionstore.integrations.openai_agents import SessionStoreSession

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def test_each_framework_reads_the_others_history(store: SessionStore) -> None:
    agents = SessionStoreSession("mixed", store)
    history = SessionStoreChatMessageHistory("mixed", store)
    await agents.add_items(
        [
            {"role": "user", "content": "Book a table in Lyon"},
            {"type": "function_call", "call_id": "c1", "name": "book", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "booked for eight"},
        ]
    )
    await history.aadd_messages([AIMessage(content="Your table is booked.")])

    assert await history.aget_messages() == [
        HumanMessage(content="Book a table in Lyon"),
        AIMessage(content="book\n{}"),
        ChatMessage(role="tool", content="booked for eight"),
        AIMessage(content="Your table is booked."),
    ]
    items = await agents.get_items()
    assert items[-1] == {"role": "assistant", "content": "Your table is booked."}
    assert items[1]["type"] == "function_call"  # its own items come back whole
    hits = store.search.messages("table").items
    assert sorted(hit.message.kind for hit in hits) == ["langchain.ai", "message"]


def test_langchain_histories_of_one_user(store: SessionStore) -> None:
    alice = SessionStoreChatMessageHistory("conv", store, app="shop", user_id="alice")
    alice.add_messages([HumanMessage(content="alice's question")])
    bob = SessionStoreChatMessageHistory("conv", store, app="shop", user_id="bob")
    assert bob.messages == []
    with pytest.raises(SessionExists):
        bob.add_messages([HumanMessage(content="bob's")])
    assert [s.session_id for s in store.sessions.list(app="shop", user_id="alice").items] == [
        "conv"
    ]
    assert alice.messages == [HumanMessage(content="alice's question")]
