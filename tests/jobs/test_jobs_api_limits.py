"""Validation, images, quotas and quota exhaustion through the jobs API on the real cluster.

The module's tool has the onboarding defaults: LimitRange max 1 CPU / 4Gi per container,
ResourceQuota requests.memory 6Gi and 5 Services.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from jobs.support import JobsAPI, wait_for
from kubernetes_asyncio import client as k8s

from toolforge_dev.pytest_plugin import Tool, new_tool_api

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="module")]

BASE: dict[str, Any] = {"name": "job1", "cmd": "true", "imagename": "bookworm"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tool_kube(module_tool: Tool) -> AsyncIterator[k8s.ApiClient]:
    api = await new_tool_api(module_tool.kubeconfig)
    async with api:
        yield api


@pytest.mark.parametrize(
    ("fields", "status", "start", "words"),
    [
        ({"name": "Bad_Name"}, 422, "name", "lower case letters"),
        ({"command": "true"}, 422, "command", "Extra inputs are not permitted"),
        ({"imagename": "nope"}, 400, "imagename", "use one of: bookworm"),
        ({"memory": "8Gi"}, 400, "memory", "above the maximum of 4Gi per container"),
        ({"cpu": "2"}, 400, "cpu", "above the maximum of 1 per container"),
        ({"memory": "10Mi"}, 400, "memory", "below the minimum of 100Mi"),
        ({"schedule": "61 * * * *"}, 422, "schedule", "minute"),
        ({"retry": 9}, 422, "retry", "between 0 and 5"),
        ({"emails": "sometimes"}, 422, "emails", "'onfailure'"),
        ({"filelog": True, "filelog_stdout": "../../etc/x"}, 400, "filelog_stdout", "inside"),
    ],
)
async def test_bad_input_is_refused_naming_the_field(
    jobs_api: JobsAPI,
    module_tool: Tool,
    fields: dict[str, Any],
    status: int,
    start: str,
    words: str,
) -> None:
    async with jobs_api.client(module_tool.name) as client:
        for method in ("POST", "PATCH"):
            response = await client.request(
                method, f"/v1/tool/{module_tool.name}/jobs", json={**BASE, **fields}
            )
            assert response.status_code == status, response.text
            errors = response.json()["error"]
            assert len(errors) == 1, errors
            assert errors[0].startswith(start), errors
            assert words in errors[0]
        assert (await client.get(f"/v1/tool/{module_tool.name}/jobs")).json()["jobs"] == []


async def test_images_list(jobs_api: JobsAPI, module_tool: Tool) -> None:
    async with jobs_api.client(module_tool.name) as client:
        response = await client.get(f"/v1/tool/{module_tool.name}/images")
    assert response.status_code == 200
    assert response.json()["images"] == [
        {
            "shortname": "bookworm",
            "image": "registry.local/toolforge/bookworm:stable",
            "aliases": ["tf-bookworm"],
        },
        {
            "shortname": "python3.11",
            "image": "registry.local/toolforge/python3.11:stable",
            "aliases": ["tf-python311", "python3"],
        },
    ]


async def test_quotas_in_human_units(jobs_api: JobsAPI, module_tool: Tool) -> None:
    async with jobs_api.client(module_tool.name) as client:
        response = await client.get(f"/v1/tool/{module_tool.name}/quotas")
    assert response.status_code == 200, response.text
    categories = {
        c["name"]: {i["name"]: (i["limit"], i.get("used")) for i in c["items"]}
        for c in response.json()["quota"]["categories"]
    }
    assert categories["Running jobs"]["CPU"][0] == "2"
    assert categories["Running jobs"]["Memory"][0] == "6Gi"
    assert categories["Running jobs"]["Total running jobs at once (Kubernetes pods)"][0] == "10"
    assert categories["Per-job limits"] == {"CPU": ("1", None), "Memory": ("4Gi", None)}
    per_job = next(
        c for c in response.json()["quota"]["categories"] if c["name"] == "Per-job limits"
    )
    assert all("used" not in item for item in per_job["items"])  # absent, not null
    assert categories["Job definitions"]["Services"][0] == "5"
    assert categories["Job definitions"]["Cron jobs"][0] == "50"


async def test_out_of_quota_status(jobs_api: JobsAPI, module_tool: Tool) -> None:
    """Two replicas of 4Gi do not fit requests.memory 6Gi: the second pod is refused."""
    spec = {
        "name": "greedy",
        "cmd": "sleep 3600",
        "imagename": "bookworm",
        "continuous": True,
        "replicas": 2,
        "memory": "4Gi",
    }
    path = f"/v1/tool/{module_tool.name}/jobs"
    async with jobs_api.client(module_tool.name) as client:
        response = await client.post(path, json=spec)
        assert response.status_code == 201, response.text

        async def out_of_quota() -> dict[str, Any] | None:
            job: dict[str, Any] = (await client.get(f"{path}/greedy")).json()["job"]
            quota = [m for m in job["status"]["messages"] if "out of quota" in m]
            return job if quota else None

        job = await wait_for(out_of_quota, "the out of quota status")
        assert job["status"]["short"] == "failed"
        assert "Unable to start, out of quota for memory" in job["status"]["messages"]
        assert "out of quota" in job["status_long"]
        used = (await client.get(f"/v1/tool/{module_tool.name}/quotas")).json()["quota"]
        memory = {
            i["name"]: i
            for c in used["categories"]
            for i in c["items"]
            if c["name"] == "Running jobs"
        }["Memory"]
        assert memory["used"] == "4Gi"
        assert (await client.delete(f"{path}/greedy")).status_code == 200


async def test_halfway_failure_leaves_nothing_behind(
    jobs_api: JobsAPI, module_tool: Tool, tool_kube: k8s.ApiClient
) -> None:
    """With the Services quota used up, the Service fails after the Deployment was created:
    the API deletes the Deployment again and answers with the quota message."""
    core, apps = k8s.CoreV1Api(tool_kube), k8s.AppsV1Api(tool_kube)
    ns = module_tool.namespace
    for i in range(5):
        await core.create_namespaced_service(
            ns,
            k8s.V1Service(
                metadata=k8s.V1ObjectMeta(name=f"filler-{i}"),
                spec=k8s.V1ServiceSpec(
                    ports=[k8s.V1ServicePort(port=80)], selector={"app": "none"}
                ),
            ),
        )
    spec = {
        "name": "halfway",
        "cmd": "python3 -m http.server 8000",
        "imagename": "python3.11",
        "continuous": True,
        "port": 8000,
    }
    path = f"/v1/tool/{module_tool.name}/jobs"
    created = {"name": "toolforge_jobs_kube_requests_total", "method": "POST"}
    deleted = {"name": "toolforge_jobs_kube_requests_total", "method": "DELETE"}
    async with jobs_api.client(module_tool.name) as client:
        for method in ("POST", "PATCH"):
            before = (
                await jobs_api.metric(**created, resource="deployments", code="201"),
                await jobs_api.metric(**deleted, resource="deployments", code="200"),
            )
            response = await client.request(method, path, json=spec)
            assert response.status_code == 403, response.text
            message = response.json()["error"][0]
            assert "exceeded quota" in message
            assert "services" in message
            # the Deployment was created, then deleted again after the Service failed
            after = (
                await jobs_api.metric(**created, resource="deployments", code="201"),
                await jobs_api.metric(**deleted, resource="deployments", code="200"),
            )
            assert after == (before[0] + 1, before[1] + 1)
            deployments = await apps.list_namespaced_deployment(ns)
            assert "halfway" not in [d.metadata.name for d in deployments.items]
            assert (await client.get(f"{path}/halfway")).status_code == 404
        for i in range(5):
            await core.delete_namespaced_service(f"filler-{i}", ns)
        response = await client.post(path, json=spec)
        assert response.status_code == 201, response.text
        assert (await client.delete(f"{path}/halfway")).status_code == 200


async def test_objects_edited_by_hand_do_not_break_the_list(
    jobs_api: JobsAPI, module_tool: Tool, tool_kube: k8s.ApiClient
) -> None:
    """A tool may edit its own objects with kubectl; an unreadable job is reported, and the
    other jobs are still listed."""
    path = f"/v1/tool/{module_tool.name}/jobs"
    async with jobs_api.client(module_tool.name) as client:
        for name in ("intact", "edited"):
            body = {"name": name, "cmd": "true", "imagename": "bookworm", "schedule": "@daily"}
            assert (await client.post(path, json=body)).status_code == 201
        await k8s.BatchV1Api(tool_kube).patch_namespaced_cron_job(
            "edited",
            module_tool.namespace,
            {"metadata": {"annotations": {"jobs.toolforge.org/spec": "{not json"}}},
        )

        async def list_after_the_edit() -> httpx.Response | None:
            # An edit made outside the API reaches the list's object cache with its watch
            # (services/jobs/README.md, "The object cache of list"), not at once.
            reply = await client.get(path)
            assert reply.status_code == 200
            return reply if "edited" not in [j["name"] for j in reply.json()["jobs"]] else None

        listed = await wait_for(list_after_the_edit, "the hand edit in the list", timeout=30)
        assert [job["name"] for job in listed.json()["jobs"]] == ["intact"]
        assert listed.json()["messages"]["warning"] == [
            "CronJob 'edited' is not a readable job; skipped"
        ]
        shown = await client.get(f"{path}/edited")
        assert shown.status_code == 409
        assert "changed outside the jobs API" in shown.json()["error"][0]
        # it can still be deleted, and flush removes everything
        assert (await client.delete(f"{path}/edited")).status_code == 200
        assert (await client.delete(path)).status_code == 200
        assert (await client.get(path)).json()["jobs"] == []
