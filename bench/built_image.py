"""Benchmark: a tool's build through the platform, from ``build start`` to ``BUILD_SUCCESS``
split into its phases, then ``jobs run`` of the built image to a Running pod.

Reproduce (cluster and platform services running, e.g. after ``make up``)::

    uv run python bench/built_image.py --runs 3

What runs, all through the platform gateway with the tool's client certificate (as
``toolforge build start`` and ``toolforge jobs run`` call it):

- tool ``bench-built`` is onboarded (namespace, certificate, image pull Secret) and the sample
  app (:mod:`toolforge_dev.sample_app`) is pushed to the platform's git server;
- N times, one after the other: ``POST /builds/v1/tool/bench-built/builds`` (image ``sample``),
  then ``GET .../builds/<id>`` every 0.2 s until ``BUILD_SUCCESS``: *wall* is from just before
  the POST to that answer. The phases come from Tekton's records of the PipelineRun and its
  TaskRun (1 s resolution, Kubernetes timestamps): *queueing* (run created -> clone step
  started: controller, TaskRun, scheduling, sandbox, Tekton's init containers), *clone*,
  *detect*, *build*, *export* (analyze + export + push), *finishing* (last step's end ->
  the run's completion time), *total*;
- after each build: ``POST /jobs/v1/tool/bench-built/jobs`` of a continuous job running the
  Procfile's ``web`` process of ``tool-bench-built/sample:latest``, then the job's pod is
  polled every 0.1 s (admin) until it is Running: *job POST* is the API call (which checks the
  tag in the registry), *to Running* is from just before the POST to the poll that sees
  phase Running. The same for the standard image ``python3.11`` (``python3 -m http.server``)
  for comparison. The first run pulls the built image onto the node; later runs find its
  layers there (pull policy Always: the kubelet asks the registry for the manifest only).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from kubernetes_asyncio import client as k8s

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from builds.pipelineruns import NAMESPACE, get_run, step_times, taskrun_of

from toolforge_admin.cli import onboarder
from toolforge_dev.cli import admin_settings
from toolforge_dev.cluster import Cluster
from toolforge_dev.pytest_plugin import new_admin_api
from toolforge_dev.sample_app import write_sample_app
from toolforge_dev.services import GATEWAY_PORT, PlatformServices

TOOL = "bench-built"
BUILD_PHASES = ("queueing", "clone", "detect", "build", "export")
PHASES = (*BUILD_PHASES, "finishing", "total", "wall", "job POST", "to Running", "std Running")


async def until_success(client: httpx.AsyncClient, build_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        reply = await client.get(f"/builds/v1/tool/{TOOL}/builds/{build_id}")
        reply.raise_for_status()
        build: dict[str, Any] = reply.json()["build"]
        if build["status"] not in ("BUILD_PENDING", "BUILD_RUNNING"):
            if build["status"] != "BUILD_SUCCESS":
                raise SystemExit(f"build {build_id}: {build['status']} {build['message']}")
            return build
        await asyncio.sleep(0.2)
    raise SystemExit(f"build {build_id} did not end in 600 s")


async def run_to_running(
    client: httpx.AsyncClient, core: k8s.CoreV1Api, name: str, body: dict[str, Any]
) -> tuple[float, float]:
    """(POST seconds, seconds to a Running pod) of a continuous job."""
    started = time.monotonic()
    reply = await client.post(f"/jobs/v1/tool/{TOOL}/jobs", json={"name": name, **body})
    posted = time.monotonic() - started
    if reply.status_code != 201:
        raise SystemExit(f"job {name}: {reply.status_code} {reply.text}")
    while time.monotonic() - started < 300:
        pods = await core.list_namespaced_pod(
            f"tool-{TOOL}", label_selector=f"app.kubernetes.io/name={name}"
        )
        if any(p.status.phase == "Running" for p in pods.items):
            return posted, time.monotonic() - started
        await asyncio.sleep(0.1)
    raise SystemExit(f"job {name}: no Running pod after 300 s")


async def one_run(
    n: int, client: httpx.AsyncClient, admin: k8s.ApiClient, source: str
) -> dict[str, float]:
    started = time.monotonic()
    reply = await client.post(
        f"/builds/v1/tool/{TOOL}/builds", json={"source_url": source, "image_name": "sample"}
    )
    if reply.status_code != 200:
        raise SystemExit(f"build start: {reply.status_code} {reply.text}")
    build_id = reply.json()["new_build"]["name"]
    await until_success(client, build_id)
    wall = time.monotonic() - started
    run = await get_run(admin, build_id)
    result = {**step_times(run, await taskrun_of(admin, run)).seconds(), "wall": wall}
    core = k8s.CoreV1Api(admin)
    built = {"cmd": "web", "imagename": f"tool-{TOOL}/sample:latest", "continuous": True}
    result["job POST"], result["to Running"] = await run_to_running(
        client, core, f"web{n}", {**built, "port": 8000}
    )
    standard = {"cmd": "python3 -m http.server 8000", "imagename": "python3.11"}
    _, result["std Running"] = await run_to_running(
        client, core, f"std{n}", {**standard, "continuous": True, "port": 8000}
    )
    await client.delete(f"/jobs/v1/tool/{TOOL}/jobs")
    return result


async def cleanup(admin: k8s.ApiClient) -> None:
    await k8s.CustomObjectsApi(admin).delete_collection_namespaced_custom_object(
        "tekton.dev", "v1", NAMESPACE, "pipelineruns", label_selector=f"user={TOOL}"
    )


async def bench(runs: int) -> None:
    cluster = Cluster(progress=lambda _m: None)
    if not cluster.is_up():
        raise SystemExit("the cluster is not up: run `make up` first")
    platform = PlatformServices(cluster, progress=lambda _m: None)
    git = platform.git_server()
    with tempfile.TemporaryDirectory() as tmp:
        git.publish(TOOL, write_sample_app(Path(tmp) / "app"))
    results = []
    async with onboarder(admin_settings(cluster)) as ob:
        await ob.create(TOOL)
        context = ssl.create_default_context(cafile=cluster.pki_dir / "cluster-ca.crt")
        context.load_cert_chain(ob.cert_path(TOOL), ob.key_path(TOOL))
        admin = await new_admin_api(cluster)
        async with (
            admin,
            httpx.AsyncClient(
                base_url=f"https://127.0.0.1:{GATEWAY_PORT}", verify=context, timeout=120
            ) as client,
        ):
            try:
                for n in range(runs):
                    result = await one_run(n, client, admin, git.url(TOOL))
                    results.append(result)
                    print(f"run {n + 1}: " + "  ".join(f"{p} {result[p]:.1f}" for p in PHASES))
            finally:
                with contextlib.suppress(httpx.HTTPError):
                    await client.delete(f"/jobs/v1/tool/{TOOL}/jobs")
                await cleanup(admin)
        await ob.delete(TOOL)
    print(f"\nseconds over {runs} runs (median, min, max):")
    for phase in PHASES:
        values = [r[phase] for r in results]
        print(
            f"  {phase:12} {statistics.median(values):6.1f} {min(values):6.1f} {max(values):6.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="builds to time (default 3)")
    asyncio.run(bench(parser.parse_args().runs))


if __name__ == "__main__":
    main()
