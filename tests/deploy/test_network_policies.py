"""NetworkPolicies enforced, shown as traffic (issue 14, finding 4): pods open TCP connections
and the NetworkPolicy engine of the local cluster (kube-router, ``toolforge_dev.netpol``)
lets through what the policies allow and nothing else.

- the charts' policies (``make deploy``): a tool's pod cannot connect to the jobs or builds API
  pods, nor to the registry on the node; the gateway's pods can reach the backends (and
  nothing else), the builds API's pods can reach the registry;
- the tool namespaces' default policies (``toolforge_admin.policies``): a tool's pod cannot
  reach another tool's pods, while its own pods, DNS, kube-apiserver and the platform's
  namespaces keep working.

Every probe runs after kube-router has programmed the policies of every pod involved
(``netpol.wait_programmed``): kube-router lets a new pod's traffic through until its first
sync, so probing earlier would test the race, not the policy. Blocked connections are
refused (kube-router rejects them), so no probe waits for a timeout; each one still has a
3 s bound.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s

from kube import scratch_namespace, tool_pod
from toolforge_dev import binaries, netpol
from toolforge_dev.cluster import KUBERNETES_SERVICE_IP, NODE_IP, Cluster
from toolforge_dev.deploy import NAMESPACE, DeployReport, deploy
from toolforge_dev.pytest_plugin import Tool, new_tool_api
from toolforge_dev.services import REGISTRY_PORT, PlatformServices

pytestmark = pytest.mark.cluster

ISOLATION = "toolforge-tool-isolation"
EGRESS = "toolforge-tool-egress"
TOOL_POLICIES = (ISOLATION, EGRESS)
#: Connects to each ``tcp:HOST:PORT`` and resolves each ``dns:NAME`` given as an argument;
#: prints ``{target: "open" | "resolved <ip>" | "<error>"}`` as JSON.
PROBE = r"""
import json, socket, sys
out = {}
for target in sys.argv[1:]:
    kind, _, rest = target.partition(":")
    try:
        if kind == "dns":
            out[target] = "resolved " + socket.gethostbyname(rest)
        else:
            host, port = rest.rsplit(":", 1)
            socket.create_connection((host, int(port)), timeout=3).close()
            out[target] = "open"
    except OSError as exc:
        out[target] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""
SERVER = "import http.server as h; h.test(h.SimpleHTTPRequestHandler, port=8080, bind='0.0.0.0')"


@pytest.fixture(scope="module")
def deployment(cluster: Cluster, platform: PlatformServices) -> DeployReport:
    return deploy(cluster, progress=print)


def probe(kubeconfig: Path, namespace: str, pod: str, *targets: str) -> dict[str, str]:
    """Run :data:`PROBE` in ``pod`` with ``kubectl exec`` as the kubeconfig's user."""
    proc = subprocess.run(
        [
            str(binaries.kubernetes().path("kubectl")),
            "--kubeconfig",
            str(kubeconfig),
            "-n",
            namespace,
            "exec",
            pod,
            "--",
            "python3",
            "-c",
            PROBE,
            *targets,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, str] = json.loads(proc.stdout)
    return result


def _tcp(ip: str, port: int) -> str:
    return f"tcp:{ip}:{port}"


async def _start(core: k8s.CoreV1Api, namespace: str, pod: Any) -> str:
    """Create a long-running pod, wait until it is Ready, return its IP."""
    name = pod["metadata"]["name"]
    await core.create_namespaced_pod(namespace, pod)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 90
    while loop.time() < deadline:
        current = await core.read_namespaced_pod(name, namespace)
        conditions = current.status.conditions or []
        if any(c.type == "Ready" and c.status == "True" for c in conditions):
            return str(current.status.pod_ip)
        assert current.status.phase in ("Pending", "Running"), current.status
        await asyncio.sleep(0.5)
    raise AssertionError(f"pod {namespace}/{name} not Ready in 90 s")


def _server(name: str, uid: int | None) -> Any:
    pod = tool_pod(name, SERVER, uid) if uid is not None else _plain_pod(name, SERVER)
    pod["spec"]["containers"][0]["readinessProbe"] = {
        "tcpSocket": {"port": 8080},
        "periodSeconds": 1,
    }
    return pod


def _sleeper(name: str, uid: int | None) -> Any:
    script = "import time; time.sleep(3600)"
    pod = tool_pod(name, script, uid) if uid is not None else _plain_pod(name, script)
    return pod


def _plain_pod(name: str, script: str) -> Any:
    pod = tool_pod(name, script, 1000)
    del pod["spec"]["securityContext"]
    return pod


@pytest.fixture
async def tool_core(tool: Tool) -> AsyncIterator[k8s.CoreV1Api]:
    api = await new_tool_api(tool.kubeconfig)
    async with api:
        yield k8s.CoreV1Api(api)


async def _platform_pods(admin_api: k8s.ApiClient, app: str) -> list[Any]:
    pods = await k8s.CoreV1Api(admin_api).list_namespaced_pod(
        NAMESPACE, label_selector=f"app.kubernetes.io/name={app}"
    )
    running = [
        p
        for p in pods.items
        if p.status.phase == "Running" and p.status.pod_ip and not p.metadata.deletion_timestamp
    ]
    assert running, f"no running {app} pod"
    for pod in running:
        # The chart names each NetworkPolicy after the chart.
        await asyncio.to_thread(netpol.wait_programmed, NAMESPACE, pod.metadata.name, [app])
    return running


async def test_only_the_gateway_reaches_the_backends_and_tools_not_the_registry(
    deployment: DeployReport,
    cluster: Cluster,
    admin_api: k8s.ApiClient,
    tool: Tool,
    tool_core: k8s.CoreV1Api,
) -> None:
    jobs = await _platform_pods(admin_api, "jobs-api")
    builds = await _platform_pods(admin_api, "builds-api")
    gateway = await _platform_pods(admin_api, "gateway")
    await _start(tool_core, tool.namespace, _sleeper("prober", tool.uid))
    await asyncio.to_thread(netpol.wait_programmed, tool.namespace, "prober", TOOL_POLICIES)

    backends = [_tcp(p.status.pod_ip, 8443) for p in jobs + builds]
    registry = _tcp(NODE_IP, REGISTRY_PORT)
    kubelet = _tcp(NODE_IP, 10250)
    from_tool = probe(tool.kubeconfig, tool.namespace, "prober", *backends, registry, kubelet)
    assert all(result != "open" for result in from_tool.values()), from_tool

    admin = cluster.admin_kubeconfig
    from_gateway = probe(admin, NAMESPACE, gateway[0].metadata.name, *backends, registry)
    assert {t: from_gateway[t] for t in backends} == dict.fromkeys(backends, "open")
    assert from_gateway[registry] != "open"  # the gateway's own egress: backends only

    # The registry listens, and the builds API (whose policy allows it) reaches it.
    from_builds = probe(admin, NAMESPACE, builds[0].metadata.name, registry)
    assert from_builds == {registry: "open"}
    # Tools in pods may still use the platform API: the gateway accepts anyone.
    gateway_pod = _tcp(gateway[0].status.pod_ip, 8443)
    node_port = _tcp(NODE_IP, 30003)
    from_tool = probe(tool.kubeconfig, tool.namespace, "prober", gateway_pod, node_port)
    assert from_tool == {gateway_pod: "open", node_port: "open"}


async def test_tools_are_isolated_from_each_other(
    cluster: Cluster,
    admin_api: k8s.ApiClient,
    tool: Tool,
    other_tool: Tool,
    tool_core: k8s.CoreV1Api,
) -> None:
    async with await new_tool_api(other_tool.kubeconfig) as other_api:
        other_core = k8s.CoreV1Api(other_api)
        theirs = await _start(other_core, other_tool.namespace, _server("server", other_tool.uid))
        await _start(other_core, other_tool.namespace, _sleeper("prober", other_tool.uid))
    mine = await _start(tool_core, tool.namespace, _server("server", tool.uid))
    await _start(tool_core, tool.namespace, _sleeper("prober", tool.uid))
    core = k8s.CoreV1Api(admin_api)
    platform_ns = await scratch_namespace(core)
    try:
        await _start(core, platform_ns, _sleeper("prober", None))
        for namespace in (tool.namespace, other_tool.namespace):
            for pod in ("server", "prober"):
                await asyncio.to_thread(netpol.wait_programmed, namespace, pod, TOOL_POLICIES)

        dns = "dns:kubernetes.default.svc.cluster.local"
        apiserver = _tcp(KUBERNETES_SERVICE_IP, 443)
        own, other = _tcp(mine, 8080), _tcp(theirs, 8080)
        from_tool = probe(tool.kubeconfig, tool.namespace, "prober", own, other, dns, apiserver)
        assert from_tool.pop(other) != "open", from_tool
        assert from_tool == {
            own: "open",
            dns: f"resolved {KUBERNETES_SERVICE_IP}",
            apiserver: "open",
        }
        # The other tool's server listens: its own pods and the platform reach it.
        assert probe(other_tool.kubeconfig, other_tool.namespace, "prober", other) == {
            other: "open"
        }
        from_platform = probe(cluster.admin_kubeconfig, platform_ns, "prober", own, other)
        assert from_platform == {own: "open", other: "open"}
    finally:
        await core.delete_namespace(platform_ns)


async def test_tool_pods_get_the_policies_at_onboarding(
    admin_api: k8s.ApiClient, tool: Tool
) -> None:
    policies = await k8s.NetworkingV1Api(admin_api).list_namespaced_network_policy(tool.namespace)
    by_name = {p.metadata.name: p for p in policies.items}
    assert sorted(by_name) == sorted(TOOL_POLICIES)
    assert by_name[ISOLATION].spec.policy_types == ["Ingress"]
    assert by_name[EGRESS].spec.policy_types == ["Egress"]
    # Every pod of the namespace is covered.
    assert all(p.spec.pod_selector.match_labels is None for p in policies.items)
