"""The builds API's OpenAPI document: generated from the models, valid OpenAPI 3.1, every error
response documented (as upstream's error body, :class:`ErrorResponse`), unique and stable
``operationId`` values, and equal to the committed snapshot ``services/builds/openapi.json``.

``UPDATE_OPENAPI=1 pytest tests/builds/test_builds_openapi.py`` rewrites the snapshot.
"""

from __future__ import annotations

from typing import Any

import pytest

from openapi_snapshot import assert_snapshot_and_valid, service_spec
from toolforge_builds.app import create_app
from toolforge_builds.settings import BuildsSettings

ERROR = {"$ref": "#/components/schemas/ErrorResponse"}


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    document: dict[str, Any] = service_spec(
        create_app, BuildsSettings, tmp_path_factory.mktemp("builds-openapi")
    )
    return document


def test_snapshot_is_current_and_valid(spec: dict[str, Any]) -> None:
    assert_snapshot_and_valid(spec, "builds", "tests/builds/test_builds_openapi.py")


def test_every_reference_route_is_there(spec: dict[str, Any]) -> None:
    operations = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    assert operations >= {
        ("POST", "/v1/tool/{tool}/builds"),
        ("GET", "/v1/tool/{tool}/builds"),
        ("GET", "/v1/tool/{tool}/builds/latest"),
        ("GET", "/v1/tool/{tool}/builds/{build_id}"),
        ("DELETE", "/v1/tool/{tool}/builds/{build_id}"),
        ("PUT", "/v1/tool/{tool}/builds/{build_id}/cancel"),
        ("GET", "/v1/tool/{tool}/builds/{build_id}/logs"),
        ("GET", "/v1/tool/{tool}/quotas"),
        ("POST", "/v1/tool/{tool}/clean"),
        ("GET", "/v1/healthz"),
        ("GET", "/metrics"),
    }


def test_every_tool_route_documents_its_errors(spec: dict[str, Any]) -> None:
    for path, item in spec["paths"].items():
        if not path.startswith("/v1/tool/"):
            continue
        for method, operation in item.items():
            codes = {code for code in operation["responses"] if code.startswith(("4", "5"))}
            assert {"401", "403", "405", "422", "500", "502", "503"} <= codes, (method, path)
            for code in codes:
                content = operation["responses"][code]["content"]["application/json"]
                assert content["schema"] == ERROR, (method, path, code)
    error = spec["components"]["schemas"]["ErrorResponse"]
    assert error["required"] == ["error"]
    assert error["properties"]["error"]["type"] == "array"
    start = spec["paths"]["/v1/tool/{tool}/builds"]["post"]["responses"]
    assert "400" in start
    assert "409" in start
    logs = spec["paths"]["/v1/tool/{tool}/builds/{build_id}/logs"]["get"]["responses"]["200"]
    assert logs["content"] == {
        "application/x-ndjson": {"schema": {"$ref": "#/components/schemas/BuildLogLine"}}
    }


def test_operation_ids_are_unique_stable_and_prefixed(spec: dict[str, Any]) -> None:
    ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    # prefixed, so that they stay unique in the gateway's aggregated spec as they are
    assert all(i.startswith("builds_") for i in ids), ids
    assert spec["paths"]["/v1/tool/{tool}/builds"]["post"]["operationId"] == "builds_start"
    assert spec["paths"]["/metrics"]["get"]["operationId"] == "builds_metrics_get"


def test_build_shape_is_upstreams(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert schemas["BuildStatus"]["enum"] == [
        "BUILD_PENDING", "BUILD_RUNNING", "BUILD_SUCCESS", "BUILD_FAILURE",
        "BUILD_CANCELLED", "BUILD_TIMEOUT", "BUILD_UNKNOWN",
    ]  # fmt: skip
    build = schemas["Build"]["properties"]
    assert build["start_time"] == {
        "type": "string", "title": "Start Time", "default": "",
        "description": 'RFC 3339 UTC; "" before the start.',
    }  # fmt: skip
    params = schemas["BuildParameters"]["properties"]
    assert params["envvars"]["type"] == "object"
    assert params["use_deprecated_versions"]["type"] == "boolean"
    item = schemas["QuotaItem"]
    assert set(item["required"]) == {"name", "limit", "used", "available", "capacity"}
