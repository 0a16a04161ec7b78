"""Store configuration: one frozen object, read from arguments or the environment.

Nothing here runs at import time. :meth:`StoreConfig.from_env` reads
``SESSIONSTORE_URL`` when it is called, so tests and applications decide when
the environment counts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from typing import Any, Literal

from .errors import InvalidInput, shown

__all__ = ["DEFAULT_URL", "StoreConfig"]

DEFAULT_URL = "sqlite:///.ai-router-sessions.db"
URL_ENV = "SESSIONSTORE_URL"
_CENTURY = timedelta(days=36_600)
# Waits are bounded so they stay within a C int of milliseconds (SQLite's busy timeout).
_MAX_WAIT = timedelta(days=1)
_MAX_COUNT = 10_000
_MAX_C_INT = 2**31 - 1

Synchronous = Literal["NORMAL", "FULL"]


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Everything a :class:`~sessionstore.SessionStore` needs to open a database."""

    url: str = DEFAULT_URL
    #: Connections kept open in the pool, and how many more may be opened under load.
    pool_size: int = 5
    max_overflow: int = 10
    #: Seconds to wait for a free pooled connection.
    pool_timeout: float = 30.0
    #: How long SQLite waits on another writer's lock before giving up.
    busy_timeout: timedelta = timedelta(seconds=10)
    #: ``NORMAL`` is durable in WAL mode except across power loss; ``FULL`` survives that too.
    synchronous: Synchronous = "NORMAL"
    #: Page cache per connection, in KiB (the legacy layer used 2 MB).
    cache_size_kib: int = 16 * 1024
    #: The largest message content accepted, in UTF-8 bytes.
    max_content_bytes: int = 4 * 1024 * 1024
    #: The largest item payload accepted (``messages.append(payload=...)``), in
    #: bytes of its compact JSON.
    max_payload_bytes: int = 16 * 1024 * 1024
    #: Lifecycle defaults: archive a session idle this long, or this long after
    #: its creation, whichever comes first (``None`` turns one off); sessions
    #: can override both. ``purge_after`` is how long archived sessions are
    #: kept before the scheduler purges them (``None``: never).
    idle_timeout: timedelta | None = timedelta(hours=1)
    hard_timeout: timedelta | None = timedelta(hours=24)
    purge_after: timedelta | None = None
    #: Per-app lifecycle defaults, ``{app: (idle_timeout, hard_timeout)}``: they
    #: replace ``idle_timeout``/``hard_timeout`` for that app's sessions (``None``
    #: turns one off); a session's own timeouts still win.
    app_timeouts: Mapping[str, tuple[timedelta | None, timedelta | None]] = field(
        default_factory=dict
    )
    #: Extra keyword arguments for :func:`sqlalchemy.create_engine`.
    engine_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Types first: a value of the wrong type is refused before it is compared.
        if not isinstance(self.url, str):
            raise InvalidInput(f"url must be a str, not {type(self.url).__name__}")
        _count("pool_size", self.pool_size, 1, _MAX_COUNT)
        _count("max_overflow", self.max_overflow, 0, _MAX_COUNT)
        _count("cache_size_kib", self.cache_size_kib, 0, _MAX_C_INT)
        _count("max_content_bytes", self.max_content_bytes, 1, _MAX_C_INT)
        _count("max_payload_bytes", self.max_payload_bytes, 1, _MAX_C_INT)
        timeout = self.pool_timeout
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 < timeout <= _MAX_WAIT.total_seconds()
        ):
            raise InvalidInput(
                f"pool_timeout must be a positive number of seconds of at most a day, "
                f"not {shown(timeout)}"
            )
        if not isinstance(self.busy_timeout, timedelta) or not (
            timedelta(0) < self.busy_timeout <= _MAX_WAIT
        ):
            raise InvalidInput(
                f"busy_timeout must be a positive timedelta of at most a day, "
                f"not {shown(self.busy_timeout)}"
            )
        if not isinstance(self.synchronous, str) or self.synchronous not in ("NORMAL", "FULL"):
            raise InvalidInput(f"synchronous must be NORMAL or FULL, not {shown(self.synchronous)}")
        for name in ("idle_timeout", "hard_timeout", "purge_after"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, timedelta) or not timedelta(0) < value <= _CENTURY
            ):
                raise InvalidInput(
                    f"{name} must be a positive timedelta of at most a century, or None"
                )
        _check_app_timeouts(self.app_timeouts)
        if not isinstance(self.engine_options, dict) or not all(
            isinstance(key, str) for key in self.engine_options
        ):
            raise InvalidInput("engine_options must be a dict of keyword arguments")

    @classmethod
    def from_env(cls, url: str | None = None, **options: Any) -> StoreConfig:
        """A config whose URL is ``url``, else ``$SESSIONSTORE_URL``, else the default."""
        if url is not None and not isinstance(url, str):
            raise InvalidInput(f"url must be a str, not {type(url).__name__}")
        options = _known(options)
        busy = options.get("busy_timeout")
        if isinstance(busy, int | float) and not isinstance(busy, bool):
            # Seconds, as a number: bounded before timedelta() can overflow on it.
            if not 0 < busy <= _MAX_WAIT.total_seconds():
                raise InvalidInput(
                    f"busy_timeout must be positive and at most a day, not {shown(busy)}"
                )
            options["busy_timeout"] = timedelta(seconds=busy)
        return cls(url=url or os.environ.get(URL_ENV) or DEFAULT_URL, **options)

    def with_options(self, **options: Any) -> StoreConfig:
        return replace(self, **_known(options))


def _known(options: dict[str, Any]) -> dict[str, Any]:
    unknown = set(options) - {f.name for f in fields(StoreConfig)}
    if unknown:
        raise InvalidInput(f"unknown store option(s): {', '.join(sorted(unknown))}")
    return options


def _check_app_timeouts(value: object) -> None:
    """``{app: (idle, hard)}``: app ids, each timeout a positive timedelta or None."""
    if not isinstance(value, Mapping):
        raise InvalidInput(
            f"app_timeouts must map app ids to (idle_timeout, hard_timeout), not {shown(value)}"
        )
    for app, pair in value.items():
        if not isinstance(app, str) or not app.strip() or "\x00" in app or len(app) > 255:
            raise InvalidInput(f"app_timeouts: {shown(app)} is not an app id")
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise InvalidInput(
                f"app_timeouts[{app!r}] must be a pair (idle_timeout, hard_timeout), "
                f"not {shown(pair)}"
            )
        for timeout in pair:
            if timeout is not None and (
                not isinstance(timeout, timedelta) or not timedelta(0) < timeout <= _CENTURY
            ):
                raise InvalidInput(
                    f"app_timeouts[{app!r}]: each timeout must be a positive timedelta of at "
                    f"most a century, or None; not {shown(timeout)}"
                )


def _count(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{name} must be an integer from {low} to {high}, not {shown(value)}")
