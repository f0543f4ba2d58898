"""Builders of the web-traffic path: golden files, and the invariants the rest relies on.

``UPDATE_GOLDEN=1 pytest tests/web`` rewrites the golden files; otherwise they must match.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from toolforge_admin import web_policies
from toolforge_admin.objects import tool_cluster_role
from toolforge_dev import web_manifests
from toolforge_dev.webapp import tool_route, webapp_objects

GOLDEN = Path(__file__).parent / "golden"
TRAEFIK = "registry.local/toolforge/traefik:v3.6.9-0123456789ab"
FOUROHFOUR = "registry.local/toolforge/toolforge-fourohfour:ba9876543210"


def _golden(name: str, objects: list[Any]) -> None:
    path = GOLDEN / f"{name}.yaml"
    text = yaml.safe_dump_all(objects, sort_keys=False, width=100)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with UPDATE_GOLDEN=1"
    assert text == path.read_text()


def test_web_objects_golden() -> None:
    _golden("web-objects", web_manifests.web_objects(TRAEFIK, FOUROHFOUR))


def test_route_policy_golden() -> None:
    _golden(
        "httproute-policy",
        [web_policies.route_policy(), web_policies.route_policy_binding()],
    )


def test_publish_route_golden() -> None:
    """The HTTPRoute phase 2's jobs API creates for ``publish: "/"`` (see tests/web/README)."""
    labels = {"app.kubernetes.io/name": "web"}
    _golden("publish-route", [tool_route("mytool", "web", 8000, labels=labels)])


def _by_kind(objects: list[Any]) -> dict[tuple[str, str], Any]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def test_one_gateway_and_its_wiring() -> None:
    objects = _by_kind(web_manifests.web_objects(TRAEFIK, FOUROHFOUR, domain="example.test"))
    gateways = [o for (kind, _), o in objects.items() if kind == "Gateway"]
    assert len(gateways) == 1
    gateway = gateways[0]
    listener = gateway["spec"]["listeners"][0]
    # Traefik maps a listener to the entry point with the same port.
    assert f"--entryPoints.web.address=:{listener['port']}" in web_manifests.traefik_args()
    assert "hostname" not in listener  # fourohfour must see every host
    service = objects[("Service", "traefik")]
    assert service["spec"]["ports"][0]["nodePort"] == 30000
    route = objects[("HTTPRoute", "fourohfour")]
    assert "hostnames" not in route["spec"]  # the catch-all
    assert route["spec"]["parentRefs"] == [{"name": gateway["metadata"]["name"]}]
    params = objects[("ConfigMap", web_policies.PARAMS_NAME)]
    assert params["metadata"]["namespace"] == gateway["metadata"]["namespace"]
    assert params["data"] == {
        "domain": "example.test",
        "gatewayNamespace": gateway["metadata"]["namespace"],
        "gatewayName": gateway["metadata"]["name"],
    }
    env = objects[("Deployment", "fourohfour")]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "TOOLFORGE_FOUROHFOUR_DOMAIN", "value": "example.test"} in env


def test_traefik_does_not_phone_home() -> None:
    args = web_manifests.traefik_args()
    assert "--global.checkNewVersion=false" in args
    assert "--global.sendAnonymousUsage=false" in args
    assert not any(a.startswith(("--api", "--providers.kubernetesingress")) for a in args)


@pytest.mark.parametrize("name", ["traefik", "fourohfour"])
def test_platform_pods_are_restricted(name: str) -> None:
    objects = _by_kind(web_manifests.web_objects(TRAEFIK, FOUROHFOUR))
    pod = objects[("Deployment", name)]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["containers"]:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}


def test_traefik_rbac_writes_only_status() -> None:
    role = _by_kind(web_manifests.web_objects(TRAEFIK, FOUROHFOUR))[
        ("ClusterRole", "toolforge-traefik")
    ]
    for rule in role["rules"]:
        if set(rule["verbs"]) - {"get", "list", "watch"}:
            assert rule["verbs"] == ["update"]
            assert all(r.endswith("/status") for r in rule["resources"])


def test_tools_may_write_httproutes_and_no_other_routing_object() -> None:
    rules = tool_cluster_role()["rules"]
    gateway_rules = [r for r in rules if "gateway.networking.k8s.io" in r["apiGroups"]]
    assert gateway_rules == [web_policies.TOOL_ROUTE_RULE]
    assert gateway_rules[0]["resources"] == ["httproutes"]
    assert not [r for r in rules if "networking.k8s.io" in r["apiGroups"]]  # no Ingress


def test_route_policy_matches_tool_namespaces_and_fails_closed() -> None:
    spec = web_policies.route_policy()["spec"]
    assert spec["failurePolicy"] == "Fail"
    assert spec["matchConstraints"]["namespaceSelector"] == {
        "matchExpressions": [{"key": "toolforge.org/tool", "operator": "Exists"}]
    }
    binding = web_policies.route_policy_binding()["spec"]
    assert binding["paramRef"]["parameterNotFoundAction"] == "Deny"
    assert binding["validationActions"] == ["Deny"]


def test_webapp_route_is_what_the_policy_wants() -> None:
    """The route the tests and phase 2 use names the tool's host and the platform Gateway."""
    _, service, route = webapp_objects("mytool", 50001, name="site", port=8080)
    assert route["spec"]["hostnames"] == ["mytool.toolforge.local"]
    parent = route["spec"]["parentRefs"][0]
    assert (parent["namespace"], parent["name"]) == (
        web_manifests.NAMESPACE,
        web_manifests.GATEWAY_NAME,
    )
    backend = route["spec"]["rules"][0]["backendRefs"][0]
    assert (backend["name"], backend["port"]) == (service["metadata"]["name"], 8080)
    assert "namespace" not in backend
