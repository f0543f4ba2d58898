"""Stands in for the Tekton controller, for tests that need states the real controller
cannot be made to reach quickly or on demand (a run that stays pending, arbitrary
conditions and timestamps, TaskRun pods printing chosen lines).

The real controller runs in the local cluster (``devtools/manifests/tekton``) and would act
on the same PipelineRuns, so such tests stop it first with :func:`real_controller_stopped`
(scale its Deployment to 0; Tekton's webhook keeps defaulting and validating). Then, with
cluster-admin rights, this module does what Tekton would do to a PipelineRun:

- :func:`set_condition` writes the ``Succeeded`` condition (and start/completion times, and
  the run's results, such as the pushed image's ``APP_IMAGE_DIGEST``) through the
  PipelineRun's ``status`` subresource;
- :func:`create_taskrun_pod` creates a TaskRun pod in the builds namespace with Tekton's
  labels (``tekton.dev/pipelineRun``, ``tekton.dev/taskRun``, ``tekton.dev/pipelineTask``) and
  container names (init containers ``prepare``, ``place-scripts``; steps ``step-clone``,
  ``step-build``, ``step-export``), running the local Python image and printing lines.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client as k8s

from toolforge_dev.binaries import Binaries
from toolforge_dev.cluster import Cluster

NAMESPACE = "image-build"
IMAGE = "registry.local/toolforge/python3.11:stable"


@contextlib.contextmanager
def real_controller_stopped(cluster: Cluster) -> Iterator[None]:
    """Scale the Tekton controller to 0 (waiting until its pod is gone) for the block, then
    back to 1 (waiting until it is available again)."""
    kubectl = functools.partial(cluster.kubectl, Binaries.from_cache())
    deployment = ("-n", "tekton-pipelines", "deployment/tekton-pipelines-controller")
    kubectl("scale", *deployment, "--replicas=0")
    kubectl(
        "wait", "--for=delete", "pod", "-n", "tekton-pipelines",
        "-l", "app.kubernetes.io/name=controller", "--timeout=60s",
    )  # fmt: skip
    try:
        yield
    finally:
        kubectl("scale", *deployment, "--replicas=1")
        kubectl("rollout", "status", *deployment, "--timeout=120s")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def set_condition(
    admin_api: k8s.ApiClient,
    name: str,
    status: str,
    reason: str,
    message: str = "",
    *,
    results: Mapping[str, str] | None = None,
) -> None:
    """Set the PipelineRun's ``Succeeded`` condition (``status``: True/False/Unknown) and,
    when given, its ``status.results`` (``{name: value}``, as Tekton writes a Pipeline's
    results when the run ends)."""
    body: dict[str, Any] = {
        "status": {
            "conditions": [
                {
                    "type": "Succeeded",
                    "status": status,
                    "reason": reason,
                    "message": message or reason,
                    "lastTransitionTime": _now(),
                }
            ],
            "startTime": _now(),
        }
    }
    if status in ("True", "False"):
        body["status"]["completionTime"] = _now()
    if results:
        body["status"]["results"] = [{"name": k, "value": v} for k, v in results.items()]
    response = await admin_api.call_api(
        f"/apis/tekton.dev/v1/namespaces/{NAMESPACE}/pipelineruns/{name}/status",
        "PATCH",
        header_params={"Content-Type": "application/merge-patch+json"},
        body=body,
        auth_settings=["BearerToken"],
        _preload_content=False,
    )
    text = await response.text()
    response.release()
    if response.status >= 300:
        raise RuntimeError(f"status patch of {name} failed: {response.status} {text}")


def _python(lines: Sequence[str], delay: float) -> list[str]:
    script = (
        "import sys, time, json\n"
        f"time.sleep({delay})\n"
        f"for line in json.loads({json.dumps(json.dumps(list(lines)))}):\n"
        "    print(line, flush=True)\n"
    )
    return ["python3", "-c", script]


async def create_taskrun_pod(
    admin_api: k8s.ApiClient,
    pipelinerun: str,
    steps: Mapping[str, Sequence[str]],
    *,
    task: str = "build",
    step_delay: float = 0.0,
) -> str:
    """A TaskRun pod of ``pipelinerun`` whose step containers ``step-<name>`` print ``steps``
    (in order; each waits ``step_delay`` seconds first). Returns the pod name."""
    taskrun = f"{pipelinerun}-{task}"
    pod_name = f"{taskrun}-pod"

    def container(name: str, lines: Sequence[str], delay: float = 0.0) -> dict[str, Any]:
        return {
            "name": name,
            "image": IMAGE,
            "imagePullPolicy": "IfNotPresent",
            "command": _python(lines, delay),
        }

    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name,
            "namespace": NAMESPACE,
            "labels": {
                "tekton.dev/pipelineRun": pipelinerun,
                "tekton.dev/taskRun": taskrun,
                "tekton.dev/pipelineTask": task,
                "app.kubernetes.io/managed-by": "tekton-standin",
            },
        },
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 0,
            "initContainers": [
                container("prepare", ["copying the entrypoint binary"]),
                container("place-scripts", ["writing step scripts"]),
            ],
            "containers": [
                container(f"step-{name}", lines, step_delay * (i + 1))
                for i, (name, lines) in enumerate(steps.items())
            ],
        },
    }
    await k8s.CoreV1Api(admin_api).create_namespaced_pod(NAMESPACE, pod)  # type: ignore[arg-type]
    return pod_name
