"""The async store's surface is the sync store's, method for method.

Every public method of each sync class has a typed, declared counterpart on
its async class, with the same signature: a coroutine method (or an
``async for`` iterator for a method returning an iterator). A method added
to a sync repository fails this test until its one line is added to
``sessionstore/aio/repositories.py`` (it is awaitable at once through the
wrappers' fallback, but untyped). Properties are mirrored as properties.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from sessionstore import SessionStore, Transaction
from sessionstore.aio import (
    AsyncHealth,
    AsyncLifecycle,
    AsyncMessages,
    AsyncScopedStore,
    AsyncSearch,
    AsyncSessions,
    AsyncSessionStore,
    AsyncState,
    AsyncTransaction,
)
from sessionstore.aio.repositories import async_iterator, awaitable
from sessionstore.health import Health
from sessionstore.lifecycle import Lifecycle
from sessionstore.messages import MessageRepository
from sessionstore.scoped import ScopedStore
from sessionstore.search import SearchRepository
from sessionstore.sessions import SessionRepository
from sessionstore.state import StateRepository

PAIRS: list[tuple[type, type]] = [
    (SessionRepository, AsyncSessions),
    (MessageRepository, AsyncMessages),
    (SearchRepository, AsyncSearch),
    (StateRepository, AsyncState),
    (Health, AsyncHealth),
    (Lifecycle, AsyncLifecycle),
    (SessionStore, AsyncSessionStore),
    (ScopedStore, AsyncScopedStore),
]

#: Sync methods whose async counterpart differs on purpose, and how.
DIFFERENT = {
    # Opening takes the async store's own option, max_workers.
    "SessionStore.open": "max_workers",
    "SessionStore.from_config": "max_workers",
    "SessionStore.from_engine": "max_workers",
    # A scheduler is a task; its purge_after default is spelled ... there.
    "Lifecycle.start_scheduler": "task",
    # No I/O: a plain method returning an async context manager / an async view.
    "SessionStore.transaction": "sync",
    "ScopedStore.transaction": "sync",
    "SessionStore.for_user": "sync",
}


def _public(cls: type) -> dict[str, Any]:
    members = {}
    for name in dir(cls):
        if name.startswith("_"):
            continue
        static = inspect.getattr_static(cls, name)
        members[name] = static
    return members


def _params(function: Any) -> list[tuple[str, Any, Any]]:
    signature = inspect.signature(function)
    return [
        (p.name, p.kind, p.default)
        for p in signature.parameters.values()
        if p.name not in ("self", "cls")
    ]


@pytest.mark.parametrize(("sync", "async_"), PAIRS, ids=lambda c: c.__name__)
def test_every_public_method_has_a_declared_async_counterpart(sync: type, async_: type) -> None:
    declared = _public(async_)
    missing, mismatched = [], []
    for name, member in _public(sync).items():
        key = f"{sync.__name__}.{name}"
        if isinstance(member, property):
            if not isinstance(declared.get(name), property):
                missing.append(f"{name} (property)")
            continue
        if not callable(member) and not isinstance(member, staticmethod | classmethod):
            continue
        ours = declared.get(name)
        if ours is None:
            missing.append(name)
            continue
        if isinstance(ours, awaitable | async_iterator):
            function = getattr(sync, name)
            if _params(function) != [
                (p.name, p.kind, p.default) for p in ours._signature.parameters.values()
            ]:
                mismatched.append(name)
            continue
        target = getattr(async_, name)
        if DIFFERENT.get(key) == "sync":
            continue
        assert inspect.iscoroutinefunction(target), f"{async_.__name__}.{name} is not awaitable"
        if key in DIFFERENT:
            continue
        if _params(getattr(sync, name)) != _params(target):
            mismatched.append(name)
    assert not missing, f"{async_.__name__} lacks {missing}: add `name = awaitable(...)` lines"
    assert not mismatched, f"{async_.__name__} signatures differ from the sync ones: {mismatched}"


def test_the_async_transaction_has_the_sync_transactions_repositories() -> None:
    sync = [f.name for f in dataclasses.fields(Transaction)]
    ours = [f.name for f in dataclasses.fields(AsyncTransaction)]
    assert ours == sync


def test_methods_keep_their_docstrings_and_are_coroutine_functions() -> None:
    assert AsyncMessages.append.__doc__ == MessageRepository.append.__doc__
    method = AsyncSessionStore.__dict__["stats"]
    assert isinstance(method, awaitable)
