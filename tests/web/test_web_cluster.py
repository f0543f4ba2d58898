"""The web-traffic path on the real cluster: NodePort 30000 on loopback -> Traefik (Kubernetes
Gateway provider) -> a tool's HTTPRoute -> its pods, and fourohfour for everything else."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter

import httpx
import pytest
from kubernetes_asyncio import client as k8s
from web.support import ToolApis, create_route, delete_route, wait_for, wait_ready

from toolforge_dev.cluster import Cluster
from toolforge_dev.pytest_plugin import Tool, new_admin_api
from toolforge_dev.web_manifests import GATEWAY_NAME, NAMESPACE
from toolforge_dev.webapp import tool_host, webapp_objects

pytestmark = pytest.mark.cluster

#: Route created -> first 200 through the Gateway (Traefik applies changes every 2 s at most).
ROUTE_DEADLINE = 30.0


async def _deploy(apis: ToolApis, tool: Tool, **kwargs: object) -> tuple[str, object]:
    """The tool's web app (Deployment + Service) as the tool; returns (name, route)."""
    deployment, service, route = webapp_objects(tool.name, tool.uid, **kwargs)  # type: ignore[arg-type]
    await apis.apps.create_namespaced_deployment(tool.namespace, deployment)
    await apis.core.create_namespaced_service(tool.namespace, service)
    await wait_ready(apis.apps, tool.namespace, deployment["metadata"]["name"])
    return deployment["metadata"]["name"], route


async def test_gateway_is_programmed(admin_api: k8s.ApiClient) -> None:
    gateway = await k8s.CustomObjectsApi(admin_api).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", NAMESPACE, "gateways", GATEWAY_NAME
    )
    conditions = {c["type"]: c["status"] for c in gateway["status"]["conditions"]}
    assert conditions.get("Accepted") == "True", gateway["status"]
    assert conditions.get("Programmed") == "True", gateway["status"]


async def test_unknown_host_gets_fourohfour(web_client: httpx.AsyncClient) -> None:
    page = await web_client.get("/x", headers={"Host": "nobody.example.org"})
    assert page.status_code == 404
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "There is no tool at nobody.example.org/x." in page.text
    as_json = await web_client.get(
        "/", headers={"Host": "no-such-tool.toolforge.local", "Accept": "application/json"}
    )
    assert as_json.status_code == 404
    assert as_json.json()["tool"] == "no-such-tool"


@pytest.mark.parametrize("creator", ["tool", "admin"])
async def test_route_serves_the_tool_host_then_fourohfour_after_delete(
    cluster: Cluster,
    tool: Tool,
    tool_apis: ToolApis,
    web_client: httpx.AsyncClient,
    creator: str,
) -> None:
    name, route = await _deploy(tool_apis, tool)
    host = tool_host(tool.name)
    admin = await new_admin_api(cluster)
    async with admin:
        custom = tool_apis.custom if creator == "tool" else k8s.CustomObjectsApi(admin)
        await create_route(custom, tool.namespace, route)
        response, took = await wait_for(
            web_client, host, lambda r: r.status_code == 200, timeout=ROUTE_DEADLINE
        )
        assert response.text.startswith(f"{name}-"), response.text  # a pod of the Deployment
        print(f"route created -> first 200 through the Gateway: {took:.2f} s")
        # Another path on the same host is the same route (PathPrefix /).
        other = await web_client.get("/deep/path?q=1", headers={"Host": host})
        assert other.status_code == 200
        await delete_route(custom, tool.namespace, name)
    page, _ = await wait_for(
        web_client, host, lambda r: r.status_code == 404, timeout=ROUTE_DEADLINE
    )
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert f"tool &#x27;{tool.name}&#x27;" in page.text
    as_json = await web_client.get("/", headers={"Host": host, "Accept": "application/json"})
    assert as_json.status_code == 404
    assert as_json.json()["tool"] == tool.name
    assert as_json.json()["error"] == "not_found"


async def test_route_status_is_accepted_and_resolved(
    tool: Tool, tool_apis: ToolApis, web_client: httpx.AsyncClient
) -> None:
    name, route = await _deploy(tool_apis, tool)
    await create_route(tool_apis.custom, tool.namespace, route)
    await wait_for(
        web_client, tool_host(tool.name), lambda r: r.status_code == 200, timeout=ROUTE_DEADLINE
    )
    deadline = time.monotonic() + 30
    while True:
        stored = await tool_apis.custom.get_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", tool.namespace, "httproutes", name
        )
        parents = stored.get("status", {}).get("parents", [])
        conditions = {c["type"]: c["status"] for p in parents for c in p["conditions"]}
        if conditions.get("Accepted") == "True" and conditions.get("ResolvedRefs") == "True":
            break
        assert time.monotonic() < deadline, stored.get("status")
        await asyncio.sleep(0.5)
    assert parents[0]["parentRef"]["name"] == GATEWAY_NAME


async def test_rolling_restart_drops_no_request(
    tool: Tool, tool_apis: ToolApis, web_client: httpx.AsyncClient
) -> None:
    """2 replicas behind the route, readiness probe and preStop sleep (webapp.py); 4 workers
    send requests without pause through the Gateway during the whole rollout."""
    name, route = await _deploy(tool_apis, tool, replicas=2)
    await create_route(tool_apis.custom, tool.namespace, route)
    host = tool_host(tool.name)
    await wait_for(web_client, host, lambda r: r.status_code == 200, timeout=ROUTE_DEADLINE)
    before = {
        p.metadata.name for p in (await tool_apis.core.list_namespaced_pod(tool.namespace)).items
    }

    statuses: Counter[str] = Counter()
    served_by: Counter[str] = Counter()
    stop = asyncio.Event()

    async def worker() -> None:
        while not stop.is_set():
            try:
                r = await web_client.get("/", headers={"Host": host})
                statuses[str(r.status_code)] += 1
                if r.status_code == 200:
                    served_by[r.text.strip()] += 1
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1

    workers = [asyncio.create_task(worker()) for _ in range(4)]
    try:
        await asyncio.sleep(1)
        now = dt.datetime.now(dt.UTC).isoformat()
        patch = {
            "spec": {
                "template": {
                    "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}
                }
            }
        }
        await tool_apis.apps.patch_namespaced_deployment(name, tool.namespace, patch)
        await wait_ready(tool_apis.apps, tool.namespace, name, timeout=120)
        # The old pods are gone (past their preStop sleep), not just replaced in the counts.
        deadline = time.monotonic() + 60
        while True:
            pods = (await tool_apis.core.list_namespaced_pod(tool.namespace)).items
            if not {p.metadata.name for p in pods} & before:
                break
            assert time.monotonic() < deadline, [p.metadata.name for p in pods]
            await asyncio.sleep(0.5)
        await asyncio.sleep(1)
    finally:
        stop.set()
        await asyncio.gather(*workers)
    after = {p.metadata.name for p in pods}
    print(f"rolling restart under load: {dict(statuses)}, served by {dict(served_by)}")
    assert statuses["200"] > 100, statuses
    assert set(statuses) == {"200"}, f"dropped requests: {statuses}"
    assert set(served_by) & before, served_by  # old pods served during the rollout...
    assert set(served_by) & after, served_by  # ...and new ones
