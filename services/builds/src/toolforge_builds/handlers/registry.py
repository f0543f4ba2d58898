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
    operation_id="builds_clean",
    response_model=CleanResponse,
    responses=errors(REGISTRY),
)
async def clean(tool: ToolName, service: Service) -> Response:
    """Delete all images of the tool (repositories ``tool-<tool>/...``) from the registry.
    Their disk space is freed by the registry's next garbage collection."""
    result = await service.clean(tool)
    if result.images:
        # upstream's wording ("Deleted N artifacts"): N counts manifests, an index with each
        # of its children
        info = [
            f"Deleted {result.manifests} artifacts from the registry "
            f"({', '.join(result.images)}); their space is freed at the registry's next "
            "garbage collection"
        ]
    else:
        info = ["Nothing to clean up"]
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
    operation_id="builds_get_quotas",
    response_model=QuotaResponse,
    responses=errors(REGISTRY),
)
async def quotas(tool: ToolName, service: Service) -> Response:
    """The tool's quotas and their use: registry storage (category ``Registry``, item
    ``Storage``: the distinct blobs of the tool's tagged images; exact bytes in
    ``storage_bytes``) and parallel builds (category ``Builds``)."""
    return json_reply(QuotaResponse(quota=await service.quotas(tool)))
