"""Routes of a tool's images in the registry and its quotas: ``POST /v1/tool/{tool}/clean``,
``GET /v1/tool/{tool}/quotas``."""

from __future__ import annotations

from fastapi import APIRouter, Response

from toolforge_builds.handlers.common import REGISTRY, Service, errors
from toolforge_builds.models import CleanResponse, Messages, QuotaResponse
from toolforge_kit.app import ToolName, json_reply

__all__ = ["router"]

router = APIRouter()


@router.post(
    "/v1/tool/{tool}/clean",
    tags=["registry"],
    response_model=CleanResponse,
    responses=errors(REGISTRY),
)
async def clean(tool: ToolName, service: Service) -> Response:
    """Delete all images of the tool (repositories ``tool-<tool>/...``) from the registry.
    Their disk space is freed by the registry's next garbage collection."""
    result = await service.clean(tool)
    if result.images:
        count = len(result.images)
        info = [
            f"Deleted {count} image{'s' if count != 1 else ''} "
            f"({result.manifests} manifest{'s' if result.manifests != 1 else ''}) "
            f"from the registry: {', '.join(result.images)}"
        ]
    else:
        info = ["The tool has no images in the registry; nothing was deleted."]
    return json_reply(
        CleanResponse(
            deleted_images=list(result.images),
            deleted_manifests=result.manifests,
            messages=Messages(info=info),
        )
    )


@router.get(
    "/v1/tool/{tool}/quotas",
    tags=["quotas"],
    response_model=QuotaResponse,
    responses=errors(REGISTRY),
)
async def quotas(tool: ToolName, service: Service) -> Response:
    """The tool's quotas and their use: parallel builds (category ``Builds``) and registry
    storage (category ``Registry``, item ``Storage``, with exact ``limit_bytes`` and
    ``used_bytes``: the distinct blobs of the tool's tagged images)."""
    return json_reply(QuotaResponse(quota=await service.quotas(tool)))
