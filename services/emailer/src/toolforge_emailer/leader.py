"""Leader election on a ``coordination.k8s.io/v1`` Lease, so that one emailer works at a time
(two replicas, a rolling update, or the local host process next to the in-cluster pods).

The algorithm is client-go's ``leaderelection`` (``LeaseLock``): every ``retry`` seconds each
candidate reads the Lease; it takes it when it is free (no holder) or when the holder's record
has not changed for ``lease_duration`` seconds *as observed on the candidate's own clock*
(no clock comparison between machines); the holder renews ``renewTime`` on the same period.
Every write is a compare-and-swap on the Lease's resourceVersion, so two candidates cannot both
win. A holder that has not renewed successfully for ``renew_deadline`` (shorter than
``lease_duration``) stops working before anyone else may take over. A holder that stops
releases the Lease (empty holder), so a successor starts at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from toolforge_emailer.storage import EmailerStorage
from toolforge_kit import Obj
from toolforge_kit.errors import APIError, ConflictError

__all__ = ["LeaseElector"]

_log = logging.getLogger(__name__)


def _micro_time(now: datetime) -> str:
    """A Lease ``MicroTime``: RFC 3339 with microseconds."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    """Runs ``work`` while this process holds the Lease (see the module documentation)."""

    def __init__(
        self,
        storage: EmailerStorage,
        identity: str,
        *,
        lease_duration: float,
        renew_deadline: float,
        retry: float,
        on_change: Callable[[bool], None] = lambda _leading: None,
    ) -> None:
        self.storage = storage
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry = retry
        self.on_change = on_change
        self.leading = False
        # what we last saw: (holder, renewTime, resourceVersion) and when we saw it change
        self._observed: tuple[str, str, str] | None = None
        self._observed_at = 0.0
        self._last_renewed = 0.0

    async def _try(self) -> bool:
        """One acquire-or-renew; ``True`` when we hold the Lease afterwards."""
        lease = await self.storage.read_lease()
        spec: Obj = lease.get("spec") or {}
        rv = str(lease["metadata"]["resourceVersion"])
        holder = str(spec.get("holderIdentity") or "")
        record = (holder, str(spec.get("renewTime") or ""), rv)
        now = time.monotonic()
        if record != self._observed:
            self._observed, self._observed_at = record, now
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        if holder and holder != self.identity and now - self._observed_at < duration:
            return False  # someone else holds a live lease
        stamp = _micro_time(datetime.now(UTC))
        new: Obj = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": round(self.lease_duration),
            "renewTime": stamp,
        }
        if holder != self.identity:
            new["acquireTime"] = stamp
            new["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if holder else 0)
        try:
            stored = await self.storage.write_lease(new, rv)
        except ConflictError:
            return False
        spec = stored.get("spec") or {}
        self._observed = (
            self.identity,
            str(spec.get("renewTime") or ""),
            str(stored["metadata"]["resourceVersion"]),
        )
        self._observed_at = time.monotonic()
        return True

    async def run(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Forever: wait for the Lease, run ``work`` while holding it (cancelled when the
        Lease is lost), and start over. When ``work`` ends or fails (logged), the Lease is
        released and the election starts again after ``retry`` seconds."""
        while True:
            await self._acquire()
            try:
                if await self._lead(work):
                    await asyncio.sleep(self.retry)
            finally:
                await self._set_leading(False)

    async def _acquire(self) -> None:
        while True:
            try:
                if await self._try():
                    self._last_renewed = time.monotonic()
                    await self._set_leading(True)
                    return
            except APIError as exc:
                _log.warning("leader election: cannot read or take the Lease: %s", exc.message)
            await asyncio.sleep(self.retry)

    async def _lead(self, work: Callable[[], Coroutine[Any, Any, None]]) -> bool:
        """Run ``work`` and the renewals until one ends; ``True`` when ``work`` ended (then
        the Lease is released), ``False`` when the Lease was lost."""
        worker = asyncio.create_task(work())
        renewer = asyncio.create_task(self._renew_until_lost())
        try:
            await asyncio.wait({worker, renewer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (worker, renewer):
                task.cancel()
            await asyncio.gather(worker, renewer, return_exceptions=True)
        if not worker.done() or worker.cancelled():
            return False
        error = worker.exception()
        if error is not None:
            _log.error("the emailer's work failed; standing down", exc_info=error)
        await self.release()
        return True

    async def _renew_until_lost(self) -> None:
        while True:
            await asyncio.sleep(self.retry)
            try:
                if await self._try():
                    self._last_renewed = time.monotonic()
                    continue
                _log.warning("leader election: %s lost the Lease to another holder", self.identity)
                return
            except APIError as exc:
                _log.warning("leader election: renewing failed: %s", exc.message)
            if time.monotonic() - self._last_renewed > self.renew_deadline:
                _log.error(
                    "leader election: not renewed for %.0f s; stepping down", self.renew_deadline
                )
                return

    async def _set_leading(self, leading: bool) -> None:
        if leading != self.leading:
            self.leading = leading
            _log.info("leader election: %s %s", self.identity, "leads" if leading else "stands by")
            self.on_change(leading)

    async def release(self) -> None:
        """Give the Lease up if we hold it (a successor takes it at its next try)."""
        try:
            lease = await self.storage.read_lease()
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return
            await self.storage.write_lease(
                {"holderIdentity": None, "leaseDurationSeconds": 1, "renewTime": None},
                str(lease["metadata"]["resourceVersion"]),
            )
            _log.info("leader election: %s released the Lease", self.identity)
        except APIError as exc:
            _log.warning("leader election: could not release the Lease: %s", exc.message)
