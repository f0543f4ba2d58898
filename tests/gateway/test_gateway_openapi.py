"""The aggregated OpenAPI document: the pure merge and the live one from real backends."""

from __future__ import annotations

import copy
import json
import logging
import ssl
from typing import Any

import httpx
import pytest
from gateway.gateway_harness import Backends, GatewayPKI
from openapi_spec_validator import validate

from toolforge_gateway.openapi import SpecAggregator, merge_specs


def ref(name: str, kind: str = "schemas") -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def operation(operation_id: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "responses": {
            "200": {"description": "ok", "content": {"application/json": {"schema": schema}}}
        },
    }


def spec(paths: dict[str, Any], schemas: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": paths,
        "components": {"schemas": schemas},
        **extra,
    }


ERROR = {"type": "object", "properties": {"message": {"type": "string"}}}
JOBS = spec(
    {
        "/v1/healthz": {"get": operation("healthz", ref("Health"))},
        "/v1/tool/{tool}/jobs": {
            "get": {
                **operation("list_jobs", ref("JobList")),
                "security": [{"backendKey": []}],
                "parameters": [{"$ref": "#/components/parameters/Tool"}],
            }
        },
    },
    {
        "Health": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
        "Error": ERROR,
        "Item": {"type": "object", "properties": {"replicas": {"type": "integer"}}},
        # Identical text in both backends, but "Item" differs: must be renamed too.
        "JobList": {"type": "array", "items": ref("Item")},
    },
)
JOBS["components"]["parameters"] = {
    "Tool": {"name": "tool", "in": "path", "required": True, "schema": {"type": "string"}}
}
JOBS["components"]["securitySchemes"] = {
    "backendKey": {"type": "apiKey", "in": "header", "name": "k"}
}
BUILDS = spec(
    {
        "/v1/healthz": {"get": operation("healthz", ref("Health"))},
        "/v1/tool/{tool}/builds": {
            "parameters": [
                {"name": "tool", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "get": operation("list_builds", ref("JobList")),
        },
        "/v1/tool/{tool}/error": {
            "get": {
                **operation("error", ref("Error")),
                "parameters": [
                    {"name": "tool", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
            }
        },
    },
    {
        "Health": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
        "Error": ERROR,
        "Item": {"type": "object", "properties": {"ref": {"type": "string"}}},
        "JobList": {"type": "array", "items": ref("Item")},
    },
    tags=[{"name": "builds"}],
)


def test_merge_prefixes_paths_and_validates() -> None:
    merged = merge_specs({"jobs": JOBS, "builds": BUILDS}, server_url="https://gw:30003")
    validate(merged)
    assert set(merged["paths"]) == {
        "/jobs/v1/healthz",
        "/jobs/v1/tool/{tool}/jobs",
        "/builds/v1/healthz",
        "/builds/v1/tool/{tool}/builds",
        "/builds/v1/tool/{tool}/error",
    }
    assert merged["openapi"] == "3.1.0"
    assert merged["servers"] == [{"url": "https://gw:30003"}]
    assert merged["tags"] == [{"name": "builds"}]


def test_merge_keeps_identical_components_once_and_renames_conflicts() -> None:
    merged = merge_specs({"jobs": JOBS, "builds": BUILDS})
    schemas = merged["components"]["schemas"]
    assert set(schemas) == {
        "Health",
        "Error",
        "jobs_Item",
        "builds_Item",
        "jobs_JobList",
        "builds_JobList",
    }
    assert schemas["jobs_JobList"] == {"type": "array", "items": ref("jobs_Item")}
    assert schemas["builds_JobList"] == {"type": "array", "items": ref("builds_Item")}
    jobs_list = merged["paths"]["/jobs/v1/tool/{tool}/jobs"]["get"]
    assert jobs_list["responses"]["200"]["content"]["application/json"]["schema"] == ref(
        "jobs_JobList"
    )
    builds_error = merged["paths"]["/builds/v1/tool/{tool}/error"]["get"]
    assert builds_error["responses"]["200"]["content"]["application/json"]["schema"] == ref("Error")
    # Components only one backend has keep their name, and their references still resolve.
    assert jobs_list["parameters"] == [{"$ref": "#/components/parameters/Tool"}]
    assert "Tool" in merged["components"]["parameters"]


def test_a_renamed_schema_takes_its_new_name_as_title() -> None:
    """Generators (openapi-python-client) name models by ``title``: a renamed schema that kept
    its old title would collide with the other backend's again."""
    jobs = {"components": {"schemas": {"Health": {"title": "Health", "type": "object"}}}}
    builds = {"components": {"schemas": {"Health": {"title": "Health", "type": "string"}}}}
    named = {"components": {"schemas": {"Health": {"title": "Own words", "type": "integer"}}}}
    schemas = merge_specs({"jobs": jobs, "builds": builds, "named": named})["components"]["schemas"]
    assert schemas["jobs_Health"] == {"title": "jobs_Health", "type": "object"}
    assert schemas["builds_Health"] == {"title": "builds_Health", "type": "string"}
    assert schemas["named_Health"] == {"title": "Own words", "type": "integer"}  # not a name
    assert "Health" not in schemas


def test_merge_keeps_declared_path_parameters_as_they_are() -> None:
    merged = merge_specs({"jobs": JOBS, "builds": BUILDS})
    jobs = merged["paths"]["/jobs/v1/tool/{tool}/jobs"]["get"]
    assert jobs["parameters"] == [{"$ref": "#/components/parameters/Tool"}]
    builds = merged["paths"]["/builds/v1/tool/{tool}/builds"]
    assert "parameters" not in builds["get"]
    assert builds["parameters"][0]["name"] == "tool"


def test_merge_makes_operation_ids_unique() -> None:
    merged = merge_specs({"jobs": JOBS, "builds": BUILDS})
    ids = [
        op["operationId"]
        for item in merged["paths"].values()
        for method, op in item.items()
        if method != "parameters"
    ]
    assert len(ids) == len(set(ids))
    assert merged["paths"]["/jobs/v1/healthz"]["get"]["operationId"] == "jobs_healthz"
    assert merged["paths"]["/builds/v1/healthz"]["get"]["operationId"] == "builds_healthz"
    # Unique ones are left alone.
    assert merged["paths"]["/builds/v1/tool/{tool}/error"]["get"]["operationId"] == "error"


def test_merge_replaces_security_with_mutual_tls() -> None:
    merged = merge_specs({"jobs": JOBS, "builds": BUILDS})
    schemes = merged["components"]["securitySchemes"]
    assert set(schemes) == {"mutualTLS"}  # the backend's apiKey scheme is gone
    assert schemes["mutualTLS"]["type"] == "mutualTLS"
    assert merged["security"] == [{"mutualTLS": []}]
    assert "security" not in merged["paths"]["/jobs/v1/tool/{tool}/jobs"]["get"]


def test_merge_does_not_modify_its_input() -> None:
    before = copy.deepcopy(JOBS)
    merge_specs({"jobs": JOBS, "builds": BUILDS})
    assert before == JOBS


def test_merge_of_nothing_is_still_valid() -> None:
    merged = merge_specs({})
    validate(merged)
    assert merged["paths"] == {}


def test_merge_is_independent_of_backend_order() -> None:
    forward = merge_specs({"jobs": JOBS, "builds": BUILDS})
    backward = merge_specs({"builds": BUILDS, "jobs": JOBS})
    assert forward == backward


# -- live -----------------------------------------------------------------------------------


async def test_aggregated_spec_from_live_backends(
    alice: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="toolforge_gateway.openapi")
    response = await alice.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    merged = response.json()
    validate(merged)
    paths = set(merged["paths"])
    assert "/jobs/v1/tool/{tool}/echo" in paths
    assert "/builds/v1/tool/{tool}/echo" in paths
    assert "/jobs/v1/healthz" in paths
    # Both FastAPI apps name a different schema "Item"; both survive, renamed.
    schemas = merged["components"]["schemas"]
    assert schemas["jobs_Item"]["properties"].keys() == {"name", "replicas"}
    assert schemas["builds_Item"]["properties"].keys() == {"name", "ref"}
    assert "Item" not in schemas
    assert "Shared" in schemas
    # Routes whose backends are down, silent or untrusted are left out, with a warning each.
    assert not any(
        path.startswith(("/down/", "/silent/", "/impostor/", "/garbage/")) for path in paths
    )
    warned = {getattr(record, "route", None) for record in caplog.records}
    assert {"down", "silent", "impostor", "garbage"} <= warned


def mtls_client(pki: GatewayPKI, url: str) -> httpx.AsyncClient:
    context = ssl.create_default_context(cafile=pki.path("backend-ca.crt"))
    context.load_cert_chain(
        pki.path("gateway-backend-client.crt"), pki.path("gateway-backend-client.key")
    )
    return httpx.AsyncClient(base_url=url, verify=context)


@pytest.mark.parametrize(("cache_seconds", "fetches"), [(60.0, 1), (0.0, 3)])
async def test_aggregated_spec_is_cached(
    gw_pki: GatewayPKI, backends: Backends, cache_seconds: float, fetches: int
) -> None:
    async with mtls_client(gw_pki, backends.jobs.url) as jobs:
        aggregator = SpecAggregator(
            {"jobs": jobs}, {"jobs": 5.0}, cache_seconds=cache_seconds, server_url="/", version="1"
        )
        documents = [await aggregator.document() for _ in range(3)]
    assert documents[0] == documents[1] == documents[2]
    assert backends.jobs.seen == [("GET", "/openapi.json")] * fetches


async def test_backend_down_leaves_the_rest_of_the_spec(
    gw_pki: GatewayPKI, backends: Backends
) -> None:
    async with (
        mtls_client(gw_pki, backends.jobs.url) as jobs,
        mtls_client(gw_pki, "https://127.0.0.1:9") as down,
    ):
        aggregator = SpecAggregator(
            {"jobs": jobs, "down": down},
            {"jobs": 5.0, "down": 5.0},
            cache_seconds=0,
            server_url="/",
            version="1",
        )
        merged = json.loads(await aggregator.document())
    validate(merged)
    assert merged["paths"]
    assert all(path.startswith("/jobs/") for path in merged["paths"])
