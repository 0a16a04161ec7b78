"""Forks: a new session that starts as a copy of another's first N messages.

``store.sessions.fork(session_id, through_sequence=N)`` is what "edit an
earlier message and continue from there" needs: the new session holds the
parent's messages ``1..N`` and goes on on its own, while the parent keeps
everything it had. What the fork gets:

* every message with a sequence number up to ``N``, under the **same
  sequence numbers**, with its role, kind, content, payload, exact text,
  token count, duration, timestamp, metadata and client id (new message ids);
* the parent's metadata and session state (``session_metadata`` and
  ``session_state`` rows), owner (``app``, ``user_id``), model, title (unless
  ``title`` is given), timeouts and ``never_expires``;
* its lineage: ``parent_session_id`` and ``fork_sequence = N``, on the
  record :meth:`SessionRepository.get` returns. ``last_seq`` is ``N``, so the
  fork's next append is ``N + 1`` even when the parent's message ``N`` had
  been deleted;
* status ``active`` and the time of the fork as its creation and activity
  time (a fork of an archived session is a new, active session: forking
  only reads the parent).

``N = 0`` makes a fork with the parent's settings, metadata and state but no
message (to edit the very first message). ``N`` beyond the parent's
``last_seq`` is :class:`InvalidInput`. The new id follows the rules of
:mod:`sessionstore.ids`: taken is :class:`SessionExists`, retired (a purged
session's snapshots hold it) :class:`SessionIdRetired`; without one a UUID is
chosen.

It is one write transaction of ``INSERT … SELECT`` statements (the session
row, the messages, the metadata, the state): the rows never travel through
Python, and the counts, totals and search index follow from the insert
triggers, as for appends.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Connection, Insert, bindparam, func, insert, literal, select, update
from sqlalchemy.types import Integer, Text

# sessions.py delegates ``fork`` here and this module reads its column list.
from . import sessions as _sessions
from .errors import InvalidInput, SessionNotFound, shown
from .ids import lock_id, require_free
from .models import Message, Session, SessionMetadata, SessionState, UTCDateTime
from .owners import Owner, require_owned
from .records import SessionRecord
from .transactions import Runner
from .validation import check_id, check_optional_text

__all__ = ["check_through", "fork", "fork_statements"]

S = Session.__table__.c
M = Message.__table__.c
D = SessionMetadata.__table__.c
T = SessionState.__table__.c

#: The largest sequence number PostgreSQL's column holds.
MAX_SEQUENCE = 2**31 - 1

#: What a fork takes from its parent's row as it is; everything else is set anew.
_INHERITED = (
    "model_id",
    "model_name",
    "idle_timeout_seconds",
    "hard_timeout_seconds",
    "app",
    "user_id",
    "never_expires",
)


def fork_statements() -> dict[str, Insert]:
    """The fork's ``INSERT … SELECT`` statements (also what the benchmark's raw side runs)."""
    new_id = bindparam("new_id", type_=Text)
    now = bindparam("now", type_=UTCDateTime)
    through = bindparam("through", type_=Integer)
    parent = bindparam("parent", type_=Text)
    session = insert(Session).from_select(
        [
            "session_id",
            *_INHERITED,
            "title",
            "status",
            "created_at",
            "updated_at",
            "last_activity",
            "last_seq",
            "parent_session_id",
            "fork_sequence",
        ],
        select(
            new_id,
            *(S[name] for name in _INHERITED),
            func.coalesce(bindparam("title", type_=Text), S.title),
            literal("active"),
            now,
            now,
            now,
            through,
            S.session_id,
            through,
        ).where(S.session_id == parent),
    )
    # Every column but the row's own id and session: a column added later is copied too.
    copied = [c for c in Message.__table__.c if c.name not in ("message_id", "session_id")]
    messages = insert(Message).from_select(
        ["session_id", *(c.name for c in copied)],
        select(new_id, *copied)
        .where(M.session_id == parent, M.sequence_number <= through)
        .order_by(M.sequence_number),
    )
    metadata = insert(SessionMetadata).from_select(
        ["session_id", "key", "value"],
        select(new_id, D.key, D.value).where(D.session_id == parent).order_by(D.metadata_id),
    )
    state = insert(SessionState).from_select(
        ["session_id", "key", "value"],
        select(new_id, T.key, T.value).where(T.session_id == parent),
    )
    return {"session": session, "messages": messages, "metadata": metadata, "state": state}


def check_through(value: object) -> int:
    """``through_sequence`` as an int from 0 to 2**31 - 1; :class:`InvalidInput` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEQUENCE:
        raise InvalidInput(
            f"through_sequence must be a sequence number (an integer of 0 or more), "
            f"not {shown(value)}"
        )
    return int(value)


_STATEMENTS = fork_statements()
_TOUCH = (
    update(Session)
    .where(S.session_id == bindparam("new_id", type_=Text))
    .values(
        last_activity=bindparam("now", type_=UTCDateTime),
        updated_at=bindparam("now", type_=UTCDateTime),
    )
)
_PARENT = select(S.last_seq).where(S.session_id == bindparam("sid")).with_for_update(read=True)


def fork(
    runner: Runner,
    clock: Callable[[], datetime],
    session_id: str,
    through_sequence: int,
    *,
    new_session_id: str | None = None,
    title: str | None = None,
    owner: Owner | None = None,
) -> SessionRecord:
    """A new active session holding the parent's messages up to ``through_sequence``."""
    session_id = check_id("session_id", session_id)
    through = check_through(through_sequence)
    chosen = new_session_id is not None
    new_id = (
        str(uuid.uuid4()) if new_session_id is None else check_id("new_session_id", new_session_id)
    )
    title = check_optional_text("title", title)
    now = clock()

    def work(conn: Connection) -> SessionRecord:
        require_owned(conn, session_id, owner)
        # FOR SHARE on PostgreSQL: appends to the parent wait until the copy is taken.
        last_seq = conn.execute(_PARENT, {"sid": session_id}).scalar()
        if last_seq is None:
            raise SessionNotFound(session_id)
        if through > int(last_seq):
            raise InvalidInput(
                f"through_sequence must be from 0 to {last_seq}, the last sequence number "
                f"of session {session_id!r}; not {through}"
            )
        if chosen:
            lock_id(conn, new_id)
            require_free(conn, new_id, owner)
        params = {"new_id": new_id, "parent": session_id, "through": through, "now": now}
        conn.execute(_STATEMENTS["session"], {**params, "title": title})
        conn.execute(_STATEMENTS["messages"], params)
        # The insert trigger moved the activity time to the newest copied
        # timestamp, which a caller may have set in the future: the fork is active now.
        conn.execute(_TOUCH, params)
        conn.execute(_STATEMENTS["metadata"], params)
        conn.execute(_STATEMENTS["state"], params)
        row = conn.execute(select(*_sessions.SESSION_COLUMNS).where(S.session_id == new_id)).one()
        return _sessions.session_from_db(row)

    return runner.write(work)
