"""Confinement of tools' web routes on the real cluster, each rule with the tool's own
kubeconfig: the HTTPRoute admission policy (toolforge_admin.web_policies) and the tool RBAC."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException
from web.support import GROUP, PLURAL, VERSION, ToolApis, create_route

from kube import body_text
from toolforge_admin import web_policies
from toolforge_dev.cluster import Cluster
from toolforge_dev.pytest_plugin import Tool, new_admin_api
from toolforge_dev.web_manifests import NAMESPACE, PUBLIC_DOMAIN
from toolforge_dev.webapp import tool_route

pytestmark = pytest.mark.cluster

LABELS = {"app.kubernetes.io/name": "web"}


def _route(tool: Tool) -> Any:
    return tool_route(tool.name, "web", 8000, labels=LABELS)


def _rule(route: Any) -> Any:
    return route["spec"]["rules"][0]


Mutation = Callable[[Any, Tool, Tool], None]

#: (case, change to a valid route of tool B given (route, B, A), expected message part)
DENIED: list[tuple[str, Mutation, str]] = [
    (
        "another tool's host",
        lambda r, b, a: r["spec"].update(hostnames=[f"{a.name}.{PUBLIC_DOMAIN}"]),
        "spec.hostnames must be exactly",
    ),
    (
        "own host plus another tool's",
        lambda r, b, a: r["spec"]["hostnames"].append(f"{a.name}.{PUBLIC_DOMAIN}"),
        "spec.hostnames must be exactly",
    ),
    (
        "no hostnames (every host)",
        lambda r, b, a: r["spec"].pop("hostnames"),
        "spec.hostnames must be exactly",
    ),
    (
        "wildcard host",
        lambda r, b, a: r["spec"].update(hostnames=[f"*.{PUBLIC_DOMAIN}"]),
        "spec.hostnames must be exactly",
    ),
    (
        "own name under another domain",
        lambda r, b, a: r["spec"].update(hostnames=[f"{b.name}.example.org"]),
        "spec.hostnames must be exactly",
    ),
    (
        "backendRef into another tool's namespace",
        lambda r, b, a: _rule(r)["backendRefs"][0].update(namespace=a.namespace),
        "backendRefs may only name Services in the route's own namespace",
    ),
    (
        "backendRef to another kind",
        lambda r, b, a: _rule(r)["backendRefs"][0].update(group="example.org", kind="Thing"),
        "backendRefs may only name Services",
    ),
    (
        "mirror into another tool's namespace",
        lambda r, b, a: _rule(r).update(
            filters=[
                {
                    "type": "RequestMirror",
                    "requestMirror": {
                        "backendRef": {"name": "web", "namespace": a.namespace, "port": 8000}
                    },
                }
            ]
        ),
        "requestMirror filters may only name Services",
    ),
    (
        "another Gateway in the platform namespace",
        lambda r, b, a: r["spec"]["parentRefs"][0].update(name="other"),
        "spec.parentRefs may only name the platform Gateway",
    ),
    (
        "a Gateway in the tool's own namespace",
        lambda r, b, a: r["spec"]["parentRefs"][0].update(namespace=b.namespace),
        "spec.parentRefs may only name the platform Gateway",
    ),
    (
        "parentRef without namespace (the route's own)",
        lambda r, b, a: r["spec"]["parentRefs"][0].pop("namespace"),
        "spec.parentRefs may only name the platform Gateway",
    ),
    (
        "a second parent besides the platform Gateway",
        lambda r, b, a: r["spec"]["parentRefs"].append({"name": "mine", "namespace": b.namespace}),
        "spec.parentRefs may only name the platform Gateway",
    ),
    (
        "no parent",
        lambda r, b, a: r["spec"].pop("parentRefs"),
        "spec.parentRefs may only name the platform Gateway",
    ),
]


def _message(exc: ApiException) -> str:
    """The ``message`` of the Status object an API error carries."""
    return str(json.loads(body_text(exc))["message"])


async def _denied(apis: ToolApis, namespace: str, route: Any) -> tuple[int, str]:
    with pytest.raises(ApiException) as info:
        await create_route(apis.custom, namespace, route)
    return info.value.status, _message(info.value)


async def test_own_route_is_allowed(tool: Tool, tool_apis: ToolApis) -> None:
    """The control for every case below: the unchanged route passes."""
    stored = await create_route(tool_apis.custom, tool.namespace, _route(tool))
    assert stored["spec"]["hostnames"] == [f"{tool.name}.{PUBLIC_DOMAIN}"]


@pytest.mark.parametrize(("case", "mutate", "message"), DENIED, ids=[c[0] for c in DENIED])
async def test_route_is_refused(
    tool: Tool,
    other_tool: Tool,
    tool_apis: ToolApis,
    case: str,
    mutate: Mutation,
    message: str,
) -> None:
    route = copy.deepcopy(_route(tool))
    mutate(route, tool, other_tool)
    status, body = await _denied(tool_apis, tool.namespace, route)
    assert status == 403, body
    assert f"ValidatingAdmissionPolicy '{web_policies.ROUTE_POLICY}'" in body, body
    assert message in body, body


async def test_update_to_another_host_is_refused(
    tool: Tool, other_tool: Tool, tool_apis: ToolApis
) -> None:
    await create_route(tool_apis.custom, tool.namespace, _route(tool))
    # A JSON patch, not a replace: Traefik writes the route's status meanwhile, and a replace
    # would race it on resourceVersion (409).
    patch = [
        {
            "op": "replace",
            "path": "/spec/hostnames",
            "value": [f"{other_tool.name}.{PUBLIC_DOMAIN}"],
        }
    ]
    with pytest.raises(ApiException) as info:
        # (a list body goes as application/json-patch+json, the client's first choice)
        await tool_apis.custom.patch_namespaced_custom_object(
            GROUP, VERSION, tool.namespace, PLURAL, "web", patch
        )
    assert info.value.status == 403
    assert "spec.hostnames must be exactly" in _message(info.value)


async def test_route_in_another_tools_namespace_is_forbidden_by_rbac(
    tool: Tool, other_tool: Tool, tool_apis: ToolApis
) -> None:
    route = tool_route(other_tool.name, "web", 8000, labels=LABELS)
    status, body = await _denied(tool_apis, other_tool.namespace, route)
    assert status == 403
    assert f'User "{tool.name}" cannot create resource "httproutes"' in body, body


OTHER_KINDS: list[tuple[str, str, str, Any]] = [
    ("networking.k8s.io", "v1", "ingresses", {"kind": "Ingress", "spec": {"rules": []}}),
    (
        "gateway.networking.k8s.io",
        "v1",
        "gateways",
        {
            "kind": "Gateway",
            "spec": {
                "gatewayClassName": "traefik",
                "listeners": [{"name": "web", "port": 8000, "protocol": "HTTP"}],
            },
        },
    ),
    (
        "gateway.networking.k8s.io",
        "v1beta1",
        "referencegrants",
        {
            "kind": "ReferenceGrant",
            "spec": {
                "from": [
                    {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "x"}
                ],
                "to": [{"group": "", "kind": "Service"}],
            },
        },
    ),
    ("gateway.networking.k8s.io", "v1", "grpcroutes", {"kind": "GRPCRoute", "spec": {}}),
]


@pytest.mark.parametrize(
    ("group", "version", "plural", "body"), OTHER_KINDS, ids=[k[2] for k in OTHER_KINDS]
)
async def test_other_routing_objects_are_forbidden_by_rbac(
    tool: Tool, tool_apis: ToolApis, group: str, version: str, plural: str, body: Any
) -> None:
    obj = {"apiVersion": f"{group}/{version}", "metadata": {"name": "mine"}, **body}
    with pytest.raises(ApiException) as info:
        await tool_apis.custom.create_namespaced_custom_object(
            group, version, tool.namespace, plural, obj
        )
    assert info.value.status == 403
    assert f'User "{tool.name}" cannot create resource "{plural}"' in _message(info.value)


async def test_policy_fails_closed_without_its_parameters(
    cluster: Cluster, tool: Tool, tool_apis: ToolApis
) -> None:
    """Without the routing ConfigMap no tool route is admitted; with it back, it is."""
    admin = await new_admin_api(cluster)
    async with admin:
        core = k8s.CoreV1Api(admin)
        saved = await core.read_namespaced_config_map(web_policies.PARAMS_NAME, NAMESPACE)
        await core.delete_namespaced_config_map(web_policies.PARAMS_NAME, NAMESPACE)
        try:
            status, body = await _denied(tool_apis, tool.namespace, _route(tool))
            # The apiserver reports a binding without its parameters as 422 Invalid.
            assert status == 422, body
            assert f"ValidatingAdmissionPolicy '{web_policies.ROUTE_POLICY}'" in body, body
            assert "no params found" in body, body
        finally:
            restored = k8s.V1ConfigMap(
                metadata=k8s.V1ObjectMeta(
                    name=saved.metadata.name,
                    namespace=NAMESPACE,
                    labels=saved.metadata.labels,
                ),
                data=saved.data,
            )
            await core.create_namespaced_config_map(NAMESPACE, restored)
    # The policy's parameter informer sees the ConfigMap again within moments.
    deadline = time.monotonic() + 30
    last = ""
    while time.monotonic() < deadline:
        try:
            await create_route(tool_apis.custom, tool.namespace, _route(tool))
            return
        except ApiException as exc:
            last = f"{exc.status} {body_text(exc)}"
        await asyncio.sleep(0.5)
    raise AssertionError(f"own route still refused with the parameters back: {last}")
