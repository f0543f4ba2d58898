"""Benchmark: the latency the envvars admission webhook adds to pod creation.

Reproduce (cluster and platform services running, e.g. after ``make up``)::

    uv run python bench/envvars_admission.py --requests 300

As one tool (``bench-envvars``, onboarded here and deleted at the end) with 10 variables, pods
are created with ``dryRun=All`` through its own kubeconfig, one at a time: kube-apiserver runs
the whole admission chain (the mutating webhook is called for dry runs because it declares
``sideEffects: None``) and the tool pod ValidatingAdmissionPolicy, but stores nothing and
starts nothing, so only admission is measured. The same requests are timed with the
MutatingWebhookConfiguration registered and unregistered (it is registered again at the end),
interleaved in blocks of 25 to share the machine's noise. Other configurations of the same
webhook (the in-cluster one of ``make deploy``) are taken away for the run and put back after.
The difference of the two is what the webhook costs (a TLS call from kube-apiserver to the
webhook and one metadata read).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client as k8s

from toolforge_admin.cli import onboarder
from toolforge_dev.binaries import Binaries
from toolforge_dev.cli import admin_settings
from toolforge_dev.cluster import Cluster
from toolforge_dev.pytest_plugin import new_tool_api
from toolforge_dev.services import PlatformServices
from toolforge_envvars.webhook.registration import WEBHOOK_NAME

TOOL = "bench-envvars"


@dataclass
class Sample:
    """Latencies in milliseconds."""

    values: list[float]

    def line(self, label: str) -> str:
        ms = sorted(self.values)
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        return (
            f"{label:<22} n={len(ms):<4} p50 {statistics.median(ms):6.1f} ms   "
            f"p99 {p99:6.1f} ms   mean {statistics.fmean(ms):6.1f} ms"
        )


def _pod(uid: int, i: int) -> Any:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"bench-{i}"},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsUser": uid, "runAsGroup": uid, "runAsNonRoot": True},
            "containers": [
                {
                    "name": "job",
                    "image": "registry.local/toolforge/python3.11:stable",
                    "command": ["true"],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


async def _time_creates(core: k8s.CoreV1Api, ns: str, uid: int, count: int) -> list[float]:
    out = []
    for i in range(count):
        started = time.perf_counter()
        await core.create_namespaced_pod(ns, _pod(uid, i), dry_run="All")
        out.append((time.perf_counter() - started) * 1000)
    return out


async def _until_injection(core: k8s.CoreV1Api, ns: str, uid: int, *, injected: bool) -> None:
    """Wait until kube-apiserver's view of the webhook configuration caught up (a dry-run pod
    has, or has not, the injected variables)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pod = await core.create_namespaced_pod(ns, _pod(uid, 0), dry_run="All")
        if bool(pod.spec.containers[0].env) == injected:
            return
        await asyncio.sleep(0.05)
    raise SystemExit(f"the webhook configuration did not take effect (injected={injected})")


def _other_configurations(cluster: Cluster) -> list[dict[str, Any]]:
    """The MutatingWebhookConfigurations of the envvars webhook other than the host one."""
    bins = Binaries.from_cache()
    found = json.loads(cluster.kubectl(bins, "get", "mutatingwebhookconfigurations", "-o", "json"))
    others = []
    for item in found["items"]:
        names = {hook["name"] for hook in item.get("webhooks") or []}
        if WEBHOOK_NAME in names and item["metadata"]["name"] != WEBHOOK_NAME:
            meta = item["metadata"]
            item["metadata"] = {k: meta[k] for k in ("name", "labels", "annotations") if k in meta}
            others.append(item)
    return others


def _set_others(cluster: Cluster, others: list[dict[str, Any]], *, present: bool) -> None:
    bins = Binaries.from_cache()
    for item in others:
        if present:
            cluster.kubectl(bins, "apply", "-f", "-", input_text=json.dumps(item))
        else:
            name = item["metadata"]["name"]
            cluster.kubectl(bins, "delete", "mutatingwebhookconfiguration", name)


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="dry-run creates per case")
    args = parser.parse_args(argv)
    cluster = Cluster(progress=lambda _m: None)
    if not cluster.is_up():
        raise SystemExit("the cluster is not running (make up)")
    platform = PlatformServices(cluster, progress=lambda _m: None)
    others = _other_configurations(cluster)
    _set_others(cluster, others, present=False)
    async with onboarder(admin_settings(cluster)) as ob:
        result = await ob.create(TOOL)
        if result.uid is None:
            raise SystemExit(f"onboarding {TOOL} gave no uid")
        try:
            secret_names = [f"BENCH_VAR_{i:02d}" for i in range(10)]
            env_secret = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": "toolforge-envvars",
                    "annotations": {"envvars.toolforge.org/names": ",".join(secret_names)},
                },
                "stringData": {n: "x" * 32 for n in secret_names},
            }
            api = await new_tool_api(ob.kubeconfig_path(TOOL))
            async with api:
                core = k8s.CoreV1Api(api)
                await core.create_namespaced_secret(result.namespace, env_secret)  # type: ignore[arg-type]
                with_hook: list[float] = []
                without: list[float] = []
                block = 25
                await _time_creates(core, result.namespace, result.uid, 10)  # warm-up
                for _ in range(max(1, args.requests // block)):
                    platform.register_webhook()
                    await _until_injection(core, result.namespace, result.uid, injected=True)
                    with_hook += await _time_creates(core, result.namespace, result.uid, block)
                    platform.unregister_webhook()
                    await _until_injection(core, result.namespace, result.uid, injected=False)
                    without += await _time_creates(core, result.namespace, result.uid, block)
                platform.register_webhook()
            print(Sample(without).line("without the webhook"))
            print(Sample(with_hook).line("with the webhook"))
            added = statistics.median(with_hook) - statistics.median(without)
            print(f"webhook adds (p50 difference): {added:.1f} ms")
        finally:
            platform.register_webhook()
            _set_others(cluster, others, present=True)
            await ob.delete(TOOL, purge_home=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
