"""Routing as the production Toolforge APIs answer (REFERENCE.md, "The wire as production serves
it"), for any backend app:

- every route answers with and without a trailing ``/`` (``GET /v1/tool/t/jobs/`` is
  ``GET /v1/tool/t/jobs``), without a redirect: clients such as ``toolforge-jobs`` call
  ``/jobs/`` and must get the answer itself;
- a path served for other methods answers 405 with an ``Allow`` header listing **every** method
  of that path (Starlette lists only the methods of the first route it tried); ``OPTIONS``, which
  no route serves, is such a 405 too;
- :func:`stable_operation_ids`: every operation gets a fixed, unique ``operationId`` prefixed
  with the API's name (FastAPI's default is derived from the function name *and* path, and a
  gateway that merges several backends must not meet the same id twice).

:func:`install_routing` adds the first two as one ASGI middleware (outermost, before auth and
metrics see the request); the 405 body is rendered with the backend's error renderer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["allowed_methods", "install_routing", "stable_operation_ids"]

ErrorRenderer = Callable[[list[str]], Mapping[str, Any]]


def _strip_slash(scope: Scope) -> Scope:
    path: str = scope["path"]
    if len(path) <= 1 or not path.endswith("/"):
        return scope
    stripped = path.rstrip("/") or "/"
    raw = scope.get("raw_path")
    new = dict(scope)
    new["path"] = stripped
    if isinstance(raw, bytes | bytearray):
        new["raw_path"] = bytes(raw).rstrip(b"/") or b"/"
    return new


_HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_PARAM = re.compile(r"\{[^}/]+\}")


def _path_table(app: FastAPI) -> list[tuple[re.Pattern[str], frozenset[str]]]:
    """``(regex of a path template, its methods)`` for every path of the app's OpenAPI
    document: the routes as the app documents them, whatever FastAPI's internal route
    objects look like."""
    table = []
    for template, item in app.openapi().get("paths", {}).items():
        methods = frozenset(m.upper() for m in item if m in _HTTP_METHODS)
        regex = "^" + "[^/]+".join(re.escape(part) for part in _PARAM.split(template)) + "$"
        table.append((re.compile(regex), methods))
    return table


def allowed_methods(
    table: list[tuple[re.Pattern[str], frozenset[str]]], path: str, method: str
) -> set[str] | None:
    """The methods documented for ``path`` when ``method`` is not one of them; ``None`` when
    the path is served for ``method`` or not documented at all (the app answers then)."""
    methods: set[str] = set()
    for regex, documented in table:
        if regex.match(path):
            if method in documented:
                return None
            methods |= documented
    return methods or None


class _RoutingMiddleware:
    def __init__(self, app: ASGIApp, *, fastapi_app: FastAPI, render_error: ErrorRenderer):
        self.app = app
        self.fastapi_app = fastapi_app
        self.render_error = render_error
        self._table: list[tuple[re.Pattern[str], frozenset[str]]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope = _strip_slash(scope)
        if self._table is None:
            self._table = _path_table(self.fastapi_app)
        allowed = allowed_methods(self._table, scope["path"], scope["method"])
        if allowed is not None:
            await self._not_allowed(scope, allowed, send)
            return
        await self.app(scope, receive, send)

    async def _not_allowed(self, scope: Scope, allowed: set[str], send: Send) -> None:
        method = scope["method"]
        body = json.dumps(
            dict(
                self.render_error(
                    [f"Method {method} not allowed; allowed: {', '.join(sorted(allowed))}"]
                )
            )
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 405,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"allow", ", ".join(sorted(allowed)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def install_routing(app: FastAPI, render_error: ErrorRenderer) -> None:
    """Trailing-slash-tolerant routing and complete ``Allow`` headers for ``app`` (see the
    module documentation). Call after the routes are added; FastAPI's own redirect of a
    trailing ``/`` is switched off."""
    app.router.redirect_slashes = False
    app.add_middleware(_RoutingMiddleware, fastapi_app=app, render_error=render_error)


def stable_operation_ids(app: FastAPI, prefix: str) -> None:
    """Make every ``operationId`` of ``app``'s OpenAPI document start with ``<prefix>_``:
    ids given explicitly with that prefix are kept, the others (FastAPI's, derived from the
    function name, path and method: stable as long as those are) get the prefix. Call after
    the routes are added and after other wrappers of ``app.openapi``.

    Raises (when the document is made):
        ValueError: two operations have the same id.
    """
    original = app.openapi

    def openapi() -> dict[str, Any]:
        schema = original()
        seen: set[str] = set()
        for item in schema.get("paths", {}).values():
            for method, operation in item.items():
                if method not in _HTTP_METHODS or not isinstance(operation, dict):
                    continue
                operation_id = str(operation.get("operationId") or f"{method}")
                if not operation_id.startswith(f"{prefix}_"):
                    operation_id = f"{prefix}_{operation_id}"
                if operation_id in seen:
                    raise ValueError(f"operationId {operation_id!r} is used twice")
                seen.add(operation_id)
                operation["operationId"] = operation_id
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
