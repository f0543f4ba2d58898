"""The builds API's FastAPI app: thin handlers over
:class:`~toolforge_builds.service.BuildsService`.

Routes (REFERENCE.md "Builds API (v1)"); every ``/v1/tool/{tool}/...`` route needs the
gateway's mTLS identity (:data:`toolforge_auth.dependencies.CurrentTool`: 401 without the
gateway's certificate or identity header, 403 for another tool's path):

- ``POST /v1/tool/{tool}/builds`` start; ``GET /v1/tool/{tool}/builds`` list (newest first);
- ``GET /v1/tool/{tool}/builds/latest``; ``GET``/``DELETE /v1/tool/{tool}/builds/{id}``;
- ``PUT /v1/tool/{tool}/builds/{id}/cancel``; ``GET /v1/tool/{tool}/builds/{id}/logs?follow=``;
- ``POST /v1/tool/{tool}/clean`` (delete the tool's images from the registry);
- ``GET /v1/tool/{tool}/quotas`` (parallel builds and registry storage);
- ``GET /v1/healthz``, ``GET /metrics`` (also ``/v1/metrics``), ``GET /openapi.json``.

Every response is an envelope with ``messages: {info, warning, error}``; every error (ours,
request validation, routing, auth) is that envelope with ``error`` filled. Unexpected
exceptions answer 500 with a generic message; the traceback goes to the log only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from toolforge_auth.dependencies import CurrentTool, install_auth
from toolforge_builds.errors import BuildsAPIError
from toolforge_builds.models import (
    BuildLogLine,
    BuildRequest,
    BuildResponse,
    BuildsResponse,
    CancelResponse,
    CleanResponse,
    DeleteResponse,
    HealthResponse,
    Messages,
    QuotaResponse,
    ResponseEnvelope,
    StartResponse,
    error_response,
    validation_messages,
)
from toolforge_builds.registry import RegistryClient
from toolforge_builds.service import BuildsService
from toolforge_builds.settings import BuildsSettings
from toolforge_builds.storage import KubeStorage

__all__ = ["NDJSON", "create_app"]

_log = logging.getLogger(__name__)
NDJSON = "application/x-ndjson"
_Responses = dict[int | str, dict[str, Any]]


def _error(description: str) -> dict[str, Any]:
    return {"model": ResponseEnvelope, "description": description}


_AUTH: _Responses = {
    401: _error("No gateway client certificate, or no valid identity header."),
    403: _error("Another tool's path, or a service identity."),
    422: _error("A path or query parameter breaks a rule; messages name it."),
    502: _error("The cluster answered something unexpected."),
    503: _error("kube-apiserver cannot be reached; see Retry-After."),
}
_NOT_FOUND: _Responses = {404: _error("No such build of this tool.")}
_REGISTRY: _Responses = {
    502: _error(
        "The cluster answered something unexpected, or the image registry refused the "
        "builds API or answered something unexpected (details are logged, not returned)."
    ),
    503: _error("kube-apiserver or the image registry cannot be reached; see Retry-After."),
}


def _responses(*groups: Mapping[int | str, dict[str, Any]]) -> _Responses:
    merged: _Responses = {}
    for group in (_AUTH, *groups):
        merged.update(group)
    return dict(sorted(merged.items(), key=lambda kv: str(kv[0])))


def _as_json(responses: _Responses) -> _Responses:
    """Error responses of a streamed route: always JSON envelopes, not NDJSON."""
    ref = {"$ref": "#/components/schemas/ResponseEnvelope"}
    return {
        code: {"description": r["description"], "content": {"application/json": {"schema": ref}}}
        for code, r in responses.items()
    }


class _Metrics:
    """Prometheus metrics of one app instance (own registry)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "toolforge_builds_http_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "toolforge_builds_http_request_duration_seconds",
            "Time to the end of the response, by route template.",
            ["route"],
            registry=self.registry,
        )


class _MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: _Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = 500

        async def send_status(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(route, scope["method"], str(status_code)).inc()
            self.metrics.duration.labels(route).observe(time.perf_counter() - started)


def _envelope(
    status_code: int, errors: list[str], headers: Mapping[str, str] | None = None
) -> Response:
    return JSONResponse(
        error_response(*errors).model_dump(mode="json"),
        status_code=status_code,
        headers=dict(headers or {}),
    )


def _install_error_handlers(app: FastAPI) -> None:
    async def builds_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BuildsAPIError)  # noqa: S101 - registered for this type only
        return _envelope(exc.status_code, [exc.message], exc.headers)

    async def validation_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)  # noqa: S101
        errors = list(exc.errors())
        body_errors = any((e.get("loc") or ("",))[0] == "body" for e in errors)
        # A bad start request is a 400 naming the field (REFERENCE.md, issue: "Bad input").
        code = status.HTTP_400_BAD_REQUEST if body_errors else status.HTTP_422_UNPROCESSABLE_CONTENT
        return _envelope(code, validation_messages(errors))

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101
        return _envelope(exc.status_code, [str(exc.detail)], exc.headers)

    async def unexpected(request: Request, exc: Exception) -> Response:
        _log.error(
            "%s %s failed",
            request.method,
            request.url.path,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        return _envelope(500, ["internal error of the builds API; it has been logged"])

    app.add_exception_handler(BuildsAPIError, builds_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


def _reply(model: BaseModel, status_code: int = status.HTTP_200_OK) -> Response:
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")


def _service(request: Request) -> BuildsService:
    service: BuildsService = request.app.state.builds_service
    return service


Service = Annotated[BuildsService, Depends(_service)]


async def _tool_name(
    tool: Annotated[str, Path(description="The tool's name (the CN of its certificate).")],
    identity: CurrentTool,
) -> str:
    return identity.name


Tool = Annotated[str, Depends(_tool_name)]
BuildId = Annotated[str, Path(max_length=253, description="The build id (its PipelineRun's name).")]


def create_app(settings: BuildsSettings) -> FastAPI:
    """The builds API app for ``settings``. The kube-apiserver client is opened by the app's
    lifespan (startup) and closed at shutdown.

    Raises:
        OSError, ValueError: the backend CA file cannot be loaded.
    """
    metrics = _Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        registry = RegistryClient.from_settings(settings)
        try:
            storage = await KubeStorage.connect(settings)
        except BaseException:
            await registry.close()
            raise
        app.state.builds_service = BuildsService(storage, settings, registry)
        try:
            yield
        finally:
            await storage.close()
            await registry.close()

    app = FastAPI(
        title="Toolforge builds API",
        version="1.0.0",
        description="Container image builds of Toolforge tools with Tekton and Cloud Native "
        "Buildpacks (reached through the API gateway at /builds/...).",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    install_auth(app, settings.auth_settings())
    _install_error_handlers(app)
    app.add_middleware(_MetricsMiddleware, metrics=metrics)

    @app.get("/v1/healthz", tags=["meta"], response_model=HealthResponse)
    async def healthz() -> HealthResponse:
        """The process is up (no cluster check)."""
        return HealthResponse(status="OK")

    async def metrics_exposition() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    for path in ("/metrics", "/v1/metrics"):
        app.add_api_route(
            path,
            metrics_exposition,
            methods=["GET"],
            tags=["meta"],
            summary="Prometheus metrics",
            response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
        )

    @app.post(
        "/v1/tool/{tool}/builds",
        tags=["builds"],
        response_model=StartResponse,
        responses=_responses(
            {
                400: _error(
                    "A field breaks a rule (messages name it), or the repository or ref "
                    "cannot be resolved; nothing is created."
                ),
                409: _error("N out of N builds running (the parallel-build quota)."),
            }
        ),
    )
    async def start_build(tool: Tool, service: Service, request: BuildRequest) -> Response:
        """Start a build of a public git repository."""
        new_build, warnings = await service.start(tool, request)
        return _reply(StartResponse(new_build=new_build, messages=Messages(warning=warnings)))

    @app.get(
        "/v1/tool/{tool}/builds",
        tags=["builds"],
        response_model=BuildsResponse,
        responses=_responses(),
    )
    async def list_builds(tool: Tool, service: Service) -> Response:
        """The tool's builds, newest first."""
        return _reply(BuildsResponse(builds=await service.list_builds(tool)))

    @app.get(
        "/v1/tool/{tool}/builds/latest",
        tags=["builds"],
        response_model=BuildResponse,
        responses=_responses({404: _error("No builds exist yet.")}),
    )
    async def latest_build(tool: Tool, service: Service) -> Response:
        """The tool's newest build."""
        return _reply(BuildResponse(build=await service.latest(tool)))

    @app.get(
        "/v1/tool/{tool}/builds/{build_id}",
        tags=["builds"],
        response_model=BuildResponse,
        responses=_responses(_NOT_FOUND),
    )
    async def show_build(tool: Tool, build_id: BuildId, service: Service) -> Response:
        """One build."""
        return _reply(BuildResponse(build=await service.show(tool, build_id)))

    @app.delete(
        "/v1/tool/{tool}/builds/{build_id}",
        tags=["builds"],
        response_model=DeleteResponse,
        responses=_responses(_NOT_FOUND),
    )
    async def delete_build(tool: Tool, build_id: BuildId, service: Service) -> Response:
        """Delete a build (its PipelineRun, TaskRuns and pods)."""
        await service.delete(tool, build_id)
        return _reply(
            DeleteResponse(id=build_id, messages=Messages(info=[f"Build '{build_id}' deleted"]))
        )

    @app.put(
        "/v1/tool/{tool}/builds/{build_id}/cancel",
        tags=["builds"],
        response_model=CancelResponse,
        responses=_responses(_NOT_FOUND, {409: _error("The build has already finished.")}),
    )
    async def cancel_build(tool: Tool, build_id: BuildId, service: Service) -> Response:
        """Cancel a pending or running build (PipelineRun ``spec.status: Cancelled``)."""
        await service.cancel(tool, build_id)
        return _reply(
            CancelResponse(
                id=build_id, messages=Messages(info=[f"Build '{build_id}' is being cancelled"])
            )
        )

    @app.get(
        "/v1/tool/{tool}/builds/{build_id}/logs",
        tags=["builds"],
        response_class=StreamingResponse,
        responses={
            200: {"description": "One BuildLogLine JSON object per line (NDJSON)."},
            **_as_json(_responses({404: _error("No such build, or it has no logs yet.")})),
        },
    )
    async def build_logs(
        tool: Tool,
        build_id: BuildId,
        service: Service,
        follow: Annotated[
            bool, Query(description="Wait for the build to start, stream until it ends.")
        ] = False,
    ) -> Response:
        """The build's log, ``{"line": "[step] <timestamp> text"}`` per line; credential
        steps hidden, secrets scrubbed."""
        body = await service.logs(tool, build_id, follow=follow)
        return StreamingResponse(
            body,
            media_type=NDJSON,
            headers={"X-Accel-Buffering": "no", "Cache-Control": "no-store"},
        )

    @app.post(
        "/v1/tool/{tool}/clean",
        tags=["registry"],
        response_model=CleanResponse,
        responses=_responses(_REGISTRY),
    )
    async def clean(tool: Tool, service: Service) -> Response:
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
        return _reply(
            CleanResponse(
                deleted_images=list(result.images),
                deleted_manifests=result.manifests,
                messages=Messages(info=info),
            )
        )

    @app.get(
        "/v1/tool/{tool}/quotas",
        tags=["quotas"],
        response_model=QuotaResponse,
        responses=_responses(_REGISTRY),
    )
    async def quotas(tool: Tool, service: Service) -> Response:
        """The tool's quotas and their use: parallel builds (category ``Builds``) and registry
        storage (category ``Registry``, item ``Storage``, with exact ``limit_bytes`` and
        ``used_bytes``: the distinct blobs of the tool's tagged images)."""
        return _reply(QuotaResponse(quota=await service.quotas(tool)))

    original_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original_openapi()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components["BuildLogLine"] = BuildLogLine.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            logs = schema["paths"]["/v1/tool/{tool}/builds/{build_id}/logs"]["get"]
            logs["responses"]["200"]["content"] = {
                NDJSON: {"schema": {"$ref": "#/components/schemas/BuildLogLine"}}
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
