"""Benchmark: web traffic through the Gateway (NodePort 30000 -> Traefik -> pod) beside the
same request straight to the pod's Service IP, in one run.

Reproduce (cluster up with ``make up``, vegeta built with ``uv run toolforge-dev build
--bench``)::

    uv run python bench/web.py --duration 15 --concurrency 32 --rounds 2 --backends python nginx

The script onboards a tool ``webbench`` and, for each ``--backends`` entry, runs one web server
pod (one replica, CPU limit 1) with its Service and an HTTPRoute for
``webbench.toolforge.local``:

- ``python``: the tiny web app of ``toolforge_dev.webapp`` (Python ``http.server``, HTTP/1.1
  keep-alive), what a typical tool serves;
- ``nginx``: nginx-light from Debian bookworm (an image built here with debootstrap, cached),
  one worker answering ``200`` with a constant body, so that the backend costs little and the
  Gateway's own cost shows;
- ``published``: the same Python app as a continuous job published through the jobs API
  (``publish: "/"``, ``port: 8000``, ``cpu: 1``): the jobs API's own code
  (:class:`toolforge_jobs.service.JobsService`, in this process, acting as the tool with the
  jobs API's kubeconfig) makes the Deployment, Service and HTTPRoute, as ``toolforge jobs run
  --publish /`` does.

It waits until the route answers 200 through the Gateway, then attacks, alternating, for
``--rounds`` rounds:

- **gateway**: ``GET http://127.0.0.1:30000/`` with ``Host: webbench.toolforge.local``
  (kube-proxy's NodePort DNAT on loopback -> Traefik -> the pod);
- **service**: ``GET http://<ClusterIP>:8000/`` (kube-proxy's ClusterIP DNAT -> the pod).

Each attack is ``vegeta attack -rate=0 -keepalive=true`` with N workers and N connections
from the host. Reported per attack: requests/s, p50 and p99 latency, success ratio. The tool
is deleted at the end. Everything shares the machine's 2 cores, vegeta included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from kubernetes_asyncio import client as k8s

from toolforge_admin.cli import onboarder
from toolforge_admin.onboarding import OnboardingError
from toolforge_dev import binaries, images
from toolforge_dev.cli import admin_settings
from toolforge_dev.cluster import Cluster
from toolforge_dev.pytest_plugin import new_admin_api
from toolforge_dev.web import web_url
from toolforge_dev.web_manifests import jobs_api_web_settings
from toolforge_dev.webapp import SERVER, tool_host, webapp_objects
from toolforge_jobs.metrics import JobsMetrics
from toolforge_jobs.models import JobSpec
from toolforge_jobs.service import JobsService, image_catalog
from toolforge_jobs.settings import JobsSettings
from toolforge_jobs.storage import ToolImpersonatingStorage

TOOL = "webbench"
NGINX = images.ImageSpec(
    short="nginx-light",
    ref="registry.local/toolforge/nginx-light:bench",
    kind="debootstrap",
    include=("nginx-light",),
    user_facing=False,
)
NGINX_CONF = """
worker_processes 1;
pid /tmp/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path /tmp/body;
    proxy_temp_path /tmp/proxy;
    fastcgi_temp_path /tmp/fastcgi;
    uwsgi_temp_path /tmp/uwsgi;
    scgi_temp_path /tmp/scgi;
    keepalive_requests 1000000;
    server {
        listen 8000;
        location / { default_type text/plain; return 200 "$hostname\\n"; }
    }
}
"""


def _nginx(deployment: Any) -> Any:
    """Turn the webapp Deployment into one running nginx with :data:`NGINX_CONF`."""
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    container["image"] = NGINX.ref
    container["command"] = ["nginx", "-c", "/etc/bench/nginx.conf", "-g", "daemon off;"]
    container["volumeMounts"] = [{"name": "conf", "mountPath": "/etc/bench"}]
    pod["volumes"] = [{"name": "conf", "configMap": {"name": "nginx-bench"}}]
    return deployment


async def _setup(cluster: Cluster, backend: str) -> str:
    """Onboard the tool (once), start ``backend``'s app with its Service and HTTPRoute
    (removing the other backend's); returns the Service's ClusterIP."""
    async with onboarder(admin_settings(cluster)) as ob:
        deadline = time.monotonic() + 120
        while True:  # a previous run's namespace may still be terminating
            try:
                result = await ob.create(TOOL)
                break
            except OnboardingError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(2)
        if result.uid is None:
            sys.exit(f"onboarding {TOOL} gave no uid")
        deployment, service, route = webapp_objects(TOOL, result.uid, cpu="1")
        ns = result.namespace
        api = await new_admin_api(cluster)
        async with api:
            apps, core, custom = k8s.AppsV1Api(api), k8s.CoreV1Api(api), k8s.CustomObjectsApi(api)
            name = deployment["metadata"]["name"]
            try:
                await apps.delete_namespaced_deployment(name, ns)
            except k8s.ApiException as exc:
                if exc.status != 404:
                    raise
            if backend == "nginx":
                deployment = _nginx(deployment)
                conf = k8s.V1ConfigMap(
                    metadata=k8s.V1ObjectMeta(name="nginx-bench"), data={"nginx.conf": NGINX_CONF}
                )
                try:
                    await core.create_namespaced_config_map(ns, conf)
                except k8s.ApiException as exc:
                    if exc.status != 409:
                        raise
            deadline = time.monotonic() + 60
            while True:  # the old Deployment's deletion must finish before the new one
                try:
                    await apps.create_namespaced_deployment(ns, deployment)
                    break
                except k8s.ApiException as exc:
                    if exc.status != 409 or time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.5)
            for create, obj in (
                (core.create_namespaced_service, service),
                (
                    lambda ns_, body: custom.create_namespaced_custom_object(
                        "gateway.networking.k8s.io", "v1", ns_, "httproutes", body
                    ),
                    route,
                ),
            ):
                try:
                    await create(ns, obj)
                except k8s.ApiException as exc:
                    if exc.status != 409:
                        raise
            want_image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
            while True:  # only the new backend's pods behind the Service
                pods = (await core.list_namespaced_pod(ns)).items
                images_running = {c.image for p in pods for c in p.spec.containers}
                ready = all(
                    any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
                    for p in pods
                )
                if pods and ready and images_running == {want_image}:
                    break
                if time.monotonic() > deadline:
                    sys.exit(f"{backend} pods not ready: {[p.metadata.name for p in pods]}")
                await asyncio.sleep(0.5)
            svc = await core.read_namespaced_service(service["metadata"]["name"], ns)
            return str(svc.spec.cluster_ip)


async def _setup_published(cluster: Cluster) -> str:
    """Onboard the tool (once), remove the other backends' app and route, and publish the
    Python app as job ``pub`` through the jobs API's service layer; returns its Service's
    ClusterIP once its pod is ready."""
    async with onboarder(admin_settings(cluster)) as ob:
        deadline = time.monotonic() + 120
        while True:  # a previous run's namespace may still be terminating
            try:
                result = await ob.create(TOOL)
                break
            except OnboardingError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(2)
    ns = result.namespace
    api = await new_admin_api(cluster)
    async with api:
        apps, core, custom = k8s.AppsV1Api(api), k8s.CoreV1Api(api), k8s.CustomObjectsApi(api)
        for delete in (
            lambda: apps.delete_namespaced_deployment("web", ns),
            lambda: core.delete_namespaced_service("web", ns),
            lambda: custom.delete_namespaced_custom_object(
                "gateway.networking.k8s.io", "v1", ns, "httproutes", "web"
            ),
        ):
            try:
                await delete()
            except k8s.ApiException as exc:
                if exc.status != 404:
                    raise
        settings = JobsSettings(
            kubeconfig=cluster.service_kubeconfig("jobs-api"),
            homes_dir=cluster.homes_dir,
            **jobs_api_web_settings(),  # type: ignore[arg-type]
        )
        storage = await ToolImpersonatingStorage.connect(settings, JobsMetrics())
        try:
            service = JobsService(storage, image_catalog(storage, settings), settings)
            if await storage.get(TOOL, "deployments", "pub") is None:
                spec = JobSpec.model_validate(
                    {
                        "name": "pub",
                        "cmd": f"exec python3 -c {shlex.quote(SERVER)}",
                        "imagename": "python3.11",
                        "continuous": True,
                        "port": 8000,
                        "publish": "/",
                        "cpu": "1",
                        "memory": "256Mi",
                        "filelog": False,
                    }
                )
                await service.create(TOOL, spec)
        finally:
            await storage.close()
        deadline = time.monotonic() + 180
        while True:  # only the job's pod, ready, behind the Service
            pods = (await core.list_namespaced_pod(ns)).items
            names = {p.metadata.labels.get("app.kubernetes.io/name") for p in pods}
            ready = all(
                any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
                for p in pods
            )
            if pods and ready and names == {"pub"}:
                break
            if time.monotonic() > deadline:
                sys.exit(f"published job not ready: {[p.metadata.name for p in pods]}")
            await asyncio.sleep(0.5)
        svc = await core.read_namespaced_service("pub", ns)
        return str(svc.spec.cluster_ip)


async def _teardown(cluster: Cluster) -> None:
    async with onboarder(admin_settings(cluster)) as ob:
        await ob.delete(TOOL, purge_home=True)


def _wait_200(url: str, host: str | None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    headers = {"Host": host} if host else {}
    last = ""
    while time.monotonic() < deadline:
        try:
            with httpx.Client(trust_env=False, timeout=5) as client:
                response = client.get(url, headers=headers)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.5)
    sys.exit(f"{url} (Host {host}) did not answer 200 within {timeout} s: {last}")


def attack(url: str, host: str | None, concurrency: int, duration: float) -> dict[str, Any]:
    """One vegeta attack; returns requests/s, p50/p99 in ms and the success ratio."""
    vegeta = binaries.vegeta().path("vegeta")
    target = f"GET {url}\n" + (f"Host: {host}\n" if host else "")
    attacked = subprocess.run(
        [
            str(vegeta), "attack", "-rate=0", f"-workers={concurrency}",
            f"-max-workers={concurrency}", f"-connections={concurrency}",
            f"-duration={duration}s", "-keepalive=true", "-timeout=30s",
        ],
        input=target.encode(),
        capture_output=True,
        check=True,
    )  # fmt: skip
    report = json.loads(
        subprocess.run(
            [str(vegeta), "report", "-type=json"],
            input=attacked.stdout,
            capture_output=True,
            check=True,
        ).stdout
    )
    return {
        "rps": round(report["throughput"]),
        "p50_ms": round(report["latencies"]["50th"] / 1e6, 2),
        "p99_ms": round(report["latencies"]["99th"] / 1e6, 2),
        "success": report["success"],
        "errors": report.get("errors") or [],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15, help="seconds per attack")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="gateway/service pairs")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the tool afterwards")
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=["python", "nginx", "published"],
        default=["python", "nginx", "published"],
    )
    args = parser.parse_args()
    if not binaries.vegeta().is_built():
        sys.exit("vegeta is not built: uv run toolforge-dev build --bench")
    cluster = Cluster(progress=lambda _m: None)
    if not cluster.is_up():
        sys.exit("the cluster is not up: make up")
    if "nginx" in args.backends:
        archives = images.build_images(specs=(NGINX,))
        images.import_images(archives.values(), address=cluster.containerd_socket)
    host = tool_host(TOOL)
    results: list[dict[str, Any]] = []
    print("| backend | path | round | connections | requests/s | p50 ms | p99 ms | success |")
    print("|---|---|---|---|---|---|---|---|")
    try:
        for backend in args.backends:
            setup = (
                _setup_published(cluster) if backend == "published" else _setup(cluster, backend)
            )
            cluster_ip = asyncio.run(setup)
            targets = {
                "gateway": (f"{web_url()}/", host),
                "service": (f"http://{cluster_ip}:8000/", None),
            }
            for url, target_host in targets.values():
                _wait_200(url, target_host)
            for url, target_host in targets.values():  # warm both paths up
                attack(url, target_host, args.concurrency, 2)
            for round_ in range(1, args.rounds + 1):
                for path, (url, target_host) in targets.items():
                    result = attack(url, target_host, args.concurrency, args.duration)
                    result.update(
                        backend=backend, path=path, round=round_, concurrency=args.concurrency
                    )
                    results.append(result)
                    print(
                        f"| {backend} | {path} | {round_} | {args.concurrency} keep-alive | "
                        f"{result['rps']:,} | {result['p50_ms']} | {result['p99_ms']} | "
                        f"{result['success'] * 100:.1f} % |",
                        flush=True,
                    )
                    if result["errors"]:
                        print(f"  errors: {result['errors'][:5]}", flush=True)
    finally:
        if not args.keep:
            asyncio.run(_teardown(cluster))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
