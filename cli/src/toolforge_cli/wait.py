"""``--wait``: poll a job until it reached its goal, failed, or time ran out.

Goals (REFERENCE.md, structured ``status.short``: pending|running|succeeded|failed|unknown):

- a one-off job: finished, ``succeeded`` (success) or ``failed`` (failure);
- a continuous job: ``running`` with ``up_to_date`` (the Deployment rolled out this spec), or
  ``failed``.

Scheduled jobs have no goal to wait for (they run at their schedule); callers refuse
``--wait`` for them before creating anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from toolforge_cli.client import ApiClientError
from toolforge_cli.jobsapi import Job, JobsApi

__all__ = ["POLL_INTERVAL", "WaitResult", "job_outcome", "wait_for_job"]

#: Seconds between two GETs of the job.
POLL_INTERVAL = 2.0


@dataclass(frozen=True)
class WaitResult:
    """``ok``: the job reached its goal; ``message`` says what happened, for the user."""

    ok: bool
    message: str


def _details(job: Job) -> str:
    if job.status is not None and job.status.messages:
        return "; ".join(job.status.messages)
    return job.status_long or job.status_short or "no details"


def job_outcome(job: Job) -> WaitResult | None:
    """The outcome for ``job`` (as GET ``/jobs/{name}`` returns it), or ``None`` while it has
    not reached its goal yet."""
    name = job.name
    short = job.short_status
    kind = job.kind
    if short == "failed":
        return WaitResult(False, f"Job {name!r} failed: {_details(job)}")
    if kind == "continuous":
        up_to_date = job.status.up_to_date if job.status is not None else True
        if short == "running" and up_to_date:
            return WaitResult(True, f"Job {name!r} is running")
        return None
    if kind == "scheduled":
        return WaitResult(True, f"Job {name!r} is scheduled: {job.schedule}")
    if short == "succeeded":
        return WaitResult(True, f"Job {name!r} completed successfully")
    return None


def wait_for_job(
    api: JobsApi,
    name: str,
    timeout: float,
    *,
    poll_interval: float = POLL_INTERVAL,
    on_status: Callable[[Job], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> WaitResult:
    """Poll GET ``/jobs/{name}`` every ``poll_interval`` seconds until :func:`job_outcome`
    decides, for at most ``timeout`` seconds. ``on_status`` sees every job read that has not
    decided yet (for a progress display). A 404 while waiting is a failure (the job was deleted,
    or a finished one-off job was cleaned up before we looked). API errors other than 404
    propagate."""
    deadline = clock() + timeout
    while True:
        try:
            job = api.get_job(name, report=False).job
        except ApiClientError as exc:
            if exc.status != 404:
                raise
            return WaitResult(
                False,
                f"Job {name!r} no longer exists: it was deleted, or it finished and was "
                "cleaned up before its end was seen (see `toolforge jobs logs`)",
            )
        outcome = job_outcome(job)
        if outcome is not None:
            return outcome
        if on_status is not None:
            on_status(job)
        remaining = deadline - clock()
        if remaining <= 0:
            return WaitResult(
                False,
                f"Job {name!r} did not finish within {timeout:g} seconds "
                f"(status: {job.status_short or 'unknown'}); it keeps going",
            )
        sleep(min(poll_interval, remaining))
