"""The envvars API's FastAPI app, assembled from the kit (REFERENCE.md, "Envvars").

Routes: ``GET|POST /v1/tool/{tool}/envvars``, ``GET|DELETE /v1/tool/{tool}/envvars/{name}``,
``GET /v1/tool/{tool}/quotas`` (the tool from the gateway's identity), ``GET /v1/healthz``,
``GET /metrics`` (``/v1/metrics``), ``GET /openapi.json``. Success bodies carry ``messages``;
errors are ``{"error": [...]}`` with the status; a rule broken is 400.
"""

from __future__ import annotations

from fastapi import FastAPI, status

from toolforge_envvars import factory
from toolforge_envvars.handlers import envvars, meta
from toolforge_envvars.models import InvalidEnvvar
from toolforge_envvars.settings import EnvvarsSettings
from toolforge_kit.app import create_backend_app
from toolforge_kit.metrics import ServiceMetrics
from toolforge_kit.wire import render_error

__all__ = ["create_app"]


def create_app(settings: EnvvarsSettings) -> FastAPI:
    """The envvars API app for ``settings``; its client is opened by the lifespan.

    Raises:
        OSError, ValueError: the backend CA file cannot be loaded.
    """
    metrics = ServiceMetrics("toolforge_envvars")
    return create_backend_app(
        settings,
        title="Toolforge envvars API",
        description="Environment variables (secrets) of Toolforge tools, injected into their "
        "pods (reached through the API gateway at /envvars/...).",
        metrics=metrics,
        lifespan=factory.lifespan(settings, metrics),
        routers=[meta.router, envvars.router],
        render_error=render_error,
        body_validation_status=status.HTTP_400_BAD_REQUEST,
        bad_request_errors=[InvalidEnvvar],
    )
