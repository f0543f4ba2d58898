"""The logs API's OpenAPI document: valid OpenAPI 3.1, the routes of REFERENCE.md ("Logs"),
errors documented as ``ErrorBody``, the stream as NDJSON of ``LogLine``, and equal to the
committed snapshot ``services/logs/openapi.json``.

``UPDATE_OPENAPI=1 pytest tests/logs/test_logs_api_openapi.py`` rewrites the snapshot.
"""

from __future__ import annotations

from typing import Any

import pytest

from openapi_snapshot import assert_snapshot_and_valid, service_spec
from toolforge_logs.app import create_app
from toolforge_logs.settings import LogsSettings


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    document: dict[str, Any] = service_spec(
        create_app, LogsSettings, tmp_path_factory.mktemp("logs-openapi")
    )
    return document


def test_snapshot_is_current_and_valid(spec: dict[str, Any]) -> None:
    assert_snapshot_and_valid(spec, "logs", "tests/logs/test_logs_api_openapi.py")


def test_the_reference_routes_and_their_errors(spec: dict[str, Any]) -> None:
    operations = {(m.upper(), p) for p, item in spec["paths"].items() for m in item}
    assert operations >= {
        ("GET", "/v1/tool/{tool}/logs"),
        ("GET", "/v1/tool/{tool}/job/{name}/logs"),
        ("GET", "/v1/tool/{tool}/job/{name}/logs_stream"),
        ("POST", "/v1/tool/{tool}/source/jobs-api/log"),
        ("GET", "/v1/healthz"),
    }
    stream = spec["paths"]["/v1/tool/{tool}/job/{name}/logs_stream"]["get"]["responses"]
    assert stream["200"]["content"] == {
        "application/x-ndjson": {"schema": {"$ref": "#/components/schemas/LogLine"}}
    }
    error = {"$ref": "#/components/schemas/ErrorBody"}
    for path in ("/v1/tool/{tool}/logs", "/v1/tool/{tool}/job/{name}/logs"):
        responses = spec["paths"][path]["get"]["responses"]
        for code in ("400", "401", "403", "503"):
            assert responses[code]["content"]["application/json"]["schema"] == error, (path, code)
    assert stream["404"]["content"]["application/json"]["schema"] == error
