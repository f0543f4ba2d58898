"""Benchmark: a real build on the local platform, from PipelineRun creation to Succeeded, split
into its phases; and the cold cost of the Go builds the build service adds.

Reproduce (cluster and platform services running, e.g. after ``make up``)::

    uv run python bench/build_pipeline.py --runs 3
    uv run python bench/build_pipeline.py --cold-go     # no cluster needed; several minutes

What runs (``--runs N``):

- the sample app (:mod:`toolforge_dev.sample_app`: a Procfile, ``requirements.txt`` with one
  vendored wheel) is pushed to the platform's git server as repository ``bench-build``;
- N times, one after the other: a PipelineRun is created exactly as the builds API creates it
  (``tests/builds/pipelineruns.py``: the builds API's own builder and settings, its own cluster
  identity) for tool ``bench-build``, image ``sample``; the real Tekton controller runs it.
  The script polls the PipelineRun every 0.1 s: *wall* is from just before the create call
  to the poll that sees ``Succeeded=True``;
- the phases come from Tekton's own records (1 s resolution: Kubernetes timestamps): *queueing*
  is from the PipelineRun's creation to the start of the clone step (controller reconcile,
  TaskRun, pod scheduling, sandbox, init containers ``prepare``/``place-scripts``), then each
  step's start to end as the TaskRun's ``status.steps`` records them: clone, detect, build,
  export (analyze + export + push); *finishing* is the last step's end to the run's
  ``completionTime`` (pod status, TaskRun and PipelineRun reconciles); *total* is creation to
  ``completionTime``.
- The first run is the first build after the cluster start; later ones find the images'
  layers in the page cache and, for export, the previous image in the registry.

``--cold-go``: builds the Tekton and lifecycle components as ``make binaries`` does, into a
temporary cache with an empty Go build cache (``GOCACHE``), so it measures compiling, not
downloading (the module cache is kept: downloads depend on the network).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from builds.pipelineruns import (
    condition,
    get_run,
    publish_app,
    start_build,
    step_times,
    taskrun_of,
)
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config

from toolforge_dev import binaries
from toolforge_dev.cluster import Cluster
from toolforge_dev.sample_app import write_sample_app
from toolforge_dev.services import PlatformServices

TOOL = "bench-build"
PHASES = ("queueing", "clone", "detect", "build", "export", "finishing", "total", "wall")


async def _api(kubeconfig: Path) -> k8s.ApiClient:
    conf = k8s.Configuration()
    await k8s_config.load_kube_config(config_file=str(kubeconfig), client_configuration=conf)
    return k8s.ApiClient(conf)


async def one_build(
    api: k8s.ApiClient, admin: k8s.ApiClient, platform: PlatformServices, commit: str
) -> dict[str, float]:
    started = time.monotonic()
    created = await start_build(
        api, platform, tool=TOOL, repository=TOOL, commit=commit, image_name="sample"
    )
    name = created["metadata"]["name"]
    run: dict[str, Any] = {}
    while time.monotonic() - started < 600:
        run = await get_run(admin, name)
        if condition(run).get("status") in ("True", "False"):
            break
        await asyncio.sleep(0.1)
    wall = time.monotonic() - started
    if condition(run).get("status") != "True":
        raise SystemExit(f"build {name} did not succeed: {condition(run)}")
    seconds = step_times(run, await taskrun_of(admin, run)).seconds()
    return {**seconds, "wall": wall}


async def bench_builds(runs: int) -> None:
    cluster = Cluster(progress=lambda _m: None)
    if not cluster.is_up():
        raise SystemExit("the cluster is not up: run `make up` first")
    platform = PlatformServices(cluster, progress=lambda _m: None)
    commit = publish_app(platform, TOOL, write_sample_app)
    api = await _api(cluster.service_kubeconfig("builds-api"))
    admin = await _api(cluster.admin_kubeconfig)
    results = []
    try:
        for n in range(runs):
            result = await one_build(api, admin, platform, commit)
            results.append(result)
            print(f"run {n + 1}: " + "  ".join(f"{p} {result[p]:.1f}" for p in PHASES))
    finally:
        await k8s.CustomObjectsApi(admin).delete_collection_namespaced_custom_object(
            "tekton.dev", "v1", "image-build", "pipelineruns", label_selector=f"user={TOOL}"
        )
        await api.close()
        await admin.close()
    print(f"\nseconds over {runs} runs (median, min, max):")
    for phase in PHASES:
        values = [r[phase] for r in results]
        print(f"  {phase:9} {statistics.median(values):6.1f} {min(values):6.1f} {max(values):6.1f}")


def bench_cold_go() -> None:
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as gocache:
        os.environ["TOOLFORGE_DEV_CACHE"] = cache
        os.environ["GOCACHE"] = gocache
        for component in (binaries.tekton(), binaries.lifecycle()):
            started = time.monotonic()
            cpu = os.times()
            component.build(progress=lambda _m: None)
            after = os.times()
            children = (after.children_user - cpu.children_user) + (
                after.children_system - cpu.children_system
            )
            print(
                f"{component.name} {component.version}: {time.monotonic() - started:.0f} s wall,"
                f" {children:.0f} s CPU (cold Go build cache)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="builds to time (default 3)")
    parser.add_argument("--cold-go", action="store_true", help="time the cold Go builds instead")
    args = parser.parse_args()
    if args.cold_go:
        bench_cold_go()
    else:
        asyncio.run(bench_builds(args.runs))


if __name__ == "__main__":
    main()
