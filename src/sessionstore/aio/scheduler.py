"""The async store's lifecycle scheduler: the sync scheduler's turn, timed by an asyncio task.

A turn is :meth:`sessionstore.scheduler.Scheduler.run_once` (take the
lease, sweep, purge), run on one of the store's lanes like any other call;
only the waiting between turns moves from a thread to an asyncio task, so
an async application has no thread of its own sleeping in the background.
The lease makes schedulers in several processes (sync or async) take turns.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..errors import StoreClosedError
from ..records import PurgeReport, SweepReport
from ..scheduler import Scheduler

if TYPE_CHECKING:
    from .repositories import AsyncLifecycle

__all__ = ["AsyncScheduler"]

log = logging.getLogger("sessionstore.scheduler")


class AsyncScheduler:
    """Runs the lifecycle's turn every ``every`` in an asyncio task of the running loop."""

    def __init__(self, lifecycle: AsyncLifecycle, core: Scheduler) -> None:
        self._lifecycle = lifecycle
        self._core = core
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def start(
        cls, lifecycle: AsyncLifecycle, *, every: timedelta, purge_after: Any
    ) -> AsyncScheduler:
        sync = lifecycle.sync
        retention = sync.purge_after if purge_after is ... else purge_after
        # Checks every, the retention and that the store is open; its thread never starts.
        scheduler = cls(lifecycle, Scheduler(sync, every=every, purge_after=retention))
        scheduler._task = asyncio.get_running_loop().create_task(
            scheduler._loop(), name="sessionstore-scheduler"
        )
        return scheduler

    @property
    def every(self) -> timedelta:
        return self._core.every

    @property
    def purge_after(self) -> timedelta | None:
        return self._core.purge_after

    @property
    def holder(self) -> str:
        return self._core.holder

    @property
    def lease_ttl(self) -> timedelta:
        return self._core.lease_ttl

    @property
    def runs(self) -> int:
        return self._core.runs

    @property
    def last_sweep(self) -> SweepReport | None:
        return self._core.last_sweep

    @property
    def last_purge(self) -> PurgeReport | None:
        return self._core.last_purge

    @property
    def last_error(self) -> Exception | None:
        return self._core.last_error

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def run_once(self) -> SweepReport | None:
        """One turn: take the lease, sweep, purge; ``None`` if another holder has the lease."""
        return await self._lifecycle._dispatch.run(self._core.run_once)

    async def _loop(self) -> None:
        while not self._lifecycle.closed:
            try:
                await self.run_once()
                self._core.last_error = None
            except StoreClosedError:
                # The store closed under it (a scoped view's scheduler is not the
                # store's to stop): every further turn would only fail.
                return
            except Exception as exc:
                # A busy store, or a bug: the next turn tries again; the task must not
                # end quietly with sessions left unswept.
                self._core.last_error = exc
                log.warning("lifecycle scheduler run failed: %s", exc, exc_info=True)
            await asyncio.sleep(self._core.every.total_seconds())

    async def stop(self) -> None:
        """Finish the current turn, stop, and hand the lease back."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        # Releases the lease (left to expire if the store is already closed).
        with suppress(StoreClosedError):
            await self._lifecycle._dispatch.run(self._core.stop)
