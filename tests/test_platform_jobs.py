"""The jobs issue's end-to-end cases: the toolforge CLI (or httpx) -> gateway over mTLS ->
jobs API -> the real cluster. Each test uses a freshly onboarded tool."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes_asyncio import client as k8s

from platform_cli import toolforge
from toolforge_dev.cluster import Cluster
from toolforge_dev.pytest_plugin import Tool
from toolforge_dev.services import PlatformServices

pytestmark = pytest.mark.cluster


def _show(tool: Tool, name: str) -> dict[str, Any]:
    shown = toolforge(tool, "jobs", "show", name, "--output", "json")
    assert shown.returncode == 0, shown.stderr
    job: dict[str, Any] = json.loads(shown.stdout)["job"]
    return job


def _until(
    tool: Tool, name: str, done: Callable[[dict[str, Any]], bool], timeout: float = 120
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = _show(tool, name)
        if done(job) or time.monotonic() > deadline:
            return job
        time.sleep(1)


def test_failing_command_shows_its_exit_code(platform: PlatformServices, tool: Tool) -> None:
    run = toolforge(
        tool, "jobs", "run", "boom", "--image", "python3.11",
        "--command", "python3 -c 'import sys; print(\"bye\"); sys.exit(3)'", "--wait", "90",
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    job = _show(tool, "boom")
    assert job["status"]["short"] == "failed", (run.stderr, job["status"])
    assert any("exit code 3" in m for m in job["status"]["messages"]), job["status"]


def test_scheduled_job_runs_now_on_restart(platform: PlatformServices, tool: Tool) -> None:
    run = toolforge(
        tool, "jobs", "run", "nightly", "--image", "python3.11", "--no-filelog",
        "--command", "echo tick", "--schedule", "@daily",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    job = _show(tool, "nightly")
    assert job["schedule"] == "@daily"
    assert job["schedule_actual"] != "@daily"
    assert len(job["schedule_actual"].split()) == 5
    assert toolforge(tool, "jobs", "restart", "nightly").returncode == 0

    def ran(_: dict[str, Any]) -> bool:
        logs = toolforge(tool, "jobs", "logs", "nightly", "--output", "json")
        return logs.returncode == 0 and "tick" in logs.stdout

    deadline = time.monotonic() + 120
    while not ran({}) and time.monotonic() < deadline:
        time.sleep(1)
    assert ran({})


async def test_continuous_job_with_port_and_health_check(
    platform: PlatformServices, tool: Tool, admin_api: k8s.ApiClient
) -> None:
    server = "python3 -m http.server 8000"
    run = toolforge(
        tool, "jobs", "run", "web", "--image", "python3.11", "--command", server,
        "--continuous", "--replicas", "2", "--port", "8000", "--health-check-http", "/",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    job = _until(
        tool, "web", lambda j: j["status"]["short"] == "running" and j["status"]["up_to_date"]
    )
    assert job["status"]["short"] == "running", job["status"]
    service = await k8s.CoreV1Api(admin_api).read_namespaced_service("web", tool.namespace)
    assert [p.port for p in service.spec.ports] == [8000]
    # "running" means both pods' containers run; Ready follows once the probes pass and the
    # Deployment controller has counted them.
    deadline = time.monotonic() + 60
    while True:
        deployment = await k8s.AppsV1Api(admin_api).read_namespaced_deployment(
            "web", tool.namespace
        )
        if deployment.status.ready_replicas == 2 or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    assert deployment.status.ready_replicas == 2


def test_dump_then_load_is_a_no_op_and_a_change_updates(
    platform: PlatformServices, tool: Tool, tmp_path: Path
) -> None:
    for name, schedule in (("a", "@hourly"), ("b", "17 3 * * *")):
        run = toolforge(
            tool, "jobs", "run", name, "--image", "python3.11", "--command", "true",
            "--schedule", schedule,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
    jobs_yaml = tmp_path / "jobs.yaml"
    assert toolforge(tool, "jobs", "dump", "-f", str(jobs_yaml)).returncode == 0
    load = toolforge(tool, "jobs", "load", str(jobs_yaml))
    assert load.returncode == 0, load.stderr
    assert "updated" not in load.stdout + load.stderr
    assert "created" not in load.stdout + load.stderr
    entries = yaml.safe_load(jobs_yaml.read_text())
    for entry in entries:
        if entry["name"] == "b":
            entry["mem"] = "256Mi"
    jobs_yaml.write_text(yaml.safe_dump(entries))
    load = toolforge(tool, "jobs", "load", str(jobs_yaml))
    assert load.returncode == 0, load.stderr
    assert _show(tool, "b")["memory"] == "256Mi"
    assert _show(tool, "a")["memory"] == "0.5Gi"  # the default


def test_quota_exhaustion_gives_the_quota_message(platform: PlatformServices, tool: Tool) -> None:
    # The tool's ResourceQuota allows 5 Services; each continuous job with a port makes one.
    service_job = ["--image", "python3.11", "--command", "sleep 600", "--continuous"]
    service_job += ["--port", "8000", "--mem", "100Mi", "--cpu", "50m"]
    results = [toolforge(tool, "jobs", "run", f"svc{i}", *service_job) for i in range(6)]
    assert [r.returncode for r in results[:5]] == [0] * 5, [r.stderr for r in results]
    assert results[5].returncode == 1
    assert "exceeded quota" in results[5].stderr
    listed = json.loads(toolforge(tool, "jobs", "list", "--output", "json").stdout)["jobs"]
    assert sorted(j["name"] for j in listed) == [f"svc{i}" for i in range(5)]


def test_tool_cannot_touch_another_tools_jobs(
    platform: PlatformServices, tool: Tool, other_tool: Tool, cluster: Cluster
) -> None:
    run = toolforge(other_tool, "jobs", "run", "mine", "--image", "python3.11", "--command", "true")
    assert run.returncode == 0, run.stderr
    # The CLI always acts as its certificate's tool; aim at the other tool's paths by hand.
    context = ssl.create_default_context(cafile=cluster.pki_dir / "cluster-ca.crt")
    context.load_cert_chain(
        tool.home / ".toolskube" / "client.crt", tool.home / ".toolskube" / "client.key"
    )
    base = f"{platform.gateway_url}/jobs/v1/tool/{other_tool.name}"
    with httpx.Client(verify=context, timeout=30) as client:
        for method, path in (
            ("GET", "/jobs"),
            ("GET", "/jobs/mine"),
            ("GET", "/jobs/mine/logs"),
            ("POST", "/jobs/mine/restart"),
            ("DELETE", "/jobs/mine"),
            ("DELETE", "/jobs"),
        ):
            response = client.request(method, base + path)
            assert response.status_code == 403, (method, path, response.text)
    # Nothing happened to it, and the first tool sees none of it.
    assert _show(other_tool, "mine")["name"] == "mine"
    mine = json.loads(toolforge(tool, "jobs", "list", "--output", "json").stdout)["jobs"]
    assert mine == []
