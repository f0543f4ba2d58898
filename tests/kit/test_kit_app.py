"""The kit's app factory: every route with and without a trailing slash, 405 with the full
``Allow``, errors rendered by the backend's renderer (no cluster: ASGI in-process)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from toolforge_admin.pki import PlatformPKI
from toolforge_kit.app import create_backend_app
from toolforge_kit.errors import ConflictError
from toolforge_kit.metrics import ServiceMetrics
from toolforge_kit.settings import BackendSettings
from toolforge_kit.wire import render_error

router = APIRouter()


@router.get("/v1/things")
async def list_things() -> dict[str, list[str]]:
    return {"things": ["a"]}


@router.post("/v1/things")
async def add_thing() -> dict[str, str]:
    raise ConflictError("thing exists")


@router.get("/v1/things/{name}")
async def show_thing(name: str) -> dict[str, str]:
    return {"name": name}


@asynccontextmanager
async def _nothing(_app: FastAPI) -> AsyncIterator[None]:
    yield


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    directory: Path = tmp_path_factory.mktemp("pki")
    PlatformPKI.ensure(directory)
    settings = BackendSettings(backend_ca_file=directory / "backend-ca.crt")
    return create_backend_app(
        settings,
        title="Toolforge test API",
        description="",
        metrics=ServiceMetrics("toolforge_test"),
        lifespan=_nothing,
        routers=[router],
        render_error=render_error,
    )


async def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_trailing_slash_routes_the_same_without_redirect(app: FastAPI) -> None:
    async with await _client(app) as client:
        for path in ("/v1/things", "/v1/things/"):
            response = await client.get(path)
            assert (response.status_code, response.json()) == (200, {"things": ["a"]})
        response = await client.get("/v1/things/x/")
        assert response.json() == {"name": "x"}


async def test_405_lists_every_method_of_the_path(app: FastAPI) -> None:
    async with await _client(app) as client:
        for path in ("/v1/things", "/v1/things/"):
            response = await client.request("OPTIONS", path)
            assert response.status_code == 405
            assert response.headers["allow"] == "GET, POST"
            assert response.json() == {"error": ["Method Not Allowed"]}
        response = await client.delete("/v1/things/x")
        assert response.headers["allow"] == "GET"
        # FastAPI's routes do not serve HEAD, so Allow must not name it: HEAD answers 405
        head = await client.head("/v1/things")
        assert (head.status_code, head.headers["allow"]) == (405, "GET, POST")


async def test_errors_are_rendered_with_the_backends_renderer(app: FastAPI) -> None:
    async with await _client(app) as client:
        response = await client.post("/v1/things")
        assert (response.status_code, response.json()) == (409, {"error": ["thing exists"]})
        response = await client.get("/v1/nothing")
        assert (response.status_code, response.json()) == (404, {"error": ["Not Found"]})


async def test_the_transport_never_impersonates_a_non_tool() -> None:
    """Checked before anything is sent: no ``system:`` user, no upper case, nothing empty."""
    from kubernetes_asyncio import client as k8s

    from toolforge_kit.kube import KubeClient

    kube = KubeClient(k8s.ApiClient(k8s.Configuration()), metrics=None, timeout=1, retry_after=1)
    try:
        for name in ("system:admin", "system:kube-controller-manager", "Alice", ""):
            with pytest.raises(ValueError, match="refusing to impersonate"):
                await kube.send("GET", "/api/v1/pods", label="pods", as_tool=name)
    finally:
        await kube.close()
