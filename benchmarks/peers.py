"""The peers: the session stores of the frameworks users already have, as ``workloads.py`` sides.

Each is called as its documentation shows, with default settings, on a
SQLite file in the workload's fresh directory:

* ``openai_sqlite``: the OpenAI Agents SDK's ``SQLiteSession`` (stdlib
  ``sqlite3``), ``add_items([item])`` per append, ``get_items(limit=50)``;
* ``openai_sqlalchemy``: its ``SQLAlchemySession`` on ``sqlite+aiosqlite``,
  one async engine per client shared by its sessions;
* ``langchain``: LangChain's ``SQLChatMessageHistory`` on one engine,
  ``add_message`` per append; the last 50 are ``history.messages[-50:]``
  (it has no limit);
* ``adk``: Google ADK's ``DatabaseSessionService`` on ``sqlite+aiosqlite``,
  ``append_event`` per append; the last 50 are
  ``get_session(config=GetSessionConfig(num_recent_events=50))``.

The async stores run on one event loop per client (each thread opens its
own client, as an async store cannot be shared across loops). None of them
pages history or lists sessions a page at a time, so those workloads are
left out. They are optional benchmark dependencies (``pip install
'sessionstore[bench]'``): a peer whose package is missing is skipped.
ADK appends take milliseconds each; its read session is seeded with
:data:`ADK_SESSION` events rather than the full 20,000, and the table says so.
"""

from __future__ import annotations

import asyncio
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ADK_SESSION", "PEERS", "PEER_TITLES", "available"]

#: Events in ADK's read session (its appends cost about 4 ms each).
ADK_SESSION = 2000
_WORKLOADS = frozenset({"append_p50", "recent_p50", "bulk", "threads_own", "processes"})

#: The modules each peer needs, for a clean skip when absent.
REQUIRES = {
    "openai_sqlite": ("agents",),
    "openai_sqlalchemy": ("agents", "aiosqlite", "greenlet"),
    "langchain": ("langchain_community", "langchain_core"),
    "adk": ("google.adk", "aiosqlite", "greenlet"),
}
PEER_TITLES = {
    "openai_sqlite": "OpenAI SQLiteSession",
    "openai_sqlalchemy": "OpenAI SQLAlchemySession",
    "langchain": "LangChain SQLChatMessageHistory",
    "adk": "ADK DatabaseSessionService",
}


def available(peer: str) -> str | None:
    """None when the peer can run; else what is missing."""
    for module in REQUIRES[peer]:
        try:
            if importlib.util.find_spec(module) is None:
                return module
        except ModuleNotFoundError:
            return module
    return None


class _Loop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def close_loop(self) -> None:
        self.loop.close()


class OpenAISQLiteClient(_Loop):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.sessions: dict[str, Any] = {}

    def _session(self, session_id: str) -> Any:
        from agents.memory import SQLiteSession

        session = self.sessions.get(session_id)
        if session is None:
            session = self.sessions[session_id] = SQLiteSession(session_id, str(self.path))
        return session

    def create(self, session_id: str) -> str:
        self._session(session_id)
        return session_id

    def append(self, session_id: str, role: str, content: str) -> Any:
        return self.run(self._session(session_id).add_items([{"role": role, "content": content}]))

    def seed(self, session_id: str, rows: list[tuple[str, str, int]]) -> None:
        items = [{"role": r, "content": c} for r, c, _ in rows]
        self.run(self._session(session_id).add_items(items))

    def recent(self, session_id: str, n: int) -> Any:
        return self.run(self._session(session_id).get_items(limit=n))

    def close(self) -> None:
        for session in self.sessions.values():
            session.close()
        self.close_loop()


class OpenAISQLAlchemyClient(OpenAISQLiteClient):
    def __init__(self, path: Path) -> None:
        from sqlalchemy.ext.asyncio import create_async_engine

        super().__init__(path)
        self.engine = create_async_engine(f"sqlite+aiosqlite:///{path}")

    def _session(self, session_id: str) -> Any:
        from agents.extensions.memory import SQLAlchemySession

        session = self.sessions.get(session_id)
        if session is None:
            session = SQLAlchemySession(session_id, engine=self.engine, create_tables=True)
            self.sessions[session_id] = session
        return session

    def close(self) -> None:
        self.run(self.engine.dispose())
        self.close_loop()


class LangChainClient:
    def __init__(self, path: Path) -> None:
        import warnings

        from sqlalchemy import create_engine

        warnings.filterwarnings("ignore", category=DeprecationWarning)
        self.engine = create_engine(f"sqlite:///{path}")
        self.histories: dict[str, Any] = {}

    def _history(self, session_id: str) -> Any:
        from langchain_community.chat_message_histories import SQLChatMessageHistory

        history = self.histories.get(session_id)
        if history is None:
            history = SQLChatMessageHistory(session_id, connection=self.engine)
            self.histories[session_id] = history
        return history

    @staticmethod
    def _message(role: str, content: str) -> Any:
        from langchain_core.messages import AIMessage, HumanMessage

        return HumanMessage(content) if role == "user" else AIMessage(content)

    def create(self, session_id: str) -> str:
        self._history(session_id)
        return session_id

    def append(self, session_id: str, role: str, content: str) -> Any:
        self._history(session_id).add_message(self._message(role, content))

    def seed(self, session_id: str, rows: list[tuple[str, str, int]]) -> None:
        self._history(session_id).add_messages([self._message(r, c) for r, c, _ in rows])

    def recent(self, session_id: str, n: int) -> Any:
        return self._history(session_id).messages[-n:]

    def close(self) -> None:
        self.engine.dispose()


class ADKClient(_Loop):
    APP, USER = "bench", "user"

    def __init__(self, path: Path) -> None:
        import warnings

        from google.adk.sessions import DatabaseSessionService

        warnings.filterwarnings("ignore")
        super().__init__()
        self.service = DatabaseSessionService(db_url=f"sqlite+aiosqlite:///{path}")
        self.sessions: dict[str, Any] = {}

    def _get(self, session_id: str) -> Any:
        session = self.sessions.get(session_id)
        if session is None:
            session = self.run(
                self.service.get_session(
                    app_name=self.APP, user_id=self.USER, session_id=session_id
                )
            )
            self.sessions[session_id] = session
        return session

    def create(self, session_id: str) -> str:
        session = self.run(
            self.service.create_session(app_name=self.APP, user_id=self.USER, session_id=session_id)
        )
        self.sessions[session_id] = session
        return session_id

    @staticmethod
    def _event(role: str, content: str) -> Any:
        from google.adk.events import Event
        from google.genai import types

        author = "user" if role == "user" else "model"
        return Event(
            author=author,
            invocation_id="bench",
            content=types.Content(role=author, parts=[types.Part(text=content)]),
        )

    def append(self, session_id: str, role: str, content: str) -> Any:
        return self.run(
            self.service.append_event(self._get(session_id), self._event(role, content))
        )

    def seed(self, session_id: str, rows: list[tuple[str, str, int]]) -> None:
        session = self._get(session_id)
        for role, content, _ in rows[: max(0, ADK_SESSION - len(session.events))]:
            self.run(self.service.append_event(session, self._event(role, content)))

    def recent(self, session_id: str, n: int) -> Any:
        from google.adk.sessions.base_session_service import GetSessionConfig

        session = self.run(
            self.service.get_session(
                app_name=self.APP,
                user_id=self.USER,
                session_id=session_id,
                config=GetSessionConfig(num_recent_events=n),
            )
        )
        return session.events

    def close(self) -> None:
        if hasattr(self.service, "close"):
            self.run(self.service.close())
        self.close_loop()


@dataclass(frozen=True)
class _Peer:
    name: str
    client: type
    supports: frozenset[str] = _WORKLOADS
    shared_across_threads: bool = False

    def open(self, path: Path) -> Any:
        return self.client(path)


PEERS = {
    "openai_sqlite": lambda: _Peer("openai_sqlite", OpenAISQLiteClient),
    "openai_sqlalchemy": lambda: _Peer("openai_sqlalchemy", OpenAISQLAlchemyClient),
    "langchain": lambda: _Peer("langchain", LangChainClient),
    "adk": lambda: _Peer("adk", ADKClient),
}
