"""Routes about the API itself that need no identity: ``GET /v1/healthz`` (the kit adds
``/metrics``; FastAPI serves ``/openapi.json``)."""

from __future__ import annotations

from fastapi import APIRouter

from toolforge_builds.models import HealthResponse

__all__ = ["router"]

router = APIRouter(tags=["meta"])


@router.get("/v1/healthz", response_model=HealthResponse, operation_id="builds_healthz")
async def healthz() -> HealthResponse:
    """The process is up (no cluster check)."""
    return HealthResponse(status="OK")
