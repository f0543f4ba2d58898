"""Routes of a tool's jobs: ``/v1/tool/{tool}/jobs[/{name}[/logs|/restart]]`` (REFERENCE.md,
"Jobs API (v1)"). Thin: each calls one :class:`~toolforge_jobs.service.JobsService` method and
wraps its answer in the wire envelope.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Response, status

from toolforge_jobs.handlers.common import (
    NOT_FOUND,
    SPEC,
    VALIDATION,
    JobName,
    Metrics,
    Service,
    errors,
)
from toolforge_jobs.models import (
    JobChangedResponse,
    JobListResponse,
    JobResponse,
    JobSpec,
    Messages,
    MessagesResponse,
)
from toolforge_kit.app import ToolName, json_reply
from toolforge_kit.streaming import NDJSONStreamingResponse

#: ``include_unset`` of list and show (REFERENCE.md, "The wire as production serves it").
IncludeUnset = Annotated[
    bool,
    Query(
        description="false: leave out the fields the user never set (what `dump` writes, "
        "and `load` accepts back)."
    ),
]


def _json(body: dict[str, Any], status_code: int = status.HTTP_200_OK) -> Response:
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


def _messages(messages: Messages) -> dict[str, Any]:
    return messages.model_dump(mode="json")


__all__ = ["router"]

router = APIRouter()


@router.get(
    "/v1/tool/{tool}/jobs",
    tags=["jobs"],
    operation_id="jobs_list_jobs",
    response_model=JobListResponse,
    responses=errors(VALIDATION),
)
async def list_jobs(
    tool: ToolName, service: Service, include_unset: IncludeUnset = True
) -> Response:
    """All jobs of the tool with their status; each job has the shape of its type."""
    result = await service.list_jobs(tool)
    jobs = [job.wire(tool=tool, include_unset=include_unset) for job in result.jobs]
    return _json({"jobs": jobs, "messages": _messages(Messages(warning=result.warnings))})


@router.post(
    "/v1/tool/{tool}/jobs",
    tags=["jobs"],
    status_code=status.HTTP_201_CREATED,
    operation_id="jobs_create_job",
    response_model=JobResponse,
    responses=errors(SPEC),
)
async def create_job(tool: ToolName, service: Service, spec: JobSpec) -> Response:
    """Create a job; 409 if one of that name exists, except a finished one-off job,
    which is replaced."""
    job, info = await service.create(tool, spec)
    body = {"job": job.wire(tool=tool), "messages": _messages(Messages(info=info))}
    return _json(body, status.HTTP_201_CREATED)


@router.patch(
    "/v1/tool/{tool}/jobs",
    tags=["jobs"],
    operation_id="jobs_upsert_job",
    response_model=JobChangedResponse,
    responses=errors(SPEC),
)
async def upsert_job(tool: ToolName, service: Service, spec: JobSpec) -> Response:
    """Create or update one job (``toolforge jobs load``); ``messages.info`` is
    ``Job NAME created``, ``Job NAME was updated in storage and runtime`` or ``Job NAME is
    already up to date``."""
    changed, message = await service.upsert(tool, spec)
    return json_reply(JobChangedResponse(job_changed=changed, messages=Messages(info=[message])))


@router.delete(
    "/v1/tool/{tool}/jobs",
    tags=["jobs"],
    operation_id="jobs_flush_jobs",
    response_model=MessagesResponse,
    responses=errors(VALIDATION),
)
async def flush_jobs(tool: ToolName, service: Service) -> MessagesResponse:
    """Delete every job of the tool."""
    await service.flush(tool)
    return MessagesResponse(messages=Messages(info=["All jobs deleted"]))


@router.get(
    "/v1/tool/{tool}/jobs/{name}",
    tags=["jobs"],
    operation_id="jobs_show_job",
    response_model=JobResponse,
    responses=errors(NOT_FOUND, VALIDATION),
)
async def show_job(
    tool: ToolName, name: JobName, service: Service, include_unset: IncludeUnset = True
) -> Response:
    """One job with its status, in the shape of its type."""
    job = await service.show(tool, name)
    return _json(
        {"job": job.wire(tool=tool, include_unset=include_unset), "messages": _messages(Messages())}
    )


@router.delete(
    "/v1/tool/{tool}/jobs/{name}",
    tags=["jobs"],
    operation_id="jobs_delete_job",
    response_model=MessagesResponse,
    responses=errors(NOT_FOUND, VALIDATION),
)
async def delete_job(tool: ToolName, name: JobName, service: Service) -> MessagesResponse:
    """Delete a job with its pods."""
    await service.delete(tool, name)
    return MessagesResponse(messages=Messages(info=[f"Job '{name}' deleted"]))


@router.get(
    "/v1/tool/{tool}/jobs/{name}/logs",
    tags=["jobs"],
    response_class=NDJSONStreamingResponse,
    status_code=status.HTTP_200_OK,
    operation_id="jobs_job_logs",
    responses={
        200: {"description": "One LogLine JSON object per line (NDJSON)."},
        **errors(
            {
                404: "No such job; or \"Job 'x' does not have any logs available\": it uses "
                "filelog, has no pods, or (not following) has no output yet."
            },
            VALIDATION,
            json_only=True,
        ),
    },
)
async def job_logs(
    tool: ToolName,
    name: JobName,
    service: Service,
    metrics: Metrics,
    follow: Annotated[bool, Query(description="Keep streaming until the job's pods end.")] = False,
    lines: Annotated[
        int | None, Query(ge=1, le=100_000, description="Only the last N lines.")
    ] = None,
) -> Response:
    """The job's log lines ``{pod, container, datetime, message}``, streamed."""
    body = await service.open_logs(tool, name, follow=follow, lines=lines)
    return NDJSONStreamingResponse(
        body, on_open=metrics.log_streams.inc, on_close=metrics.log_streams.dec
    )


@router.post(
    "/v1/tool/{tool}/jobs/{name}/restart",
    tags=["jobs"],
    operation_id="jobs_restart_job",
    response_model=MessagesResponse,
    responses=errors({400: "One-off jobs cannot be restarted."}, NOT_FOUND, VALIDATION),
)
async def restart_job(tool: ToolName, name: JobName, service: Service) -> MessagesResponse:
    """Continuous: rolling restart; scheduled: run now; one-off: 400."""
    return MessagesResponse(messages=Messages(info=[await service.restart(tool, name)]))
