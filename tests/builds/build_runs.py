"""A tool's builds as the cluster holds them (PipelineRuns in the shared ``image-build``
namespace), read and removed with cluster-admin rights, for tests.

Builds do not live in the tool's namespace, so deleting a test tool leaves them: every test
that starts builds removes them with :func:`remove_builds` (PipelineRuns, the stand-in's
TaskRun pods and the tool's quota ConfigMap).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from builds.tekton_standin import NAMESPACE
from kubernetes_asyncio import client as k8s

from toolforge_builds.quota import quota_configmap_name


async def pipelineruns(admin_api: k8s.ApiClient, tool: str) -> list[dict[str, Any]]:
    """The tool's PipelineRuns (label ``user=<tool>``) as dicts."""
    result = await k8s.CustomObjectsApi(admin_api).list_namespaced_custom_object(
        "tekton.dev", "v1", NAMESPACE, "pipelineruns", label_selector=f"user={tool}"
    )
    return list(result["items"])


async def pipelinerun(admin_api: k8s.ApiClient, name: str) -> dict[str, Any]:
    """One PipelineRun by name."""
    run: dict[str, Any] = await k8s.CustomObjectsApi(admin_api).get_namespaced_custom_object(
        "tekton.dev", "v1", NAMESPACE, "pipelineruns", name
    )
    return run


def params_of(run: dict[str, Any]) -> dict[str, Any]:
    """``spec.params`` of a PipelineRun as ``{name: value}``."""
    return {p["name"]: p["value"] for p in run["spec"]["params"]}


async def wait_pod_finished(admin_api: k8s.ApiClient, name: str, timeout: float = 120) -> str:
    """Wait (bounded) until pod ``name`` in the builds namespace has finished; its phase."""
    core = k8s.CoreV1Api(admin_api)
    async with asyncio.timeout(timeout):
        while True:
            pod = await core.read_namespaced_pod(name, NAMESPACE)
            if pod.status.phase in ("Succeeded", "Failed"):
                return str(pod.status.phase)
            await asyncio.sleep(0.2)


async def remove_builds(admin_api: k8s.ApiClient, tool: str) -> None:
    """Delete the tool's PipelineRuns, the stand-in's pods of them and its quota ConfigMap."""
    custom = k8s.CustomObjectsApi(admin_api)
    await custom.delete_collection_namespaced_custom_object(
        "tekton.dev", "v1", NAMESPACE, "pipelineruns", label_selector=f"user={tool}"
    )
    core = k8s.CoreV1Api(admin_api)
    for pod in (await core.list_namespaced_pod(NAMESPACE)).items:
        if pod.metadata.name.startswith(f"{tool}-"):
            await core.delete_namespaced_pod(pod.metadata.name, NAMESPACE, grace_period_seconds=0)
    with contextlib.suppress(k8s.ApiException):  # absent when no build was admitted
        await core.delete_namespaced_config_map(quota_configmap_name(tool), NAMESPACE)
