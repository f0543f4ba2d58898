"""``GET /v1/healthz`` (no identity; the kit adds ``/metrics``)."""

from __future__ import annotations

from fastapi import APIRouter

from toolforge_kit.wire import HealthResponse

__all__ = ["router"]

router = APIRouter(tags=["meta"])


@router.get("/v1/healthz", response_model=HealthResponse)
async def healthz() -> HealthResponse:
    """The process is up (no store check)."""
    return HealthResponse()
