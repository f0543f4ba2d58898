"""The aggregated OpenAPI document served at ``/openapi.json``.

:func:`merge_specs` is pure: it takes each backend's OpenAPI document (3.0 or 3.1, as FastAPI
produces them) and returns one OpenAPI 3.1 document for the gateway:

- paths get the route prefix: ``/v1/healthz`` of ``jobs`` becomes ``/jobs/v1/healthz``;
- components (schemas, responses, parameters, ...) are merged by name. Identical definitions
  are kept once. Where backends define a name differently, every backend's definition is
  renamed ``<route>_<name>`` and that backend's ``$ref``\\s are rewritten; a definition whose
  text is identical but refers to a renamed one is renamed as well (it means different things);
- ``operationId``\\s used by more than one backend are prefixed ``<route>_`` in each, since
  they must be unique (OpenAPI 3.1 section 4.8.10);
- path template parameters a backend leaves undeclared are declared as strings;
- security: the backends' own schemes are dropped and one ``mutualTLS`` scheme (OpenAPI 3.1
  section 4.8.27) is declared and required globally, because clients authenticate to the
  gateway with their certificate and nothing else;
- ``servers`` holds the gateway's public URL.

:class:`SpecAggregator` fetches the backend documents over the routes' mTLS clients, caches the
merged result briefly and leaves out (with a logged warning) any backend that cannot be read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Mapping
from typing import Any

import httpx

__all__ = ["SpecAggregator", "merge_specs"]

log = logging.getLogger(__name__)

JSON = dict[str, Any]

_COMPONENT_REF = re.compile(r"#/components/([^/]+)/([^/]+)")
# Component kinds that are renamed and rewritten; securitySchemes are replaced (see above).
_DROPPED_KINDS = frozenset({"securitySchemes"})
_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
MUTUAL_TLS = "mutualTLS"

ComponentKey = tuple[str, str]  # (kind, name), e.g. ("schemas", "Job")


def _refs(node: Any) -> set[ComponentKey]:
    """Every ``#/components/<kind>/<name>`` that ``node`` refers to with ``$ref``."""
    found: set[ComponentKey] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str):
                match = _COMPONENT_REF.fullmatch(ref)
                if match:
                    found.add((match.group(1), match.group(2)))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _rewrite_refs(node: Any, renames: Mapping[ComponentKey, str]) -> Any:
    """A copy of ``node`` with ``$ref``\\s to renamed components pointing at the new names."""
    if isinstance(node, dict):
        result = {key: _rewrite_refs(value, renames) for key, value in node.items()}
        ref = node.get("$ref")
        if isinstance(ref, str):
            match = _COMPONENT_REF.fullmatch(ref)
            if match and (key := (match.group(1), match.group(2))) in renames:
                result["$ref"] = f"#/components/{key[0]}/{renames[key]}"
        return result
    if isinstance(node, list):
        return [_rewrite_refs(item, renames) for item in node]
    return node


def _component_renames(specs: Mapping[str, JSON]) -> dict[str, dict[ComponentKey, str]]:
    """Per route, which of its components get a new name (see the module docstring)."""
    definitions: dict[ComponentKey, dict[str, Any]] = {}
    for route, spec in specs.items():
        for kind, members in (spec.get("components") or {}).items():
            if kind in _DROPPED_KINDS or not isinstance(members, dict):
                continue
            for name, value in members.items():
                definitions.setdefault((kind, name), {})[route] = value
    conflicting = {
        key
        for key, by_route in definitions.items()
        if any(value != next(iter(by_route.values())) for value in by_route.values())
    }
    changed = True
    while changed:  # a shared definition referring to a renamed one differs in meaning
        changed = False
        for key, by_route in definitions.items():
            if key in conflicting or len(by_route) < 2:
                continue
            if any(_refs(value) & conflicting for value in by_route.values()):
                conflicting.add(key)
                changed = True
    taken = {name for _, name in definitions}
    renames: dict[str, dict[ComponentKey, str]] = {route: {} for route in specs}
    for key in sorted(conflicting):
        for route in sorted(definitions[key]):
            new_name = f"{route}_{key[1]}"
            while new_name in taken:
                new_name = f"{route}_{new_name}"
            taken.add(new_name)
            renames[route][key] = new_name
    return renames


def _operations(spec: JSON) -> list[JSON]:
    return [
        operation
        for item in (spec.get("paths") or {}).values()
        if isinstance(item, dict)
        for method, operation in item.items()
        if method in _HTTP_METHODS and isinstance(operation, dict)
    ]


def merge_specs(
    specs: Mapping[str, JSON],
    *,
    title: str = "Toolforge API",
    version: str = "1",
    server_url: str = "/",
) -> JSON:
    """Merge backend OpenAPI documents into the gateway's (see the module docstring).

    ``specs`` maps route name -> that backend's document (not modified). Returns a new OpenAPI
    3.1 document; a backend missing from ``specs`` is simply absent from the result.
    """
    renames = _component_renames(specs)
    operation_routes: dict[str, set[str]] = {}
    for route, spec in specs.items():
        for operation in _operations(spec):
            if isinstance(operation.get("operationId"), str):
                operation_routes.setdefault(operation["operationId"], set()).add(route)

    paths: JSON = {}
    components: dict[str, JSON] = {}
    tags: dict[str, JSON] = {}
    for route in sorted(specs):
        spec = _rewrite_refs(specs[route], renames[route])
        for path, item in (spec.get("paths") or {}).items():
            if isinstance(item, dict):
                item.pop("servers", None)
                for method, operation in item.items():
                    if method not in _HTTP_METHODS or not isinstance(operation, dict):
                        continue
                    operation.pop("security", None)
                    operation.pop("servers", None)
                    operation_id = operation.get("operationId")
                    if isinstance(operation_id, str) and len(operation_routes[operation_id]) > 1:
                        operation["operationId"] = f"{route}_{operation_id}"
            paths[f"/{route}{path}"] = item
        for kind, members in (spec.get("components") or {}).items():
            if kind in _DROPPED_KINDS or not isinstance(members, dict):
                continue
            target = components.setdefault(kind, {})
            for name, value in members.items():
                new_name = renames[route].get((kind, name))
                if new_name is None:
                    target[name] = value
                    continue
                # Generators name models by title: a renamed schema keeps no title of the old
                # name, or two of them would collide again in every generated client.
                if isinstance(value, dict) and value.get("title") == name:
                    value = {**value, "title": new_name}
                target[new_name] = value
        for tag in spec.get("tags") or []:
            if isinstance(tag, dict) and isinstance(tag.get("name"), str):
                tags.setdefault(tag["name"], tag)

    components["securitySchemes"] = {
        MUTUAL_TLS: {
            "type": "mutualTLS",
            "description": (
                "TLS client certificate: a tool's CN=<tool>,O=toolforge certificate from the "
                "cluster CA (~/.toolskube/client.crt), or a service's CN=service:<name>."
            ),
        }
    }
    merged: JSON = {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "The Toolforge APIs behind one gateway: "
            + (", ".join(f"/{route}" for route in sorted(specs)) or "(no backend available)"),
        },
        "servers": [{"url": server_url}],
        "security": [{MUTUAL_TLS: []}],
        "paths": paths,
        "components": components,
    }
    if tags:
        merged["tags"] = list(tags.values())
    return merged


class SpecAggregator:
    """Fetches ``/openapi.json`` from every backend and serves the merged document.

    ``clients`` maps route name -> the route's mTLS :class:`httpx.AsyncClient` (base URL set
    to the backend); ``timeouts`` route name -> seconds for one fetch. The merged document is
    reused for ``cache_seconds``; concurrent callers share one refresh.
    """

    def __init__(
        self,
        clients: Mapping[str, httpx.AsyncClient],
        timeouts: Mapping[str, float],
        *,
        cache_seconds: float,
        server_url: str,
        version: str,
    ) -> None:
        self._clients = clients
        self._timeouts = timeouts
        self._cache_seconds = cache_seconds
        self._server_url = server_url
        self._version = version
        self._lock = asyncio.Lock()
        self._body: bytes | None = None
        self._expires = 0.0

    async def _fetch(self, route: str) -> JSON | None:
        client = self._clients[route]
        try:
            async with asyncio.timeout(self._timeouts[route]):
                response = await client.get("/openapi.json")
            response.raise_for_status()
            spec = response.json()
        except (httpx.HTTPError, TimeoutError, ValueError) as exc:
            log.warning(
                "OpenAPI document of route %s left out: %s",
                route,
                str(exc) or type(exc).__name__,
                extra={"route": route, "error": type(exc).__name__},
            )
            return None
        if not isinstance(spec, dict) or not isinstance(spec.get("paths", {}), dict):
            log.warning(
                "OpenAPI document of route %s left out: not an OpenAPI object",
                route,
                extra={"route": route, "error": "not an OpenAPI object"},
            )
            return None
        return spec

    async def document(self) -> bytes:
        """The merged document as JSON bytes, fetched anew when the cached one has expired."""
        async with self._lock:
            now = time.monotonic()
            if self._body is None or now >= self._expires:
                routes = sorted(self._clients)
                fetched = await asyncio.gather(*(self._fetch(route) for route in routes))
                specs = {route: spec for route, spec in zip(routes, fetched, strict=True) if spec}
                merged = merge_specs(specs, server_url=self._server_url, version=self._version)
                self._body = json.dumps(merged, separators=(",", ":")).encode("utf-8")
                self._expires = time.monotonic() + self._cache_seconds
            return self._body
