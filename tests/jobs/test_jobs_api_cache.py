"""The per-tool object cache of ``list`` (toolforge_jobs.cache) on the real cluster.

Through the served API: read-your-writes (create, delete, flush then list at once, answered
from the cache), changes made outside the API appear, tools never see each other's cache.
With an :class:`ObjectCache` of its own: an expired watch (410 Gone) lists again, idle and
over-capacity tools are dropped with their watches, and closing it ends every watch.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import httpx
import pytest
import pytest_asyncio
from jobs.support import JobsAPI, api_settings, onboarded_tool, serve_jobs_api, wait_for
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from kube import PYTHON_IMAGE
from toolforge_dev.cluster import Cluster
from toolforge_dev.pytest_plugin import Tool, new_admin_api, new_tool_api
from toolforge_jobs.cache import MANAGED_SELECTOR, ObjectCache, _Informer, _ToolCache
from toolforge_jobs.metrics import JobsMetrics
from toolforge_jobs.settings import JobsSettings
from toolforge_jobs.storage import Obj, ToolImpersonatingStorage
from toolforge_kit.errors import ClusterError, ForbiddenError, GoneError, UnavailableError

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="module")]

SCHEDULE = "0 0 1 1 *"  # yearly: never fires during a test


def scheduled(name: str) -> dict[str, Any]:
    return {"name": name, "cmd": "true", "imagename": "bookworm", "schedule": SCHEDULE}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def other_tool(cluster: Cluster) -> AsyncIterator[Tool]:
    """A second tool, B."""
    async with onboarded_tool(cluster) as tool:
        yield tool


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def admin(cluster: Cluster) -> AsyncIterator[k8s.ApiClient]:
    api = await new_admin_api(cluster)
    async with api:
        yield api


def settings_for(cluster: Cluster, **overrides: Any) -> JobsSettings:
    return api_settings(
        cluster.pki_dir,
        cluster.service_kubeconfig("jobs-api"),
        homes_dir=cluster.homes_dir,
        **overrides,
    )


@pytest_asyncio.fixture(loop_scope="module")
async def storage(cluster: Cluster) -> AsyncIterator[tuple[ToolImpersonatingStorage, JobsMetrics]]:
    metrics = JobsMetrics()
    kube = await ToolImpersonatingStorage.connect(settings_for(cluster), metrics)
    try:
        yield kube, metrics
    finally:
        await kube.close()


def sample(metrics: JobsMetrics, name: str, **labels: str) -> float:
    """A sample of ``metrics`` (0 when absent)."""
    return metrics.registry.get_sample_value(name, labels) or 0.0


def watch_tasks(tool: str | None = None, *, besides: frozenset[Any] = frozenset()) -> set[Any]:
    """The running watch tasks of object caches (of ``tool``, or all), except ``besides``
    (those of the module's served API, which caches the same tools)."""
    prefix = "watch " if tool is None else f"watch {tool} "
    return {
        t
        for t in asyncio.all_tasks()
        if t.get_name().startswith(prefix) and not t.done() and t not in besides
    }


async def names(client: httpx.AsyncClient, tool: str) -> list[str]:
    response = await client.get(f"/v1/tool/{tool}/jobs")
    assert response.status_code == 200, response.text
    return [job["name"] for job in response.json()["jobs"]]


async def cached_list(api: JobsAPI, client: httpx.AsyncClient, tool: str) -> list[str]:
    """The tool's job names from a list that the cache answered: one more cache hit, and no
    list of CronJobs sent to kube-apiserver."""
    hits = await api.metric("toolforge_jobs_cache_reads_total", result="hit")
    lists = await api.metric(
        "toolforge_jobs_kube_requests_total", method="GET", resource="cronjobs", code="200"
    )
    found = await names(client, tool)
    assert await api.metric("toolforge_jobs_cache_reads_total", result="hit") == hits + 1
    assert (
        await api.metric(
            "toolforge_jobs_kube_requests_total", method="GET", resource="cronjobs", code="200"
        )
        == lists
    )
    return found


async def warm(api: JobsAPI, client: httpx.AsyncClient, tool: str) -> None:
    """List until the tool's cache answers (its first fill)."""

    async def hit() -> bool:
        before = await api.metric("toolforge_jobs_cache_reads_total", result="hit")
        await names(client, tool)
        return await api.metric("toolforge_jobs_cache_reads_total", result="hit") > before

    await wait_for(hit, f"the cache of {tool} to answer", timeout=30)


async def test_list_reads_its_own_writes_from_the_cache(
    jobs_api: JobsAPI, module_tool: Tool
) -> None:
    tool = module_tool.name
    async with jobs_api.client(tool) as client:
        await warm(jobs_api, client, tool)
        for name in ("ryw-a", "ryw-b"):
            response = await client.post(f"/v1/tool/{tool}/jobs", json=scheduled(name))
            assert response.status_code == 201, response.text
            # the very next list, answered from the cache, includes it
            assert name in await cached_list(jobs_api, client, tool)

        response = await client.patch(
            f"/v1/tool/{tool}/jobs", json={**scheduled("ryw-a"), "schedule": "0 0 2 1 *"}
        )
        assert response.json()["messages"]["info"] == [
            "Job ryw-a was updated in storage and runtime"
        ], response.text
        listed = (await client.get(f"/v1/tool/{tool}/jobs")).json()["jobs"]
        assert [j["schedule"] for j in listed if j["name"] == "ryw-a"] == ["0 0 2 1 *"]

        assert (await client.delete(f"/v1/tool/{tool}/jobs/ryw-a")).status_code == 200
        assert await cached_list(jobs_api, client, tool) == ["ryw-b"]

        assert (await client.delete(f"/v1/tool/{tool}/jobs")).status_code == 200
        assert await cached_list(jobs_api, client, tool) == []


async def test_changes_made_outside_the_api_show_up(
    jobs_api: JobsAPI, module_tool: Tool, admin: k8s.ApiClient
) -> None:
    tool = module_tool.name
    async with jobs_api.client(tool) as client:
        response = await client.post(f"/v1/tool/{tool}/jobs", json=scheduled("outside"))
        assert response.status_code == 201, response.text
        await warm(jobs_api, client, tool)
        assert "outside" in await cached_list(jobs_api, client, tool)

        # the admin deletes the CronJob behind the API's back: the watch brings it
        await k8s.BatchV1Api(admin).delete_namespaced_cron_job("outside", module_tool.namespace)

        async def gone() -> bool:
            return "outside" not in await cached_list(jobs_api, client, tool)

        await wait_for(gone, "the deleted CronJob to leave the list", timeout=10, interval=0.1)


async def test_a_tool_never_gets_another_tools_cache(
    jobs_api: JobsAPI, module_tool: Tool, other_tool: Tool
) -> None:
    a, b = module_tool.name, other_tool.name
    async with jobs_api.client(a) as client_a, jobs_api.client(b) as client_b:
        for client, tool, name in ((client_a, a, "only-a"), (client_b, b, "only-b")):
            response = await client.post(f"/v1/tool/{tool}/jobs", json=scheduled(name))
            assert response.status_code == 201, response.text
            await warm(jobs_api, client, tool)
        assert "only-b" not in await cached_list(jobs_api, client_a, a)
        assert "only-a" in await cached_list(jobs_api, client_a, a)
        assert await cached_list(jobs_api, client_b, b) == ["only-b"]
        # A cannot read B's list, cached or not
        response = await client_a.get(f"/v1/tool/{b}/jobs")
        assert response.status_code == 403, response.text
        for client, tool in ((client_a, a), (client_b, b)):
            assert (await client.delete(f"/v1/tool/{tool}/jobs")).status_code == 200


async def test_the_service_identity_cannot_watch_a_tool_namespace(
    cluster: Cluster, module_tool: Tool
) -> None:
    """The cache watches as the tool: the API's own identity has no such right."""
    api = await new_tool_api(cluster.service_kubeconfig("jobs-api"))
    async with api:
        with pytest.raises(ApiException) as caught:
            await k8s.BatchV1Api(api).list_namespaced_cron_job(
                module_tool.namespace, watch=True, timeout_seconds=1
            )
    assert caught.value.status == 403


async def test_a_410_error_event_is_gone() -> None:
    """What the apiserver sends when a watch's resourceVersion was compacted away mid-stream
    (Kubernetes API concepts, "410 Gone responses"): an ERROR event with a Status, code 410."""
    informer = _Informer(
        _ToolCache("t", cast(ToolImpersonatingStorage, None), JobsMetrics(), watch_seconds=10),
        "jobs",
    )
    status = {"kind": "Status", "status": "Failure", "reason": "Expired", "code": 410}
    with pytest.raises(GoneError):
        informer._apply({"type": "ERROR", "object": {**status, "message": "too old"}})
    with pytest.raises(ClusterError):
        informer._apply({"type": "ERROR", "object": {**status, "code": 500}})


class _ExpiringStorage(ToolImpersonatingStorage):
    """The real storage, except that the first watch of CronJobs after the first list fails
    with 410 Gone, as after an etcd compaction (which this cluster does not do on demand:
    the apiserver's watch cache keeps the history of a young cluster)."""

    expired = False

    @asynccontextmanager
    async def watch(
        self, tool: str, resource: str, **kwargs: Any
    ) -> AsyncIterator[AsyncIterator[Obj]]:
        if resource == "cronjobs" and not self.expired:
            self.expired = True
            raise GoneError("too old resource version")
        async with super().watch(tool, resource, **kwargs) as events:
            yield events


async def test_an_expired_watch_lists_again(cluster: Cluster, module_tool: Tool) -> None:
    metrics = JobsMetrics()
    settings = settings_for(cluster)
    base = await ToolImpersonatingStorage.connect(settings, metrics)
    kube = _ExpiringStorage(
        base._kube,
        max_log_streams=settings.logs_max_streams,
        watch_kube=base._watch_kube,
        metrics=metrics,
    )
    tool = module_tool.name
    lists = (
        "toolforge_jobs_kube_requests_total",
        {"method": "GET", "resource": "cronjobs", "code": "200"},
    )
    served = frozenset(watch_tasks())
    cache = ObjectCache(kube, metrics, settings)
    try:
        assert await _read_names(cache, tool) is not None

        async def relisted() -> bool:
            labels = {"resource": "cronjobs", "reason": "expired"}
            return sample(metrics, "toolforge_jobs_cache_watch_restarts_total", **labels) == 1

        await wait_for(relisted, "a re-list after 410 Gone", timeout=30, interval=0.1)
        assert await _read_names(cache, tool) == []
        assert sample(metrics, lists[0], **lists[1]) == 2  # the first list and the re-list
        # watching again: a change arrives (and the write is waited for)
        await kube.create(tool, _cronjob("after-expiry"))
        try:
            assert await _read_names(cache, tool) == ["after-expiry"]
            assert sample(metrics, lists[0], **lists[1]) == 2
        finally:
            await kube.delete(tool, "cronjobs", "after-expiry")
        assert await _read_names(cache, tool) == []
    finally:
        await cache.close()
        await base.close()
    assert watch_tasks(besides=served) == set()


async def test_a_write_the_watch_cannot_show_lists_again(
    cluster: Cluster, storage: tuple[ToolImpersonatingStorage, JobsMetrics], module_tool: Tool
) -> None:
    """A CronJob written as the tool but without the jobs API's label: no event of the
    watched selection carries its version, so the read after it gives up after
    ``cache_wait_seconds`` (the caller reads the apiserver) and the CronJobs are listed again,
    after which the cache answers."""
    kube, metrics = storage
    tool = module_tool.name
    lists = {"method": "GET", "resource": "cronjobs", "code": "200"}
    served = frozenset(watch_tasks())
    cache = ObjectCache(kube, metrics, settings_for(cluster, cache_wait_seconds=0.5))
    try:
        assert await cache.read(tool) is not None
        listed = sample(metrics, "toolforge_jobs_kube_requests_total", **lists)
        unlabelled = _cronjob("unlabelled")
        unlabelled["metadata"]["labels"] = {}
        await kube.create(tool, unlabelled)
        try:
            assert await cache.read(tool) is None

            async def answers() -> bool:
                return await cache.read(tool) is not None

            await wait_for(answers, "the cache to answer again", timeout=10, interval=0.1)
            assert sample(metrics, "toolforge_jobs_kube_requests_total", **lists) == listed + 1
        finally:
            await kube.delete(tool, "cronjobs", "unlabelled")
        assert await _read_names(cache, tool) == []
    finally:
        await cache.close()
    assert watch_tasks(besides=served) == set()


async def test_the_cache_is_not_served_while_the_apiserver_cannot_be_reached(
    cluster: Cluster,
    storage: tuple[ToolImpersonatingStorage, JobsMetrics],
    module_tool: Tool,
) -> None:
    """The rule behind a deterministic outage 503: a cache answer needs a live answer of
    kube-apiserver for the tool, sent alongside. Here the watches stay open and healthy while
    the requests pool points at a closed port: the read fails at once, nothing stale comes."""
    kube, metrics = storage
    tool = module_tool.name
    served = frozenset(watch_tasks())
    cache = ObjectCache(kube, metrics, settings_for(cluster))
    live = kube._kube
    dead = live.second_pool(2)
    dead._api.configuration.host = "https://127.0.0.1:9"  # discard port: connection refused
    try:
        assert await _read_names(cache, tool) is not None
        kube._kube = dead
        with pytest.raises(UnavailableError):
            await cache.read(tool)
        assert len(watch_tasks(tool, besides=served)) == 5  # the watches never noticed
        kube._kube = live
        assert await _read_names(cache, tool) is not None
    finally:
        kube._kube = live
        await dead.close()
        await cache.close()


async def test_revoked_rights_are_refused_at_once(
    cluster: Cluster, storage: tuple[ToolImpersonatingStorage, JobsMetrics], admin: k8s.ApiClient
) -> None:
    """Watches check RBAC when they start (every ``cache_watch_seconds``, 300 s here); the
    probe sent with every read makes a tool that lost its rights get 403 from the next read."""
    kube, metrics = storage
    async with onboarded_tool(cluster) as victim:
        cache = ObjectCache(kube, metrics, settings_for(cluster, cache_watch_seconds=300))
        try:
            assert await _read_names(cache, victim.name) is not None
            await k8s.RbacAuthorizationV1Api(admin).delete_namespaced_role_binding(
                "toolforge-tool", victim.namespace
            )

            async def refused() -> bool:
                try:
                    await cache.read(victim.name)
                except ForbiddenError:
                    return True
                return False

            # RBAC reaches the apiserver's authorizer through its own informer (milliseconds);
            # the watches would serve the cache for 300 s.
            await wait_for(refused, "403 after the RoleBinding went", timeout=10, interval=0.1)
        finally:
            await cache.close()


async def test_idle_and_surplus_tools_are_dropped_with_their_watches(
    cluster: Cluster,
    storage: tuple[ToolImpersonatingStorage, JobsMetrics],
    module_tool: Tool,
    other_tool: Tool,
) -> None:
    kube, metrics = storage
    a, b = module_tool.name, other_tool.name
    served = frozenset(watch_tasks())
    cache = ObjectCache(
        kube, metrics, settings_for(cluster, cache_max_tools=1, cache_idle_seconds=2)
    )
    try:
        assert await cache.read(a) is not None
        assert len(watch_tasks(a, besides=served)) == 5

        async def watching() -> bool:
            return sample(metrics, "toolforge_jobs_cache_watches_open") == 5

        await wait_for(watching, "5 watches open", timeout=10, interval=0.1)
        # B makes two tools, one more than allowed: A (read least recently) goes
        assert await cache.read(b) is not None
        assert cache.tools == [b]
        assert watch_tasks(a, besides=served) == set()
        assert len(watch_tasks(b, besides=served)) == 5

        async def idle_dropped() -> bool:
            return cache.tools == [] and watch_tasks(besides=served) == set()

        await wait_for(idle_dropped, "the idle tool to be dropped", timeout=10, interval=0.2)
        assert sample(metrics, "toolforge_jobs_cache_watches_open") == 0
        evictions = "toolforge_jobs_cache_evictions_total"
        assert sample(metrics, evictions, reason="capacity") == 1
        assert sample(metrics, evictions, reason="idle") == 1
    finally:
        await cache.close()


async def test_app_shutdown_stops_every_watch(cluster: Cluster, module_tool: Tool) -> None:
    settings = settings_for(cluster)
    async with (
        serve_jobs_api(settings, cluster.pki_dir) as api,
        api.client(module_tool.name) as client,
    ):
        served = frozenset(watch_tasks())
        await warm(api, client, module_tool.name)
        assert len(watch_tasks(module_tool.name, besides=served)) == 5

        async def watching() -> bool:
            return await api.metric("toolforge_jobs_cache_watches_open") == 5

        await wait_for(watching, "5 watches open", timeout=10, interval=0.1)
    assert watch_tasks(besides=served) == set()


async def test_cache_disabled_reads_the_apiserver(cluster: Cluster, module_tool: Tool) -> None:
    settings = settings_for(cluster, cache_enabled=False)
    async with (
        serve_jobs_api(settings, cluster.pki_dir) as api,
        api.client(module_tool.name) as client,
    ):
        for _ in range(2):
            assert await names(client, module_tool.name) == []
        assert await api.metric("toolforge_jobs_cache_reads_total", result="hit") == 0
        assert await api.metric("toolforge_jobs_cache_watches_open") == 0


def _cronjob(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "labels": dict([MANAGED_SELECTOR.split("=")])},
        "spec": {
            "schedule": SCHEDULE,
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "job", "image": PYTHON_IMAGE}],
                        }
                    }
                }
            },
        },
    }


async def _read_names(cache: ObjectCache, tool: str) -> list[str] | None:
    objects = await cache.read(tool)
    if objects is None:
        return None
    return [obj["metadata"]["name"] for obj in objects["cronjobs"]]
