"""The ``sessionstore`` command line: a thin layer over the library.

Every command takes ``--db URL`` (default ``$SESSIONSTORE_URL``, else
``./.ai-router-sessions.db``). Results people scan are tables; ``--json``
prints the same data for scripts. Library errors become one clean line on
stderr and exit status 2; ``doctor`` exits 1 when a check fails.
"""

from . import browse, lifecycle, maintenance  # noqa: F401 - each registers its commands
from .base import main

__all__ = ["main"]
