"""The jobs API's FastAPI app: thin handlers over :class:`~toolforge_jobs.service.JobsService`.

Routes (REFERENCE.md, "Jobs API (v1)"), all tool routes behind the gateway's mTLS identity
(:data:`toolforge_auth.dependencies.CurrentTool`: 401 without the gateway's certificate or
identity header, 403 for another tool):

- ``GET/POST/PATCH/DELETE /v1/tool/{tool}/jobs``: list, create (201), upsert, flush;
- ``GET/DELETE /v1/tool/{tool}/jobs/{name}``: show, delete;
- ``GET /v1/tool/{tool}/jobs/{name}/logs?follow=&lines=``: NDJSON stream;
- ``POST /v1/tool/{tool}/jobs/{name}/restart``;
- ``GET /v1/tool/{tool}/images``, ``GET /v1/tool/{tool}/quotas``;
- ``GET /v1/healthz``, ``GET /metrics`` (also ``/v1/metrics``), ``GET /openapi.json``: no identity.

Every response is an envelope with ``messages: {info, warning, error}``; every error - ours,
FastAPI's request validation (422, messages naming the field), routing (404/405) and auth
(401/403) - is that envelope with ``error`` filled. Unexpected exceptions answer 500 with a
generic message; the traceback goes to the log only.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
from fastapi import Depends, FastAPI, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from toolforge_auth.dependencies import CurrentTool, install_auth
from toolforge_jobs.cache import ObjectCache
from toolforge_jobs.errors import JobsAPIError, JobSpecError
from toolforge_jobs.metrics import CONTENT_TYPE_LATEST, JobsMetrics
from toolforge_jobs.models import (
    HealthResponse,
    ImagesResponse,
    JobChangedResponse,
    JobListResponse,
    JobResponse,
    JobSpec,
    LogLine,
    Messages,
    MessagesResponse,
    QuotaResponse,
    error_messages,
    error_response,
)
from toolforge_jobs.service import JobsService, image_catalog
from toolforge_jobs.settings import JobsSettings
from toolforge_jobs.storage import KubeStorage

__all__ = ["NDJSONStreamingResponse", "create_app"]

_log = logging.getLogger(__name__)

NDJSON = "application/x-ndjson"


def _error(description: str) -> dict[str, Any]:
    return {"model": MessagesResponse, "description": description}


# Error responses, documented per route (OpenAPI ``responses``).
_AUTH: dict[int | str, dict[str, Any]] = {
    401: _error("No gateway client certificate, or no valid identity header."),
    403: _error("Another tool's path, a service identity, or Kubernetes RBAC refused it."),
    503: _error("kube-apiserver cannot be reached; see Retry-After."),
}
_Responses = dict[int | str, dict[str, Any]]
_VALIDATION: _Responses = {
    422: _error("A field of the request breaks a rule; messages name the field.")
}
_NOT_FOUND: _Responses = {404: _error("Job 'x' does not exist.")}
_SPEC: _Responses = {
    400: _error("imagename not in the image list, memory/cpu outside the LimitRange, bad paths."),
    409: _error("A job of that name exists (or changed meanwhile)."),
    **_VALIDATION,
}


def _as_json(responses: _Responses) -> _Responses:
    """Error responses of a route whose success is not JSON: FastAPI would document them with
    the route's media type, but errors are always JSON envelopes."""
    ref = {"$ref": "#/components/schemas/MessagesResponse"}
    return {
        code: {"description": r["description"], "content": {"application/json": {"schema": ref}}}
        for code, r in responses.items()
    }


def _responses(*groups: Mapping[int | str, dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    merged: dict[int | str, dict[str, Any]] = {}
    for group in (_AUTH, *groups):
        merged.update(group)
    return dict(sorted(merged.items(), key=lambda kv: str(kv[0])))


class NDJSONStreamingResponse(StreamingResponse):
    """A streamed NDJSON body (``X-Accel-Buffering: no`` so proxies do not buffer it).

    Whatever ASGI version the server speaks, the response watches for the client's
    ``http.disconnect`` and then stops: the body iterator is cancelled and closed, so its
    upstream connections close with it. ``toolforge_jobs_log_streams_open`` counts the open
    responses.
    """

    media_type = NDJSON

    def __init__(self, content: AsyncIterator[bytes], metrics: JobsMetrics) -> None:
        super().__init__(content, headers={"X-Accel-Buffering": "no", "Cache-Control": "no-store"})
        self._iterator = content
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._metrics.log_streams.inc()
        try:
            async with anyio.create_task_group() as group:

                async def stream() -> None:
                    with contextlib.suppress(OSError):  # the client went away while we sent
                        await self.stream_response(send)
                    group.cancel_scope.cancel()

                group.start_soon(stream)
                await self.listen_for_disconnect(receive)
                group.cancel_scope.cancel()
        finally:
            aclose = getattr(self._iterator, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()
            self._metrics.log_streams.dec()


class _MetricsMiddleware:
    """Counts every HTTP request by route template, method and status, with its duration."""

    def __init__(self, app: ASGIApp, metrics: JobsMetrics) -> None:
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
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(
                path, scope["method"], status_code, time.perf_counter() - started
            )


def _envelope(
    status_code: int, errors: list[str], headers: Mapping[str, str] | None = None
) -> Response:
    return JSONResponse(
        error_response(*errors).model_dump(mode="json"),
        status_code=status_code,
        headers=dict(headers or {}),
    )


def _install_error_handlers(app: FastAPI) -> None:
    async def jobs_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, JobsAPIError)  # noqa: S101 - registered for this type only
        return _envelope(exc.status_code, [exc.message], exc.headers)

    async def spec_error(_request: Request, exc: Exception) -> Response:
        return _envelope(status.HTTP_400_BAD_REQUEST, [str(exc)])

    async def validation_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)  # noqa: S101
        messages = error_messages(exc.errors(), skip_prefixes=("body", "query", "path"))
        return _envelope(status.HTTP_422_UNPROCESSABLE_CONTENT, messages)

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
        return _envelope(500, ["internal error of the jobs API; it has been logged"])

    app.add_exception_handler(JobsAPIError, jobs_error)
    app.add_exception_handler(JobSpecError, spec_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


def _reply(model: BaseModel, status_code: int = status.HTTP_200_OK) -> Response:
    """The response body of ``model``, serialised once. Handlers return it instead of the model
    so that FastAPI does not validate a list of many jobs again (``response_model`` still
    documents it)."""
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")


def _service(request: Request) -> JobsService:
    service: JobsService = request.app.state.jobs_service
    return service


Service = Annotated[JobsService, Depends(_service)]


async def _tool_name(identity: CurrentTool) -> str:
    # CurrentTool declares the {tool} path parameter and checks it against the identity
    return identity.name


#: The verified tool of a ``/v1/tool/{tool}/...`` route.
Tool = Annotated[str, Depends(_tool_name)]
JobName = Annotated[str, Path(description="The job's name.")]


def create_app(settings: JobsSettings) -> FastAPI:
    """The jobs API app for ``settings``. The kube-apiserver client and the object cache
    (``app.state.object_cache``, ``None`` when ``cache_enabled`` is false) are opened by the
    app's lifespan (startup) and closed at shutdown, which stops every watch.

    Raises:
        OSError, ValueError: the backend CA file cannot be loaded.
    """
    metrics = JobsMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        storage = await KubeStorage.connect(settings, metrics)
        cache = ObjectCache(storage, metrics, settings) if settings.cache_enabled else None
        app.state.object_cache = cache
        app.state.jobs_service = JobsService(
            storage, image_catalog(storage, settings), settings, cache=cache
        )
        try:
            yield
        finally:
            if cache is not None:
                await cache.close()
            await storage.close()

    app = FastAPI(
        title="Toolforge jobs API",
        version="1.0.0",
        description="One-off, scheduled and continuous jobs of Toolforge tools "
        "(reached through the API gateway at /jobs/...).",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.metrics = metrics
    install_auth(app, settings.auth_settings())
    _install_error_handlers(app)
    app.add_middleware(_MetricsMiddleware, metrics=metrics)

    @app.get("/v1/healthz", tags=["meta"], response_model=HealthResponse)
    async def healthz() -> HealthResponse:
        """The process is up (no cluster check)."""
        return HealthResponse()

    async def metrics_exposition() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

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

    @app.get(
        "/v1/tool/{tool}/jobs",
        tags=["jobs"],
        response_model=JobListResponse,
        responses=_responses(_VALIDATION),
    )
    async def list_jobs(tool: Tool, service: Service) -> Response:
        """All jobs of the tool with their status."""
        result = await service.list_jobs(tool)
        # model_construct: the jobs are built and checked already; validating the list again
        # would run JobSpec's model validator once more per job.
        return _reply(
            JobListResponse.model_construct(
                jobs=result.jobs, messages=Messages(warning=result.warnings)
            )
        )

    @app.post(
        "/v1/tool/{tool}/jobs",
        tags=["jobs"],
        status_code=status.HTTP_201_CREATED,
        response_model=JobResponse,
        responses=_responses(_SPEC),
    )
    async def create_job(tool: Tool, service: Service, spec: JobSpec) -> Response:
        """Create a job; 409 if one of that name exists, except a finished one-off job,
        which is replaced."""
        job, info = await service.create(tool, spec)
        return _reply(JobResponse(job=job, messages=Messages(info=info)), status.HTTP_201_CREATED)

    @app.patch(
        "/v1/tool/{tool}/jobs",
        tags=["jobs"],
        response_model=JobChangedResponse,
        responses=_responses(_SPEC),
    )
    async def upsert_job(tool: Tool, service: Service, spec: JobSpec) -> Response:
        """Create or update one job (``toolforge jobs load``); ``messages.info`` says
        "created", "updated" or "already up to date"."""
        changed, message = await service.upsert(tool, spec)
        return _reply(JobChangedResponse(job_changed=changed, messages=Messages(info=[message])))

    @app.delete(
        "/v1/tool/{tool}/jobs",
        tags=["jobs"],
        response_model=MessagesResponse,
        responses=_responses(_VALIDATION),
    )
    async def flush_jobs(tool: Tool, service: Service) -> MessagesResponse:
        """Delete every job of the tool."""
        await service.flush(tool)
        return MessagesResponse(messages=Messages(info=["All jobs deleted"]))

    @app.get(
        "/v1/tool/{tool}/jobs/{name}",
        tags=["jobs"],
        response_model=JobResponse,
        responses=_responses(_NOT_FOUND, _VALIDATION),
    )
    async def show_job(tool: Tool, name: JobName, service: Service) -> Response:
        """One job with its status."""
        return _reply(JobResponse(job=await service.show(tool, name)))

    @app.delete(
        "/v1/tool/{tool}/jobs/{name}",
        tags=["jobs"],
        response_model=MessagesResponse,
        responses=_responses(_NOT_FOUND, _VALIDATION),
    )
    async def delete_job(tool: Tool, name: JobName, service: Service) -> MessagesResponse:
        """Delete a job with its pods."""
        await service.delete(tool, name)
        return MessagesResponse(messages=Messages(info=[f"Job '{name}' deleted"]))

    @app.get(
        "/v1/tool/{tool}/jobs/{name}/logs",
        tags=["jobs"],
        response_class=NDJSONStreamingResponse,
        status_code=status.HTTP_200_OK,
        responses={
            200: {"description": "One LogLine JSON object per line (NDJSON)."},
            **_as_json(
                _responses(
                    {404: _error("No such job, the job uses filelog, or it has no pods.")},
                    _VALIDATION,
                )
            ),
        },
    )
    async def job_logs(
        tool: Tool,
        name: JobName,
        service: Service,
        follow: Annotated[
            bool, Query(description="Keep streaming until the job's pods end.")
        ] = False,
        lines: Annotated[
            int | None, Query(ge=1, le=100_000, description="Only the last N lines.")
        ] = None,
    ) -> Response:
        """The job's log lines ``{pod, container, datetime, message}``, streamed."""
        body = await service.open_logs(tool, name, follow=follow, lines=lines)
        return NDJSONStreamingResponse(body, metrics)

    @app.post(
        "/v1/tool/{tool}/jobs/{name}/restart",
        tags=["jobs"],
        response_model=MessagesResponse,
        responses=_responses(
            {400: _error("One-off jobs cannot be restarted.")}, _NOT_FOUND, _VALIDATION
        ),
    )
    async def restart_job(tool: Tool, name: JobName, service: Service) -> MessagesResponse:
        """Continuous: rolling restart; scheduled: run now; one-off: 400."""
        return MessagesResponse(messages=Messages(info=[await service.restart(tool, name)]))

    @app.get(
        "/v1/tool/{tool}/images",
        tags=["images"],
        response_model=ImagesResponse,
        responses=_responses(_VALIDATION),
    )
    async def images(tool: Tool, service: Service) -> ImagesResponse:
        """The images jobs may use (``imagename``)."""
        del tool
        return ImagesResponse(images=await service.images())

    @app.get(
        "/v1/tool/{tool}/quotas",
        tags=["quotas"],
        response_model=QuotaResponse,
        responses=_responses(_VALIDATION),
    )
    async def quotas(tool: Tool, service: Service) -> QuotaResponse:
        """The tool's quota and its use, in human units."""
        return QuotaResponse(quota=await service.quota(tool))

    # LogLine is only referenced from the NDJSON response: register its schema there.
    original_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original_openapi()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components["LogLine"] = LogLine.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            logs = schema["paths"]["/v1/tool/{tool}/jobs/{name}/logs"]["get"]
            logs["responses"]["200"]["content"] = {
                NDJSON: {"schema": {"$ref": "#/components/schemas/LogLine"}}
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
