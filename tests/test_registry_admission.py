"""Registry admission on the real cluster (issue 14, finding 3): a tool's pods may run only the
platform's images (image-config, ``registry.local/toolforge/``) and the tool's own built
images (``<registry>/tool-<tool>/``, for the local registry and ``registry.local``). Tried
with the tool's own kubeconfig, on pods (containers, init containers, ephemeral containers)
and on the pod templates of its workloads. Admitted cases use a server-side dry run, which
runs every admission check without creating anything."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from kube import PYTHON_IMAGE, body_text, tool_pod
from toolforge_dev.cluster import NODE_IP, Cluster
from toolforge_dev.pytest_plugin import Tool, new_admin_api, new_tool_api
from toolforge_dev.registry_pull import PULL_PORT

pytestmark = pytest.mark.cluster

LOCAL_REGISTRY = f"{NODE_IP}:{PULL_PORT}"  # what tool pods pull from (read-only)
REFUSED = "is not allowed: tool pods may run only images under"


@pytest.fixture
async def tool_api(tool: Tool) -> AsyncIterator[k8s.ApiClient]:
    api = await new_tool_api(tool.kubeconfig)
    async with api:
        yield api


def _pod(tool: Tool, image: str, name: str = "img") -> Any:
    pod = tool_pod(name, "print(1)", tool.uid)
    pod["spec"]["containers"][0]["image"] = image
    return pod


async def _refused(call: Any, image: str) -> None:
    with pytest.raises(ApiException) as exc:
        await call
    assert exc.value.status == 403, body_text(exc.value)
    assert f"image {image} {REFUSED}" in body_text(exc.value)


@pytest.mark.parametrize(
    "image",
    [
        PYTHON_IMAGE,
        "registry.local/toolforge/bookworm:stable",
        "{registry}/tool-{tool}/web:latest",
        "{registry}/tool-{tool}/web@sha256:" + "a" * 64,
        "registry.local/tool-{tool}/tool-{tool}:latest",
    ],
)
async def test_platform_and_own_images_are_admitted(
    image: str, tool: Tool, tool_api: k8s.ApiClient
) -> None:
    image = image.format(registry=LOCAL_REGISTRY, tool=tool.name)
    created = await k8s.CoreV1Api(tool_api).create_namespaced_pod(
        tool.namespace, _pod(tool, image), dry_run="All"
    )
    assert created.spec.containers[0].image == image


@pytest.mark.parametrize(
    "image",
    [
        "docker.io/library/nginx:latest",
        "nginx",
        "{registry}/tool-{other}/web:latest",
        # Prefix tricks: another tool whose name starts with this one's, a look-alike path.
        "{registry}/tool-{tool}-x/web:latest",
        "registry.local/toolforge-x/python3.11:stable",
        "registry.local/toolforge",
        "{registry}.evil.example/tool-{tool}/web:latest",
    ],
)
async def test_other_images_are_refused(
    image: str, tool: Tool, other_tool: Tool, tool_api: k8s.ApiClient
) -> None:
    image = image.format(registry=LOCAL_REGISTRY, tool=tool.name, other=other_tool.name)
    core = k8s.CoreV1Api(tool_api)
    await _refused(core.create_namespaced_pod(tool.namespace, _pod(tool, image)), image)
    assert (await core.list_namespaced_pod(tool.namespace)).items == []


async def test_an_init_container_is_checked(tool: Tool, tool_api: k8s.ApiClient) -> None:
    pod = _pod(tool, PYTHON_IMAGE)
    init = {**pod["spec"]["containers"][0], "name": "init", "image": "docker.io/library/busybox"}
    pod["spec"]["initContainers"] = [init]
    core = k8s.CoreV1Api(tool_api)
    await _refused(core.create_namespaced_pod(tool.namespace, pod), "docker.io/library/busybox")


def _ephemeral(image: str) -> Any:
    return {
        "spec": {
            "ephemeralContainers": [
                {
                    "name": "debug",
                    "image": image,
                    "command": ["sleep", "60"],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ]
        }
    }


async def test_an_ephemeral_container_is_checked(
    tool: Tool, tool_api: k8s.ApiClient, cluster: Cluster
) -> None:
    """The tool's RBAC does not grant ``pods/ephemeralcontainers``; whoever may add one (here
    the cluster admin, to whom the policy applies too) still gets only allowed images."""
    core = k8s.CoreV1Api(tool_api)
    pod = tool_pod("target", "import time; time.sleep(600)", tool.uid)
    await core.create_namespaced_pod(tool.namespace, pod)
    with pytest.raises(ApiException) as exc:
        await core.patch_namespaced_pod_ephemeralcontainers(
            "target", tool.namespace, _ephemeral("docker.io/library/nginx")
        )
    assert exc.value.status == 403
    async with await new_admin_api(cluster) as admin:
        admin_core = k8s.CoreV1Api(admin)
        await _refused(
            admin_core.patch_namespaced_pod_ephemeralcontainers(
                "target", tool.namespace, _ephemeral("docker.io/library/nginx"), dry_run="All"
            ),
            "docker.io/library/nginx",
        )
        allowed = await admin_core.patch_namespaced_pod_ephemeralcontainers(
            "target", tool.namespace, _ephemeral(PYTHON_IMAGE), dry_run="All"
        )
        assert [c.image for c in allowed.spec.ephemeral_containers] == [PYTHON_IMAGE]


def _template(tool: Tool, image: str) -> Any:
    spec = _pod(tool, image)["spec"]
    return {"metadata": {"labels": {"app": "w"}}, "spec": spec}


def _workloads(tool: Tool, image: str) -> list[tuple[str, Any]]:
    template = _template(tool, image)
    job_spec = {"template": {**template, "spec": {**template["spec"], "restartPolicy": "Never"}}}
    always = {**template, "spec": {**template["spec"], "restartPolicy": "Always"}}
    return [
        (
            "deployment",
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "w"},
                "spec": {"selector": {"matchLabels": {"app": "w"}}, "template": always},
            },
        ),
        (
            "job",
            {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "w"}, "spec": job_spec},
        ),
        (
            "cronjob",
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": {"name": "w"},
                "spec": {"schedule": "0 0 1 1 *", "jobTemplate": {"spec": job_spec}},
            },
        ),
    ]


async def _create(api: k8s.ApiClient, namespace: str, kind: str, body: Any, **kw: Any) -> Any:
    if kind == "deployment":
        return await k8s.AppsV1Api(api).create_namespaced_deployment(namespace, body, **kw)
    if kind == "job":
        return await k8s.BatchV1Api(api).create_namespaced_job(namespace, body, **kw)
    return await k8s.BatchV1Api(api).create_namespaced_cron_job(namespace, body, **kw)


async def test_workload_templates_are_checked(tool: Tool, tool_api: k8s.ApiClient) -> None:
    """A Deployment, Job or CronJob with a foreign image is refused when it is created, not
    left to fail silently when its controller makes the pods."""
    for kind, body in _workloads(tool, "docker.io/library/nginx"):
        await _refused(_create(tool_api, tool.namespace, kind, body), "docker.io/library/nginx")
    for kind, body in _workloads(tool, PYTHON_IMAGE):
        await _create(tool_api, tool.namespace, kind, body, dry_run="All")
