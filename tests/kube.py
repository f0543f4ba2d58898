"""Small helpers for tests that talk to the cluster."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

PYTHON_IMAGE = "registry.local/toolforge/python3.11:stable"


def python_pod(name: str, script: str, **spec: Any) -> Any:
    """A run-once pod running ``python3 -c script`` from the local python3.11 image."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": PYTHON_IMAGE,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python3", "-c", script],
                }
            ],
            **spec,
        },
    }


def tool_pod(name: str, script: str, uid: int, **spec: Any) -> Any:
    """:func:`python_pod` with the security context the tool pod policy requires: the tool's
    uid and gid, no privilege escalation, no capabilities."""
    pod = python_pod(name, script, **spec)
    pod["spec"].setdefault(
        "securityContext", {"runAsUser": uid, "runAsGroup": uid, "runAsNonRoot": True}
    )
    for container in pod["spec"]["containers"]:
        container["securityContext"] = {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        }
    return pod


async def wait_pod_phase(
    core: k8s.CoreV1Api, ns: str, name: str, phases: set[str], timeout: float = 90
) -> str:
    """Poll until the pod reaches one of ``phases``; returns the phase. Fails on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    phase = "?"
    while loop.time() < deadline:
        pod = await core.read_namespaced_pod(name, ns)
        phase = pod.status.phase
        if phase in phases:
            return str(phase)
        await asyncio.sleep(0.5)
    raise AssertionError(f"pod {ns}/{name} still {phase} after {timeout} s")


async def scratch_namespace(core: k8s.CoreV1Api) -> str:
    """A new namespace for one test (the caller deletes it)."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    await core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while loop.time() < deadline:
        sas = await core.list_namespaced_service_account(name)
        if any(sa.metadata.name == "default" for sa in sas.items):
            return name
        await asyncio.sleep(0.2)
    raise AssertionError(f"no default ServiceAccount in {name}")


def body_text(exc: ApiException) -> str:
    """The response body of an API error, as text."""
    body = exc.body
    return body.decode() if isinstance(body, bytes) else str(body or "")
