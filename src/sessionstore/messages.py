"""The message repository, ``store.messages``: the messages (and framework items) of sessions.

One class, :class:`MessageRepository`, in three modules by concept:

* :mod:`sessionstore.message_writes`: append one or many (items, caller ids
  and timestamps, state deltas), edit, delete, ``clear``, ``pop``;
* :mod:`sessionstore.message_reads`: ``get``, ``get_by_client_id``,
  ``history`` pages, ``iterate`` streams, ``recent``, ``since``, and
  ``items`` (what the framework adapters rebuild their items from);
* :mod:`sessionstore.message_sql`: the statements and how rows become
  records (:data:`MESSAGE_COLUMNS`, :func:`message_from_db`, re-exported here);

and the token-budget ``window`` from :mod:`sessionstore.windows`. What a
message carries (kind, payload, NUL in text) is :mod:`sessionstore.items`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from . import windows
from .items import DEFAULT_MAX_PAYLOAD_BYTES
from .message_reads import MessageReads
from .message_sql import MESSAGE_COLUMNS, MESSAGE_WIDTH, message_from_db
from .message_writes import MessageWrites
from .owners import Owner
from .records import MessageRecord
from .transactions import Runner

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "MESSAGE_COLUMNS",
    "MESSAGE_WIDTH",
    "MessageRepository",
    "message_from_db",
]


class MessageRepository(MessageReads, MessageWrites):
    """``store.messages``: the messages of every session."""

    def __init__(
        self,
        runner: Runner,
        clock: Callable[[], datetime],
        *,
        max_content_bytes: int,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        owner: Owner | None = None,
    ) -> None:
        # In a scoped view (store.for_user) every call on a session first checks,
        # in its own transaction, that the session is the owner's (owners.guarded).
        self._owner = owner
        self._runner = runner
        self._clock = clock
        self._max_bytes = max_content_bytes
        self._max_payload = max_payload_bytes

    def window(
        self, session_id: str, max_tokens: int, *, keep_system: bool = True
    ) -> list[MessageRecord]:
        """The newest messages whose tokens fit ``max_tokens``, oldest first (see :mod:`.windows`).

        With ``keep_system`` the session's first system (or developer) message is
        always in, its tokens taken from the budget; a message without a token
        count counts ``ceil(bytes of content / 4)``.
        """
        return windows.window(
            self._runner, session_id, max_tokens, keep_system=keep_system, owner=self._owner
        )
