"""Helpers of the web-traffic tests: a tool's API clients, HTTP through the Gateway NodePort."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from kubernetes_asyncio import client as k8s

GROUP, VERSION, PLURAL = "gateway.networking.k8s.io", "v1", "httproutes"


@dataclass
class ToolApis:
    """A tool's own clients (its certificate, its RBAC)."""

    core: k8s.CoreV1Api
    apps: k8s.AppsV1Api
    custom: k8s.CustomObjectsApi


async def create_route(custom: k8s.CustomObjectsApi, namespace: str, route: Any) -> Any:
    """Create an HTTPRoute; returns the stored object."""
    return await custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, route)


async def delete_route(custom: k8s.CustomObjectsApi, namespace: str, name: str) -> None:
    await custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)


async def wait_for(
    client: httpx.AsyncClient,
    host: str,
    done: Callable[[httpx.Response], bool],
    *,
    timeout: float,
    headers: dict[str, str] | None = None,
) -> tuple[httpx.Response, float]:
    """GET ``/`` with ``Host: host`` until ``done(response)``; returns it and the seconds it
    took. Fails with the last response after ``timeout`` seconds."""
    started = time.monotonic()
    last: str = "no response"
    while time.monotonic() - started < timeout:
        try:
            response = await client.get("/", headers={"Host": host, **(headers or {})})
            if done(response):
                return response, time.monotonic() - started
            last = f"HTTP {response.status_code}: {response.text[:200]!r}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        await asyncio.sleep(0.2)
    raise AssertionError(f"{host}: condition not met after {timeout} s; last: {last}")


async def wait_ready(apps: k8s.AppsV1Api, namespace: str, name: str, timeout: float = 90) -> Any:
    """Wait until Deployment ``name`` has all its replicas updated and available."""
    deadline = time.monotonic() + timeout
    while True:
        d = await apps.read_namespaced_deployment(name, namespace)
        s = d.status
        want = d.spec.replicas
        if (
            (s.observed_generation or 0) >= d.metadata.generation
            and (s.updated_replicas or 0) == want
            and (s.available_replicas or 0) == want
            and (s.replicas or 0) == want
        ):
            return d
        assert time.monotonic() < deadline, f"deployment {name} not ready: {s}"
        await asyncio.sleep(0.5)
