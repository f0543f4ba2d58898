"""Routes of a tool's variables: ``/v1/tool/{tool}/envvars[/{name}]`` and ``/quotas``
(REFERENCE.md, "Envvars"). Every route answers with and without a trailing ``/``.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from toolforge_envvars.handlers.common import NOT_FOUND, EnvvarName, Service, errors
from toolforge_envvars.models import EnvvarResponse, EnvvarsResponse, NewEnvvar, QuotaResponse
from toolforge_kit.app import ToolName, json_reply
from toolforge_kit.wire import Messages

__all__ = ["router"]

router = APIRouter(tags=["envvars"])


@router.get("/v1/tool/{tool}/envvars", response_model=EnvvarsResponse, responses=errors())
async def list_envvars(tool: ToolName, service: Service) -> Response:
    """Every variable of the tool with its value (clients hide values unless asked)."""
    return json_reply(EnvvarsResponse(envvars=await service.list(tool)))


@router.post(
    "/v1/tool/{tool}/envvars",
    response_model=EnvvarResponse,
    responses=errors({409: "The tool has max_variables variables already."}),
)
async def create_envvar(tool: ToolName, service: Service, envvar: NewEnvvar) -> Response:
    """Create or replace a variable. Pods get it when they are created (restart a continuous
    job to give it to its pods)."""
    stored, new = await service.put(tool, envvar.name, envvar.value)
    info = f"Envvar '{stored.name}' {'created' if new else 'updated'}"
    return json_reply(
        EnvvarResponse(envvar=stored, messages=Messages(info=[info])),
        status.HTTP_200_OK,
    )


@router.get(
    "/v1/tool/{tool}/envvars/{name}", response_model=EnvvarResponse, responses=errors(NOT_FOUND)
)
async def show_envvar(tool: ToolName, name: EnvvarName, service: Service) -> Response:
    """One variable with its value."""
    return json_reply(EnvvarResponse(envvar=await service.show(tool, name)))


@router.delete(
    "/v1/tool/{tool}/envvars/{name}", response_model=EnvvarResponse, responses=errors(NOT_FOUND)
)
async def delete_envvar(tool: ToolName, name: EnvvarName, service: Service) -> Response:
    """Delete a variable; the answer holds its last value (as upstream)."""
    gone = await service.delete(tool, name)
    info = f"Envvar '{name}' deleted"
    return json_reply(EnvvarResponse(envvar=gone, messages=Messages(info=[info])))


@router.get("/v1/tool/{tool}/quotas", response_model=QuotaResponse, responses=errors())
async def envvars_quota(tool: ToolName, service: Service) -> Response:
    """How many variables the tool may have and has."""
    return json_reply(QuotaResponse(quota=await service.quota(tool)))
