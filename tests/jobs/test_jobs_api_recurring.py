"""Scheduled and continuous jobs through the jobs API on the real cluster: CronJobs and their
manual runs, Deployments with a Service and health checks, rollouts, PATCH upserts, flush."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from jobs.support import JobsAPI, ndjson, wait_for
from kubernetes_asyncio import client as k8s

from toolforge_dev.pytest_plugin import Tool, new_tool_api
from toolforge_jobs.metrics import JobsMetrics
from toolforge_jobs.service import JobsService, image_catalog
from toolforge_jobs.storage import ToolImpersonatingStorage
from toolforge_kit.errors import ConflictError

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="module")]

MANAGED = "app.kubernetes.io/managed-by=toolforge-jobs-framework"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tool_kube(module_tool: Tool) -> AsyncIterator[k8s.ApiClient]:
    """The tool's own Kubernetes client (its certificate), to look at what the API made."""
    api = await new_tool_api(module_tool.kubeconfig)
    async with api:
        yield api


async def show(client: httpx.AsyncClient, tool: Tool, name: str) -> dict[str, Any]:
    response = await client.get(f"/v1/tool/{tool.name}/jobs/{name}")
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()["job"]
    return job


async def wait_short(
    client: httpx.AsyncClient, tool: Tool, name: str, short: str
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        job = await show(client, tool, name)
        return job if job["status"]["short"] == short else None

    job: dict[str, Any] = await wait_for(check, f"{name} {short}", timeout=120)
    return job


async def test_scheduled_job_waits_and_restart_runs_it_now(
    jobs_api: JobsAPI, module_tool: Tool, tool_kube: k8s.ApiClient
) -> None:
    spec = {
        "name": "nightly",
        "cmd": "python3 -c \"print('scheduled run')\"",
        "imagename": "python3",  # an alias of python3.11
        "schedule": "@daily",
        "filelog": False,  # on by default for a standard image; here the pod log is read
    }
    async with jobs_api.client(module_tool.name) as client:
        response = await client.post(f"/v1/tool/{module_tool.name}/jobs", json=spec)
        assert response.status_code == 201, response.text
        job = response.json()["job"]
        assert job["job_type"] == "scheduled"
        assert job["schedule"] == "@daily"
        assert re.fullmatch(r"\d{1,2} \d{1,2} \* \* \*", job["schedule_actual"])
        assert job["status"]["short"] == "pending"
        assert job["status"]["messages"] == ["Waiting for scheduled time"]
        assert job["status_short"] == "Waiting for scheduled time"
        assert job["status"]["next_schedule"] is not None

        cronjob = await k8s.BatchV1Api(tool_kube).read_namespaced_cron_job(
            "nightly", module_tool.namespace
        )
        assert cronjob.spec.schedule == job["schedule_actual"]
        assert cronjob.spec.concurrency_policy == "Forbid"

        restart = await client.post(f"/v1/tool/{module_tool.name}/jobs/nightly/restart")
        assert restart.status_code == 200, restart.text

        async def manual_run() -> Any:
            jobs = await k8s.BatchV1Api(tool_kube).list_namespaced_job(module_tool.namespace)
            for item in jobs.items:
                owners = item.metadata.owner_references or []
                if any(o.kind == "CronJob" and o.uid == cronjob.metadata.uid for o in owners):
                    return item
            return None

        run = await wait_for(manual_run, "a Job owned by the CronJob")
        assert run.metadata.annotations["cronjob.kubernetes.io/instantiate"] == "manual"
        done = await wait_short(client, module_tool, "nightly", "succeeded")
        assert done["schedule"] == "@daily"
        logs = await client.get(f"/v1/tool/{module_tool.name}/jobs/nightly/logs")
        assert logs.status_code == 200, logs.text
        assert [line["message"] for line in ndjson(logs.text)] == ["scheduled run"]


async def test_continuous_job_with_port_and_http_health_check(
    jobs_api: JobsAPI, module_tool: Tool, tool_kube: k8s.ApiClient
) -> None:
    spec = {
        "name": "web",
        "cmd": "python3 -m http.server 8000",
        "imagename": "python3.11",
        "continuous": True,
        "replicas": 2,
        "port": 8000,
        "health_check": {"type": "http", "path": "/"},
    }
    path = f"/v1/tool/{module_tool.name}/jobs"
    apps, core = k8s.AppsV1Api(tool_kube), k8s.CoreV1Api(tool_kube)
    async with jobs_api.client(module_tool.name) as client:
        response = await client.post(path, json=spec)
        assert response.status_code == 201, response.text
        running = await wait_short(client, module_tool, "web", "running")
        assert running["status_short"] == "Running"
        assert (running["replicas"], running["port"], running["port_protocol"]) == (2, 8000, "tcp")

        deployment = await apps.read_namespaced_deployment("web", module_tool.namespace)
        assert deployment.spec.replicas == 2
        assert deployment.spec.strategy.type == "RollingUpdate"
        container = deployment.spec.template.spec.containers[0]
        assert container.startup_probe.http_get.path == "/"
        assert container.liveness_probe.http_get.port == 8000
        home = f"/data/project/{module_tool.name}"
        assert {e.name: e.value for e in container.env} == {
            "PORT": "8000",
            "HOME": home,
            "TOOL_DATA_DIR": home,
        }
        service = await core.read_namespaced_service("web", module_tool.namespace)
        assert service.spec.type == "ClusterIP"
        assert [(p.port, p.protocol) for p in service.spec.ports] == [(8000, "TCP")]
        assert service.spec.selector["app.kubernetes.io/name"] == "web"

        async def pod_names() -> set[str]:
            pods = await core.list_namespaced_pod(
                module_tool.namespace, label_selector=f"{MANAGED},app.kubernetes.io/name=web"
            )
            return {p.metadata.name for p in pods.items if p.metadata.deletion_timestamp is None}

        before = await pod_names()
        assert len(before) == 2

        # restart: a rollout through the restartedAt annotation replaces every pod
        restart = await client.post(f"{path}/web/restart")
        assert restart.status_code == 200, restart.text
        deployment = await apps.read_namespaced_deployment("web", module_tool.namespace)
        annotations = deployment.spec.template.metadata.annotations or {}
        assert "kubectl.kubernetes.io/restartedAt" in annotations

        async def replaced() -> bool:
            now = await pod_names()
            return len(now) == 2 and not now & before

        await wait_for(replaced, "the rollout to replace both pods", timeout=120)
        await wait_short(client, module_tool, "web", "running")


async def test_crashing_continuous_job_shows_its_restarts(
    jobs_api: JobsAPI, module_tool: Tool
) -> None:
    spec = {
        "name": "crashy",
        "cmd": "python3 -c 'import sys; sys.exit(4)'",
        "imagename": "python3.11",
        "continuous": True,
    }
    path = f"/v1/tool/{module_tool.name}/jobs"
    async with jobs_api.client(module_tool.name) as client:
        assert (await client.post(path, json=spec)).status_code == 201

        async def restarted() -> dict[str, Any] | None:
            job: dict[str, Any] = await show(client, module_tool, "crashy")
            counts = [m for m in job["status"]["messages"] if m.startswith("restarted (")]
            return job if counts else None

        job = await wait_for(restarted, "restarts to show", timeout=60)
        # "exit code 4" while the container waits to restart, "last exit code 4" once it runs
        # again: which one a show meets depends on where in the back-off it lands
        assert {"exit code 4", "last exit code 4"} & set(job["status"]["messages"]), job
        assert job["status"]["short"] in ("running", "failed")  # failed once in back-off
        assert (await client.delete(f"{path}/crashy")).status_code == 200


async def test_patch_upserts(
    jobs_api: JobsAPI, module_tool: Tool, tool_kube: k8s.ApiClient
) -> None:
    path = f"/v1/tool/{module_tool.name}/jobs"
    spec = {
        "name": "worker",
        "cmd": "python3 -c 'import time; time.sleep(3600)'",
        "imagename": "python3.11",
        "continuous": True,
        "cpu": "100m",
    }
    apps = k8s.AppsV1Api(tool_kube)
    async with jobs_api.client(module_tool.name) as client:
        created = await client.patch(path, json=spec)
        assert created.status_code == 200, created.text
        assert created.json() == {
            "job_changed": True,
            "messages": {"info": ["Job worker created"], "warning": [], "error": []},
        }
        first = await apps.read_namespaced_deployment("worker", module_tool.namespace)

        same = await client.patch(path, json={**spec, "cpu": "0.1"})  # the same quantity
        assert same.json()["job_changed"] is False
        assert same.json()["messages"]["info"] == ["Job worker is already up to date"]

        updated = await client.patch(path, json={**spec, "memory": "256Mi"})
        assert updated.json()["job_changed"] is True
        assert updated.json()["messages"]["info"] == [
            "Job worker was updated in storage and runtime"
        ]
        assert (await show(client, module_tool, "worker"))["memory"] == "256Mi"
        second = await apps.read_namespaced_deployment("worker", module_tool.namespace)
        # replaced in place: the same Deployment, a new generation
        assert second.metadata.uid == first.metadata.uid
        assert second.metadata.generation > first.metadata.generation

        # updates in a row while the Deployment controller keeps writing its status: each
        # one lands (a 409 from a stale resourceVersion is retried with a fresh read)
        for memory in ("300Mi", "256Mi", "300Mi", "256Mi"):
            again = await client.patch(path, json={**spec, "memory": memory})
            assert again.status_code == 200, again.text
            assert again.json()["job_changed"] is True

        # a port added by PATCH brings a Service, removed again it goes
        await client.patch(path, json={**spec, "memory": "256Mi", "port": 8080})
        core = k8s.CoreV1Api(tool_kube)
        assert (await core.read_namespaced_service("worker", module_tool.namespace)).spec.ports[
            0
        ].port == 8080
        await client.patch(path, json={**spec, "memory": "256Mi"})
        services = await core.list_namespaced_service(module_tool.namespace)
        assert "worker" not in [s.metadata.name for s in services.items]

        # a change of type replaces the objects: continuous -> scheduled
        changed = await client.patch(
            path, json={**spec, "continuous": False, "schedule": "5 4 * * *"}
        )
        assert changed.json()["job_changed"] is True
        job = await show(client, module_tool, "worker")
        assert (job["job_type"], job["schedule_actual"]) == ("scheduled", "5 4 * * *")
        deployments = await apps.list_namespaced_deployment(module_tool.namespace)
        assert "worker" not in [d.metadata.name for d in deployments.items]


async def test_flush_deletes_every_job(
    jobs_api: JobsAPI, module_tool: Tool, tool_kube: k8s.ApiClient
) -> None:
    path = f"/v1/tool/{module_tool.name}/jobs"
    async with jobs_api.client(module_tool.name) as client:
        await client.post(
            path,
            json={"name": "extra", "cmd": "true", "imagename": "bookworm", "schedule": "@hourly"},
        )
        before = (await client.get(path)).json()["jobs"]
        assert len(before) >= 2
        response = await client.delete(path)
        assert response.status_code == 200, response.text
        assert (await client.get(path)).json()["jobs"] == []
    batch, apps, core = (
        k8s.BatchV1Api(tool_kube),
        k8s.AppsV1Api(tool_kube),
        k8s.CoreV1Api(tool_kube),
    )
    ns = module_tool.namespace
    assert (await batch.list_namespaced_cron_job(ns, label_selector=MANAGED)).items == []
    assert (await apps.list_namespaced_deployment(ns, label_selector=MANAGED)).items == []
    assert (await core.list_namespaced_service(ns, label_selector=MANAGED)).items == []
    assert (await batch.list_namespaced_job(ns, label_selector=MANAGED)).items == []


async def test_replace_retries_when_the_object_changed_meanwhile(
    jobs_api: JobsAPI, module_tool: Tool, tool_kube: k8s.ApiClient
) -> None:
    """A replace that carries a stale resourceVersion gets 409 from the apiserver; the service
    reads the object again and repeats the PUT instead of failing the update."""
    spec = {"name": "raced", "cmd": "sleep 3600", "imagename": "bookworm", "continuous": True}
    async with jobs_api.client(module_tool.name) as client:
        assert (
            await client.post(f"/v1/tool/{module_tool.name}/jobs", json=spec)
        ).status_code == 201
    storage = await ToolImpersonatingStorage.connect(jobs_api.settings, JobsMetrics())
    try:
        service = JobsService(storage, image_catalog(storage, jobs_api.settings), jobs_api.settings)
        stale = await storage.get(module_tool.name, "deployments", "raced")
        assert stale is not None
        # someone else writes in between: the read copy is now stale
        await k8s.AppsV1Api(tool_kube).patch_namespaced_deployment(
            "raced", module_tool.namespace, {"metadata": {"labels": {"touched": "yes"}}}
        )
        wanted = {**stale, "spec": {**stale["spec"], "replicas": 2}}
        wanted["metadata"] = {
            k: v
            for k, v in stale["metadata"].items()
            if k in ("name", "namespace", "labels", "annotations")
        }
        with pytest.raises(ConflictError):  # what a single PUT with the stale copy gets
            await storage.replace(
                module_tool.name,
                {
                    **wanted,
                    "metadata": {
                        **wanted["metadata"],
                        "resourceVersion": stale["metadata"]["resourceVersion"],
                    },
                },
            )
        stored = await service._put(module_tool.name, wanted, stale)
        assert stored["spec"]["replicas"] == 2
    finally:
        await storage.close()
