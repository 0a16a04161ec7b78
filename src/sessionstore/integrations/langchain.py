"""LangChain's chat message history, stored in sessionstore.

``SessionStoreChatMessageHistory`` is a
``langchain_core.chat_history.BaseChatMessageHistory`` with the sync and async
methods (``messages``, ``add_messages``, ``clear``, ``aget_messages``,
``aadd_messages``, ``aclear``). It replaces ``SQLChatMessageHistory`` (or
``InMemoryChatMessageHistory``) with one line, also under
``RunnableWithMessageHistory``::

    history = SessionStoreChatMessageHistory.from_url("user-42", "sqlite:///chat.db")

Each message becomes one message of the session:

* ``payload``: ``message_to_dict(message)``, so a read gives back messages
  ``==`` to the ones added, whatever their class (System, Human, AI with tool
  calls and usage, Tool with its artifact, Function, Chat with a custom role,
  the chunks) and content (text or content blocks), ``id`` included: what
  ``InMemoryChatMessageHistory`` gives back;
* ``kind``: ``langchain.`` and the message's type (``langchain.human``,
  ``langchain.ai``, ``langchain.tool``, …);
* ``role``: ``user`` (human), ``assistant`` (ai), ``system``, ``tool``,
  ``function``, or a ``ChatMessage``'s own role;
* ``content``: its text (and an AI message's tool calls), which
  ``store.search`` finds and exports show.

``add_messages`` appends a batch in one transaction; ``recent(n)`` reads the
last ``n`` on the index (``messages`` reads them all, as the interface
requires); ``clear`` removes the
messages and keeps the session (its metadata, state and audit trail). A
message another writer stored without a LangChain payload (a plain
``store.messages.append``, an Agents SDK item) reads as the message class of
its role, with its text.

The session is created on the first write (without a model id). One the
lifecycle sweep archived is reactivated by the next write; with
``on_archived="raise"`` that write raises
:class:`~sessionstore.errors.SessionArchived` instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Self

from ..errors import InvalidInput, shown
from ..items import StoredItem
from ..records import NewMessage
from ..store import SessionStore
from ..validation import check_id, check_role
from . import (
    Linked,
    OnArchived,
    StoreLink,
    append_items,
    check_on_archived,
    clear_all,
    clip,
    joined,
    read_items,
    require,
)

require("langchain_core", extra="langchain", what="LangChain (langchain-core)")

from langchain_core.chat_history import BaseChatMessageHistory  # noqa: E402
from langchain_core.messages import (  # noqa: E402
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    message_to_dict,
    messages_from_dict,
)

if TYPE_CHECKING:
    from ..aio import AsyncSessionStore

__all__ = ["SessionStoreChatMessageHistory", "message_kind", "message_role", "message_text"]

KIND_PREFIX = "langchain."
#: A message type's role, chunks included (``AIMessageChunk`` is ``ai``).
_ROLES = {
    "human": "user",
    "ai": "assistant",
    "system": "system",
    "tool": "tool",
    "function": "function",
}


def _base_type(message: BaseMessage) -> str:
    kind = str(message.type)
    if kind.endswith("MessageChunk"):
        kind = kind.removesuffix("MessageChunk")
    return kind.lower()


def message_kind(message: BaseMessage) -> str:
    """``langchain.`` and the message's type, lowercased (``langchain.aimessagechunk``)."""
    return KIND_PREFIX + str(message.type).lower()


def message_role(message: BaseMessage) -> str:
    """The role a message is stored under (see the module docstring)."""
    base = _base_type(message)
    if base == "chat":
        try:
            return check_role(getattr(message, "role", None))
        except InvalidInput:
            return "chat"
    return _ROLES.get(base, base or "chat")


def message_text(message: BaseMessage) -> str:
    """The message's text, and an AI message's tool calls (name and arguments)."""
    parts: list[str] = [str(message.text)]
    for call in getattr(message, "tool_calls", None) or ():
        parts.append(f"{call.get('name', '')} {_args_text(call.get('args'))}")
    return joined(parts)


def _args_text(args: object) -> str:
    """A tool call's arguments as text, whatever they hold.

    The text is only for search; whether the arguments can be stored is the
    payload's check, which refuses what is not JSON with ``InvalidInput``.
    """
    try:
        return json.dumps(args, ensure_ascii=False, default=repr)
    except ValueError:  # a circular structure: the payload check refuses it too
        return repr(args)


def _by_role(role: str, text: str) -> BaseMessage:
    if role == "user":
        return HumanMessage(content=text)
    if role == "assistant":
        return AIMessage(content=text)
    if role in ("system", "developer"):
        return SystemMessage(content=text)
    if role == "function":
        return FunctionMessage(content=text, name="function")
    return ChatMessage(role=role, content=text)


def _as_messages(rows: Iterable[StoredItem]) -> list[BaseMessage]:
    return [
        messages_from_dict([payload])[0]
        if kind.startswith(KIND_PREFIX) and isinstance(payload, dict)
        else _by_role(role, content)
        for kind, role, content, payload in rows
    ]


class SessionStoreChatMessageHistory(Linked, BaseChatMessageHistory):
    """A LangChain chat history whose messages live in a sessionstore database.

    ``store`` is an open :class:`~sessionstore.SessionStore` or
    :class:`~sessionstore.aio.AsyncSessionStore`, shared with the rest of the
    application (closing the history leaves it open); :meth:`from_url` opens
    one instead. With ``app`` (and ``user_id``) the history is that owner's:
    created owned, and invisible to other owners (:meth:`SessionStore.for_user`).
    The async methods run on a worker thread, so the event loop never waits on
    the database.
    """

    def __init__(
        self,
        session_id: str,
        store: SessionStore | AsyncSessionStore | StoreLink,
        *,
        on_archived: OnArchived = "reactivate",
        app: str | None = None,
        user_id: str | None = None,
    ) -> None:
        self.session_id = check_id("session_id", session_id)
        self._on_archived = check_on_archived(on_archived)
        self._link = (
            store if isinstance(store, StoreLink) else StoreLink.of(store, app=app, user_id=user_id)
        )

    @classmethod
    def from_url(
        cls,
        session_id: str,
        url: str | None = None,
        *,
        on_archived: OnArchived = "reactivate",
        app: str | None = None,
        user_id: str | None = None,
        **options: Any,
    ) -> Self:
        """A history in the database at ``url`` (``$SESSIONSTORE_URL`` or the default file).

        Histories opened on the same URL and options share one store; the last
        one to :meth:`close` closes it. ``options`` are :meth:`SessionStore.open`'s.
        """
        link = StoreLink.from_url(url, app=app, user_id=user_id, **options)
        try:
            return cls(session_id, link, on_archived=on_archived)
        except BaseException:
            link.close()
            raise

    def _rows(self, messages: Sequence[BaseMessage], max_bytes: int) -> list[NewMessage]:
        if isinstance(messages, str | bytes | BaseMessage):
            raise InvalidInput(f"messages must be a list of messages, not {shown(messages)}")
        rows = []
        for message in messages:
            if not isinstance(message, BaseMessage):
                raise InvalidInput(f"a message must be a BaseMessage, not {shown(message)}")
            rows.append(
                NewMessage(
                    role=message_role(message),
                    content=clip(message_text(message), max_bytes),
                    kind=message_kind(message),
                    payload=message_to_dict(message),
                )
            )
        return rows

    # --- sync -----------------------------------------------------------------------

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """Every message, oldest first."""
        store = self._check_open()
        return _as_messages(read_items(store, self.session_id))

    def recent(self, n: int) -> list[BaseMessage]:
        """The last ``n`` messages, oldest first, read on the index (``messages`` reads all)."""
        store = self._check_open()
        return _as_messages(read_items(store, self.session_id, n))

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append ``messages`` in order, in one transaction (all or none)."""
        store = self._check_open()
        rows = self._rows(messages, self._link.max_content_bytes)
        append_items(store, self.session_id, rows, self._on_archived)

    def clear(self) -> None:
        """Remove every message; the session, its metadata and its state stay."""
        store = self._check_open()
        clear_all(store, self.session_id, self._on_archived)

    # --- async ----------------------------------------------------------------------

    async def aget_messages(self) -> list[BaseMessage]:
        store = self._check_open()
        session_id = self.session_id
        return await self._link.read(lambda: _as_messages(read_items(store, session_id)))

    async def arecent(self, n: int) -> list[BaseMessage]:
        store = self._check_open()
        session_id = self.session_id
        return await self._link.read(lambda: _as_messages(read_items(store, session_id, n)))

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        store = self._check_open()
        rows = self._rows(messages, self._link.max_content_bytes)
        if not rows:
            return
        session_id, on_archived = self.session_id, self._on_archived
        await self._link.write(lambda: append_items(store, session_id, rows, on_archived))

    async def aclear(self) -> None:
        store = self._check_open()
        session_id, on_archived = self.session_id, self._on_archived
        await self._link.write(lambda: clear_all(store, session_id, on_archived))

    def __repr__(self) -> str:
        return f"<SessionStoreChatMessageHistory {self.session_id!r} on {self._link.store!r}>"
