"""The local cluster: real components, real pods, Services and DNS."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator

import pytest
import yaml
from kubernetes_asyncio import client as k8s

from kube import PYTHON_IMAGE, python_pod, scratch_namespace, wait_pod_phase
from toolforge_dev import binaries
from toolforge_dev.cluster import DNS_SERVICE_IP, KUBERNETES_SERVICE_IP, Cluster

pytestmark = pytest.mark.cluster


@pytest.fixture
async def namespace(admin_api: k8s.ApiClient) -> AsyncIterator[str]:
    core = k8s.CoreV1Api(admin_api)
    name = await scratch_namespace(core)
    yield name
    await core.delete_namespace(name)


def test_every_component_is_healthy(cluster: Cluster) -> None:
    health = cluster.health()
    assert set(health) == {
        "containerd",
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubelet",
        "kube-proxy",
        "coredns",
    }
    assert all(health.values()), health


@pytest.mark.parametrize(
    ("component", "binary", "expected"),
    [
        ("kubernetes", "kube-apiserver", "Kubernetes v1.34.4"),
        ("kubernetes", "kubelet", "Kubernetes v1.34.4"),
        ("kubernetes", "kubectl", "v1.34.4"),
        ("etcd", "etcd", "etcd Version: 3.6.16"),
        ("coredns", "coredns", "CoreDNS-1.12.4"),
    ],
)
def test_binaries_report_their_real_version(component: str, binary: str, expected: str) -> None:
    comp = {c.name: c for c in binaries.all_components()}[component]
    args = ["version", "--client"] if binary == "kubectl" else ["--version"]
    if binary == "coredns":
        args = ["-version"]
    out = subprocess.run([str(comp.path(binary)), *args], capture_output=True, text=True)
    assert expected in out.stdout + out.stderr


async def test_apiserver_reports_its_version(admin_api: k8s.ApiClient) -> None:
    info = await k8s.VersionApi(admin_api).get_code()
    assert info.git_version == "v1.34.4"


async def test_python_pod_prints_42(admin_api: k8s.ApiClient, namespace: str) -> None:
    core = k8s.CoreV1Api(admin_api)
    await core.create_namespaced_pod(namespace, python_pod("p42", "print(42)"))
    assert await wait_pod_phase(core, namespace, "p42", {"Succeeded", "Failed"}) == "Succeeded"
    log = await core.read_namespaced_pod_log("p42", namespace)
    assert log.splitlines() == ["42"]


async def test_service_and_dns_work_inside_the_cluster(
    admin_api: k8s.ApiClient, namespace: str
) -> None:
    core = k8s.CoreV1Api(admin_api)
    server = python_pod(
        "web",
        "import http.server as h; h.test(h.SimpleHTTPRequestHandler, port=8080, bind='0.0.0.0')",
    )
    server["spec"]["restartPolicy"] = "Always"
    server["spec"]["containers"][0]["workingDir"] = "/etc"
    server["spec"]["containers"][0]["readinessProbe"] = {
        "tcpSocket": {"port": 8080},
        "periodSeconds": 1,
    }
    await core.create_namespaced_pod(namespace, server)
    service = k8s.V1Service(
        metadata=k8s.V1ObjectMeta(name="web"),
        spec=k8s.V1ServiceSpec(
            selector={"app": "web"}, ports=[k8s.V1ServicePort(port=80, target_port=8080)]
        ),
    )
    await core.create_namespaced_service(namespace, service)
    script = f"""
import socket, urllib.request, time
print("resolver", open("/etc/resolv.conf").read().split("nameserver")[1].split()[0])
print("api", socket.gethostbyname("kubernetes.default.svc.cluster.local"))
for attempt in range(60):
    try:
        body = urllib.request.urlopen("http://web.{namespace}.svc/debian_version", timeout=2).read()
        break
    except OSError as exc:
        time.sleep(1)
print("web", body.decode().strip()[:2])
try:
    socket.gethostbyname("example.org")
    print("outside resolved")
except OSError:
    print("outside not resolved")
"""
    await core.create_namespaced_pod(namespace, python_pod("client", script))
    phase = await wait_pod_phase(core, namespace, "client", {"Succeeded", "Failed"}, timeout=120)
    log = await core.read_namespaced_pod_log("client", namespace)
    assert phase == "Succeeded", log
    lines = log.splitlines()
    assert f"api {KUBERNETES_SERVICE_IP}" in lines
    assert "web 12" in lines  # Debian 12's /etc/debian_version, served through the Service
    # CoreDNS has no forward: names outside the cluster do not resolve.
    assert "outside not resolved" in lines
    assert f"resolver {DNS_SERVICE_IP}" in lines


async def test_image_config_lists_local_images(admin_api: k8s.ApiClient) -> None:
    cm = await k8s.CoreV1Api(admin_api).read_namespaced_config_map("image-config", "tf-public")
    listed = yaml.safe_load(cm.data["images-v1.yaml"])
    assert listed["python3.11"]["image"] == PYTHON_IMAGE
    assert listed["python3.11"]["state"] == "stable"
    assert "bookworm" in listed
    assert "pause" not in listed


async def test_anonymous_requests_are_refused(cluster: Cluster) -> None:
    import ssl

    import httpx

    ca = ssl.create_default_context(cafile=str(cluster.pki_dir / "cluster-ca.crt"))
    async with httpx.AsyncClient(verify=ca) as client:
        r = await client.get(f"{cluster.describe()['apiserver']}/api/v1/namespaces")
    assert r.status_code == 403
