"""Routes about a tool's platform: ``/v1/tool/{tool}/images`` and ``/v1/tool/{tool}/quotas``."""

from __future__ import annotations

from fastapi import APIRouter, Response

from toolforge_jobs.handlers.common import VALIDATION, Service, errors
from toolforge_jobs.models import ImagesResponse, Messages, QuotaResponse
from toolforge_kit.app import ToolName, json_reply

__all__ = ["router"]

router = APIRouter()


@router.get(
    "/v1/tool/{tool}/images",
    tags=["images"],
    operation_id="jobs_images",
    response_model=ImagesResponse,
    responses=errors(VALIDATION),
)
async def images(tool: ToolName, service: Service) -> ImagesResponse:
    """The images jobs may use: ``imagename`` is a ``shortname`` or one of its ``aliases``;
    then the tool's own build service images (``tool-<tool>/<name>:<tag>``)."""
    images, warnings = await service.images(tool)
    return ImagesResponse(images=images, messages=Messages(warning=warnings))


@router.get(
    "/v1/tool/{tool}/quotas",
    tags=["quotas"],
    operation_id="jobs_quotas",
    response_model=QuotaResponse,
    responses=errors(VALIDATION),
)
async def quotas(tool: ToolName, service: Service) -> Response:
    """The tool's quota and its use, in human units (``used`` absent for per-job limits)."""
    return json_reply(QuotaResponse(quota=await service.quota(tool)), exclude_none=True)
