"""The builds API's FastAPI app, assembled from the kit
(:func:`toolforge_kit.create_backend_app`), the wiring (:mod:`toolforge_builds.factory`) and the
routes (:mod:`toolforge_builds.handlers`).

Routes (REFERENCE.md "Builds API (v1)"); every ``/v1/tool/{tool}/...`` route needs the
gateway's mTLS identity (:data:`toolforge_kit.ToolName`: 401 without the
gateway's certificate or identity header, 403 for another tool's path):

- ``POST /v1/tool/{tool}/builds`` start; ``GET /v1/tool/{tool}/builds`` list (newest first);
- ``GET /v1/tool/{tool}/builds/latest``; ``GET``/``DELETE /v1/tool/{tool}/builds/{id}``;
- ``PUT /v1/tool/{tool}/builds/{id}/cancel``; ``GET /v1/tool/{tool}/builds/{id}/logs?follow=``;
- ``POST /v1/tool/{tool}/clean`` (delete the tool's images from the registry);
- ``GET /v1/tool/{tool}/quotas`` (parallel builds and registry storage);
- ``GET /v1/healthz``, ``GET /metrics`` (also ``/v1/metrics``), ``GET /openapi.json``.

Every success carries ``messages: {info, warning, error}``; every error (ours, request
validation, routing, auth) is :class:`~toolforge_builds.models.ErrorResponse`, upstream's
top-level ``error`` list plus the same in ``messages.error``. Unexpected exceptions answer 500
with a generic message; the traceback goes to the log only. Every route answers with and
without a trailing ``/`` (no redirect), and a 405 lists all methods of the path in ``Allow``
(both from :func:`toolforge_kit.create_backend_app`). Every operation has a stable
``operationId`` (``builds_*``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, status
from starlette.types import ASGIApp, Receive, Scope, Send

from toolforge_builds import factory
from toolforge_builds.handlers import builds, meta, registry
from toolforge_builds.models import BuildLogLine, error_response, validation_messages
from toolforge_builds.rules import TRUSTED_SOURCE_PREFIXES
from toolforge_builds.settings import BuildsSettings
from toolforge_kit.app import create_backend_app, document_ndjson
from toolforge_kit.metrics import ServiceMetrics

__all__ = ["create_app"]


def _error_body(errors: list[str]) -> dict[str, Any]:
    return error_response(*errors).model_dump(mode="json")


def _validation_messages(errors: Sequence[Mapping[str, Any]]) -> list[str]:
    return validation_messages(errors)


def create_app(settings: BuildsSettings) -> FastAPI:
    """The builds API app for ``settings``. Its clients are opened by the app's lifespan
    (:func:`toolforge_builds.factory.lifespan`) and closed at shutdown.

    Raises:
        OSError, ValueError: the backend CA file cannot be loaded.
    """
    metrics = ServiceMetrics("toolforge_builds")
    app = create_backend_app(
        settings,
        title="Toolforge builds API",
        description="Container image builds of Toolforge tools with Tekton and Cloud Native "
        "Buildpacks (reached through the API gateway at /builds/...).",
        metrics=metrics,
        lifespan=factory.lifespan(settings, metrics),
        routers=[meta.router, builds.router, registry.router],
        render_error=_error_body,
        validation_messages=_validation_messages,
        # A bad start request is a 400 naming the field (REFERENCE.md: "Bad input").
        body_validation_status=status.HTTP_400_BAD_REQUEST,
    )
    if settings.trusted_source_prefixes:
        app.add_middleware(TrustedSources, prefixes=tuple(settings.trusted_source_prefixes))
    document_ndjson(app, "/v1/tool/{tool}/builds/{build_id}/logs", "get", BuildLogLine)
    _name_kit_operations(app)
    return app


class TrustedSources:
    """ASGI middleware: sets :data:`~toolforge_builds.rules.TRUSTED_SOURCE_PREFIXES` to
    ``prefixes`` (settings ``trusted_source_prefixes``) while a request is handled, so the
    start request's validation accepts the platform's own git servers. A pure ASGI
    middleware runs the route in the same task, so the value is seen there."""

    def __init__(self, app: ASGIApp, prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = TRUSTED_SOURCE_PREFIXES.set(self.prefixes)
        try:
            await self.app(scope, receive, send)
        finally:
            TRUSTED_SOURCE_PREFIXES.reset(token)


def _name_kit_operations(app: FastAPI) -> None:
    """Stable ``operationId``\\s for the kit's routes (``/metrics``, ``/v1/metrics``), which
    FastAPI would name after the function and path: set on the served spec."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original()
            for path, item in schema["paths"].items():
                for method, operation in item.items():
                    if not str(operation.get("operationId", "")).startswith("builds_"):
                        slug = path.strip("/").replace("/", "_") or "root"
                        operation["operationId"] = f"builds_{slug}_{method}"
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
