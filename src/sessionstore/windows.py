"""Token-budget windows: the newest messages of a session that fit a number of tokens.

``store.messages.window(session_id, max_tokens, keep_system=True)`` answers
"what is the most recent history a prompt of ``max_tokens`` can hold?". It is
computed in the database with a window function: a running
``SUM(cost) OVER (ORDER BY sequence_number DESC ROWS UNBOUNDED PRECEDING)``
over the unique index ``(session_id, sequence_number)``, walked backwards
from the newest message, and only the rows whose running total fits come
back. The history is never loaded:

* The walk goes in **chunks** (64 rows, then 128, 256 … up to 8,192): each
  chunk is one statement whose inner ``ORDER BY sequence_number DESC LIMIT
  :chunk`` stops the index walk, and whose outer ``WHERE running <=
  :remaining`` keeps the rows that fit. The next chunk runs only when every
  row of this one fit, carrying the total so far, so a window over a
  session of 100,000 messages reads its own rows plus at most one chunk,
  whatever the session's length. All chunks run in one read transaction: one
  consistent snapshot, even while others append.
* **A message's cost** is its token count. A message without one (``tokens``
  ``None``, or a legacy count that is negative or not an integer) counts
  ``ceil(bytes / 4)`` tokens, computed in SQL: ``(bytes of content + 3) / 4``
  with integer division, the bytes being the UTF-8 length of the stored
  text (``length(CAST(content AS BLOB))`` on SQLite, ``octet_length`` on
  PostgreSQL). Four bytes a token is the usual rule of thumb for English
  with the GPT tokenizers; store real counts where the budget is tight.
* **The window never exceeds the budget.** It is the longest run of newest
  messages whose costs sum to at most ``max_tokens``; no message is cut. A
  budget smaller than the newest message gives an empty list.
* **keep_system** (the default) pins the session's first ``system`` or
  ``developer`` message (the lowest sequence number with that role): it is
  in the window however old it is, and its cost is taken from the budget
  before the newest messages fill the rest. A system prompt that alone is
  over the budget gives an empty list (the prompt cannot be built within
  it). With ``keep_system=False`` every message is treated alike.

The messages come back oldest first, as :meth:`MessageRepository.recent`
returns them. Archived sessions are read like active ones; a missing
session (or, in a scoped view, one of another owner) is
:class:`~sessionstore.errors.SessionNotFound`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, func, literal_column, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import BigInteger

from .errors import InvalidInput, SessionNotFound, shown
from .message_sql import MESSAGE_COLUMNS, message_from_db
from .models import Message, Session
from .owners import Owner, require_owned
from .prepared import Prepared
from .records import MessageRecord
from .transactions import Raw, Runner
from .validation import MAX_TOKENS, check_id

__all__ = ["CHUNKS", "SYSTEM_ROLES", "check_budget", "statements", "window"]

M = Message.__table__.c
S = Session.__table__.c

#: The roles ``keep_system`` pins (the first message with one of them).
SYSTEM_ROLES = ("system", "developer")
#: Rows per statement of the walk: the first chunk, and the largest.
CHUNKS = (64, 8192)


class message_cost(FunctionElement[int]):
    """A message's cost in tokens, capped at ``cap``: its count, else ``ceil(bytes / 4)``.

    The cap (the budget plus one) changes no decision, since a message over
    the budget never fits, and keeps every chunk's sum far from the 64-bit
    limit even for legacy counts near it.
    """

    type = BigInteger()
    inherit_cache = True


@compiles(message_cost, "sqlite")
def _cost_sqlite(element: message_cost, compiler: Any, **kw: Any) -> str:
    tokens, content, cap = (compiler.process(arg, **kw) for arg in element.clauses)
    # typeof: a legacy file may hold a token count as text, which compares above
    # every number in SQLite; such a count is no count.
    return (
        f"min(CASE WHEN typeof({tokens}) = 'integer' AND {tokens} >= 0 THEN {tokens}"
        f" ELSE (length(CAST({content} AS BLOB)) + 3) / 4 END, {cap})"
    )


@compiles(message_cost, "postgresql")
def _cost_postgresql(element: message_cost, compiler: Any, **kw: Any) -> str:
    tokens, content, cap = (compiler.process(arg, **kw) for arg in element.clauses)
    return (
        f"LEAST(CASE WHEN {tokens} >= 0 THEN {tokens}"
        f" ELSE (octet_length({content}) + 3) / 4 END, {cap})"
    )


def _statements() -> dict[str, Prepared]:
    cost = message_cost(M.tokens_used, M.content, bindparam("cap", type_=BigInteger))
    pinned = (
        select(*MESSAGE_COLUMNS, cost.label("cost"))
        .where(
            M.session_id == bindparam("sid"),
            # Written into the SQL: an expanding IN list cannot be compiled once.
            M.role.in_([literal_column(f"'{role}'") for role in SYSTEM_ROLES]),
        )
        .order_by(M.sequence_number)
        .limit(1)
    )
    running = func.sum(cost).over(order_by=M.sequence_number.desc(), rows=(None, 0))
    walk = (
        select(*MESSAGE_COLUMNS, running.label("running"))
        .where(
            M.session_id == bindparam("sid"),
            M.sequence_number <= bindparam("through"),
            M.sequence_number != bindparam("pinned"),
        )
        .order_by(M.sequence_number.desc())
        .limit(bindparam("chunk"))
        .subquery("walk")
    )
    chunk = select(walk).where(walk.c.running <= bindparam("remaining"))
    exists = select(S.session_id).where(S.session_id == bindparam("sid"))
    return {"pinned": Prepared(pinned), "chunk": Prepared(chunk), "exists": Prepared(exists)}


_STATEMENTS = _statements()


def statements() -> dict[str, Prepared]:
    """The window's statements: ``pinned`` (the system prompt), ``chunk`` (one step), ``exists``."""
    return _STATEMENTS


def check_budget(max_tokens: object, keep_system: object) -> int:
    """``max_tokens`` as an int from 1 to 2**40; :class:`InvalidInput` otherwise."""
    if (
        isinstance(max_tokens, bool)
        or not isinstance(max_tokens, int)
        or not 1 <= max_tokens <= MAX_TOKENS
    ):
        raise InvalidInput(
            f"max_tokens must be an integer from 1 to 2**40, not {shown(max_tokens)}"
        )
    if not isinstance(keep_system, bool):
        raise InvalidInput(f"keep_system must be True or False, not {shown(keep_system)}")
    return int(max_tokens)


def window(
    runner: Runner,
    session_id: str,
    max_tokens: int,
    *,
    keep_system: bool = True,
    owner: Owner | None = None,
) -> list[MessageRecord]:
    """The newest messages whose token total fits ``max_tokens``, oldest first."""
    session_id = check_id("session_id", session_id)
    budget = check_budget(max_tokens, keep_system)
    # Beyond every sequence number the column holds (4 bytes on PostgreSQL).
    top = 2**31 - 1 if runner.dialect == "postgresql" else 2**63 - 1

    def work(conn: Connection) -> list[MessageRecord]:
        raw = Raw(conn.connection.dbapi_connection, conn.dialect)
        require_owned(raw, session_id, owner)
        found = _walk(raw, session_id, budget, keep_system, top)
        if not found and raw.first(_STATEMENTS["exists"], {"sid": session_id}) is None:
            raise SessionNotFound(session_id)
        return found

    return runner.read(work)


def _walk(
    raw: Raw, session_id: str, budget: int, keep_system: bool, top: int
) -> list[MessageRecord]:
    built = _STATEMENTS
    cap = budget + 1
    rows: list[Any] = []
    pinned_seq = -top - 1  # no message has it: nothing is left out of the walk
    remaining = budget
    if keep_system:
        pinned = raw.first(built["pinned"], {"sid": session_id, "cap": cap})
        if pinned is not None:
            cost = int(pinned[-1])
            if cost > budget:
                return []
            rows.append(pinned)
            pinned_seq = pinned[2]
            remaining -= cost
    through, chunk = top, CHUNKS[0]
    while remaining >= 0:
        params = {
            "sid": session_id,
            "through": through,
            "pinned": pinned_seq,
            "chunk": chunk,
            "remaining": remaining,
            "cap": cap,
        }
        fitted = raw.all(built["chunk"], params)
        rows.extend(fitted)
        if len(fitted) < chunk:
            break  # the budget is spent, or the session has no older message
        # Every row fitted: go on below the oldest, with what is left of the budget.
        through = min(row[2] for row in fitted) - 1
        if through < -top:
            break  # the lowest sequence number a column can hold
        remaining -= int(max(row[-1] for row in fitted))
        chunk = min(chunk * 2, CHUNKS[1])
    rows.sort(key=lambda row: row[2])
    return [message_from_db(row) for row in rows]
