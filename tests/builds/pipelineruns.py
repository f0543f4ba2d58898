"""Real builds on the local platform, for tests and benchmarks: push an app to the platform's
git server, create the PipelineRun exactly as the builds API does (its own pure builder,
:func:`toolforge_builds.builders.build_pipelinerun`, with the platform's builds API settings,
sent with the builds API's own cluster identity), and read what the real Tekton controller did.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client as k8s

from toolforge_builds.builders import build_pipelinerun
from toolforge_builds.models import BuildRequest
from toolforge_builds.settings import BuildsSettings
from toolforge_dev.services import PlatformServices

NAMESPACE = "image-build"
STEPS = ("step-clone", "step-detect", "step-build", "step-export")


def builds_settings(platform: PlatformServices) -> BuildsSettings:
    """The settings the platform's builds API runs with (``builds_api_config``)."""
    return BuildsSettings.model_validate(platform.builds_api_config())


def publish_app(platform: PlatformServices, repository: str, write: Callable[[Path], Any]) -> str:
    """Write an app with ``write(directory)`` and push it to the git server as ``main`` of
    ``repository``; returns the commit id."""
    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp) / "app"
        write(app)
        return platform.git_server().publish(repository, app)


async def start_build(
    api: k8s.ApiClient,
    platform: PlatformServices,
    *,
    tool: str,
    repository: str,
    commit: str,
    image_name: str | None = None,
    envvars: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Create the PipelineRun the builds API would create for this build; returns it as the
    apiserver answered (with its generated name).

    The request is not validated: the builds API's ``source_url`` rule refuses every
    non-public host, the platform's own git server included (a builds API change, see
    ``devtools/buildpacks/README.md``); everything else is the builds API's own builder."""
    request = BuildRequest.model_construct(
        source_url=platform.git_server().url(repository),
        ref="main",
        envvars=envvars or {},
        image_name=image_name,
    )
    body = build_pipelinerun(
        request, tool=tool, resolved_commit=commit, settings=builds_settings(platform)
    )
    created: dict[str, Any] = await k8s.CustomObjectsApi(api).create_namespaced_custom_object(
        "tekton.dev", "v1", NAMESPACE, "pipelineruns", body
    )
    return created


async def get_run(api: k8s.ApiClient, name: str) -> dict[str, Any]:
    """The PipelineRun ``name``."""
    run: dict[str, Any] = await k8s.CustomObjectsApi(api).get_namespaced_custom_object(
        "tekton.dev", "v1", NAMESPACE, "pipelineruns", name
    )
    return run


def condition(run: dict[str, Any]) -> dict[str, Any]:
    """The ``Succeeded`` condition (empty when there is none yet)."""
    for cond in run.get("status", {}).get("conditions", []):
        if cond.get("type") == "Succeeded":
            return dict(cond)
    return {}


async def wait_run(
    api: k8s.ApiClient,
    name: str,
    done: Callable[[dict[str, Any]], bool],
    *,
    timeout: float,
    what: str,
) -> dict[str, Any]:
    """Poll the PipelineRun every 0.5 s until ``done(run)``; fails after ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    run: dict[str, Any] = {}
    while loop.time() < deadline:
        run = await get_run(api, name)
        if done(run):
            return run
        await asyncio.sleep(0.5)
    raise AssertionError(f"PipelineRun {name}: not {what} after {timeout:.0f} s: {condition(run)}")


def finished(run: dict[str, Any]) -> bool:
    """The run has ended (``Succeeded`` is True or False)."""
    return condition(run).get("status") in ("True", "False")


async def taskrun_pods(core: k8s.CoreV1Api, run_name: str) -> list[k8s.V1Pod]:
    """The pods of the run's TaskRuns (label ``tekton.dev/pipelineRun``)."""
    pods = await core.list_namespaced_pod(
        NAMESPACE, label_selector=f"tekton.dev/pipelineRun={run_name}"
    )
    return list(pods.items)


async def step_log(core: k8s.CoreV1Api, pod: str, container: str) -> str:
    """The log of one container of a TaskRun pod."""
    text: str = await core.read_namespaced_pod_log(pod, NAMESPACE, container=container)
    return text


async def taskrun_of(api: k8s.ApiClient, run: dict[str, Any]) -> dict[str, Any]:
    """The run's one TaskRun (``status.childReferences``)."""
    (child,) = [c for c in run["status"]["childReferences"] if c["kind"] == "TaskRun"]
    taskrun: dict[str, Any] = await k8s.CustomObjectsApi(api).get_namespaced_custom_object(
        "tekton.dev", "v1", NAMESPACE, "taskruns", child["name"]
    )
    return taskrun


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class StepTimes:
    """When a finished run was created and each of its steps ran (Tekton's own records: the
    entrypoint reports a step's real start, the kubelet its end)."""

    created: datetime
    completed: datetime
    steps: dict[str, tuple[datetime, datetime]]

    def seconds(self) -> dict[str, float]:
        """``queueing`` (creation to the first step's start), one entry per step,
        ``finishing`` (the last step's end to the run's completion) and ``total``."""
        first = min(start for start, _ in self.steps.values())
        last = max(end for _, end in self.steps.values())
        out = {"queueing": (first - self.created).total_seconds()}
        for name, (start, end) in self.steps.items():
            out[name] = (end - start).total_seconds()
        out["finishing"] = (self.completed - last).total_seconds()
        out["total"] = (self.completed - self.created).total_seconds()
        return out


def step_times(run: dict[str, Any], taskrun: dict[str, Any]) -> StepTimes:
    """The :class:`StepTimes` of a finished run and its TaskRun."""
    steps = {}
    for step in taskrun["status"].get("steps", []):
        terminated = step.get("terminated") or {}
        if "startedAt" in terminated and "finishedAt" in terminated:
            steps[step["name"]] = (_time(terminated["startedAt"]), _time(terminated["finishedAt"]))
    return StepTimes(
        created=_time(run["metadata"]["creationTimestamp"]),
        completed=_time(run["status"]["completionTime"]),
        steps=steps,
    )


async def cancel(api: k8s.ApiClient, name: str) -> None:
    """Cancel as the builds API does: JSON merge patch ``spec.status: Cancelled``."""
    response = await api.call_api(
        f"/apis/tekton.dev/v1/namespaces/{NAMESPACE}/pipelineruns/{name}",
        "PATCH",
        header_params={"Content-Type": "application/merge-patch+json"},
        body={"spec": {"status": "Cancelled"}},
        auth_settings=["BearerToken"],
        _preload_content=False,
    )
    text = await response.text()
    response.release()
    if response.status >= 300:
        raise AssertionError(f"cancel of {name} failed: {response.status} {text}")
