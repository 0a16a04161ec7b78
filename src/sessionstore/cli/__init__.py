"""The ``sessionstore`` command line: a thin layer over the library.

Every command takes ``--db URL`` (default ``$SESSIONSTORE_URL``, else
``./.ai-router-sessions.db``). Results people scan are tables; ``--json``
prints the same data for scripts. Library errors become one clean line on
stderr and exit status 2; ``doctor`` exits 1 when a check fails.
"""

from . import (  # noqa: F401 - each registers its commands
    browse,
    lifecycle,
    maintenance,
    owners,
    state,
)
from .base import main

__all__ = ["main"]
