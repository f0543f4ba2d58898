"""Routes of a tool's builds: ``/v1/tool/{tool}/builds[/latest|/{id}[/cancel|/logs]]``
(REFERENCE.md, "Builds API (v1)"). Thin: each calls one
:class:`~toolforge_builds.service.BuildsService` method and wraps its answer.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from toolforge_builds.handlers.common import NOT_FOUND, BuildId, Service, errors
from toolforge_builds.models import (
    BuildRequest,
    BuildResponse,
    BuildsResponse,
    CancelResponse,
    DeleteResponse,
    Messages,
    StartResponse,
)
from toolforge_kit.app import ToolName, json_reply
from toolforge_kit.streaming import NDJSONStreamingResponse

__all__ = ["router"]

router = APIRouter()


@router.post(
    "/v1/tool/{tool}/builds",
    tags=["builds"],
    operation_id="builds_start",
    response_model=StartResponse,
    responses=errors(
        {
            400: (
                "A field breaks a rule (messages name it), or the repository or ref "
                "cannot be resolved; nothing is created."
            ),
            409: "N out of N builds running (the parallel-build quota).",
        }
    ),
)
async def start_build(tool: ToolName, service: Service, request: BuildRequest) -> Response:
    """Start a build of a public git repository."""
    new_build, warnings = await service.start(tool, request)
    return json_reply(StartResponse(new_build=new_build, messages=Messages(warning=warnings)))


@router.get(
    "/v1/tool/{tool}/builds",
    tags=["builds"],
    operation_id="builds_list",
    response_model=BuildsResponse,
    responses=errors(),
)
async def list_builds(tool: ToolName, service: Service) -> Response:
    """The tool's builds, newest first."""
    return json_reply(BuildsResponse(builds=await service.list_builds(tool)))


@router.get(
    "/v1/tool/{tool}/builds/latest",
    tags=["builds"],
    operation_id="builds_get_latest",
    response_model=BuildResponse,
    responses=errors({404: "No builds exist yet."}),
)
async def latest_build(tool: ToolName, service: Service) -> Response:
    """The tool's newest build."""
    return json_reply(BuildResponse(build=await service.latest(tool)))


@router.get(
    "/v1/tool/{tool}/builds/{build_id}",
    tags=["builds"],
    operation_id="builds_get",
    response_model=BuildResponse,
    responses=errors(NOT_FOUND),
)
async def show_build(tool: ToolName, build_id: BuildId, service: Service) -> Response:
    """One build."""
    return json_reply(BuildResponse(build=await service.show(tool, build_id)))


@router.delete(
    "/v1/tool/{tool}/builds/{build_id}",
    tags=["builds"],
    operation_id="builds_delete",
    response_model=DeleteResponse,
    responses=errors(NOT_FOUND),
)
async def delete_build(tool: ToolName, build_id: BuildId, service: Service) -> Response:
    """Delete a build (its PipelineRun, TaskRuns and pods)."""
    await service.delete(tool, build_id)
    return json_reply(
        DeleteResponse(id=build_id, messages=Messages(info=[f"Build '{build_id}' deleted"]))
    )


@router.put(
    "/v1/tool/{tool}/builds/{build_id}/cancel",
    tags=["builds"],
    operation_id="builds_cancel",
    response_model=CancelResponse,
    responses=errors(NOT_FOUND, {409: "The build has already finished."}),
)
async def cancel_build(tool: ToolName, build_id: BuildId, service: Service) -> Response:
    """Cancel a pending or running build (PipelineRun ``spec.status: Cancelled``)."""
    await service.cancel(tool, build_id)
    return json_reply(
        CancelResponse(
            id=build_id, messages=Messages(info=[f"Build '{build_id}' is being cancelled"])
        )
    )


@router.get(
    "/v1/tool/{tool}/builds/{build_id}/logs",
    tags=["builds"],
    operation_id="builds_get_logs",
    response_class=NDJSONStreamingResponse,
    status_code=status.HTTP_200_OK,
    responses={
        200: {"description": "One BuildLogLine JSON object per line (NDJSON)."},
        **errors({404: "No such build, or it has no logs yet."}, json_only=True),
    },
)
async def build_logs(
    tool: ToolName,
    build_id: BuildId,
    service: Service,
    follow: Annotated[
        bool, Query(description="Wait for the build to start, stream until it ends.")
    ] = False,
) -> Response:
    """The build's log, ``{"line": "[step] <timestamp> text"}`` per line; credential
    steps hidden, secrets scrubbed."""
    body = await service.logs(tool, build_id, follow=follow)
    return NDJSONStreamingResponse(body)
