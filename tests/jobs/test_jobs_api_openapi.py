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

ERROR = {"$ref": "#/components/schemas/ErrorBody"}


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
            assert {"401", "403", "422", "500", "502", "503"} <= set(errors), (method, path)
            for code, response in errors.items():
                assert response["content"] == {"application/json": {"schema": ERROR}}, (
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


def test_error_body_is_productions(spec: dict[str, Any]) -> None:
    """``{"error": [...]}`` at the top level (REFERENCE.md, "The wire as production serves
    it")."""
    error = spec["components"]["schemas"]["ErrorBody"]
    assert error["required"] == ["error"]
    assert error["properties"]["error"]["type"] == "array"
    assert error["properties"]["error"]["items"] == {"type": "string"}


def test_operation_ids_are_unique_stable_and_prefixed(spec: dict[str, Any]) -> None:
    """The aggregated spec of the gateway must not meet an id twice, and a generated client's
    function names must not change when a route moves: every id is ``jobs_...``; the ones
    users' code calls are fixed by name."""
    ids = [
        operation["operationId"] for item in spec["paths"].values() for operation in item.values()
    ]
    assert len(ids) == len(set(ids))
    assert all(i.startswith("jobs_") for i in ids), ids
    assert {
        "jobs_list_jobs",
        "jobs_create_job",
        "jobs_upsert_job",
        "jobs_flush_jobs",
        "jobs_show_job",
        "jobs_delete_job",
        "jobs_job_logs",
        "jobs_restart_job",
        "jobs_images",
        "jobs_quotas",
        "jobs_healthz",
    } <= set(ids)


def test_spec_states_the_constraints_the_api_enforces(spec: dict[str, Any]) -> None:
    """Issue 13: the fuzzer found values the spec allowed and the API refused (empty ``cmd``,
    ``imagename``, health-check path). Each rule of the model is in the schema."""
    schemas = spec["components"]["schemas"]
    props = schemas["JobSpec"]["properties"]
    assert props["cmd"]["pattern"] == r"\S"
    assert props["cmd"]["minLength"] == 1
    assert props["imagename"]["minLength"] == 1
    assert props["name"]["maxLength"] == 52
    assert props["name"]["pattern"].startswith("^[a-z0-9]")
    assert (props["retry"]["minimum"], props["retry"]["maximum"]) == (0, 5)
    for field in ("memory", "cpu"):
        assert "pattern" in props[field], field
    # next to anyOf [integer, null]: a number keyword leaves null alone (JSON Schema 2020-12)
    assert props["replicas"]["minimum"] == 1
    assert props["timeout"]["minimum"] == 1
    assert (props["port"]["minimum"], props["port"]["maximum"]) == (1, 65535)
    assert schemas["HttpHealthCheck"]["properties"]["path"]["pattern"] == "^/"
    assert schemas["ScriptHealthCheck"]["properties"]["script"]["pattern"] == r"\S"
    for field in ("filelog_stdout", "filelog_stderr"):
        assert "pattern" in props[field], field


def test_jobs_in_answers_have_the_shape_of_their_type(spec: dict[str, Any]) -> None:
    """One schema per type, chosen by ``job_type``; fields of other types are not there, and
    nothing is nullable (absent instead of null)."""
    schemas = spec["components"]["schemas"]
    jobs = schemas["JobListResponse"]["properties"]["jobs"]["items"]
    assert jobs["discriminator"]["propertyName"] == "job_type"
    one_off = schemas["OneOffJobOut"]["properties"]
    scheduled = schemas["ScheduledJobOut"]["properties"]
    continuous = schemas["ContinuousJobOut"]["properties"]
    assert "schedule" not in one_off
    assert "port" not in one_off
    assert "replicas" not in one_off
    assert {"schedule", "schedule_actual", "timeout", "retry"} <= set(scheduled)
    assert "port" not in scheduled
    assert "replicas" not in scheduled
    assert {"replicas", "port", "port_protocol", "health_check"} <= set(continuous)
    assert "retry" not in continuous
    assert "schedule" not in continuous
    for name in ("OneOffJobOut", "ScheduledJobOut", "ContinuousJobOut", "JobStatus"):
        text = str(schemas[name])
        assert "'null'" not in text, name
    assert "image_state" in schemas["OneOffJobOut"]["required"]
    list_params = {p["name"] for p in spec["paths"]["/v1/tool/{tool}/jobs"]["get"]["parameters"]}
    assert "include_unset" in list_params


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
