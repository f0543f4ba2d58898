"""``toolforge_kit.routing``: operation ids fixed and prefixed per API; the stand-alone routing
middleware (``install_routing``, which the builds API uses; ``create_backend_app`` does the
same for every backend now)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from toolforge_kit.routing import install_routing, stable_operation_ids


def _app() -> FastAPI:
    app = FastAPI()
    router = APIRouter()

    @router.get("/v1/things")
    async def list_things() -> dict[str, list[str]]:
        return {"things": []}

    @router.post("/v1/things", operation_id="test_create_thing")
    async def create_thing() -> dict[str, str]:
        return {"ok": "yes"}

    async def metrics() -> str:
        return ""

    router.add_api_route("/metrics", metrics, methods=["GET"])
    router.add_api_route("/v1/metrics", metrics, methods=["GET"])
    app.include_router(router)
    return app


def test_operation_ids_are_prefixed_and_unique() -> None:
    app = _app()
    stable_operation_ids(app, "test")
    ids = {
        (path, method): op["operationId"]
        for path, item in app.openapi()["paths"].items()
        for method, op in item.items()
    }
    assert ids[("/v1/things", "post")] == "test_create_thing"  # explicit, kept
    assert all(i.startswith("test_") for i in ids.values())
    assert len(set(ids.values())) == len(ids)


def test_a_duplicate_operation_id_is_refused() -> None:
    app = FastAPI()

    @app.get("/a", operation_id="same")
    async def a() -> None: ...

    @app.get("/b", operation_id="same")
    async def b() -> None: ...

    stable_operation_ids(app, "x")
    with (
        pytest.warns(UserWarning, match="Duplicate Operation ID"),  # FastAPI's own warning
        pytest.raises(ValueError, match="used twice"),
    ):
        app.openapi()


async def test_install_routing_slash_and_allow() -> None:
    app = _app()
    install_routing(app, lambda errors: {"error": errors})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        slashed = await client.get("/v1/things/")
        assert (slashed.status_code, slashed.json()) == (200, {"things": []})
        for method in ("OPTIONS", "PUT"):
            response = await client.request(method, "/v1/things/")
            assert response.status_code == 405
            assert response.headers["allow"] == "GET, POST"
            assert set(response.json()) == {"error"}
