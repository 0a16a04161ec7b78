"""Google ADK's ``BaseSessionService``, stored in sessionstore.

``SessionStoreService`` replaces ADK's ``DatabaseSessionService`` with one line::

    session_service = SessionStoreService.from_url("sqlite:///sessions.db")
    runner = Runner(agent=agent, app_name="weather", session_service=session_service)

How ADK's model is stored (no tables of its own: one store under every framework):

* a session is a sessionstore session of the same id, owned by
  ``(app=app_name, user_id=user_id)``; listings page on the owner index, and a
  session of another owner reads as missing. Ids are store-wide: a user cannot
  create a session under an id another user's session holds
  (``AlreadyExistsError``). A padded id is trimmed, as ADK's own services do.
* an event is a message of kind ``"event"``: ``payload`` is
  ``event.model_dump(mode="json", exclude_none=True)`` (bytes as base64, read
  back with ``Event.model_validate_json``, so events come back ``==``),
  ``content`` the readable text of its parts (what search and export see),
  ``timestamp`` the event's own and ``client_msg_id`` the event id.
* state lives in the store's three scopes: ``app:`` keys in the app's state,
  ``user:`` keys in the user's, the rest in the session's; ``temp:`` keys
  reach the caller's session object but are never stored. An event's
  ``state_delta`` commits in the transaction that stores the event.
* ``last_update_time`` is the later of the session's last activity (its
  creation and appends, by the store's clock) and its newest event's timestamp.

**Stale writers.** A session read here carries the sequence number of its
last message. ``append_event`` checks it inside the write transaction and
then checks that the event received the next number, which is allocated under
the session's write lock: if anything was appended since the caller read the
session, the event and its state delta roll back and ADK's
``StaleSessionError`` is raised, on PostgreSQL as on SQLite.

**The lifecycle.** Sessions are created with the store's timeouts. One the
sweep archived still reads (history and state), and the next ``append_event``
reactivates it (the audit trail records that); with ``on_archived="raise"``
that append raises ADK's ``SessionNotFoundError`` saying it was archived.

Each ADK call is one trip to a worker thread (the lanes of an
:class:`~sessionstore.aio.AsyncSessionStore` when the service is given one),
whatever number of statements it takes; the event loop never waits on the
database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from ..aio import AsyncSessionStore, sync_url
from ..errors import (
    DuplicateMessageId,
    MessageNotFound,
    SessionArchived,
    SessionExists,
    SessionNotFound,
)
from ..records import MessageRecord, SessionRecord
from ..statedelta import StateDelta
from ..store import SessionStore, Transaction
from ..validation import MAX_PAGE
from . import OnArchived, StoreLink, check_on_archived, require, writing

require("google.adk", extra="adk", what="Google ADK (google-adk)")

from google.adk.errors import StaleSessionError  # noqa: E402
from google.adk.errors.already_exists_error import AlreadyExistsError  # noqa: E402
from google.adk.errors.session_not_found_error import SessionNotFoundError  # noqa: E402
from google.adk.events.event import Event  # noqa: E402
from google.adk.sessions.base_session_service import (  # noqa: E402
    BaseSessionService,
    GetSessionConfig,
    ListSessionsResponse,
)
from google.adk.sessions.session import Session  # noqa: E402
from google.adk.sessions.state import State  # noqa: E402

from .adk_records import (  # noqa: E402
    KIND,
    clean_id,
    event_from_message,
    instant,
    marker,
    prefixed,
    readable_text,
    seen_sequence,
    session_from_record,
    state_delta,
    update_time,
)

__all__ = ["SessionPage", "SessionStoreService", "readable_text"]

T = TypeVar("T")
_STALE = (
    "The session has been modified in storage since it was loaded. "
    "Please reload the session before appending more events."
)
_BATCH = 1000
_MICROSECOND = timedelta(microseconds=1)
_EPOCH_MIN = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SessionPage:
    """One page of :meth:`SessionStoreService.list_sessions_page`, newest activity first."""

    sessions: list[Session]
    #: Pass it back as ``page_token`` for the next page; ``None`` after the last page.
    next_page_token: str | None


# --- each ADK call as one function of the sync store, run on a worker ------------------


class _Work:
    def __init__(self, store: SessionStore, on_archived: OnArchived) -> None:
        self.store = store
        self.on_archived = on_archived

    def owned(self, app: str, user: str, session_id: str) -> SessionRecord | None:
        try:
            record = self.store.sessions.get(session_id)
        except SessionNotFound:
            return None
        return record if (record.app, record.user_id) == (app, user) else None

    def create(self, app: str, user: str, state: StateDelta, sid: str | None) -> Session:
        with self.store.transaction() as tx:
            try:
                record = tx.sessions.create(session_id=sid, app=app, user_id=user)
            except SessionExists:
                raise AlreadyExistsError(f"Session with id {sid} already exists.") from None
            if state.app:
                tx.state.update_app(app, state.app)
            if state.user:
                tx.state.update_user(app, user, state.user)
            if state.session:
                tx.state.update(record.session_id, state.session)
            merged = tx.state.merged(record.session_id)
        return session_from_record(record, merged, [])

    def get(self, app: str, user: str, sid: str, config: GetSessionConfig | None) -> Session | None:
        record = self.owned(app, user, sid)
        if record is None:
            return None
        try:
            events = [event_from_message(m) for m in self._messages(sid, config)]
            merged = self.store.state.merged(sid)
        except SessionNotFound:
            return None  # deleted between the reads
        return session_from_record(record, merged, events)

    def _messages(self, sid: str, config: GetSessionConfig | None) -> Iterable[MessageRecord]:
        recent = None if config is None else config.num_recent_events
        after = None if config is None else config.after_timestamp
        if recent == 0:
            return []
        messages = self.store.messages
        if after is not None:
            # ADK's bound is inclusive; the store keeps microseconds and reads "later than".
            start = instant("after_timestamp", after)
            found = messages.since(sid, start - _MICROSECOND if start > _EPOCH_MIN else start)
            return found[-recent:] if recent else found
        if recent is not None:
            return messages.recent(sid, recent)
        return messages.iterate(sid, batch=_BATCH)

    def page(self, app: str, user: str | None, size: int, token: str | None) -> SessionPage:
        page = self.store.sessions.list(app=app, user_id=user, limit=size, cursor=token)
        return SessionPage(self._listed(list(page.items)), page.next_cursor)

    def list_all(self, app: str, user: str | None) -> list[Session]:
        records: list[SessionRecord] = []
        cursor: str | None = None
        while True:
            page = self.store.sessions.list(app=app, user_id=user, limit=_BATCH, cursor=cursor)
            records.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        records.reverse()  # ADK lists the least recently updated first
        return self._listed(records)

    def _listed(self, records: list[SessionRecord]) -> list[Session]:
        """Sessions with their merged state: the app's and each user's state read once."""
        if not records:
            return []
        state = self.store.state
        app = records[0].app or ""
        app_state = prefixed(State.APP_PREFIX, state.get_app(app))
        users = {r.user_id for r in records if r.user_id is not None}
        user_states = {u: prefixed(State.USER_PREFIX, state.get_user(app, u)) for u in users}
        ids = [r.session_id for r in records]
        own: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), MAX_PAGE):
            own.update(state.get_many(ids[start : start + MAX_PAGE]))
        sessions = []
        for r in records:
            # A session deleted since the listing read it has no state left.
            merged = {
                **app_state,
                **user_states.get(r.user_id or "", {}),
                **own.get(r.session_id, {}),
            }
            sessions.append(session_from_record(r, merged, []))
        return sessions

    def delete(self, app: str, user: str, sid: str) -> None:
        if self.owned(app, user, sid) is not None:
            with suppress(SessionNotFound):  # deleted meanwhile: what the caller asked for
                self.store.sessions.delete(sid)

    def append(self, session: Session, event: Event) -> tuple[str, float] | None:
        """Store the event and its state delta: the session's new marker and update time.

        ``None`` when this event is stored already (a re-delivery): nothing changes.
        """
        sid = session.id
        timestamp = instant("event.timestamp", event.timestamp)
        payload = event.model_dump(mode="json", exclude_none=True)
        delta = state_delta(event.actions.state_delta if event.actions else None)
        try:
            return writing(
                self.store,
                sid,
                self.on_archived,
                lambda: self._append(session, event, payload, delta, timestamp),
                create=False,
            )
        except SessionNotFound:
            raise SessionNotFoundError(f"Session {sid} not found.") from None
        except SessionArchived:
            raise SessionNotFoundError(
                f"Session {sid} was archived by the store's lifecycle (it timed out): it reads"
                " but takes no new events. Reactivate it (store.lifecycle.reactivate) or start"
                " a new session."
            ) from None

    def _append(
        self,
        session: Session,
        event: Event,
        payload: dict[str, Any],
        delta: StateDelta,
        timestamp: datetime,
    ) -> tuple[str, float] | None:
        sid = session.id
        with self.store.transaction() as tx:
            record = tx.sessions.get(sid)
            if (record.app, record.user_id) != (session.app_name, session.user_id):
                raise SessionNotFound(sid)
            if event.id and _stored(tx, sid, event.id, payload):
                return None
            if record.last_seq != self._seen(record, session):
                raise StaleSessionError(_STALE)
            try:
                message = tx.messages.append(
                    sid,
                    "user" if event.author == "user" else "assistant",
                    readable_text(event),
                    kind=KIND,
                    payload=payload,
                    timestamp=timestamp,
                    client_msg_id=event.id or None,
                    state_delta=delta,
                )
            except DuplicateMessageId:
                raise AlreadyExistsError(
                    f"Another event with id {event.id} is stored in session {sid}."
                ) from None
            # Taken under the session's write lock: an append that slipped in after
            # the check above shows here, and this one rolls back.
            if message.sequence_number != record.last_seq + 1:
                raise StaleSessionError(_STALE)
            updated = tx.sessions.get(sid)
        return marker(updated), update_time(updated, event)

    def _seen(self, record: SessionRecord, session: Session) -> int:
        """The last sequence number the caller's copy of the session saw.

        A copy read here says so in its marker. For one made elsewhere, ADK's own
        rule: it is current if storage has not moved past its update time, or if
        its last event is the newest stored one.
        """
        seen = seen_sequence(session)
        if seen is not None:
            return seen
        if record.last_activity.timestamp() <= session.last_update_time + 1e-6:
            return record.last_seq
        newest = self.store.messages.recent(record.session_id, 1)
        if not newest or not session.events:
            return record.last_seq if not newest and not session.events else -1
        return record.last_seq if newest[0].client_msg_id == session.events[-1].id else -1


def _stored(tx: Transaction, sid: str, event_id: str, payload: dict[str, Any]) -> bool:
    """Whether this very event is stored already (ADK re-delivers an event on retries)."""
    try:
        stored = tx.messages.get_by_client_id(sid, event_id)
    except MessageNotFound:
        return False
    return stored.kind == KIND and stored.payload == payload


class SessionStoreService(BaseSessionService):
    """ADK's session service on a :class:`~sessionstore.SessionStore` (SQLite or PostgreSQL).

    Pass the application's store (sync or :class:`~sessionstore.aio.AsyncSessionStore`;
    the application closes it), or open one with :meth:`from_url`.
    """

    def __init__(
        self,
        store: SessionStore | AsyncSessionStore | StoreLink,
        *,
        on_archived: OnArchived = "reactivate",
    ) -> None:
        self._on_archived = check_on_archived(on_archived)
        self._link = store if isinstance(store, StoreLink) else StoreLink.of(store)
        self._work = _Work(self._link.store, self._on_archived)

    @classmethod
    def from_url(
        cls, url: str | None = None, *, on_archived: OnArchived = "reactivate", **options: Any
    ) -> SessionStoreService:
        """A service on the store at ``url`` (``sqlite+aiosqlite://`` URLs too).

        Services and sessions opened on the same URL share one store; the last to
        close closes it.
        """
        link = StoreLink.from_url(None if url is None else sync_url(url), **options)
        return cls(link, on_archived=on_archived)

    @property
    def store(self) -> SessionStore:
        """The store underneath: search it, export it, back it up."""
        return self._link.store

    async def close(self) -> None:
        """Done with the service: a store opened by :meth:`from_url` closes with its last user."""
        self._link.close()

    async def __aenter__(self) -> SessionStoreService:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Session:
        delta, sid = state_delta(state), clean_id(session_id)
        return await self._link.write(lambda: self._work.create(app_name, user_id, delta, sid))

    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> Session | None:
        sid = clean_id(session_id)
        if sid is None:
            return None
        return await self._read(lambda: self._work.get(app_name, user_id, sid, config))

    async def list_sessions(
        self, *, app_name: str, user_id: str | None = None
    ) -> ListSessionsResponse:
        """The app's sessions (or one user's), least recently updated first, without events."""
        sessions = await self._read(lambda: self._work.list_all(app_name, user_id))
        return ListSessionsResponse(sessions=sessions)

    async def list_sessions_page(
        self,
        *,
        app_name: str,
        user_id: str | None = None,
        page_size: int = 100,
        page_token: str | None = None,
    ) -> SessionPage:
        """One keyset page of sessions, most recently updated first, without events."""
        return await self._read(lambda: self._work.page(app_name, user_id, page_size, page_token))

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        sid = clean_id(session_id)
        if sid is not None:
            await self._link.write(lambda: self._work.delete(app_name, user_id, sid))

    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        return await self._read(lambda: self.store.state.get_user(app_name, user_id))

    async def append_event(self, session: Session, event: Event) -> Event:
        if event.partial:
            return event
        # temp: keys reach the caller's session object, never the store.
        self._apply_temp_state(session, event)
        event = self._trim_temp_delta_state(event)
        stored = await self._link.write(lambda: self._work.append(session, event))
        if stored is None:
            return event  # stored before: a re-delivery changes nothing
        session._storage_update_marker, session.last_update_time = stored
        return self._commit_event_to_session(session, event)

    async def _read(self, work: Callable[[], T]) -> T:
        return await self._link.read(work)
