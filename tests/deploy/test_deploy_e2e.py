"""The in-cluster deployment (make deploy): the three charts installed by Helm into the real
cluster, the service images built from uv.lock and imported into containerd. Requests go
from the host to the in-cluster gateway's NodePort (https://127.0.0.1:30003) with a tool's
client certificate, then to the in-cluster jobs API pods over mTLS, then to the cluster."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from toolforge_dev import binaries
from toolforge_dev.cluster import Cluster
from toolforge_dev.deploy import NAMESPACE, NODE_PORT, DeployReport, deploy
from toolforge_dev.pytest_plugin import Tool

pytestmark = pytest.mark.cluster

GATEWAY = f"https://127.0.0.1:{NODE_PORT}"
#: Yearly, on 1 January: the CronJobs of the kill test never fire.
NEVER = "0 0 1 1 *"


@pytest.fixture(scope="module")
def deployment(cluster: Cluster) -> DeployReport:
    return deploy(cluster, progress=print)


def kubectl(cluster: Cluster, *args: str) -> str:
    """``kubectl -n toolforge-api ARGS`` as cluster-admin (``Cluster.kubectl``)."""
    return cluster.kubectl(binaries.Binaries.from_cache(), "-n", NAMESPACE, *args)


@pytest.fixture
async def client(cluster: Cluster, tool: Tool) -> AsyncIterator[httpx.AsyncClient]:
    context = ssl.create_default_context(cafile=cluster.pki_dir / "cluster-ca.crt")
    toolskube = tool.home / ".toolskube"
    context.load_cert_chain(toolskube / "client.crt", toolskube / "client.key")
    async with httpx.AsyncClient(base_url=GATEWAY, verify=context, timeout=30) as c:
        yield c


async def test_one_off_job_through_the_in_cluster_gateway(
    deployment: DeployReport, cluster: Cluster, tool: Tool, client: httpx.AsyncClient
) -> None:
    base = f"/jobs/v1/tool/{tool.name}/jobs"
    created = await client.post(
        base,
        json={
            "name": "hello",
            "cmd": "python3 -c \"print('hello from the in-cluster API')\"",
            "imagename": "python3.11",
            "filelog": False,  # on by default (REFERENCE.md); the pod log is read here
        },
    )
    assert created.status_code == 201, created.text
    deadline = time.monotonic() + 120
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        shown = await client.get(f"{base}/hello")
        assert shown.status_code == 200, shown.text
        status = shown.json()["job"]["status"]
        if status["short"] in ("succeeded", "failed"):
            break
        await asyncio.sleep(1)
    assert status["short"] == "succeeded", status
    logs = await client.get(f"{base}/hello/logs")
    assert logs.status_code == 200, logs.text
    lines = [json.loads(line) for line in logs.text.splitlines()]
    assert [line["message"] for line in lines] == ["hello from the in-cluster API"]
    # The in-cluster logs API reads the same line from the log store (a few seconds later).
    found: list[str] = []
    while time.monotonic() < deadline + 60 and not found:
        page = await client.get(f"/logs/v1/tool/{tool.name}/job/hello/logs")
        assert page.status_code == 200, page.text
        found = [line["message"] for line in page.json()["data"]["logs"]]
        await asyncio.sleep(0.5)
    assert found == ["hello from the in-cluster API"]
    # The answer came from the in-cluster deployment: its gateway advertises the NodePort URL,
    # and the jobs API pods are the chart's.
    spec = (await client.get("/openapi.json")).json()
    assert spec["servers"][0]["url"] == GATEWAY
    pods = json.loads(
        kubectl(cluster, "get", "pods", "-l", "app.kubernetes.io/name=jobs-api", "-o", "json")
    )
    assert len([p for p in pods["items"] if p["status"]["phase"] == "Running"]) >= 2
    # Another tool's path is refused by the in-cluster gateway too.
    other = await client.get("/jobs/v1/tool/someone-else/jobs")
    assert other.status_code == 403


async def _create(client: httpx.AsyncClient, base: str, name: str) -> tuple[int, int]:
    """Create scheduled job ``name``: POST once, then on an error whose outcome is unknown
    (5xx, connection reset) upsert with PATCH until it is confirmed. Returns (attempts,
    final status)."""
    body = {"name": name, "cmd": "true", "imagename": "python3.11", "schedule": NEVER}
    attempts = 0
    deadline = time.monotonic() + 90
    method = "POST"
    while True:
        attempts += 1
        try:
            response = await client.request(method, base, json=body)
            if response.status_code in (200, 201):
                return attempts, response.status_code
            assert response.status_code >= 500, response.text
        except (httpx.TransportError, httpx.TimeoutException):
            pass
        assert time.monotonic() < deadline, f"{name}: no success in 90 s"
        method = "PATCH"
        await asyncio.sleep(0.5)


async def test_killing_a_jobs_api_pod_loses_no_created_job(
    deployment: DeployReport, cluster: Cluster, tool: Tool, client: httpx.AsyncClient
) -> None:
    base = f"/jobs/v1/tool/{tool.name}/jobs"
    pods = json.loads(
        kubectl(cluster, "get", "pods", "-l", "app.kubernetes.io/name=jobs-api", "-o", "json")
    )["items"]
    victim = pods[0]["metadata"]["name"]
    names = [f"kill-{i:03d}" for i in range(36)]
    confirmed: list[str] = []
    retried: list[str] = []
    killed_at = 12
    for i, name in enumerate(names):
        if i == killed_at:
            # Delete the pod the normal way (SIGTERM, drain) without waiting for it to go.
            kubectl(cluster, "delete", "pod", victim, "--wait=false")
        attempts, _status = await _create(client, base, name)
        confirmed.append(name)
        if attempts > 1:
            retried.append(name)
        await asyncio.sleep(0.25)
    listed = await client.get(base)
    assert listed.status_code == 200, listed.text
    present = sorted(job["name"] for job in listed.json()["jobs"])
    # No confirmed job is lost, and nothing was created twice or half-way.
    assert present == sorted(confirmed)
    # The requests after the kill (24 of them) all finished, and the replica came back.
    kubectl(
        cluster,
        "rollout",
        "status",
        "deployment/jobs-api",
        "--timeout=120s",
    )
    pods_after = json.loads(
        kubectl(cluster, "get", "pods", "-l", "app.kubernetes.io/name=jobs-api", "-o", "json")
    )["items"]
    names_after = {
        p["metadata"]["name"] for p in pods_after if not p["metadata"].get("deletionTimestamp")
    }
    assert victim not in names_after
    assert len(names_after) == 2
    final = await client.get(base)
    assert final.status_code == 200
    print(f"jobs created: {len(confirmed)}, needing a retry: {len(retried)} {retried}")
