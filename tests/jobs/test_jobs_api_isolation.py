"""Isolation between tools, and impersonation, on the real cluster.

Tool A must not see, read logs of, restart or delete tool B's jobs - neither through the API
(the path's tool must be the caller's) nor through impersonation (the API's own identity can
read nothing in a tool namespace; impersonating A gives A's rights only).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from jobs.support import JobsAPI, onboarded_tool, wait_for
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from toolforge_dev.cluster import Cluster
from toolforge_dev.pytest_plugin import Tool, new_tool_api

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def other_tool(cluster: Cluster) -> AsyncIterator[Tool]:
    """A second tool, B."""
    async with onboarded_tool(cluster) as tool:
        yield tool


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service_kube(cluster: Cluster) -> AsyncIterator[k8s.ApiClient]:
    """A client with the jobs API's own identity (user toolforge-jobs-api)."""
    api = await new_tool_api(cluster.service_kubeconfig("jobs-api"))
    async with api:
        yield api


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def b_job(jobs_api: JobsAPI, other_tool: Tool) -> str:
    """A running job of tool B."""
    async with jobs_api.client(other_tool.name) as client:
        response = await client.post(
            f"/v1/tool/{other_tool.name}/jobs",
            json={
                "name": "secret",
                "cmd": "echo started; sleep 3600",
                "imagename": "bookworm",
                "filelog": False,  # the pod log is read below
            },
        )
        assert response.status_code == 201, response.text

        async def running() -> bool:
            job = (await client.get(f"/v1/tool/{other_tool.name}/jobs/secret")).json()["job"]
            return bool(job["status"]["short"] == "running")

        await wait_for(running, "B's job running")
    return "secret"


async def test_a_cannot_reach_b_through_the_api(
    jobs_api: JobsAPI, module_tool: Tool, other_tool: Tool, b_job: str
) -> None:
    b_path = f"/v1/tool/{other_tool.name}/jobs"
    async with jobs_api.client(module_tool.name) as client:
        for method, path in [
            ("GET", b_path),
            ("GET", f"{b_path}/{b_job}"),
            ("GET", f"{b_path}/{b_job}/logs"),
            ("POST", f"{b_path}/{b_job}/restart"),
            ("DELETE", f"{b_path}/{b_job}"),
            ("DELETE", b_path),
            ("GET", f"/v1/tool/{other_tool.name}/quotas"),
        ]:
            response = await client.request(method, path)
            assert response.status_code == 403, (method, path, response.text)
            assert response.json()["error"] == [
                f"tool {module_tool.name!r} may not act on tool {other_tool.name!r}"
            ]
        # under its own path, A simply has no such job
        a_path = f"/v1/tool/{module_tool.name}/jobs"
        assert (await client.get(a_path)).json()["jobs"] == []
        assert (await client.get(f"{a_path}/{b_job}")).status_code == 404
        assert (await client.delete(f"{a_path}/{b_job}")).status_code == 404
        assert (await client.delete(a_path)).status_code == 200  # flush of A's (no) jobs
    async with jobs_api.client(other_tool.name) as client:
        job = (await client.get(f"{b_path}/{b_job}")).json()["job"]
        assert job["status"]["short"] == "running"


async def test_impersonation_confines_the_service(
    jobs_api: JobsAPI,
    module_tool: Tool,
    other_tool: Tool,
    b_job: str,
    service_kube: k8s.ApiClient,
) -> None:
    core = k8s.CoreV1Api(service_kube)
    # kubernetes_asyncio API methods take extra request headers as _headers (not in its stubs)
    # the API's own identity cannot read a tool namespace ...
    with pytest.raises(ApiException) as denied:
        await core.list_namespaced_pod(other_tool.namespace)
    assert denied.value.status == 403
    # ... impersonating tool A it cannot read B's either ...
    as_a = {"Impersonate-User": module_tool.name, "Impersonate-Group": "toolforge"}
    with pytest.raises(ApiException) as denied:
        await core.list_namespaced_pod(other_tool.namespace, _headers=as_a)  # type: ignore[call-arg]
    assert denied.value.status == 403
    # ... it cannot impersonate system users or other groups ...
    for headers in (
        {"Impersonate-User": "system:admin"},
        {"Impersonate-User": module_tool.name, "Impersonate-Group": "system:masters"},
    ):
        with pytest.raises(ApiException) as denied:
            await core.list_namespaced_pod(other_tool.namespace, _headers=headers)  # type: ignore[call-arg]
        assert denied.value.status == 403
    # ... and only impersonating B does it see B's pods, which is how the API shows B's status
    as_b = {"Impersonate-User": other_tool.name, "Impersonate-Group": "toolforge"}
    pods = await core.list_namespaced_pod(other_tool.namespace, _headers=as_b)  # type: ignore[call-arg]
    assert [p.metadata.labels["app.kubernetes.io/name"] for p in pods.items] == [b_job]
    async with jobs_api.client(other_tool.name) as client:
        logs = await wait_for(
            lambda: _logs_of(client, other_tool, b_job), "the job's first line", timeout=60
        )
        assert logs.status_code == 200


async def _logs_of(client: httpx.AsyncClient, tool: Tool, job: str) -> httpx.Response | None:
    """The job's log answer once it has a line (404 "no logs available" until then)."""
    response = await client.get(f"/v1/tool/{tool.name}/jobs/{job}/logs")
    return response if response.status_code != 404 else None


@pytest.mark.parametrize(
    "name", ["..", "a,app.kubernetes.io/name!=x", "x%3Flimit=1", "UPPER", "a" * 53]
)
async def test_names_no_job_can_have_are_404(
    jobs_api: JobsAPI, module_tool: Tool, name: str
) -> None:
    """Such names never reach an apiserver path or label selector."""
    path = f"/v1/tool/{module_tool.name}/jobs/{name}"
    async with jobs_api.client(module_tool.name) as client:
        for method, suffix in [("GET", ""), ("DELETE", ""), ("GET", "/logs"), ("POST", "/restart")]:
            response = await client.request(method, path + suffix)
            assert response.status_code == 404, (method, suffix, response.text)
