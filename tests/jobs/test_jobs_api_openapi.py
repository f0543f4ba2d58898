"""The jobs API's OpenAPI document: generated from the models, valid OpenAPI 3.1, every error
response documented, and equal to the committed snapshot ``services/jobs/openapi.json``.

``UPDATE_OPENAPI=1 pytest tests/jobs/test_jobs_api_openapi.py`` rewrites the snapshot.
"""

from __future__ import annotations

from typing import Any

import pytest

from openapi_snapshot import assert_snapshot_and_valid, service_spec
from toolforge_jobs.app import create_app
from toolforge_jobs.settings import JobsSettings

MESSAGES = {"$ref": "#/components/schemas/MessagesResponse"}


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    document: dict[str, Any] = service_spec(
        create_app, JobsSettings, tmp_path_factory.mktemp("jobs-openapi")
    )
    return document


def test_snapshot_is_current_and_valid(spec: dict[str, Any]) -> None:
    assert_snapshot_and_valid(spec, "jobs", "tests/jobs/test_jobs_api_openapi.py")


def test_every_reference_route_is_there(spec: dict[str, Any]) -> None:
    operations = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    assert operations >= {
        ("GET", "/v1/tool/{tool}/jobs"),
        ("POST", "/v1/tool/{tool}/jobs"),
        ("PATCH", "/v1/tool/{tool}/jobs"),
        ("DELETE", "/v1/tool/{tool}/jobs"),
        ("GET", "/v1/tool/{tool}/jobs/{name}"),
        ("DELETE", "/v1/tool/{tool}/jobs/{name}"),
        ("GET", "/v1/tool/{tool}/jobs/{name}/logs"),
        ("POST", "/v1/tool/{tool}/jobs/{name}/restart"),
        ("GET", "/v1/tool/{tool}/images"),
        ("GET", "/v1/tool/{tool}/quotas"),
        ("GET", "/v1/healthz"),
        ("GET", "/metrics"),
    }


def _errors(operation: dict[str, Any]) -> dict[str, Any]:
    return {code: r for code, r in operation["responses"].items() if code[0] in "45"}


def test_every_tool_route_documents_its_errors_as_the_envelope(spec: dict[str, Any]) -> None:
    for path, item in spec["paths"].items():
        if not path.startswith("/v1/tool/"):
            continue
        for method, operation in item.items():
            errors = _errors(operation)
            assert {"401", "403", "422", "503"} <= set(errors), (method, path)
            for code, response in errors.items():
                assert response["content"] == {"application/json": {"schema": MESSAGES}}, (
                    method,
                    path,
                    code,
                )
    create = spec["paths"]["/v1/tool/{tool}/jobs"]["post"]
    assert {"400", "409"} <= set(_errors(create))
    assert "201" in create["responses"]
    for path in ("/v1/tool/{tool}/jobs/{name}", "/v1/tool/{tool}/jobs/{name}/restart"):
        for operation in spec["paths"][path].values():
            assert "404" in operation["responses"]
    assert "400" in spec["paths"]["/v1/tool/{tool}/jobs/{name}/restart"]["post"]["responses"]


def test_models_come_from_pydantic(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    job_spec = schemas["JobSpec"]
    assert job_spec["additionalProperties"] is False  # unknown fields are rejected
    assert set(job_spec["required"]) == {"name", "cmd", "imagename"}
    assert set(schemas["LogLine"]["properties"]) == {"pod", "container", "datetime", "message"}
    logs = spec["paths"]["/v1/tool/{tool}/jobs/{name}/logs"]["get"]["responses"]["200"]
    assert logs["content"] == {
        "application/x-ndjson": {"schema": {"$ref": "#/components/schemas/LogLine"}}
    }
