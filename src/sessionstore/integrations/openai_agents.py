"""The OpenAI Agents SDK's ``Session``, stored in sessionstore.

``SessionStoreSession`` implements the SDK's ``Session`` protocol
(``agents.memory.Session``): ``session_id``, ``session_settings``,
``get_items(limit)``, ``add_items``, ``pop_item`` and ``clear_session``. It
replaces ``SQLiteSession`` (or ``SQLAlchemySession``) with one line::

    session = SessionStoreSession.from_url("user-42", "sqlite:///chat.db")
    result = await Runner.run(agent, "Hello", session=session)

Each item (a Responses API input item: a message of any role, a
``function_call``, its ``function_call_output``, ``reasoning``, …) becomes one
message of the session:

* ``payload``: the item itself, so ``get_items`` returns items ``==`` to the
  ones added, in order;
* ``kind``: the item's ``type`` (``message`` for a message without one);
* ``role``: the item's role (``user``, ``assistant``, ``system``,
  ``developer``); an item without one is ``tool`` when it is a tool's output
  (its type ends in ``_output``), else ``assistant`` (the model made it);
* ``content``: its readable text (message text, refusals, tool names and
  arguments, tool outputs, reasoning summaries), which is what
  ``store.search`` finds and what exports show.

``add_items`` appends a batch in one transaction, with sequence numbers that
concurrent writers never duplicate; ``get_items(limit)`` reads the last
``limit`` on the ``(session_id, sequence_number)`` index; ``pop_item`` is one
``DELETE … RETURNING``. A message another writer stored without an item (a
plain ``store.messages.append``) reads as ``{"role", "content"}``.

The session is created on the first ``add_items`` (without a model id). One
the lifecycle sweep archived is reactivated by the next write (its messages
were kept; the audit trail records it); with ``on_archived="raise"`` that
write raises :class:`~sessionstore.errors.SessionArchived` instead. Reads
never change the session.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Self, cast

from ..errors import InvalidInput, shown
from ..items import StoredItem
from ..records import MessageRecord, NewMessage
from ..store import SessionStore
from ..validation import check_id, check_kind, check_role
from . import (
    Linked,
    OnArchived,
    StoreLink,
    append_items,
    check_on_archived,
    clear_all,
    clip,
    joined,
    pop_last,
    read_items,
    require,
)

require("agents", extra="openai-agents", what="the OpenAI Agents SDK (openai-agents)")

from agents.memory import SessionSettings  # noqa: E402
from agents.memory.session_settings import (  # noqa: E402
    coerce_session_settings,
    resolve_session_limit,
)

if TYPE_CHECKING:
    from agents.items import TResponseInputItem

    from ..aio import AsyncSessionStore

__all__ = ["SessionStoreSession", "item_kind", "item_role", "item_text"]

#: The roles a Responses API message may have; another writer's role reads as ``user``.
_MESSAGE_ROLES = frozenset({"user", "assistant", "system", "developer"})
#: Where an item keeps its readable text, at any depth: message parts, tool
#: arguments and outputs, reasoning summaries, search queries, code, commands.
_TEXT_KEYS = (
    "content",
    "text",
    "refusal",
    "arguments",
    "input",
    "output",
    "summary",
    "query",
    "queries",
    "action",
    "code",
    "command",
    "commands",
    "result",
    "results",
    "error",
    "transcript",
)
_MAX_DEPTH = 32


def item_kind(item: Mapping[str, Any]) -> str:
    """The message kind an item is stored under: its ``type``, ``message`` without one.

    A ``type`` that is not a valid kind is stored as ``item`` (the payload keeps it).
    """
    kind = item.get("type")
    if kind is None:
        return "message"
    try:
        return check_kind(kind)
    except InvalidInput:
        return "item"


def item_role(item: Mapping[str, Any]) -> str:
    """The role an item is stored under (see the module docstring)."""
    return _kind_role(item)[1]


def _kind_role(item: Mapping[str, Any]) -> tuple[str, str]:
    kind = item_kind(item)
    role = item.get("role")
    if role is not None:
        try:
            return kind, check_role(role)
        except InvalidInput:
            pass
    return kind, "tool" if kind.endswith("_output") else "assistant"


#: Values that hold no text, told apart by exact type before the (slower) Mapping check.
_NO_TEXT = frozenset((int, float, bool, type(None)))


def _collect(value: Any, parts: list[str], depth: int) -> None:
    if isinstance(value, str):
        parts.append(value)
    elif depth >= _MAX_DEPTH or value.__class__ in _NO_TEXT:
        return
    elif isinstance(value, list):
        for element in value:
            _collect(element, parts, depth + 1)
    elif value.__class__ is dict or isinstance(value, Mapping):
        for key in _TEXT_KEYS:
            if key in value:
                _collect(value[key], parts, depth + 1)


def item_text(item: Mapping[str, Any]) -> str:
    """An item's readable text, one part a line: what search finds and exports show."""
    parts: list[str] = []
    name = item.get("name")
    if isinstance(name, str):
        parts.append(name)
    _collect(item, parts, 0)
    return joined(parts)


def _as_item(kind: str, role: str, content: str, payload: Any) -> TResponseInputItem:
    # The item this adapter stored under its kind (the common case checked first).
    if isinstance(payload, dict) and (
        payload.get("type", "message") == kind or item_kind(payload) == kind
    ):
        return cast("TResponseInputItem", payload)
    return cast(
        "TResponseInputItem",
        {"role": role if role in _MESSAGE_ROLES else "user", "content": content},
    )


def _as_items(rows: Iterable[StoredItem]) -> list[TResponseInputItem]:
    # _as_item's common case inline: a call per item costs more than the check.
    items: list[Any] = [
        payload
        if payload.__class__ is dict and payload.get("type", "message") == kind
        else _as_item(kind, role, content, payload)
        for kind, role, content, payload in rows
    ]
    return items


def _record_item(record: MessageRecord) -> TResponseInputItem:
    return _as_item(record.kind, record.role, record.content, record.payload)


class SessionStoreSession(Linked):
    """An Agents SDK session whose items live in a sessionstore database.

    ``store`` is an open :class:`~sessionstore.SessionStore` or
    :class:`~sessionstore.aio.AsyncSessionStore`, shared with the rest of the
    application (closing the session leaves it open); :meth:`from_url` opens
    one instead. With ``app`` (and ``user_id``) the session is that owner's:
    created owned, and invisible to other owners (:meth:`SessionStore.for_user`).
    Safe to share between tasks, threads and event loops.
    """

    session_id: str
    session_settings: SessionSettings | None

    def __init__(
        self,
        session_id: str,
        store: SessionStore | AsyncSessionStore | StoreLink,
        *,
        session_settings: SessionSettings | dict[str, Any] | None = None,
        on_archived: OnArchived = "reactivate",
        app: str | None = None,
        user_id: str | None = None,
    ) -> None:
        self.session_id = check_id("session_id", session_id)
        self.session_settings = (
            SessionSettings() if session_settings is None
            else coerce_session_settings(session_settings)
        )  # fmt: skip
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
        session_settings: SessionSettings | dict[str, Any] | None = None,
        on_archived: OnArchived = "reactivate",
        app: str | None = None,
        user_id: str | None = None,
        **options: Any,
    ) -> Self:
        """A session in the database at ``url`` (``$SESSIONSTORE_URL`` or the default file).

        Sessions opened on the same URL and options share one store; the last
        one to :meth:`close` closes it. ``options`` are :meth:`SessionStore.open`'s.
        """
        link = StoreLink.from_url(url, app=app, user_id=user_id, **options)
        try:
            return cls(session_id, link, session_settings=session_settings, on_archived=on_archived)
        except BaseException:
            link.close()
            raise

    def _row(self, item: object, max_bytes: int) -> NewMessage:
        if not isinstance(item, Mapping):
            raise InvalidInput(f"an item must be a dict, not {shown(item)}")
        kind, role = _kind_role(item)
        return NewMessage(
            role=role, content=clip(item_text(item), max_bytes), kind=kind, payload=item
        )

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The newest ``limit`` items (default: ``session_settings.limit``, else all), oldest first.

        A negative limit reads every item, as ``SQLiteSession`` does.
        """
        store = self._check_open()
        n = resolve_session_limit(limit, self.session_settings)
        if n is not None and (isinstance(n, bool) or not isinstance(n, int)):
            raise InvalidInput(f"limit must be an integer or None, not {shown(n)}")
        session_id = self.session_id
        if n == 0:
            return []
        last = None if n is None or n < 0 else n
        return await self._link.read(lambda: _as_items(read_items(store, session_id, last)))

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append ``items`` in order, in one transaction (all or none)."""
        store = self._check_open()
        if isinstance(items, str | bytes | Mapping):
            raise InvalidInput(f"items must be a list of items, not {shown(items)}")
        max_bytes = self._link.max_content_bytes
        rows = [self._row(item, max_bytes) for item in items]
        if not rows:
            return
        session_id, on_archived = self.session_id, self._on_archived
        await self._link.write(lambda: append_items(store, session_id, rows, on_archived))

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the newest item; ``None`` when there is none."""
        store = self._check_open()
        session_id, on_archived = self.session_id, self._on_archived
        record = await self._link.write(lambda: pop_last(store, session_id, on_archived))
        return None if record is None else _record_item(record)

    async def clear_session(self) -> None:
        """Remove every item; the session itself, its metadata and its state stay."""
        store = self._check_open()
        session_id, on_archived = self.session_id, self._on_archived
        await self._link.write(lambda: clear_all(store, session_id, on_archived))

    def __repr__(self) -> str:
        return f"<SessionStoreSession {self.session_id!r} on {self._link.store!r}>"
