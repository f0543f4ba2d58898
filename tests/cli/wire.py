"""Recorded answers of the jobs and builds APIs in both wire shapes, and a test double of the
gateway's HTTP transport that serves them to the CLI in unit tests.

- ``PRODUCTION_*``: the shape production serves (REFERENCE.md, "The wire as production serves
  it"; job fields as upstream's own tests record them: ``toolforge-jobs-cli`` 16.2.3
  ``tests/test_cli.py``/``test_dump.py``): per-type jobs without the fields that do not
  apply, ``image_state``, ``status.duration`` ``"1m24s"``, ``BUILD_*`` statuses, ``envvars``
  an object, ``""`` for unset times, quota ``available``/``capacity``, top-level
  ``{"error": [...]}`` errors.
- ``OLDER_*``: the shape our APIs served before (every field, ``null`` where it does not
  apply, ``continuous``, duration in seconds, lower-case statuses, ``envvars`` a list of
  names, ``messages.error`` errors).

:class:`RecordedGateway` is a test double (``httpx.MockTransport``) used only by unit tests of
the CLI; the end-to-end tests (``test_cli_*_e2e.py``) talk to the real gateway.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import typer
from cli.harness import CliPKI

from toolforge_cli import commands
from toolforge_cli.client import ApiClient
from toolforge_cli.config import Connection
from toolforge_cli.output import print_messages

NO_MESSAGES: dict[str, list[str]] = {"info": [], "warning": [], "error": []}

PRODUCTION_ONE_OFF: dict[str, Any] = {
    "name": "hello",
    "cmd": "./hello.sh --loud",
    "job_type": "one-off",
    "imagename": "python3.11",
    "image": "registry.local/toolforge/python3.11:stable",
    "image_state": "stable",
    "filelog": True,
    "filelog_stdout": "/data/project/alice/hello.out",
    "filelog_stderr": "/data/project/alice/hello.err",
    "emails": "none",
    "mount": "all",
    "retry": 0,
    "memory": "512Mi",
    "cpu": "100m",
    "status_short": "Completed",
    "status_long": "Completed",
    "status": {"short": "succeeded", "duration": "1m24s", "messages": [], "up_to_date": True},
}
PRODUCTION_SCHEDULED: dict[str, Any] = {
    **PRODUCTION_ONE_OFF,
    "name": "daily",
    "cmd": "./daily.sh",
    "job_type": "scheduled",
    "schedule": "@daily",
    "schedule_actual": "17 3 * * *",
    "timeout": 600,
    "retry": 2,
    "status_short": "Waiting for scheduled time",
    "status": {
        "short": "pending",
        "messages": [],
        "up_to_date": True,
        "previous_schedule": "2026-01-01T03:17:00+00:00",
        "next_schedule": "2026-01-02T03:17:00+00:00",
    },
}
PRODUCTION_CONTINUOUS: dict[str, Any] = {
    "name": "web",
    "cmd": "python3 app.py",
    "job_type": "continuous",
    "imagename": "python3.9",
    "image": "registry.local/toolforge/python3.9:stable",
    "image_state": "deprecated",
    "filelog": False,
    "emails": "none",
    "mount": "all",
    "memory": "1Gi",
    "cpu": "500m",
    "replicas": 2,
    "port": 8000,
    "port_protocol": "tcp",
    "health_check": {"type": "http", "path": "/healthz"},
    "status_short": "Running",
    "status_long": "Running",
    "status": {"short": "running", "duration": "1d2h3m4s", "messages": [], "up_to_date": True},
}
#: ``GET /jobs?include_unset=false``: only what the user set (``--no-filelog``, ``--mount
#: all``, ``--port 8000``).
PRODUCTION_UNSET_LEFT_OUT: dict[str, Any] = {
    "name": "web",
    "cmd": "python3 app.py",
    "job_type": "continuous",
    "imagename": "python3.11",
    "image_state": "stable",
    "filelog": False,
    "mount": "all",
    "port": 8000,
    "status": {"short": "running", "duration": "5s", "messages": [], "up_to_date": True},
}

OLDER_ONE_OFF: dict[str, Any] = {
    "name": "hello",
    "cmd": "./hello.sh --loud",
    "imagename": "python3.11",
    "image": "registry.local/toolforge/python3.11:stable",
    "job_type": "one-off",
    "continuous": False,
    "schedule": None,
    "schedule_actual": None,
    "timeout": None,
    "retry": 0,
    "memory": "512Mi",
    "cpu": "100m",
    "emails": "none",
    "mount": "all",
    "filelog": True,
    "filelog_stdout": "/data/project/alice/hello.out",
    "filelog_stderr": "/data/project/alice/hello.err",
    "replicas": None,
    "port": None,
    "port_protocol": None,
    "health_check": None,
    "status_short": "Completed",
    "status_long": "Completed",
    "status": {
        "short": "succeeded",
        "messages": [],
        "duration": 84,
        "up_to_date": True,
        "previous_schedule": None,
        "next_schedule": None,
    },
}
OLDER_CONTINUOUS: dict[str, Any] = {
    **OLDER_ONE_OFF,
    "name": "web",
    "cmd": "python3 app.py",
    "imagename": "python3.9",
    "image": "registry.local/toolforge/python3.9:stable",
    "job_type": "continuous",
    "continuous": True,
    "retry": None,
    "memory": "1Gi",
    "cpu": "500m",
    "filelog": False,
    "filelog_stdout": None,
    "filelog_stderr": None,
    "replicas": 2,
    "port": 8000,
    "port_protocol": "tcp",
    "health_check": {"type": "http", "path": "/healthz"},
    "status_short": "Running",
    "status_long": "Running",
    "status": {"short": "running", "messages": [], "duration": 93784, "up_to_date": True},
}

SOURCE = "https://gitlab.wikimedia.org/toolforge-repos/app"
PRODUCTION_PENDING_BUILD: dict[str, Any] = {
    "build_id": "alice-buildpacks-pipelinerun-pppp1",
    "start_time": "",
    "end_time": "",
    "status": "BUILD_PENDING",
    "message": "",
    "parameters": {
        "source_url": SOURCE,
        "ref": "",
        "envvars": {"API_TOKEN": "s3cr3t-value"},
        "image_name": "web",
        "use_latest_versions": False,
        "use_deprecated_versions": True,
    },
    "destination_image": "",
    "resolved_ref": "0123456789abcdef0123456789abcdef01234567",
}
PRODUCTION_DONE_BUILD: dict[str, Any] = {
    **PRODUCTION_PENDING_BUILD,
    "build_id": "alice-buildpacks-pipelinerun-ok001",
    "start_time": "2026-01-01T10:00:00Z",
    "end_time": "2026-01-01T10:05:00Z",
    "status": "BUILD_SUCCESS",
    "message": "Tasks Completed: 1 (Failed: 0, Cancelled 0), Skipped: 0",
    "destination_image": "registry.local/tool-alice/web:latest@sha256:" + "ab" * 32,
}
OLDER_FAILED_BUILD: dict[str, Any] = {
    "build_id": "alice-buildpacks-pipelinerun-old01",
    "start_time": "2026-01-01T10:00:00Z",
    "end_time": None,
    "status": "failure",
    "message": "step-build exited 1",
    "parameters": {
        "source_url": SOURCE,
        "ref": "main",
        "envvars": ["API_TOKEN"],
        "image_name": "web",
        "use_latest_versions": True,
    },
    "resolved_ref": "0123456789abcdef0123456789abcdef01234567",
    "destination_image": "registry.local/tool-alice/web:latest",
}
PRODUCTION_BUILD_QUOTA: dict[str, Any] = {
    "quota": {
        "categories": [
            {
                "name": "Registry",
                "items": [
                    {
                        "name": "Storage",
                        "limit": "1.00Gi",
                        "used": "12.50Mi",
                        "available": "1011.50Mi",
                        "capacity": "1%",
                    }
                ],
            }
        ]
    },
    "messages": NO_MESSAGES,
}


#: The envvars API's answers (REFERENCE.md, "Envvars"; the shapes ``toolforge-envvars``
#: 0.0.16 reads): a long value (60 characters), one with a tab and a newline.
LONG_VALUE = "x" * 45 + "0123456789abcde"
SECRET_VALUE = "s3cr3t-t0ken"  # noqa: S105 - a recorded value, no real secret
ENVVARS_LIST: dict[str, Any] = {
    "envvars": [
        {"name": "API_TOKEN", "value": SECRET_VALUE},
        {"name": "LONG_ONE", "value": LONG_VALUE},
        {"name": "MULTI_LINE", "value": "a\tb\nc\n"},
    ],
    "messages": NO_MESSAGES,
}
ENVVARS_QUOTA: dict[str, Any] = {"quota": {"quota": 100, "used": 3}, "messages": NO_MESSAGES}


def envvar_answer(name: str, value: str, *info: str) -> dict[str, Any]:
    """``{envvar: {name, value}, messages}`` with ``info`` messages."""
    return {
        "envvar": {"name": name, "value": value},
        "messages": {"info": list(info), "warning": [], "error": []},
    }


def production_error(*texts: str) -> dict[str, Any]:
    """Production's error body: ``{"error": [...]}`` at the top level."""
    return {"error": list(texts)}


def older_error(*texts: str) -> dict[str, Any]:
    """The older error body: the ``messages`` envelope with ``error`` filled."""
    return {"messages": {"info": [], "warning": [], "error": list(texts)}}


def envelope(**fields: Any) -> dict[str, Any]:
    """A success body: ``fields`` plus empty ``messages`` (unless given)."""
    return {"messages": NO_MESSAGES, **fields}


@dataclass
class RecordedGateway:
    """Test double of the gateway's HTTP transport for unit tests: answers each request with
    the recorded ``(status, body)`` for its method and path (paths after
    ``/<api>/v1/tool/alice``), and keeps the requests it saw. An unexpected request is a 599
    answer, which the CLI reports as an internal error (exit code 2)."""

    answers: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def on(self, method: str, path: str, body: Any, status: int = 200) -> RecordedGateway:
        self.answers[(method, path)] = (status, body)
        return self

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        for prefix in (
            "/jobs/v1/tool/alice",
            "/builds/v1/tool/alice",
            "/envvars/v1/tool/alice",
            "/logs/v1/tool/alice",
        ):
            if path.startswith(prefix):
                path = path[len(prefix) :]
                break
        status, body = self.answers.get(
            (request.method, path), (599, {"error": [f"not recorded: {request.method} {path}"]})
        )
        if isinstance(body, list) and body and isinstance(body[0], str) and status == 200:
            content = "".join(line + "\n" for line in body).encode()
            return httpx.Response(status, content=content)
        return httpx.Response(status, content=json.dumps(body).encode())

    def sent(self) -> list[tuple[str, str, dict[str, str], Any]]:
        """``(method, path, query, JSON body)`` of every request, in order."""
        return [
            (
                r.method,
                r.url.path,
                dict(r.url.params),
                json.loads(r.content) if r.content else None,
            )
            for r in self.requests
        ]


def use_gateway(monkeypatch: pytest.MonkeyPatch, pki: CliPKI, gateway: RecordedGateway) -> None:
    """Make every CLI command in this test talk to ``gateway`` as tool alice."""
    connection = Connection(
        api_url="https://gateway.test",
        tool="alice",
        cert=pki.alice.cert,
        key=pki.alice.key,
        ca_pem=pki.cluster_ca_file.read_text(),
        ca_source="test",
        timeout=5.0,
    )

    @contextmanager
    def api_client(ctx: typer.Context) -> Iterator[ApiClient]:
        transport = httpx.MockTransport(gateway.handle)
        with ApiClient(connection, on_messages=print_messages, transport=transport) as client:
            yield client

    monkeypatch.setattr(commands, "api_client", api_client)
