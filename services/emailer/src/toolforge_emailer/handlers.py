"""``GET /healthz`` (and ``/v1/healthz``): 200 while the daemon runs, 503 when it has stopped;
the body says whether this process leads and, if so, its queue lengths. The kit adds
``/metrics``. No route needs an identity."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

__all__ = ["router"]

router = APIRouter(tags=["meta"])


@router.get("/healthz")
@router.get("/v1/healthz")
async def healthz(request: Request) -> JSONResponse:
    """``{status: OK|ERROR, leader, queue_events, queue_mails}``."""
    health = request.app.state.emailer.health()
    ok = health.pop("ok")
    return JSONResponse(
        {"status": "OK" if ok else "ERROR", **health}, status_code=200 if ok else 503
    )
