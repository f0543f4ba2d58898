"""``--wait``: when a job counts as done, and polling the (test double of the) jobs API."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from cli.harness import Home, RunningDouble, clean_env, run_cli

from toolforge_cli.client import ApiClient
from toolforge_cli.config import load_settings, resolve_connection
from toolforge_cli.jobsapi import JobsApi
from toolforge_cli.wait import WaitResult, job_outcome, wait_for_job


def job(kind: str, short: str, **status: Any) -> dict[str, Any]:
    return {
        "name": "j",
        "job_type": kind,
        "schedule": "@daily" if kind == "scheduled" else None,
        "status_short": short.capitalize(),
        "status": {"short": short, "messages": status.pop("messages", []), **status},
    }


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
def test_job_outcome(the_job: dict[str, Any], expected: WaitResult | None) -> None:
    assert job_outcome(the_job) == expected


@pytest.fixture
def api(jobs_api: RunningDouble, home: Home, monkeypatch: pytest.MonkeyPatch) -> Iterator[JobsApi]:
    for name, value in clean_env(home, TOOLFORGE_API_URL=jobs_api.url).items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    with ApiClient(resolve_connection(load_settings())) as client:
        yield JobsApi(client)


def test_polls_until_the_job_finished(api: JobsApi, jobs_api: RunningDouble) -> None:
    double = jobs_api.double
    double.add_job({"name": "j", "cmd": "true", "imagename": "bookworm"})
    double.statuses["j"] = ["pending", "running", "running", "succeeded"]
    seen: list[str] = []

    def on_status(job: Mapping[str, Any]) -> None:
        seen.append(job["status"]["short"])

    result = wait_for_job(api, "j", 30, poll_interval=0.01, on_status=on_status)
    assert result == WaitResult(True, "Job 'j' completed successfully")
    assert seen == ["pending", "running", "running"]
    assert len(double.requests_to("GET", "/jobs/j")) == 4


def test_gives_up_after_the_timeout(api: JobsApi, jobs_api: RunningDouble) -> None:
    jobs_api.double.add_job({"name": "j", "cmd": "sleep 1000", "imagename": "bookworm"})
    result = wait_for_job(api, "j", 0.2, poll_interval=0.05)
    assert not result.ok
    assert result.message == (
        "Job 'j' did not finish within 0.2 seconds (status: Running); it keeps going"
    )
    assert len(jobs_api.double.requests_to("GET", "/jobs/j")) >= 2


def test_a_job_that_disappears_is_a_failure(api: JobsApi) -> None:
    result = wait_for_job(api, "gone", 5, poll_interval=0.01)
    assert not result.ok
    assert result.message.startswith("Job 'gone' no longer exists")


def test_run_wait_exits_0_when_the_job_succeeded(jobs_api: RunningDouble, home: Home) -> None:
    jobs_api.double.statuses["hello"] = ["succeeded"]
    result = run_cli(
        ["jobs", "run", "hello", "--command", "echo hi", "--image", "bookworm", "--wait", "30"],
        clean_env(home, TOOLFORGE_API_URL=jobs_api.url),
    )
    assert result.exit_code == 0, result.output
    assert "Job 'hello' completed successfully" in result.stderr
    assert result.stdout == ""


def test_run_wait_exits_1_when_the_job_failed(jobs_api: RunningDouble, home: Home) -> None:
    jobs_api.double.statuses["web"] = ["failed"]
    result = run_cli(
        [
            "jobs",
            "run",
            "web",
            "--command",
            "./serve.sh",
            "--image",
            "bookworm",
            "--continuous",
            "--wait",
        ],
        clean_env(home, TOOLFORGE_API_URL=jobs_api.url),
    )
    assert result.exit_code == 1
    assert "error: Job 'web' failed: exit code 1" in result.stderr
