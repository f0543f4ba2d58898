"""Routes of a tool's jobs: ``/v1/tool/{tool}/jobs[/{name}[/logs|/restart]]`` (REFERENCE.md,
"Jobs API (v1)"). Thin: each calls one :class:`~toolforge_jobs.service.JobsService` method and
wraps its answer in the wire envelope.
"""

from __future__ import annotations

from typing import Annotated

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

__all__ = ["router"]

router = APIRouter()


@router.get(
    "/v1/tool/{tool}/jobs",
    tags=["jobs"],
    response_model=JobListResponse,
    responses=errors(VALIDATION),
)
async def list_jobs(tool: ToolName, service: Service) -> Response:
    """All jobs of the tool with their status."""
    result = await service.list_jobs(tool)
    # model_construct: the jobs are built and checked already; validating the list again
    # would run JobSpec's model validator once more per job.
    return json_reply(
        JobListResponse.model_construct(
            jobs=result.jobs, messages=Messages(warning=result.warnings)
        )
    )


@router.post(
    "/v1/tool/{tool}/jobs",
    tags=["jobs"],
    status_code=status.HTTP_201_CREATED,
    response_model=JobResponse,
    responses=errors(SPEC),
)
async def create_job(tool: ToolName, service: Service, spec: JobSpec) -> Response:
    """Create a job; 409 if one of that name exists, except a finished one-off job,
    which is replaced."""
    job, info = await service.create(tool, spec)
    return json_reply(JobResponse(job=job, messages=Messages(info=info)), status.HTTP_201_CREATED)


@router.patch(
    "/v1/tool/{tool}/jobs",
    tags=["jobs"],
    response_model=JobChangedResponse,
    responses=errors(SPEC),
)
async def upsert_job(tool: ToolName, service: Service, spec: JobSpec) -> Response:
    """Create or update one job (``toolforge jobs load``); ``messages.info`` says
    "created", "updated" or "already up to date"."""
    changed, message = await service.upsert(tool, spec)
    return json_reply(JobChangedResponse(job_changed=changed, messages=Messages(info=[message])))


@router.delete(
    "/v1/tool/{tool}/jobs",
    tags=["jobs"],
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
    response_model=JobResponse,
    responses=errors(NOT_FOUND, VALIDATION),
)
async def show_job(tool: ToolName, name: JobName, service: Service) -> Response:
    """One job with its status."""
    return json_reply(JobResponse(job=await service.show(tool, name)))


@router.delete(
    "/v1/tool/{tool}/jobs/{name}",
    tags=["jobs"],
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
    responses={
        200: {"description": "One LogLine JSON object per line (NDJSON)."},
        **errors(
            {404: "No such job, the job uses filelog, or it has no pods."},
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
    response_model=MessagesResponse,
    responses=errors({400: "One-off jobs cannot be restarted."}, NOT_FOUND, VALIDATION),
)
async def restart_job(tool: ToolName, name: JobName, service: Service) -> MessagesResponse:
    """Continuous: rolling restart; scheduled: run now; one-off: 400."""
    return MessagesResponse(messages=Messages(info=[await service.restart(tool, name)]))
