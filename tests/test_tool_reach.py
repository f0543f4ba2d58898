"""What a tool may not point outside its namespace, tried with the tool's own kubeconfig on the
real cluster (issue 14, finding 2): Service externalIPs (CVE-2020-8554, kube-apiserver's
DenyServiceExternalIPs admission plugin), Service types that open node ports or outside
names, hand-written Endpoints and EndpointSlices, and inline network volumes (policy
``toolforge-tool-reach``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from kube import body_text, tool_pod
from toolforge_dev.cluster import NODE_IP
from toolforge_dev.pytest_plugin import Tool, new_tool_api

pytestmark = pytest.mark.cluster

#: TEST-NET-3: the address the outside probe claimed.
CLAIMED_IP = "203.0.113.77"


@pytest.fixture
async def tool_api(tool: Tool) -> AsyncIterator[k8s.ApiClient]:
    api = await new_tool_api(tool.kubeconfig)
    async with api:
        yield api


def _service(name: str, **spec: Any) -> Any:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"ports": [{"port": 80, "targetPort": 8080}], **spec},
    }


async def _names(core: k8s.CoreV1Api, namespace: str) -> list[str]:
    return [s.metadata.name for s in (await core.list_namespaced_service(namespace)).items]


async def test_external_ips_are_refused_on_create_and_on_update(
    tool: Tool, tool_api: k8s.ApiClient
) -> None:
    core = k8s.CoreV1Api(tool_api)
    with pytest.raises(ApiException) as exc:
        await core.create_namespaced_service(
            tool.namespace, _service("capture", selector={"app": "x"}, externalIPs=[CLAIMED_IP])
        )
    assert exc.value.status == 403
    assert "Use of external IPs is denied by admission control" in body_text(exc.value)
    assert await _names(core, tool.namespace) == []
    # Adding them to an existing Service is refused too.
    await core.create_namespaced_service(tool.namespace, _service("plain", selector={"app": "x"}))
    with pytest.raises(ApiException) as exc:
        await core.patch_namespaced_service(
            "plain", tool.namespace, {"spec": {"externalIPs": [CLAIMED_IP]}}
        )
    assert exc.value.status == 403
    service = await core.read_namespaced_service("plain", tool.namespace)
    assert not service.spec.external_ips


@pytest.mark.parametrize(
    ("kind", "spec"),
    [
        ("NodePort", {"type": "NodePort", "selector": {"app": "x"}}),
        # Without node ports the quota (services.nodeports: 0) would not stop it.
        (
            "LoadBalancer",
            {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": False, "selector": {}},
        ),
        ("ExternalName", {"type": "ExternalName", "externalName": "kubernetes.default"}),
    ],
)
async def test_service_types_that_reach_outside_are_refused(
    kind: str, spec: dict[str, Any], tool: Tool, tool_api: k8s.ApiClient
) -> None:
    core = k8s.CoreV1Api(tool_api)
    with pytest.raises(ApiException) as exc:
        await core.create_namespaced_service(tool.namespace, _service("out", **spec))
    assert exc.value.status == 403
    assert f"Service type {kind} is not allowed for tools" in body_text(exc.value)
    assert await _names(core, tool.namespace) == []


async def test_a_cluster_ip_service_cannot_become_a_node_port(
    tool: Tool, tool_api: k8s.ApiClient
) -> None:
    core = k8s.CoreV1Api(tool_api)
    await core.create_namespaced_service(tool.namespace, _service("web", selector={"app": "x"}))
    with pytest.raises(ApiException) as exc:
        await core.patch_namespaced_service("web", tool.namespace, {"spec": {"type": "NodePort"}})
    assert exc.value.status == 403
    assert (await core.read_namespaced_service("web", tool.namespace)).spec.type == "ClusterIP"


async def test_hand_written_endpoints_are_forbidden(tool: Tool, tool_api: k8s.ApiClient) -> None:
    """A selector-less Service plus Endpoints aimed at kube-apiserver's node address: the
    ClusterRole lets tools read Endpoints and EndpointSlices, never write them."""
    core = k8s.CoreV1Api(tool_api)
    await core.create_namespaced_service(tool.namespace, _service("apiserver"))
    endpoints: Any = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "apiserver"},
        "subsets": [{"addresses": [{"ip": NODE_IP}], "ports": [{"port": 6443}]}],
    }
    with pytest.raises(ApiException) as exc:
        await core.create_namespaced_endpoints(tool.namespace, endpoints)
    assert exc.value.status == 403
    endpoint_slice: Any = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "apiserver-1",
            "labels": {"kubernetes.io/service-name": "apiserver"},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [NODE_IP]}],
        "ports": [{"port": 6443, "protocol": "TCP"}],
    }
    with pytest.raises(ApiException) as exc:
        await k8s.DiscoveryV1Api(tool_api).create_namespaced_endpoint_slice(
            tool.namespace, endpoint_slice
        )
    assert exc.value.status == 403
    # What the tool's Service resolves to is still empty.
    slices = await k8s.DiscoveryV1Api(tool_api).list_namespaced_endpoint_slice(
        tool.namespace, label_selector="kubernetes.io/service-name=apiserver"
    )
    assert [e for s in slices.items for e in (s.endpoints or [])] == []


@pytest.mark.parametrize(
    "volume",
    [
        {"nfs": {"server": NODE_IP, "path": "/"}},
        {"iscsi": {"targetPortal": f"{NODE_IP}:3260", "iqn": "iqn.2001-04.org.x:y", "lun": 0}},
        {"csi": {"driver": "nfs.csi.k8s.io", "volumeAttributes": {"server": NODE_IP}}},
    ],
    ids=["nfs", "iscsi", "csi"],
)
async def test_inline_network_volumes_are_refused(
    volume: dict[str, Any], tool: Tool, tool_api: k8s.ApiClient
) -> None:
    pod = tool_pod("mounter", "print(1)", tool.uid, volumes=[{"name": "remote", **volume}])
    with pytest.raises(ApiException) as exc:
        await k8s.CoreV1Api(tool_api).create_namespaced_pod(tool.namespace, pod, dry_run="All")
    assert exc.value.status == 403
    assert "volume remote has a type tool pods may not use" in body_text(exc.value)


async def test_ordinary_objects_stay_allowed(tool: Tool, tool_api: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(tool_api)
    await core.create_namespaced_service(
        tool.namespace, _service("web", type="ClusterIP", selector={"app": "web"})
    )
    await core.create_namespaced_service(
        tool.namespace, _service("headless", clusterIP="None", selector={"app": "web"})
    )
    volumes = [
        {"name": "cm", "configMap": {"name": "kube-root-ca.crt"}},
        {"name": "tmp", "emptyDir": {}},
        {"name": "home", "hostPath": {"path": str(tool.home), "type": "Directory"}},
        {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}},
    ]
    pod = tool_pod("ok", "print(1)", tool.uid, volumes=volumes)
    await core.create_namespaced_pod(tool.namespace, pod, dry_run="All")
    assert sorted(await _names(core, tool.namespace)) == ["headless", "web"]
