"""Status of a build from its Tekton PipelineRun (a plain ``tekton.dev/v1`` dict). Pure.

The ``Succeeded`` condition decides (REFERENCE.md "Builds API (v1)" and "Tekton facts"; Tekton
``pkg/apis/pipeline/v1/pipelinerun_types.go``). The wire values are upstream's ``BUILD_*``
strings (:class:`~toolforge_builds.models.BuildStatus`):

============================  ==================  ==========================================
condition status              reason              build status
============================  ==================  ==========================================
(no condition)                                    ``BUILD_PENDING``; ``BUILD_CANCELLED``
                                                  when ``spec.status`` already asks to cancel
``True``                      Succeeded,          ``BUILD_SUCCESS``
                              Completed, any
``False``                     PipelineRunTimeout  ``BUILD_TIMEOUT``
``False``                     Cancelled,          ``BUILD_CANCELLED``
                              CancelledRunFinally,
                              StoppedRunFinally,
                              PipelineRunCancelled,
                              CancelledRunningFinally,
                              StoppedRunningFinally
``False``                     Failed,             ``BUILD_FAILURE``
                              CreateRunFailed, any
                              other
``Unknown``                   Started, Running,   ``BUILD_RUNNING``
                              PipelineRunStopping
``Unknown``                   PipelineRunPending, ``BUILD_PENDING``
                              ResolvingPipelineRef
``Unknown``                   Cancelled,          ``BUILD_CANCELLED`` (cancellation in
                              CancelledRunning-   progress; the run is not finished yet)
                              Finally, Stopped-
                              RunningFinally
anything else                                     ``BUILD_UNKNOWN``
============================  ==================  ==========================================

This agrees with REFERENCE.md's mapping wherever that one names a case, and is finer where it
says ``BUILD_UNKNOWN`` for states Tekton does name (``Started`` is running, a pending run is
pending, a run being cancelled is cancelled).

``spec.status: PipelineRunPending`` makes a run pending whatever its condition says
until Tekton starts it. A run is *finished* only when the condition status is ``True`` or
``False``: a cancelled run whose cancellation is still being processed is not finished
(so it is neither pruned nor counted as done).

``CancelledRunFinally``, ``StoppedRunFinally`` and ``PipelineRunCancelled`` are
``spec.status`` values (the last one a legacy v1beta1 value) that upstream Toolforge also
treats as cancel reasons; they are accepted as reasons for compatibility.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from toolforge_builds.models import BuildStatus

__all__ = [
    "CANCEL_REASONS",
    "PENDING_SPEC_STATUS",
    "BuildState",
    "build_state",
    "is_finished",
    "parse_time",
    "succeeded_condition",
]

CANCEL_REASONS = frozenset(
    {
        "Cancelled",
        "CancelledRunFinally",
        "StoppedRunFinally",
        "PipelineRunCancelled",
        "CancelledRunningFinally",
        "StoppedRunningFinally",
    }
)
#: ``spec.status`` values that ask Tekton to cancel or stop a run.
CANCEL_SPEC_STATUSES = frozenset(
    {"Cancelled", "CancelledRunFinally", "StoppedRunFinally", "PipelineRunCancelled"}
)
PENDING_SPEC_STATUS = "PipelineRunPending"
TIMEOUT_REASON = "PipelineRunTimeout"
_RUNNING_REASONS = frozenset({"Started", "Running", "PipelineRunStopping"})
_PENDING_REASONS = frozenset({"PipelineRunPending", "ResolvingPipelineRef"})


@dataclass(frozen=True)
class BuildState:
    """What a PipelineRun says about its build.

    ``message`` is the condition's message (or a short explanation when there is none);
    times are timezone-aware UTC from ``status.startTime`` / ``status.completionTime``.
    """

    status: BuildStatus
    message: str
    start_time: datetime | None
    end_time: datetime | None
    finished: bool


def succeeded_condition(pipelinerun: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ``type: Succeeded`` entry of ``status.conditions``, or ``None``."""
    status = pipelinerun.get("status") or {}
    for condition in status.get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == "Succeeded":
            return condition
    return None


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 timestamp (``2024-05-01T12:00:00Z``) as an aware UTC datetime, or ``None``
    when absent or unparsable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def build_state(pipelinerun: Mapping[str, Any]) -> BuildState:
    """Status, message, start and end time of the build a PipelineRun dict represents.

    Mapping in the module docstring. Never raises on malformed input: what cannot be read
    becomes ``unknown`` / ``None``.
    """
    spec = pipelinerun.get("spec") or {}
    status_block = pipelinerun.get("status") or {}
    start = parse_time(status_block.get("startTime"))
    end = parse_time(status_block.get("completionTime"))
    spec_status = spec.get("status")
    condition = succeeded_condition(pipelinerun)

    if condition is None:
        if spec_status in CANCEL_SPEC_STATUSES:
            return BuildState(
                BuildStatus.CANCELLED, "Cancellation requested.", start, end, finished=False
            )
        return BuildState(
            BuildStatus.PENDING, "Waiting for the build to start.", start, end, finished=False
        )

    cond_status = condition.get("status")
    reason = condition.get("reason") or ""
    message = str(condition.get("message") or reason)
    finished = cond_status in ("True", "False")

    if spec_status == PENDING_SPEC_STATUS and not finished:
        return BuildState(BuildStatus.PENDING, message, start, end, finished=False)
    if cond_status == "True":
        return BuildState(BuildStatus.SUCCESS, message, start, end, finished=True)
    if cond_status == "False":
        if reason == TIMEOUT_REASON:
            status = BuildStatus.TIMEOUT
        elif reason in CANCEL_REASONS:
            status = BuildStatus.CANCELLED
        else:
            status = BuildStatus.FAILURE
        return BuildState(status, message, start, end, finished=True)
    if cond_status == "Unknown":
        if reason in _RUNNING_REASONS:
            status = BuildStatus.RUNNING
        elif reason in _PENDING_REASONS:
            status = BuildStatus.PENDING
        elif reason in CANCEL_REASONS:
            status = BuildStatus.CANCELLED
        else:
            status = BuildStatus.UNKNOWN
        return BuildState(status, message, start, end, finished=False)
    return BuildState(BuildStatus.UNKNOWN, message, start, end, finished=False)


def is_finished(pipelinerun: Mapping[str, Any]) -> bool:
    """Whether the run has ended (its ``Succeeded`` condition is ``True`` or ``False``)."""
    return build_state(pipelinerun).finished
