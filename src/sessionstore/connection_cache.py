"""Driver connections the store's hot path keeps between calls (see :class:`ConnectionCache`)."""

from __future__ import annotations

import os
import time
from collections import deque
from contextlib import suppress

from sqlalchemy import Engine
from sqlalchemy.pool import PoolProxiedConnection

__all__ = ["ConnectionCache"]

#: How many times this process's ancestry forked into it (one element, bumped in the child).
_FORKS = [0]


def _forked() -> None:
    _FORKS[0] += 1


os.register_at_fork(after_in_child=_forked)


class ConnectionCache:
    """Driver connections the hot path keeps between calls, on SQLite files.

    Checking a connection out of SQLAlchemy's pool and back in costs about
    6 µs, as much as the indexed lookup it serves. The hot path keeps up to
    ``limit`` of its connections (never in a transaction) on a stack instead;
    ``deque.pop``/``append`` are atomic, so threads share it without a lock.
    The connections stay checked out of the pool, which still created them
    (pragmas and all) and still owns them: on an error, a fork or ``close``
    they go back to it.

    On PostgreSQL (``max_idle`` set) a kept connection idle for longer than
    ``max_idle`` seconds goes back to the pool and is checked out again, so
    ``pool_pre_ping`` tests it first; one used a moment ago is trusted. The
    ping is a round trip of its own: on every call it cost a read of 50
    messages a third of its time.
    """

    def __init__(self, engine: Engine, limit: int, *, max_idle: float | None = None) -> None:
        self._engine = engine
        self._limit = limit
        self._max_idle = max_idle
        self._idle: deque[tuple[PoolProxiedConnection, float]] = deque()
        # Which process this is, by fork count: os.getpid() is a system call
        # (two per call cost about 1 µs), reading a counter is not.
        self._forks = _FORKS[0]

    def take(self) -> PoolProxiedConnection:
        if self._forks != _FORKS[0]:
            # A forked child must not touch the parent's connections.
            self._idle = deque()
            self._forks = _FORKS[0]
        try:
            fairy, since = self._idle.pop()
        except IndexError:
            return self._engine.pool.connect()
        if self._max_idle is not None and time.monotonic() - since > self._max_idle:
            fairy.close()
            return self._engine.pool.connect()
        return fairy

    def give_back(self, fairy: PoolProxiedConnection, *, reusable: bool) -> None:
        if reusable and len(self._idle) < self._limit and self._forks == _FORKS[0]:
            # The idle clock matters only where kept connections expire (PostgreSQL).
            self._idle.append((fairy, 0.0 if self._max_idle is None else time.monotonic()))
        else:
            fairy.close()

    @property
    def idle(self) -> int:
        return len(self._idle)

    def drain(self) -> None:
        while self._idle:
            with suppress(Exception):
                self._idle.pop()[0].close()
