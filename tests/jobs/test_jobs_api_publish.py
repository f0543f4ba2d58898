"""Published jobs on the real cluster: ``publish: "/"`` through the jobs API makes the job
answer at ``http://<tool>.toolforge.local:30000/`` (the Gateway NodePort on loopback, with the
tool's ``Host``), follows port changes, goes away with the job (fourohfour answers), keeps
health checks and replicas working, and loses no request during ``restart``.

The job runs the tiny HTTP/1.1 server of :mod:`toolforge_dev.webapp` (it answers its pod's
name and exits on SIGTERM, as real servers do) on ``$PORT``, which the jobs API sets.
"""

from __future__ import annotations

import asyncio
import shlex
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from jobs.support import JobsAPI, api_settings, onboarded_tool, serve_jobs_api, wait_for
from kubernetes_asyncio import client as k8s

from toolforge_dev.cluster import Cluster
from toolforge_dev.pytest_plugin import Tool, new_tool_api
from toolforge_dev.web import web_url
from toolforge_dev.webapp import SERVER, tool_host

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="module")]

#: ``run`` -> first 200 through the Gateway: image start, startup probe, Traefik's reload.
PUBLISH_DEADLINE = 120.0
#: Route change (deleted, port changed) -> seen through the Gateway.
ROUTE_DEADLINE = 60.0
GROUP, VERSION = "gateway.networking.k8s.io", "v1"


def web_job(name: str = "web", **fields: Any) -> dict[str, Any]:
    """A continuous job serving HTTP on port 8000, published at ``/``."""
    return {
        "name": name,
        "cmd": f"exec python3 -c {shlex.quote(SERVER)}",
        "imagename": "python3.11",
        "continuous": True,
        "port": 8000,
        "publish": "/",
        "memory": "256Mi",
        **fields,
    }


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tool_kube(module_tool: Tool) -> AsyncIterator[k8s.ApiClient]:
    api = await new_tool_api(module_tool.kubeconfig)
    async with api:
        yield api


@pytest_asyncio.fixture(loop_scope="module")
async def web() -> AsyncIterator[httpx.AsyncClient]:
    """Keep-alive client of the Gateway NodePort (no proxies from the environment)."""
    async with httpx.AsyncClient(base_url=web_url(), trust_env=False, timeout=10) as client:
        yield client


async def until(
    web: httpx.AsyncClient, host: str, status: int, *, timeout: float, body: str = ""
) -> httpx.Response:
    """GET ``/`` with ``Host: host`` until it answers ``status`` (and a body starting with
    ``body``); fails after ``timeout`` seconds with the last answer."""

    async def check() -> httpx.Response | None:
        try:
            response = await web.get("/", headers={"Host": host})
        except httpx.HTTPError:
            return None
        ok = response.status_code == status and response.text.startswith(body)
        return response if ok else None

    found: httpx.Response = await wait_for(
        check, f"{host} answering {status} {body!r}", timeout=timeout, interval=0.25
    )
    return found


async def route_of(tool_kube: k8s.ApiClient, tool: Tool, name: str) -> Any:
    """The job's HTTPRoute as the tool sees it, ``None`` when there is none."""
    try:
        return await k8s.CustomObjectsApi(tool_kube).get_namespaced_custom_object(
            GROUP, VERSION, tool.namespace, "httproutes", name
        )
    except k8s.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def backends(route: Any) -> list[tuple[str, int]]:
    """``(name, port)`` of the route's backends (the apiserver adds the defaults ``group``,
    ``kind`` and ``weight``)."""
    return [(b["name"], b["port"]) for r in route["spec"]["rules"] for b in r["backendRefs"]]


@pytest_asyncio.fixture(autouse=True, loop_scope="module")
async def _flush_after(jobs_api: JobsAPI, module_tool: Tool) -> AsyncIterator[None]:
    """Every test starts without jobs, even when the one before failed half-way."""
    yield
    async with jobs_api.client(module_tool.name) as client:
        await client.delete(f"/v1/tool/{module_tool.name}/jobs")


async def test_published_job_answers_at_its_host_then_fourohfour_after_delete(
    jobs_api: JobsAPI, module_tool: Tool, tool_kube: k8s.ApiClient, web: httpx.AsyncClient
) -> None:
    path = f"/v1/tool/{module_tool.name}/jobs"
    host = tool_host(module_tool.name)
    url = f"http://{host}:30000/"
    async with jobs_api.client(module_tool.name) as client:
        started = time.monotonic()
        created = await client.post(path, json=web_job())
        assert created.status_code == 201, created.text
        assert created.json()["job"]["publish"] == "/"
        assert created.json()["job"]["public_url"] == url
        answer = await until(web, host, 200, timeout=PUBLISH_DEADLINE, body="web-")
        print(f"run -> first 200 through the Gateway: {time.monotonic() - started:.1f} s")
        assert (await web.get("/any/path?q=1", headers={"Host": host})).text == answer.text

        shown = (await client.get(f"{path}/web")).json()["job"]
        assert (shown["publish"], shown["public_url"]) == ("/", url)
        dumped = (await client.get(path, params={"include_unset": "false"})).json()["jobs"]
        assert dumped[0]["publish"] == "/"
        assert "public_url" not in dumped[0]

        route = await route_of(tool_kube, module_tool, "web")
        assert route["spec"]["hostnames"] == [host]
        assert backends(route) == [("web", 8000)]
        owners = route["metadata"]["ownerReferences"]
        assert [(o["kind"], o["name"]) for o in owners] == [("Deployment", "web")]

        assert (await client.delete(f"{path}/web")).status_code == 200
        assert await route_of(tool_kube, module_tool, "web") is None
    page = await until(web, host, 404, timeout=ROUTE_DEADLINE)
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert f"tool &#x27;{module_tool.name}&#x27;" in page.text
    as_json = await web.get("/", headers={"Host": host, "Accept": "application/json"})
    assert as_json.json()["tool"] == module_tool.name


async def test_one_job_per_path_and_refusals(jobs_api: JobsAPI, module_tool: Tool) -> None:
    path = f"/v1/tool/{module_tool.name}/jobs"
    async with jobs_api.client(module_tool.name) as client:
        assert (await client.post(path, json=web_job("first"))).status_code == 201
        for send in (client.post, client.patch):
            taken = await send(path, json=web_job("second"))
            assert taken.status_code == 409, taken.text
            (message,) = taken.json()["error"]
            assert "already published by job 'first'" in message, message
        assert (await client.get(f"{path}/second")).status_code == 404  # nothing half-made
        # the same job may be sent again (PATCH: already up to date)
        again = await client.patch(path, json=web_job("first"))
        assert again.json()["messages"]["info"] == ["Job first is already up to date"]

        refusals: dict[str, tuple[dict[str, Any], str]] = {
            "no port": ({"port": None}, "publish needs a port"),
            "udp": ({"port_protocol": "udp"}, "publish needs a tcp port"),
            "a path": ({"publish": "/api"}, 'publish must be "/"'),
            "one-off": ({"continuous": False, "port": None}, "publish is only valid for"),
        }
        for what, (fields, text) in refusals.items():
            refused = await client.post(path, json=web_job("third", **fields))
            assert refused.status_code == 422, (what, refused.text)
            assert any(text in m for m in refused.json()["error"]), (what, refused.text)
        assert (await client.delete(f"{path}/first")).status_code == 200


async def test_port_change_updates_the_route_and_unpublish_removes_it(
    jobs_api: JobsAPI, module_tool: Tool, tool_kube: k8s.ApiClient, web: httpx.AsyncClient
) -> None:
    path = f"/v1/tool/{module_tool.name}/jobs"
    host = tool_host(module_tool.name)
    async with jobs_api.client(module_tool.name) as client:
        assert (await client.patch(path, json=web_job("moving"))).status_code == 200
        first = await until(web, host, 200, timeout=PUBLISH_DEADLINE, body="moving-")

        moved = await client.patch(path, json=web_job("moving", port=8080))
        assert moved.json()["messages"]["info"] == ["Job moving was updated in storage and runtime"]
        route = await route_of(tool_kube, module_tool, "moving")
        assert backends(route) == [("moving", 8080)]
        service = await k8s.CoreV1Api(tool_kube).read_namespaced_service(
            "moving", module_tool.namespace
        )
        assert [p.port for p in service.spec.ports] == [8080]

        # the new pod (Recreate: 1 replica) serves on 8080 through the same host
        async def new_pod_answers() -> bool:
            try:
                r = await web.get("/", headers={"Host": host})
            except httpx.HTTPError:
                return False
            return r.status_code == 200 and r.text != first.text

        await wait_for(new_pod_answers, "the pod on port 8080", timeout=PUBLISH_DEADLINE)

        unpublished = await client.patch(path, json=web_job("moving", port=8080, publish=None))
        assert unpublished.json()["job_changed"] is True
        assert await route_of(tool_kube, module_tool, "moving") is None
        shown = (await client.get(f"{path}/moving")).json()["job"]
        assert "publish" not in shown
        assert "public_url" not in shown
        await until(web, host, 404, timeout=ROUTE_DEADLINE)
        assert (await client.delete(f"{path}/moving")).status_code == 200


async def test_replicas_health_check_and_restart_drop_no_request(
    jobs_api: JobsAPI, module_tool: Tool, tool_kube: k8s.ApiClient, web: httpx.AsyncClient
) -> None:
    """2 replicas with an http health check behind the route; 4 workers send requests without
    pause through the Gateway while ``restart`` replaces both pods."""
    path = f"/v1/tool/{module_tool.name}/jobs"
    host = tool_host(module_tool.name)
    core = k8s.CoreV1Api(tool_kube)
    spec = web_job("site", replicas=2, health_check={"type": "http", "path": "/"})
    selector = "app.kubernetes.io/managed-by=toolforge-jobs-framework,app.kubernetes.io/name=site"

    async def pods() -> set[str]:
        found = await core.list_namespaced_pod(module_tool.namespace, label_selector=selector)
        return {p.metadata.name for p in found.items}

    async def running(client: httpx.AsyncClient) -> bool:
        job = (await client.get(f"{path}/site")).json()["job"]
        return bool(job["status"]["short"] == "running" and job["status"]["up_to_date"])

    async with jobs_api.client(module_tool.name) as client:
        assert (await client.post(path, json=spec)).status_code == 201
        await until(web, host, 200, timeout=PUBLISH_DEADLINE, body="site-")

        async def both_ready() -> bool:
            deployment = await k8s.AppsV1Api(tool_kube).read_namespaced_deployment(
                "site", module_tool.namespace
            )
            return (deployment.status.ready_replicas or 0) == 2

        await wait_for(both_ready, "2 ready replicas", timeout=PUBLISH_DEADLINE)
        before = await pods()
        assert len(before) == 2

        statuses: Counter[str] = Counter()
        served_by: Counter[str] = Counter()
        stop = asyncio.Event()

        async def worker() -> None:
            while not stop.is_set():
                try:
                    r = await web.get("/", headers={"Host": host})
                    statuses[str(r.status_code)] += 1
                    if r.status_code == 200:
                        served_by[r.text.strip()] += 1
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1

        workers = [asyncio.create_task(worker()) for _ in range(4)]
        try:
            await asyncio.sleep(1)
            restart = await client.post(f"{path}/site/restart")
            assert restart.status_code == 200, restart.text

            async def old_pods_gone() -> bool:
                return not (await pods()) & before

            await wait_for(old_pods_gone, "the old pods to be gone", timeout=180)
            await wait_for(lambda: running(client), "site running again", timeout=60)
            await asyncio.sleep(1)
        finally:
            stop.set()
            await asyncio.gather(*workers)
        after = await pods()
        print(f"restart of a published job under load: {dict(statuses)}, {dict(served_by)}")
        assert statuses["200"] > 100, statuses
        assert set(statuses) == {"200"}, f"dropped requests: {statuses}"
        assert set(served_by) & before, served_by  # old pods served during the rollout...
        assert set(served_by) & after, served_by  # ...and new ones
        assert (await client.delete(f"{path}/site")).status_code == 200


async def test_each_tool_publishes_its_own_host(
    cluster: Cluster, jobs_api: JobsAPI, module_tool: Tool, web: httpx.AsyncClient
) -> None:
    """The one-job-per-path rule is per tool: tool B's published job does not conflict with
    tool A's, and each host answers from its own tool's pods. (B cannot name A's host at all:
    the host comes from the verified tool name; the admission policy refuses it anyway,
    tests/web/test_route_policy.py.)"""
    async with onboarded_tool(cluster) as other:
        tools = (module_tool, other)
        for tool in tools:
            async with jobs_api.client(tool.name) as client:
                created = await client.post(f"/v1/tool/{tool.name}/jobs", json=web_job("www"))
                assert created.status_code == 201, created.text
        for tool in tools:
            await until(web, tool_host(tool.name), 200, timeout=PUBLISH_DEADLINE, body="www-")
        pods = {}
        for tool in tools:
            api = await new_tool_api(tool.kubeconfig)
            async with api:
                found = await k8s.CoreV1Api(api).list_namespaced_pod(tool.namespace)
                pods[tool.name] = {p.metadata.name for p in found.items}
        for tool in tools:
            answer = await web.get("/", headers={"Host": tool_host(tool.name)})
            assert answer.text.strip() in pods[tool.name], (tool.name, answer.text, pods)
        async with jobs_api.client(module_tool.name) as client:
            assert (await client.delete(f"/v1/tool/{module_tool.name}/jobs/www")).status_code == 200


async def test_a_route_the_admission_policy_refuses_leaves_nothing_behind(
    cluster: Cluster, module_tool: Tool, tool_kube: k8s.ApiClient
) -> None:
    """A jobs API configured with another public domain than the platform's: the tool route
    policy (toolforge_admin.web_policies) refuses the HTTPRoute, created last, and the
    Deployment and Service made before it are deleted again."""
    settings = api_settings(
        cluster.pki_dir,
        cluster.service_kubeconfig("jobs-api"),
        homes_dir=cluster.homes_dir,
        public_domain="example.org",
    )
    path = f"/v1/tool/{module_tool.name}/jobs"
    async with (
        serve_jobs_api(settings, cluster.pki_dir) as wrong,
        wrong.client(module_tool.name) as client,
    ):
        refused = await client.post(path, json=web_job("lost"))
        assert refused.status_code == 403, refused.text
        (message,) = refused.json()["error"]
        assert f'spec.hostnames must be exactly ["{tool_host(module_tool.name)}"]' in message
        assert (await client.get(f"{path}/lost")).status_code == 404
    services = await k8s.CoreV1Api(tool_kube).list_namespaced_service(module_tool.namespace)
    assert "lost" not in [s.metadata.name for s in services.items]
    deployments = await k8s.AppsV1Api(tool_kube).list_namespaced_deployment(module_tool.namespace)
    assert "lost" not in [d.metadata.name for d in deployments.items]
