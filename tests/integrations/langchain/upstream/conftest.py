"""LangChain's own chat-history tests, run against ``SessionStoreChatMessageHistory``.

LangChain's test files beside this one are not part of the project:
``scripts/upstream-tests`` extracts them, unchanged and verified by their
SHA-256, from the source distributions of langchain-core 1.8.3
(``test_chat_history.py``, ``test_history.py``, ``pydantic_utils.py``) and
langchain-community 0.4.2 (``test_sql.py``); see ``NOTICE``. While they are
absent this directory is reported as skipped. Nothing in them is edited: this
conftest

* makes their import of a LangChain test helper (``tests.unit_tests.pydantic_utils``)
  find the copy here, and registers their ``requires`` marker;
* replaces, in each test module, ``SQLChatMessageHistory`` with a class that
  takes its constructor's arguments and stores the history with sessionstore
  in the same SQLite file, and ``InMemoryChatMessageHistory`` with a
  sessionstore history on a database of the test's temporary directory (one
  session per instance; two are equal when they hold equal messages, as two
  ``InMemoryChatMessageHistory`` models are);
* deselects the one test that does not apply (:data:`NOT_APPLICABLE`).

LangChain runs its async tests in pytest-asyncio's auto mode, as this project does.
"""

from __future__ import annotations

import importlib
import itertools
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_community")

from langchain_core.messages import BaseMessage
from sqlalchemy.engine import make_url

from sessionstore.integrations import StoreLink
from sessionstore.integrations.langchain import SessionStoreChatMessageHistory

from ...upstream_files import FETCH, deselect_not_applicable, missing, skip_collector

#: LangChain's files this directory runs, as NOTICE lists them (fetched, never committed).
UPSTREAM = ("test_chat_history.py", "test_history.py", "pydantic_utils.py", "test_sql.py")
HERE = __name__.rpartition(".")[0]
_absent = missing(Path(__file__).parent, UPSTREAM)
if _absent:
    # Collect none of them (a partial set cannot import) and say why.
    collect_ignore = list(UPSTREAM)
    pytest_collect_file = skip_collector(
        Path(__file__).parent, _absent, "LangChain's chat history tests", f"run {FETCH}"
    )
else:
    # test_history.py imports a helper from LangChain's own `tests` package.
    sys.modules.setdefault(
        "tests.unit_tests.pydantic_utils", importlib.import_module(f"{HERE}.pydantic_utils")
    )

#: Test name (without parameters) -> why it does not apply to another implementation.
NOT_APPLICABLE: dict[str, str] = {
    "test_model_no_session_id_field_error": (
        "tests SQLChatMessageHistory's custom_message_converter, which maps messages to a "
        "caller's own SQLAlchemy model class; sessionstore's tables are its own"
    ),
}

_opened: list[SessionStoreChatMessageHistory] = []
_state: list[Path] = []
_serial = itertools.count()


def _track(history: SessionStoreChatMessageHistory) -> None:
    _opened.append(history)


class SQLChatMessageHistoryOnStore(SessionStoreChatMessageHistory):
    """``SQLChatMessageHistory(session_id, connection, ...)``, stored by sessionstore."""

    def __init__(
        self,
        session_id: str,
        connection_string: str | None = None,
        table_name: str = "message_store",
        session_id_field_name: str = "session_id",
        custom_message_converter: Any = None,
        connection: Any = None,
        engine_args: dict[str, Any] | None = None,
        async_mode: bool | None = None,
    ) -> None:
        url = connection if isinstance(connection, str) else connection_string
        database = make_url(str(url)).database
        link = StoreLink.from_url(f"sqlite:///{database}")
        try:
            super().__init__(session_id, link)
        except BaseException:
            link.close()
            raise
        _track(self)


class InMemoryChatMessageHistoryOnStore(SessionStoreChatMessageHistory):
    """``InMemoryChatMessageHistory(messages=...)``: a fresh session in the test's database."""

    def __init__(self, messages: Sequence[BaseMessage] | None = None) -> None:
        link = StoreLink.from_url(f"sqlite:///{_state[-1] / 'histories.db'}")
        try:
            super().__init__(f"history-{next(_serial)}", link)
        except BaseException:
            link.close()
            raise
        _track(self)
        if messages:
            self.add_messages(messages)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.messages == other.messages  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]


_REPLACEMENTS = {
    "SQLChatMessageHistory": SQLChatMessageHistoryOnStore,
    "InMemoryChatMessageHistory": InMemoryChatMessageHistoryOnStore,
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requires: mark tests as requiring a specific library")


@pytest.fixture(autouse=True)
def _sessionstore_in_place_of_langchain_histories(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    _state.append(tmp_path)
    for name, replacement in _REPLACEMENTS.items():
        if hasattr(request.module, name):
            monkeypatch.setattr(request.module, name, replacement)
    try:
        yield
    finally:
        while _opened:
            _opened.pop().close()
        _state.pop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    deselect_not_applicable(config, items, Path(__file__).parent, NOT_APPLICABLE)
