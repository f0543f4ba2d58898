"""Benchmark: jobs API latency against the number of jobs, and create-to-running time.

Reproduce (cluster and platform services running, e.g. after ``make up``/``make run``)::

    uv run python bench/jobs_api.py --sizes 10 100 1000 --requests 30 --runs 5

Everything goes through the running gateway (``https://127.0.0.1:8443``, or ``--gateway``) as
one tool (``bench-jobs``, onboarded here and deleted at the end with all its jobs), with httpx
presenting the tool's client certificate over one keep-alive connection. ``--jobs-api URL``
names the jobs API whose ``/metrics`` are read (default the platform's,
``https://localhost:8444``); with ``--direct`` the requests go straight to it, as the gateway
sends them (its ``gateway-backend-client`` certificate and the ``ssl-client-subject-dn``
header). To time a jobs API (and gateway) started by hand from a working tree next to the
platform's, with copies of their config files (``<run dir>/config/``; the gateway's
``routes.jobs.url`` pointing at the new jobs API)::

    uv run python -m toolforge_jobs --config <run dir>/config/jobs-api.yaml --port 8454 &
    uv run python -m toolforge_gateway --config gateway-8453.yaml &
    uv run python bench/jobs_api.py --jobs-api https://localhost:8454 --direct
    uv run python bench/jobs_api.py --jobs-api https://localhost:8454 \
        --gateway https://127.0.0.1:8453

1. **Latency against job count.** The tool's ResourceQuota allows 50 CronJobs; the admin client
   raises its ``count/cronjobs.batch`` to ``max(sizes) + 100`` first. Scheduled jobs
   (``0 0 1 1 *``: yearly, on 1 January, so none fires during a run and the node stays idle)
   are created through the API (POST, ``--create-concurrency`` at a time) up to each size.
   Then ``list`` (GET ``/jobs/v1/tool/<t>/jobs``) and ``show`` (GET ``.../jobs/<name>``) are
   timed, ``--requests`` times each after 3 warm-up calls, one at a time.
   kube-apiserver calls per request are read from the jobs API's Prometheus counter
   ``toolforge_jobs_kube_requests_total`` (``https://localhost:8444/metrics``) before and
   after single requests; the API is shared, so the minimum over 5 windows is reported
   (another client's calls can only add to a window). Watch requests of the object cache
   (resource ``<plural>/watch``) are long-lived and not counted. The first list at each size
   after the creations is timed on its own (``list (first)``: it waits for the object cache to
   show the last writes).
2. **Create-to-running.** ``--runs`` one-off jobs (``sleep 60``), one after the other: API time
   is the POST's duration through the gateway; cluster time runs from the POST's response until
   the job's pod is in phase ``Running``, seen by polling the pod as the admin every 50 ms.
   Each job is deleted once it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import ssl
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from toolforge_admin.cli import onboarder
from toolforge_admin.onboarding import ToolOnboarder, namespace_for
from toolforge_dev.cli import admin_settings
from toolforge_dev.cluster import Cluster
from toolforge_dev.pytest_plugin import new_admin_api
from toolforge_dev.services import JOBS_API_PORT, PlatformServices

TOOL = "bench-jobs"
SCHEDULE = "0 0 1 1 *"  # yearly, 1 January 00:00 UTC: never fires during a run
IMAGE = "python3.11"
KUBE_COUNTER = "toolforge_jobs_kube_requests"


@dataclass
class Latency:
    jobs: int
    operation: str
    p50_ms: float
    p99_ms: float
    kube_calls: int


@dataclass
class Startup:
    job: str
    api_s: float
    cluster_s: float


def _percentile(samples: list[float], pct: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[pct - 1]


def _tool_client(
    cluster: Cluster, ob: ToolOnboarder, gateway_url: str, jobs_api_url: str | None
) -> httpx.AsyncClient:
    """A client as the tool through the gateway, or as the gateway straight to the jobs API
    when ``jobs_api_url`` is given."""
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    pki = cluster.pki_dir
    if jobs_api_url is not None:
        context = ssl.create_default_context(cafile=pki / "backend-ca.crt")
        context.load_cert_chain(
            pki / "gateway-backend-client.crt", pki / "gateway-backend-client.key"
        )
        return httpx.AsyncClient(
            verify=context,
            base_url=f"{jobs_api_url}/v1/tool/{TOOL}",
            headers={"ssl-client-subject-dn": f"CN={TOOL},O=toolforge"},
            timeout=60,
            limits=limits,
        )
    context = ssl.create_default_context(cafile=pki / "cluster-ca.crt")
    context.load_cert_chain(ob.cert_path(TOOL), ob.key_path(TOOL))
    return httpx.AsyncClient(
        verify=context, base_url=f"{gateway_url}/jobs/v1/tool/{TOOL}", timeout=60, limits=limits
    )


def _metrics_client(cluster: Cluster, jobs_api_url: str) -> httpx.AsyncClient:
    context = ssl.create_default_context(cafile=cluster.pki_dir / "backend-ca.crt")
    return httpx.AsyncClient(verify=context, base_url=jobs_api_url)


async def _kube_calls(metrics: httpx.AsyncClient) -> int:
    """Sum of the jobs API's kube-apiserver call counter (all methods, resources, codes),
    without the object cache's watches."""
    response = await metrics.get("/metrics")
    response.raise_for_status()
    total = 0.0
    for family in text_string_to_metric_families(response.text):
        if family.name == KUBE_COUNTER:
            total += sum(
                s.value
                for s in family.samples
                if s.name.endswith("_total") and not s.labels.get("resource", "").endswith("/watch")
            )
    return int(total)


async def _calls_per_request(
    metrics: httpx.AsyncClient, request: Callable[[], Awaitable[httpx.Response]]
) -> int:
    windows = []
    for _ in range(5):
        before = await _kube_calls(metrics)
        (await request()).raise_for_status()
        windows.append(await _kube_calls(metrics) - before)
    return min(windows)


async def _timed(request: Callable[[], Awaitable[httpx.Response]], count: int) -> list[float]:
    for _ in range(3):
        (await request()).raise_for_status()
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        response = await request()
        samples.append(time.perf_counter() - start)
        response.raise_for_status()
    return samples


async def _create_scheduled(
    client: httpx.AsyncClient, first: int, last: int, concurrency: int
) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        body = {"name": f"sched-{i:04d}", "cmd": "true", "imagename": IMAGE, "schedule": SCHEDULE}
        async with gate:
            response = await client.post("/jobs", json=body)
        if response.status_code != 201:
            raise RuntimeError(f"create sched-{i:04d}: {response.status_code} {response.text}")

    await asyncio.gather(*(one(i) for i in range(first, last)))


async def _raise_quota(admin: k8s.ApiClient, cronjobs: int) -> None:
    ns = namespace_for(TOOL)
    body = {"spec": {"hard": {"count/cronjobs.batch": str(cronjobs)}}}
    await k8s.CoreV1Api(admin).patch_namespaced_resource_quota(ns, ns, body)


async def _wait_running(admin: k8s.ApiClient, job: str, timeout: float = 120) -> float:
    """Seconds until a pod of ``job`` is in phase Running (polling every 50 ms)."""
    core = k8s.CoreV1Api(admin)
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        pods = await core.list_namespaced_pod(
            namespace_for(TOOL), label_selector=f"app.kubernetes.io/name={job}"
        )
        if any(p.status and p.status.phase == "Running" for p in pods.items):
            return time.perf_counter() - start
        await asyncio.sleep(0.05)
    raise RuntimeError(f"job {job} has no Running pod after {timeout:.0f} s")


async def _create_to_running(
    client: httpx.AsyncClient, admin: k8s.ApiClient, runs: int
) -> list[Startup]:
    results = []
    for i in range(runs):
        name = f"run-{i}"
        body = {"name": name, "cmd": "sleep 60", "imagename": IMAGE}
        start = time.perf_counter()
        response = await client.post("/jobs", json=body)
        api_s = time.perf_counter() - start
        if response.status_code != 201:
            raise RuntimeError(f"create {name}: {response.status_code} {response.text}")
        cluster_s = await _wait_running(admin, name)
        results.append(Startup(name, api_s, cluster_s))
        print(f"  {name}: API {api_s * 1000:.0f} ms, cluster {cluster_s:.2f} s", flush=True)
        (await client.delete(f"/jobs/{name}")).raise_for_status()
    return results


async def _wait_namespace_gone(admin: k8s.ApiClient, timeout: float = 180) -> None:
    core = k8s.CoreV1Api(admin)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            await core.read_namespace(namespace_for(TOOL))
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        await asyncio.sleep(1)
    raise RuntimeError(f"namespace {namespace_for(TOOL)} still exists after {timeout:.0f} s")


@contextlib.asynccontextmanager
async def bench_tool(cluster: Cluster) -> AsyncIterator[tuple[ToolOnboarder, k8s.ApiClient]]:
    """The onboarded bench tool (a leftover of an earlier run is deleted first); deleted with
    its namespace, and so all its jobs, at the end."""
    async with onboarder(admin_settings(cluster)) as ob:
        admin = await new_admin_api(cluster)
        async with admin:
            await ob.delete(TOOL, purge_home=True)
            await _wait_namespace_gone(admin)
            await ob.create(TOOL)
            try:
                yield ob, admin
            finally:
                await ob.delete(TOOL, purge_home=True)
                await _wait_namespace_gone(admin)


async def run(args: argparse.Namespace) -> tuple[list[Latency], list[Startup]]:
    cluster = Cluster(progress=lambda _: None)
    platform = PlatformServices(cluster)
    health = platform.health()
    if args.gateway is None and not args.direct and not health.get("gateway"):
        sys.exit(f"the platform's gateway is not healthy: {health}")
    gateway_url = args.gateway or platform.gateway_url
    jobs_api_url = args.jobs_api or f"https://localhost:{JOBS_API_PORT}"
    latencies: list[Latency] = []
    async with bench_tool(cluster) as (ob, admin):
        await _raise_quota(admin, max(args.sizes) + 100)
        async with (
            _tool_client(cluster, ob, gateway_url, jobs_api_url if args.direct else None) as client,
            _metrics_client(cluster, jobs_api_url) as metrics,
        ):
            created = 0
            for size in sorted(args.sizes):
                start = time.perf_counter()
                await _create_scheduled(client, created, size, args.create_concurrency)
                print(
                    f"created jobs {created}..{size - 1} in {time.perf_counter() - start:.1f} s",
                    flush=True,
                )
                created = size
                requests: dict[str, Callable[[], Awaitable[httpx.Response]]] = {
                    "list": lambda: client.get("/jobs"),
                    "show": lambda: client.get("/jobs/sched-0000"),
                }
                start = time.perf_counter()
                first = await client.get("/jobs")
                first_ms = (time.perf_counter() - start) * 1000
                listed = first.json()["jobs"]
                if len(listed) != size:
                    raise RuntimeError(f"list returned {len(listed)} jobs, expected {size}")
                latencies.append(Latency(size, "list (first)", first_ms, first_ms, -1))
                print(_latency_row(latencies[-1]), flush=True)
                for operation, request in requests.items():
                    samples = await _timed(request, args.requests)
                    calls = await _calls_per_request(metrics, request)
                    result = Latency(
                        jobs=size,
                        operation=operation,
                        p50_ms=_percentile(samples, 50) * 1000,
                        p99_ms=_percentile(samples, 99) * 1000,
                        kube_calls=calls,
                    )
                    latencies.append(result)
                    print(_latency_row(result), flush=True)
            (await client.delete("/jobs")).raise_for_status()  # flush: remove the CronJobs
            print("create-to-running:", flush=True)
            startups = await _create_to_running(client, admin, args.runs)
    return latencies, startups


def _latency_row(r: Latency) -> str:
    calls = "-" if r.kube_calls < 0 else str(r.kube_calls)
    return f"| {r.jobs} | {r.operation} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {calls} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--requests", type=int, default=30, help="timed requests per case")
    parser.add_argument("--runs", type=int, default=5, help="one-off jobs for create-to-running")
    parser.add_argument("--create-concurrency", type=int, default=8)
    parser.add_argument("--gateway", help="gateway base URL (default: the platform's)")
    parser.add_argument(
        "--jobs-api", help="the jobs API whose metrics are read (default: the platform's)"
    )
    parser.add_argument(
        "--direct", action="store_true", help="send the requests straight to --jobs-api"
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()

    latencies, startups = asyncio.run(run(args))
    print()
    print("| jobs | operation | p50 ms | p99 ms | kube-apiserver calls/request |")
    print("|---|---|---|---|---|")
    for r in latencies:
        print(_latency_row(r))
    api = statistics.median(s.api_s for s in startups)
    cluster_s = statistics.median(s.cluster_s for s in startups)
    print()
    print(f"create-to-running over {len(startups)} one-off jobs (median):")
    print(f"  API (POST through the gateway) {api * 1000:.0f} ms")
    print(f"  cluster (POST answered -> pod Running) {cluster_s:.2f} s")
    print(f"  total {api + cluster_s:.2f} s")
    if args.json:
        data = {
            "latency": [asdict(r) for r in latencies],
            "startup": [asdict(s) for s in startups],
        }
        args.json.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
