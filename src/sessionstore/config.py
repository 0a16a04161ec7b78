"""Store configuration: one frozen object, read from arguments or the environment.

Nothing here runs at import time. :meth:`StoreConfig.from_env` reads
``SESSIONSTORE_URL`` when it is called, so tests and applications decide when
the environment counts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from typing import Any, Literal

from .errors import InvalidInput

__all__ = ["DEFAULT_URL", "StoreConfig"]

DEFAULT_URL = "sqlite:///.ai-router-sessions.db"
URL_ENV = "SESSIONSTORE_URL"
_CENTURY = timedelta(days=36_600)

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
    #: Lifecycle defaults: archive a session idle this long, or this long after
    #: its creation, whichever comes first (``None`` turns one off); sessions
    #: can override both. ``purge_after`` is how long archived sessions are
    #: kept before the scheduler purges them (``None``: never).
    idle_timeout: timedelta | None = timedelta(hours=1)
    hard_timeout: timedelta | None = timedelta(hours=24)
    purge_after: timedelta | None = None
    #: Extra keyword arguments for :func:`sqlalchemy.create_engine`.
    engine_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.pool_size < 1 or self.max_overflow < 0:
            raise InvalidInput("pool_size must be at least 1 and max_overflow at least 0")
        if self.pool_timeout <= 0 or self.busy_timeout <= timedelta(0):
            raise InvalidInput("pool_timeout and busy_timeout must be positive")
        if self.synchronous not in ("NORMAL", "FULL"):
            raise InvalidInput(f"synchronous must be NORMAL or FULL, not {self.synchronous!r}")
        if self.max_content_bytes < 1:
            raise InvalidInput("max_content_bytes must be positive")
        for name in ("idle_timeout", "hard_timeout", "purge_after"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, timedelta) or not timedelta(0) < value <= _CENTURY
            ):
                raise InvalidInput(
                    f"{name} must be a positive timedelta of at most a century, or None"
                )

    @classmethod
    def from_env(cls, url: str | None = None, **options: Any) -> StoreConfig:
        """A config whose URL is ``url``, else ``$SESSIONSTORE_URL``, else the default."""
        known = {f.name for f in fields(cls)}
        unknown = set(options) - known
        if unknown:
            raise InvalidInput(f"unknown store option(s): {', '.join(sorted(unknown))}")
        if isinstance(options.get("busy_timeout"), int | float):
            options["busy_timeout"] = timedelta(seconds=options["busy_timeout"])
        return cls(url=url or os.environ.get(URL_ENV) or DEFAULT_URL, **options)

    def with_options(self, **options: Any) -> StoreConfig:
        return replace(self, **options)
