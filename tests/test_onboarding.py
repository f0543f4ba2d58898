"""Tool onboarding on the real cluster: certificates, RBAC confinement, quotas, idempotency."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography import x509
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from kube import body_text, tool_pod, wait_pod_phase
from toolforge_admin import pki
from toolforge_admin.onboarding import POD_POLICY, InvalidToolName, ToolOnboarder
from toolforge_dev.cluster import Cluster
from toolforge_dev.pytest_plugin import Tool, fresh_tool_name, new_tool_api

pytestmark = pytest.mark.cluster


@pytest.fixture
async def tool_api(tool: Tool) -> AsyncIterator[k8s.ApiClient]:
    """An API client that authenticates with the tool's own kubeconfig and certificate."""
    api = await new_tool_api(tool.kubeconfig)
    async with api:
        yield api


@pytest.fixture
async def other_tool(onboarder: ToolOnboarder) -> AsyncIterator[str]:
    name = fresh_tool_name()
    await onboarder.create(name)
    yield name
    await onboarder.delete(name, purge_home=True)


def _job(name: str, uid: int, script: str) -> Any:
    pod = tool_pod(name, script, uid)["spec"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": pod}},
    }


def _config_map(name: str) -> k8s.V1ConfigMap:
    return k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name=name))


async def test_tool_certificate_identifies_the_tool(tool: Tool, tool_api: k8s.ApiClient) -> None:
    review = await k8s.AuthenticationV1Api(tool_api).create_self_subject_review(
        k8s.V1SelfSubjectReview()
    )
    assert review.status.user_info.username == tool.name
    assert "toolforge" in review.status.user_info.groups
    cert = x509.load_pem_x509_certificate((tool.home / ".toolskube" / "client.crt").read_bytes())
    assert cert.subject.rfc4514_string() == f"CN={tool.name},O=toolforge"


async def test_tool_runs_a_job_in_its_namespace_as_its_uid(
    tool: Tool, tool_api: k8s.ApiClient
) -> None:
    await k8s.BatchV1Api(tool_api).create_namespaced_job(
        tool.namespace, _job("whoami", tool.uid, "import os; print(os.getuid())")
    )
    core = k8s.CoreV1Api(tool_api)
    pods = []
    for _ in range(60):
        pods = (
            await core.list_namespaced_pod(tool.namespace, label_selector="job-name=whoami")
        ).items
        if pods:
            break
        await asyncio.sleep(0.5)
    assert pods, "the Job made no pod"
    name = pods[0].metadata.name
    assert await wait_pod_phase(core, tool.namespace, name, {"Succeeded", "Failed"}) == "Succeeded"
    assert (await core.read_namespaced_pod_log(name, tool.namespace)).strip() == str(tool.uid)


async def test_tool_is_forbidden_outside_its_namespace(
    tool: Tool, tool_api: k8s.ApiClient, other_tool: str
) -> None:
    batch, core = k8s.BatchV1Api(tool_api), k8s.CoreV1Api(tool_api)
    for ns in (f"tool-{other_tool}", "kube-system"):
        with pytest.raises(ApiException) as exc:
            await batch.create_namespaced_job(ns, _job("intruder", tool.uid, "print(1)"))
        assert exc.value.status == 403, ns
        with pytest.raises(ApiException) as exc:
            await core.list_namespaced_pod(ns)
        assert exc.value.status == 403, ns
    with pytest.raises(ApiException) as exc:
        await core.list_namespace()
    assert exc.value.status == 403
    # Nor may it edit its own quota.
    with pytest.raises(ApiException) as exc:
        await core.delete_namespaced_resource_quota(tool.namespace, tool.namespace)
    assert exc.value.status == 403


async def test_resource_quota_is_enforced(tool: Tool, tool_api: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(tool_api)
    quota = await core.read_namespaced_resource_quota(tool.namespace, tool.namespace)
    limit = int(quota.spec.hard["configmaps"])
    # kube-root-ca.crt already counts against the quota.
    for i in range(limit - 1):
        await core.create_namespaced_config_map(tool.namespace, _config_map(f"c{i}"))
    with pytest.raises(ApiException) as exc:
        await core.create_namespaced_config_map(tool.namespace, _config_map("over"))
    assert exc.value.status == 403
    assert "exceeded quota" in body_text(exc.value)
    # Two containers at the LimitRange maximum exceed requests.memory of the quota.
    pod = tool_pod("big", "print(1)", tool.uid)
    big = {"requests": {"memory": "4Gi", "cpu": "100m"}, "limits": {"memory": "4Gi", "cpu": "1"}}
    pod["spec"]["containers"] = [
        {**pod["spec"]["containers"][0], "name": n, "resources": big} for n in ("a", "b")
    ]
    with pytest.raises(ApiException) as exc:
        await core.create_namespaced_pod(tool.namespace, pod)
    assert exc.value.status == 403
    assert "exceeded quota" in body_text(exc.value)


async def test_limit_range_caps_a_container(tool: Tool, tool_api: k8s.ApiClient) -> None:
    pod = tool_pod("huge", "print(1)", tool.uid)
    pod["spec"]["containers"][0]["resources"] = {"limits": {"memory": "64Gi"}}
    with pytest.raises(ApiException) as exc:
        await k8s.CoreV1Api(tool_api).create_namespaced_pod(tool.namespace, pod)
    assert exc.value.status == 403
    assert "maximum memory usage per Container is 4Gi" in body_text(exc.value)


async def test_onboarding_twice_changes_nothing(
    tool: Tool, onboarder: ToolOnboarder, admin_api: k8s.ApiClient
) -> None:
    core, rbac = k8s.CoreV1Api(admin_api), k8s.RbacAuthorizationV1Api(admin_api)
    admission = k8s.AdmissionregistrationV1Api(admin_api)

    async def versions() -> list[str]:
        ns = tool.namespace
        return [
            (await core.read_namespace(ns)).metadata.resource_version,
            (
                await rbac.read_namespaced_role_binding("toolforge-tool", ns)
            ).metadata.resource_version,
            (await core.read_namespaced_resource_quota(ns, ns)).metadata.resource_version,
            (await core.read_namespaced_limit_range(ns, ns)).metadata.resource_version,
            (
                await core.read_namespaced_secret("toolforge-registry-pull", ns)
            ).metadata.resource_version,
            (await rbac.read_cluster_role("toolforge-tool")).metadata.resource_version,
            (
                await admission.read_validating_admission_policy(POD_POLICY)
            ).metadata.resource_version,
        ]

    files = [
        tool.home / ".toolskube" / "client.crt",
        tool.home / ".toolskube" / "client.key",
        tool.kubeconfig,
    ]
    before = (await versions(), [f.read_bytes() for f in files])
    again = await onboarder.create(tool.name)
    assert not again.changed, again.as_dict()
    assert {s.action for s in again.steps} == {"unchanged"}
    assert again.uid == tool.uid
    assert (await versions(), [f.read_bytes() for f in files]) == before


async def test_onboarding_files_and_permissions(tool: Tool) -> None:
    key = tool.home / ".toolskube" / "client.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    for path in (tool.home, key, tool.kubeconfig):
        assert path.stat().st_uid == tool.uid, path
    assert stat.S_IMODE((tool.home / ".toolskube").stat().st_mode) == 0o700


async def test_half_done_onboarding_is_completed(
    tool: Tool, onboarder: ToolOnboarder, admin_api: k8s.ApiClient
) -> None:
    # What a crash after the namespace step would leave: no binding, no credentials.
    await k8s.RbacAuthorizationV1Api(admin_api).delete_namespaced_role_binding(
        "toolforge-tool", tool.namespace
    )
    (tool.home / ".toolskube" / "client.crt").unlink()
    tool.kubeconfig.unlink()
    result = await onboarder.create(tool.name)
    actions = {s.name: s.action for s in result.steps}
    assert actions["rolebinding"] == "created"
    assert actions["certificate"] == "created"
    assert actions["kubeconfig"] == "created"
    assert actions["namespace"] == "unchanged"
    assert result.uid == tool.uid
    async with await new_tool_api(tool.kubeconfig) as api:
        pods = await k8s.CoreV1Api(api).list_namespaced_pod(tool.namespace)
        assert pods.items == []


async def test_distinct_tools_get_distinct_uids(
    tool: Tool, other_tool: str, onboarder: ToolOnboarder
) -> None:
    listed = {t.tool: t for t in await onboarder.list()}
    assert listed[tool.name].uid == tool.uid
    assert listed[other_tool].uid not in (None, tool.uid)
    assert listed[tool.name].cert_expires is not None


@pytest.mark.parametrize("bad", ["Bad_Name", "-lead", "trail-", "a.b", "x" * 59, ""])
async def test_bad_names_create_nothing(
    bad: str, onboarder: ToolOnboarder, admin_api: k8s.ApiClient
) -> None:
    before = {t.tool for t in await onboarder.list()}
    with pytest.raises(InvalidToolName):
        await onboarder.create(bad)
    # Tools of earlier tests may still be finishing their deletion, so the list can shrink;
    # it must not grow.
    assert {t.tool for t in await onboarder.list()} - before == set()
    if bad:
        assert not (onboarder.settings.homes_dir / bad).exists()
    csrs = await k8s.CertificatesV1Api(admin_api).list_certificate_signing_request()
    assert f"toolforge-tool-{bad}" not in [c.metadata.name for c in csrs.items]


async def test_renewal_reissues_a_certificate_close_to_expiry(
    tool: Tool, onboarder: ToolOnboarder
) -> None:
    cert_path = tool.home / ".toolskube" / "client.crt"
    old = pki.load_cert(cert_path)
    assert not (await onboarder.renew(tool.name)).changed  # a fresh certificate is kept
    onboarder.settings.renew_before_days = 400  # longer than the lifetime: "expires soon"
    renewed = await onboarder.renew(tool.name)
    assert [s.action for s in renewed.steps] == ["updated"]
    new = pki.load_cert(cert_path)
    assert new.serial_number != old.serial_number
    async with await new_tool_api(tool.kubeconfig) as api:
        await k8s.CoreV1Api(api).list_namespaced_pod(tool.namespace)


async def test_delete_removes_namespace_and_credentials(
    onboarder: ToolOnboarder, admin_api: k8s.ApiClient
) -> None:
    name = fresh_tool_name()
    created = await onboarder.create(name)
    result = await onboarder.delete(name)
    assert {s.name: s.action for s in result.steps}["namespace"] == "deleted"
    assert not (created.home / ".toolskube" / "client.key").exists()
    assert created.home.exists()  # data is kept without --purge-home
    ns = await k8s.CoreV1Api(admin_api).read_namespace(f"tool-{name}")
    assert ns.status.phase == "Terminating"
    await onboarder.delete(name, purge_home=True)
    assert not created.home.exists()


def _admin_cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "TOOLFORGE_ADMIN_KUBECONFIG": str(cluster.admin_kubeconfig),
        "TOOLFORGE_ADMIN_HOMES_DIR": str(cluster.homes_dir),
    }
    return subprocess.run(
        [sys.executable, "-m", "toolforge_admin", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_cli_create_list_json_and_bad_name(cluster: Cluster) -> None:
    name = fresh_tool_name()
    try:
        created = _admin_cli(cluster, "tool", "create", name, "--output", "json")
        assert created.returncode == 0, created.stderr
        assert json.loads(created.stdout)["changed"] is True
        again = _admin_cli(cluster, "tool", "create", name)
        assert again.returncode == 0
        assert "already up to date" in again.stdout
        listed = json.loads(_admin_cli(cluster, "tool", "list", "-o", "json").stdout)
        assert name in [t["tool"] for t in listed]
        bad = _admin_cli(cluster, "tool", "create", "Not_Valid")
        assert bad.returncode == 1
        assert "DNS-1123" in bad.stderr
    finally:
        _admin_cli(cluster, "tool", "delete", name, "--purge-home")
