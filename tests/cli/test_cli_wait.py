"""``--wait``: when a job counts as done (pure). Polling the real jobs API is tested end to
end: ``run --wait`` success in ``tests/test_platform.py``, failure in
``tests/test_platform_jobs.py``, the time-out and a job deleted while waited for in
``test_cli_jobs_e2e.py``."""

from __future__ import annotations

from typing import Any

import pytest

from toolforge_cli.jobsapi import Job
from toolforge_cli.wait import WaitResult, job_outcome


def job(kind: str, short: str, **status: Any) -> Job:
    return Job.model_validate(
        {
            "name": "j",
            "job_type": kind,
            "schedule": "@daily" if kind == "scheduled" else None,
            "status_short": short.capitalize(),
            "status": {"short": short, "messages": status.pop("messages", []), **status},
        }
    )


@pytest.mark.parametrize(
    ("the_job", "expected"),
    [
        (job("one-off", "pending"), None),
        (job("one-off", "running"), None),
        (job("one-off", "unknown"), None),
        (job("one-off", "succeeded"), WaitResult(True, "Job 'j' completed successfully")),
        (
            job("one-off", "failed", messages=["exit code 3", "restarted (1)"]),
            WaitResult(False, "Job 'j' failed: exit code 3; restarted (1)"),
        ),
        (job("continuous", "pending"), None),
        (job("continuous", "running", up_to_date=False), None),
        (job("continuous", "running", up_to_date=True), WaitResult(True, "Job 'j' is running")),
        (
            job("continuous", "failed", messages=["Unable to start, out of quota for cpu"]),
            WaitResult(False, "Job 'j' failed: Unable to start, out of quota for cpu"),
        ),
        (job("scheduled", "pending"), WaitResult(True, "Job 'j' is scheduled: @daily")),
    ],
)
def test_job_outcome(the_job: Job, expected: WaitResult | None) -> None:
    assert job_outcome(the_job) == expected
