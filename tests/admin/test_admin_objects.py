"""The pure builders of onboarding's objects against golden files (``tests/admin/golden``;
``UPDATE_GOLDEN=1`` rewrites them), and the comparison onboarding converges with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from golden import assert_golden
from toolforge_admin.objects import (
    contains,
    csr_approval,
    csr_object,
    kubeconfig_document,
    limit_range,
    namespace_object,
    registry_pull_secret,
    resource_quota,
    role_binding,
    tool_cluster_role,
    tool_pod_policy,
    tool_pod_policy_binding,
)
from toolforge_auth.tools import InvalidToolName

GOLDEN = Path(__file__).parent / "golden"

CASES: dict[str, Any] = {
    "cluster-role": tool_cluster_role(),
    "pod-policy": tool_pod_policy(),
    "pod-policy-binding": tool_pod_policy_binding(),
    "namespace": namespace_object("mytool", uid=50001, home="/data/project/mytool"),
    "role-binding": role_binding("mytool"),
    "registry-pull-secret": registry_pull_secret(
        "mytool", "toolforge-registry-pull", "10.244.0.1:8450", "puller", "pull-only"
    ),
    "resource-quota": resource_quota("mytool", {"pods": "10", "services": "5"}),
    "limit-range": limit_range(
        "mytool", {"default": {"cpu": "500m"}, "max": {"cpu": "1", "memory": "4Gi"}}
    ),
    "csr": csr_object("mytool", b"-----BEGIN CERTIFICATE REQUEST-----\n", expiration_seconds=60),
    "kubeconfig": kubeconfig_document(
        "mytool", server="https://10.244.0.1:6443", ca_pem=b"-----BEGIN CERTIFICATE-----\n"
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str) -> None:
    text = yaml.safe_dump(CASES[name], sort_keys=False, width=100)
    assert_golden(GOLDEN / f"{name}.yaml", text)


def test_builders_refuse_names_that_are_not_tools() -> None:
    with pytest.raises(InvalidToolName):
        namespace_object("a,b", uid=1, home="/x")
    with pytest.raises(InvalidToolName):
        role_binding("Tool")
    with pytest.raises(InvalidToolName):
        resource_quota("-x", {})
    with pytest.raises(InvalidToolName):
        limit_range("a" * 59, {})


def test_approval_adds_the_condition_and_keeps_the_rest() -> None:
    current: dict[str, Any] = {
        "metadata": {"name": "n", "resourceVersion": "7"},
        "status": {"x": 1},
    }
    approved = csr_approval(current, "mytool")
    assert approved["metadata"] == current["metadata"]
    assert approved["status"]["x"] == 1
    (condition,) = approved["status"]["conditions"]
    assert (condition["type"], condition["status"]) == ("Approved", "True")
    assert "conditions" not in current["status"]


def test_contains_is_a_recursive_subset_check() -> None:
    assert contains({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": 2}})
    assert not contains({"a": 1}, {"a": 2})
    assert contains([{"a": 1, "x": 0}], [{"a": 1}])
    assert not contains([{"a": 1}, {"a": 2}], [{"a": 1}])  # lists compare element by element
    assert not contains("1", 1)


def test_registry_pull_secret_is_a_docker_config_for_the_pull_address() -> None:
    """What the kubelet reads: ``auths.<address>.auth`` is base64 of ``user:password``."""
    import base64
    import json

    secret = registry_pull_secret("mytool", "pull", "10.244.0.1:8450", "puller", "p:w")
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    entry = config["auths"]["10.244.0.1:8450"]
    assert base64.b64decode(entry["auth"]).decode() == "puller:p:w"
    assert (entry["username"], entry["password"]) == ("puller", "p:w")
    assert list(config["auths"]) == ["10.244.0.1:8450"]
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    assert secret["metadata"]["namespace"] == "tool-mytool"
