"""The FastAPI scaffolding every backend shares: the app factory, error rendering, metrics,
the verified tool of a route, OpenAPI helpers.

:func:`create_backend_app` assembles an app from a backend's parts: its routers, its lifespan
(which opens its clients and builds its service), its metrics and how it renders an error
body. Every error - an :class:`~toolforge_kit.errors.APIError`, a domain ``ValueError`` the
backend names, FastAPI's request validation, routing (404/405), auth (401/403) - is rendered by
one handler with the backend's ``render_error`` (``list[str] -> JSON body``) and the error's
status and headers. Unexpected exceptions answer 500 with a generic message; the traceback
goes to the log only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from toolforge_auth.dependencies import CurrentTool, install_auth
from toolforge_kit.errors import APIError
from toolforge_kit.metrics import CONTENT_TYPE_LATEST, ServiceMetrics
from toolforge_kit.settings import BackendSettings

__all__ = [
    "ErrorRenderer",
    "MetricsMiddleware",
    "Responses",
    "ToolName",
    "ValidationMessages",
    "create_backend_app",
    "document_ndjson",
    "error_responses",
    "json_reply",
    "metrics_router",
]

_log = logging.getLogger(__name__)

#: The body of an error answer from its messages (each backend's wire envelope).
ErrorRenderer = Callable[[list[str]], Mapping[str, Any]]
#: The messages of a request validation error, from pydantic's error dicts.
ValidationMessages = Callable[[Sequence[Mapping[str, Any]]], list[str]]
#: OpenAPI ``responses`` of a route.
Responses = dict[int | str, dict[str, Any]]
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


async def _tool_name(identity: CurrentTool) -> str:
    # CurrentTool declares the {tool} path parameter and checks it against the identity
    return identity.name


#: The verified tool of a ``/v1/tool/{tool}/...`` route (401 without the gateway's certificate
#: or identity header, 403 for another tool's path or a service identity).
ToolName = Annotated[str, Depends(_tool_name)]


def json_reply(model: BaseModel, status_code: int = status.HTTP_200_OK, **dump: Any) -> Response:
    """The JSON body of ``model``, serialised once (``dump`` goes to ``model_dump_json``).
    Handlers return it instead of the model so that FastAPI does not validate a large answer
    again (``response_model`` still documents it)."""
    return Response(
        model.model_dump_json(**dump), status_code=status_code, media_type="application/json"
    )


def error_responses(
    model: type[BaseModel], *groups: Mapping[int, str], json_only: bool = False
) -> Responses:
    """OpenAPI ``responses`` for error statuses (``groups`` of ``{status: description}``,
    later ones win), each with ``model`` as body, sorted by status. ``json_only``: for a route
    whose success is not JSON (a stream), say explicitly that its errors are JSON (FastAPI
    would document them with the route's media type)."""
    descriptions: dict[int, str] = {}
    for group in groups:
        descriptions.update(group)
    out: Responses = {}
    for code, description in sorted(descriptions.items()):
        if json_only:
            ref = {"$ref": f"#/components/schemas/{model.__name__}"}
            content = {"application/json": {"schema": ref}}
            out[code] = {"description": description, "content": content}
        else:
            out[code] = {"model": model, "description": description}
    return out


def document_ndjson(app: FastAPI, route: str, method: str, model: type[BaseModel]) -> None:
    """Document the 200 answer of ``method route`` as NDJSON records of ``model`` (FastAPI only
    sees a streaming response, so it cannot name the record schema itself)."""
    from toolforge_kit.streaming import NDJSON

    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components[model.__name__] = model.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            operation = schema["paths"][route][method.lower()]
            operation["responses"]["200"]["content"] = {
                NDJSON: {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


class _TrailingSlashMiddleware:
    """Every route answers with and without a trailing ``/`` (REFERENCE.md, "The wire as
    production serves it"): the path is routed without it, no redirect."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            scope = {**scope, "path": path.rstrip("/") or "/"}
            if scope.get("raw_path"):
                scope["raw_path"] = scope["raw_path"].rstrip(b"/") or b"/"
        await self.app(scope, receive, send)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(app: FastAPI, scope: Scope) -> str:
    """The methods of every route whose path matches (a 405's ``Allow``, RFC 9110 10.2.1).
    ``HEAD`` only where a route serves it (FastAPI's routes do not; Starlette's add it to
    ``GET``): an ``Allow`` must not name a method that answers 405 itself."""
    methods = {
        method
        for method in _METHODS
        if any(
            route.matches({**scope, "method": method})[0] == Match.FULL
            for route in app.router.routes
        )
    }
    return ", ".join(sorted(methods))


class MetricsMiddleware:
    """Counts every HTTP request by route template, method and status, with its duration."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
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
            self.metrics.observe_request(
                route, scope["method"], status_code, time.perf_counter() - started
            )


def metrics_router(metrics: ServiceMetrics) -> APIRouter:
    """``GET /metrics`` and ``GET /v1/metrics``: ``metrics`` in the Prometheus text format."""
    router = APIRouter(tags=["meta"])

    async def metrics_exposition() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    for path in ("/metrics", "/v1/metrics"):
        router.add_api_route(
            path,
            metrics_exposition,
            methods=["GET"],
            summary="Prometheus metrics",
            response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
        )
    return router


def default_validation_messages(errors: Sequence[Mapping[str, Any]]) -> list[str]:
    """``"<field>: <rule>"`` per error; a leading ``body``/``query``/``path`` location is left
    out of the field path unless it is the whole path."""
    messages = []
    for error in errors:
        loc = [str(part) for part in error.get("loc") or ()]
        if len(loc) > 1 and loc[0] in ("body", "query", "path"):
            loc = loc[1:]
        messages.append(f"{'.'.join(loc) or 'body'}: {error.get('msg')}")
    return messages


def install_error_handlers(
    app: FastAPI,
    *,
    api_name: str,
    render_error: ErrorRenderer,
    validation_messages: ValidationMessages = default_validation_messages,
    body_validation_status: int = status.HTTP_422_UNPROCESSABLE_CONTENT,
    bad_request_errors: Iterable[type[Exception]] = (),
) -> None:
    """Render every error of ``app`` with ``render_error`` (see the module documentation).

    ``body_validation_status``: the status of a request whose body breaks a rule (422 by
    default; a backend whose upstream answers 400 sets that); path and query errors answer 422.
    ``bad_request_errors``: domain exceptions (``ValueError`` subclasses whose message names the
    field) answered 400 with their message.
    """

    def reply(code: int, errors: list[str], headers: Mapping[str, str] | None = None) -> Response:
        return JSONResponse(dict(render_error(errors)), status_code=code, headers=headers)

    async def api_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, APIError)  # noqa: S101 - registered for this type only
        return reply(exc.status_code, [exc.message], exc.headers)

    async def bad_request(_request: Request, exc: Exception) -> Response:
        return reply(status.HTTP_400_BAD_REQUEST, [str(exc)])

    async def validation_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)  # noqa: S101
        errors = list(exc.errors())
        in_body = any((e.get("loc") or ("",))[0] == "body" for e in errors)
        code = body_validation_status if in_body else status.HTTP_422_UNPROCESSABLE_CONTENT
        return reply(code, validation_messages(errors))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101
        headers = dict(exc.headers or {})
        if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
            headers["Allow"] = _allowed_methods(app, request.scope)
        return reply(exc.status_code, [str(exc.detail)], headers)

    async def unexpected(request: Request, exc: Exception) -> Response:
        _log.error(
            "%s %s failed",
            request.method,
            request.url.path,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        return reply(500, [f"internal error of the {api_name}; it has been logged"])

    app.add_exception_handler(APIError, api_error)
    for error_type in bad_request_errors:
        app.add_exception_handler(error_type, bad_request)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


def create_backend_app(
    settings: BackendSettings,
    *,
    title: str,
    description: str,
    metrics: ServiceMetrics,
    lifespan: Lifespan,
    routers: Iterable[APIRouter],
    render_error: ErrorRenderer,
    validation_messages: ValidationMessages = default_validation_messages,
    body_validation_status: int = status.HTTP_422_UNPROCESSABLE_CONTENT,
    bad_request_errors: Iterable[type[Exception]] = (),
    version: str = "1.0.0",
) -> FastAPI:
    """A backend app: auth from ``settings`` (the gateway's backend CA), every error rendered
    with ``render_error``, the metrics middleware and ``GET /metrics`` (and ``/v1/metrics``,
    the path the gateway exposes) without identity, then ``routers`` in order. Every route
    answers with and without a trailing ``/`` (no redirect), and a 405 carries an ``Allow``
    header with every method of the path.

    Raises:
        OSError, ValueError: the backend CA file cannot be loaded.
    """
    app = FastAPI(
        title=title,
        version=version,
        description=description,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
    )
    app.state.metrics = metrics
    install_auth(app, settings.auth_settings())
    install_error_handlers(
        app,
        api_name=title.removeprefix("Toolforge "),
        render_error=render_error,
        validation_messages=validation_messages,
        body_validation_status=body_validation_status,
        bad_request_errors=bad_request_errors,
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(_TrailingSlashMiddleware)
    for router in routers:
        app.include_router(router)
    app.include_router(metrics_router(metrics))
    return app
