"""End to end: the toolforge CLI and curl, through the gateway, to the jobs API, to real pods.

Uses the platform as ``make run`` starts it (:class:`toolforge_dev.services.PlatformServices`).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate

from platform_cli import toolforge
from toolforge_admin.onboarding import ToolOnboarder
from toolforge_dev import binaries
from toolforge_dev.cli import DEMO_TOOL, curl_example
from toolforge_dev.cluster import Cluster
from toolforge_dev.pytest_plugin import Tool
from toolforge_dev.services import PlatformServices

pytestmark = pytest.mark.cluster


async def test_printed_curl_example_works(
    platform: PlatformServices, cluster: Cluster, onboarder: ToolOnboarder
) -> None:
    # make run onboards the demo tool; a session that started the cluster itself does it here
    # (idempotent), so the printed command is checked either way.
    await onboarder.create(DEMO_TOOL)
    proc = await asyncio.create_subprocess_exec(
        *curl_example(cluster),
        "--silent",
        "--show-error",
        "--fail",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, stderr.decode()
    body = json.loads(stdout)
    assert isinstance(body["jobs"], list)
    assert body["messages"]["error"] == []


def test_cli_runs_a_job_through_the_gateway(platform: PlatformServices, tool: Tool) -> None:
    run = toolforge(
        tool, "jobs", "run", "hello", "--command", "echo hello from e2e", "--image", "python3.11",
        "--no-filelog",
        "--wait", "90",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    listed = toolforge(tool, "jobs", "list", "--output", "json")
    assert listed.returncode == 0, listed.stderr
    jobs = json.loads(listed.stdout)["jobs"]
    assert [(j["name"], j["status"]["short"]) for j in jobs] == [("hello", "succeeded")]
    # the logs API reads the log store, which has the line a few seconds after it was printed
    deadline = time.monotonic() + 60
    while True:
        logs = toolforge(tool, "jobs", "logs", "hello", "--output", "json")
        assert logs.returncode == 0, logs.stderr
        lines = [json.loads(line) for line in logs.stdout.splitlines()]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert [line["message"] for line in lines] == ["hello from e2e"]
    assert lines[0]["container"] == "job"


def test_cli_reports_a_user_error_with_exit_code_1(platform: PlatformServices, tool: Tool) -> None:
    result = toolforge(tool, "jobs", "run", "bad", "--command", "true", "--image", "nope")
    assert result.returncode == 1
    assert "nope" in result.stderr
    assert toolforge(tool, "jobs", "show", "bad").returncode == 1


def _client(cert: Path, key: Path, ca: Path) -> httpx.Client:
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(cert, key)
    return httpx.Client(verify=context, base_url="https://127.0.0.1:8443", timeout=30)


def test_gateway_confines_a_tool_and_serves_one_spec(
    platform: PlatformServices, tool: Tool, cluster: Cluster
) -> None:
    ca = cluster.pki_dir / "cluster-ca.crt"
    cert, key = tool.home / ".toolskube" / "client.crt", tool.home / ".toolskube" / "client.key"
    with _client(cert, key, ca) as client:
        other = client.get("/jobs/v1/tool/someone-else/jobs")
        assert other.status_code == 403
        assert other.json()["messages"]["error"]
        forged = client.get(
            f"/jobs/v1/tool/{tool.name}/jobs",
            headers={"ssl-client-subject-dn": "CN=someone-else,O=toolforge"},
        )
        assert forged.status_code == 200
        spec = client.get("/openapi.json").json()
    validate(spec)
    assert "/jobs/v1/tool/{tool}/jobs" in spec["paths"]


def test_builds_through_the_gateway(
    platform: PlatformServices, tool: Tool, cluster: Cluster
) -> None:
    ca = cluster.pki_dir / "cluster-ca.crt"
    cert, key = tool.home / ".toolskube" / "client.crt", tool.home / ".toolskube" / "client.key"
    base = f"/builds/v1/tool/{tool.name}"
    with _client(cert, key, ca) as client:
        # A full commit id needs no ls-remote, so nothing leaves the machine.
        started = client.post(
            f"{base}/builds",
            json={"source_url": "https://gitlab.example.org/tool/app.git", "ref": "a" * 40},
        )
        assert started.status_code == 200, started.text
        name = started.json()["new_build"]["name"]
        assert name.startswith(f"{tool.name}-buildpacks-pipelinerun-")
        builds = client.get(f"{base}/builds").json()["builds"]
        # The real Tekton controller may have started the run already (its clone then fails:
        # the host does not exist); real builds are tested in tests/builds/test_builds_tekton.py.
        assert [b["build_id"] for b in builds] == [name]
        assert builds[0]["status"] in ("BUILD_PENDING", "BUILD_RUNNING", "BUILD_FAILURE"), builds
        assert client.delete(f"{base}/builds/{name}").status_code == 200
        assert client.get(f"{base}/builds/{name}").status_code == 404
        spec = client.get("/openapi.json").json()
    assert "/builds/v1/tool/{tool}/builds" in spec["paths"]


def test_apiserver_outage_gives_503_then_recovers(
    platform: PlatformServices, tool: Tool, cluster: Cluster
) -> None:
    """kube-apiserver really stopped: the jobs API answers 503 with Retry-After through the
    gateway, and serves again once kube-apiserver is back (no restart of the API)."""
    ca = cluster.pki_dir / "cluster-ca.crt"
    cert, key = tool.home / ".toolskube" / "client.crt", tool.home / ".toolskube" / "client.key"
    path = f"/jobs/v1/tool/{tool.name}/jobs"
    with _client(cert, key, ca) as client:
        assert client.get(path).status_code == 200
        cluster.stop_apiserver()
        try:
            down = client.get(path)
            assert down.status_code == 503, down.text
            assert int(down.headers["retry-after"]) > 0
            assert down.json()["error"]  # the jobs API's {"error": [...]}
        finally:
            cluster.start_apiserver(binaries.Binaries.from_cache())
        deadline = time.monotonic() + 60
        while (status := client.get(path).status_code) != 200 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert status == 200
