"""Build status from the PipelineRun ``Succeeded`` condition, for every Tekton reason."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from toolforge_builds.models import BuildStatus
from toolforge_builds.status import build_state, is_finished, parse_time, succeeded_condition


def _run(
    condition_status: str | None = None,
    reason: str | None = None,
    *,
    spec_status: str | None = None,
    message: str = "",
    start: str | None = "2024-05-01T12:00:00Z",
    end: str | None = None,
) -> dict[str, Any]:
    run: dict[str, Any] = {
        "apiVersion": "tekton.dev/v1",
        "kind": "PipelineRun",
        "metadata": {"name": "foo-buildpacks-pipelinerun-abcde"},
        "spec": {"pipelineRef": {"name": "buildpacks"}},
        "status": {},
    }
    if spec_status:
        run["spec"]["status"] = spec_status
    if start:
        run["status"]["startTime"] = start
    if end:
        run["status"]["completionTime"] = end
    if condition_status is not None:
        condition = {"type": "Succeeded", "status": condition_status, "message": message}
        if reason is not None:
            condition["reason"] = reason
        # another condition type first: only Succeeded counts
        run["status"]["conditions"] = [{"type": "Ready", "status": "False"}, condition]
    return run


S = BuildStatus


@pytest.mark.parametrize(
    ("condition_status", "reason", "expected", "finished"),
    [
        # Tekton v1 PipelineRunReason values, by the status they come with
        ("Unknown", "Started", S.RUNNING, False),
        ("Unknown", "Running", S.RUNNING, False),
        ("Unknown", "PipelineRunStopping", S.RUNNING, False),
        ("Unknown", "Cancelled", S.CANCELLED, False),  # cancellation being processed
        ("Unknown", "CancelledRunningFinally", S.CANCELLED, False),
        ("Unknown", "StoppedRunningFinally", S.CANCELLED, False),
        ("Unknown", "PipelineRunPending", S.PENDING, False),
        ("Unknown", "ResolvingPipelineRef", S.PENDING, False),
        ("Unknown", "SomethingNew", S.UNKNOWN, False),
        ("True", "Succeeded", S.SUCCESS, True),
        ("True", "Completed", S.SUCCESS, True),
        ("True", None, S.SUCCESS, True),
        ("False", "Failed", S.FAILURE, True),
        ("False", "CreateRunFailed", S.FAILURE, True),
        ("False", "CouldntGetPipeline", S.FAILURE, True),
        ("False", None, S.FAILURE, True),
        ("False", "PipelineRunTimeout", S.TIMEOUT, True),
        ("False", "Cancelled", S.CANCELLED, True),
        # spec.status spellings upstream also treats as reasons, and the legacy v1beta1 one
        ("False", "CancelledRunFinally", S.CANCELLED, True),
        ("False", "StoppedRunFinally", S.CANCELLED, True),
        ("False", "PipelineRunCancelled", S.CANCELLED, True),
        ("False", "CancelledRunningFinally", S.CANCELLED, True),
        ("Maybe", "Running", S.UNKNOWN, False),
        ("", "Running", S.UNKNOWN, False),
    ],
)
def test_condition_to_status(
    condition_status: str, reason: str | None, expected: BuildStatus, finished: bool
) -> None:
    run = _run(condition_status, reason, message="the message")
    state = build_state(run)
    assert state.status is expected
    assert state.finished is finished
    assert is_finished(run) is finished
    assert state.message == "the message"


def test_no_condition_is_pending() -> None:
    state = build_state(_run(start=None))
    assert state.status is S.PENDING
    assert not state.finished
    assert state.start_time is None
    assert "start" in state.message


def test_empty_object_is_pending() -> None:
    assert build_state({}).status is S.PENDING


def test_pending_spec_status_wins_over_an_unknown_condition() -> None:
    run = _run("Unknown", "Started", spec_status="PipelineRunPending")
    assert build_state(run).status is S.PENDING
    assert build_state(_run(spec_status="PipelineRunPending")).status is S.PENDING


def test_pending_spec_status_does_not_hide_a_final_condition() -> None:
    run = _run("False", "Cancelled", spec_status="PipelineRunPending")
    assert build_state(run).status is S.CANCELLED


@pytest.mark.parametrize(
    "spec_status", ["Cancelled", "CancelledRunFinally", "StoppedRunFinally", "PipelineRunCancelled"]
)
def test_cancel_requested_before_tekton_saw_the_run(spec_status: str) -> None:
    state = build_state(_run(spec_status=spec_status, start=None))
    assert state.status is S.CANCELLED
    assert not state.finished


def test_times_are_parsed_as_utc() -> None:
    state = build_state(
        _run("True", "Succeeded", start="2024-05-01T12:00:00Z", end="2024-05-01T14:30:00+02:00")
    )
    assert state.start_time == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert state.end_time == datetime(2024, 5, 1, 12, 30, tzinfo=UTC)


def test_message_falls_back_to_the_reason() -> None:
    assert build_state(_run("False", "PipelineRunTimeout")).message == "PipelineRunTimeout"


@pytest.mark.parametrize("value", [None, "", "yesterday", 12, "2024-13-01T00:00:00Z"])
def test_unparsable_times_are_none(value: object) -> None:
    assert parse_time(value) is None


def test_malformed_conditions_are_skipped() -> None:
    run = _run("True", "Succeeded")
    run["status"]["conditions"].insert(0, "garbage")
    assert succeeded_condition(run) == run["status"]["conditions"][-1]
    run["status"]["conditions"] = None
    assert build_state(run).status is S.PENDING
