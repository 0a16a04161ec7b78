"""The lifecycle scheduler: sweep (and purge) on a timer, in a background thread.

Any number of schedulers, in any number of processes, may run against one
database. Each run first takes the ``sweep`` lease in the database (a row
with a holder and an expiry, taken in a write transaction); a scheduler that
finds it held by another live holder skips the run. The holder renews its
lease every run, and a crashed holder's lease simply expires, after which
another scheduler takes over. The lease only keeps the work from being done
twice at once: archiving re-checks each session under its lock anyway, so
even two sweepers at the same moment archive every session exactly once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from contextlib import suppress
from datetime import timedelta
from typing import TYPE_CHECKING

from .errors import InvalidInput, SessionStoreError, StoreClosedError, shown

if TYPE_CHECKING:
    from .lifecycle import Lifecycle, PurgeReport, SweepReport

__all__ = ["Scheduler"]

log = logging.getLogger(__name__)
LEASE = "sweep"
#: The longest interval between runs: the lease lasts three intervals, and a
#: lease may last at most a year (see ``Lifecycle.acquire_lease``).
MAX_INTERVAL = timedelta(days=30)
_CENTURY = timedelta(days=36_600)


class Scheduler:
    """One background thread running :meth:`run_once` every ``every``."""

    def __init__(
        self, lifecycle: Lifecycle, *, every: timedelta, purge_after: timedelta | None
    ) -> None:
        if not isinstance(every, timedelta) or not timedelta(0) < every <= MAX_INTERVAL:
            raise InvalidInput(
                f"every must be a positive timedelta of at most 30 days, not {shown(every)}"
            )
        # Checked here, not at the first run: a bad retention must fail the caller,
        # not the background thread an hour later.
        if purge_after is not None and (
            not isinstance(purge_after, timedelta) or not timedelta(0) < purge_after <= _CENTURY
        ):
            raise InvalidInput(
                f"purge_after must be a positive timedelta of at most a century, or None; "
                f"not {shown(purge_after)}"
            )
        if lifecycle.closed:
            # Else the thread would start, fail every turn, and outlive the closed store.
            raise StoreClosedError()
        self._lifecycle = lifecycle
        self.every = every
        self.purge_after = purge_after
        # Longer than a run is likely to take, so a live holder keeps it.
        self.lease_ttl = max(every * 3, timedelta(seconds=60))
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="sessionstore-scheduler", daemon=True
        )
        self.runs = 0
        self.last_sweep: SweepReport | None = None
        self.last_purge: PurgeReport | None = None
        self.last_error: Exception | None = None

    def start(self) -> None:
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def run_once(self) -> SweepReport | None:
        """One turn: take the lease, sweep, purge; ``None`` if another holder has the lease."""
        lifecycle = self._lifecycle
        if not lifecycle.acquire_lease(LEASE, self.holder, self.lease_ttl):
            return None
        report = lifecycle.sweep()
        self.last_sweep = report
        if self.purge_after is not None:
            self.last_purge = lifecycle.purge(self.purge_after)
        self.runs += 1
        return report

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self._lifecycle.closed:
                # The store closed under it (a scoped view's scheduler is not the
                # store's to stop): every further turn would only fail.
                return
            try:
                self.run_once()
                self.last_error = None
            except Exception as exc:
                # A busy store, or a bug: either way the next turn tries again, and
                # the thread must not die quietly with sessions left unswept.
                self.last_error = exc
                log.warning("lifecycle scheduler run failed: %s", exc, exc_info=True)
            self._stop.wait(self.every.total_seconds())

    def stop(self, timeout: float | None = 30.0) -> None:
        """Finish the current run, stop, and hand the lease back."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        # If the store is already closed the lease is left to expire on its own.
        with suppress(SessionStoreError):
            self._lifecycle.release_lease(LEASE, self.holder)
