"""Builds that really build: the real Tekton controller runs the ``buildpacks`` Pipeline on the
local cluster. An app is pushed to the platform's git server, the PipelineRun is created as the
builds API creates it (:mod:`builds.pipelineruns`), the lifecycle built here detects, builds and
pushes the image to the platform registry, and a tool's pod runs it with ``launcher``.

No stand-in is involved anywhere in this module.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from builds.api_harness import builds_api
from builds.pipelineruns import (
    NAMESPACE,
    cancel,
    condition,
    finished,
    get_run,
    publish_app,
    start_build,
    step_log,
    taskrun_pods,
    wait_run,
)
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config

from kube import tool_pod, wait_pod_phase
from toolforge_dev.cluster import NODE_IP, Cluster
from toolforge_dev.pytest_plugin import Tool, fresh_tool_name
from toolforge_dev.registry_pull import PULL_CREDENTIALS, PULL_PORT, PULL_SECRET, pull_secret
from toolforge_dev.sample_app import GREETING, write_blocking_app, write_sample_app
from toolforge_dev.services import PlatformServices

pytestmark = pytest.mark.cluster

#: Bound on one build (a cold one takes well under a minute here).
BUILD_TIMEOUT = 300
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


@pytest.fixture
async def builds_identity(cluster: Cluster) -> AsyncIterator[k8s.ApiClient]:
    """An API client with the builds API's own identity (user toolforge-builds-api): the runs
    are created with exactly the rights the builds API has."""
    conf = k8s.Configuration()
    await k8s_config.load_kube_config(
        config_file=str(cluster.service_kubeconfig("builds-api")), client_configuration=conf
    )
    async with k8s.ApiClient(conf) as api:
        yield api


async def _delete_runs(admin_api: k8s.ApiClient, tool: str) -> None:
    await k8s.CustomObjectsApi(admin_api).delete_collection_namespaced_custom_object(
        "tekton.dev", "v1", NAMESPACE, "pipelineruns", label_selector=f"user={tool}"
    )


@pytest.fixture
async def build_tool(admin_api: k8s.ApiClient) -> AsyncIterator[str]:
    """A tool name whose PipelineRuns are deleted afterwards (their pods go with them)."""
    name = fresh_tool_name()
    yield name
    await _delete_runs(admin_api, name)


@pytest.fixture
async def onboarded_build_tool(admin_api: k8s.ApiClient, tool: Tool) -> AsyncIterator[Tool]:
    """:func:`tool` (a namespace to run the image in), its PipelineRuns deleted afterwards."""
    yield tool
    await _delete_runs(admin_api, tool.name)


def _registry_client(platform: PlatformServices, *, pull: bool = False) -> httpx.Client:
    registry = platform.pull_registry() if pull else platform.registry()
    creds = PULL_CREDENTIALS if pull else registry.credentials
    return httpx.Client(
        base_url=registry.url,
        verify=registry.ssl_context(),
        auth=(creds.username, creds.password),
        timeout=10,
    )


def _manifest_digest(platform: PlatformServices, repository: str, tag: str) -> str:
    with _registry_client(platform) as client:
        reply = client.head(f"/v2/{repository}/manifests/{tag}", headers={"Accept": MANIFEST_TYPES})
    assert reply.status_code == 200, reply.text
    return str(reply.headers["docker-content-digest"])


async def test_build_pushes_an_image_that_runs_with_launcher(
    cluster: Cluster,
    platform: PlatformServices,
    builds_identity: k8s.ApiClient,
    admin_api: k8s.ApiClient,
    onboarded_build_tool: Tool,
) -> None:
    tool = onboarded_build_tool
    # The wheel is in vendor/, which only the build variable PIP_FIND_LINKS points pip at: the
    # build succeeds only if ENV_VARS reached the buildpacks (platform env layout).
    commit = publish_app(platform, tool.name, lambda d: write_sample_app(d, wheels_dir="vendor"))
    find_links = "/workspace/vendor"
    created = await start_build(
        builds_identity,
        platform,
        tool=tool.name,
        repository=tool.name,
        commit=commit,
        image_name="sample",
        envvars={"PIP_FIND_LINKS": find_links},
    )
    name = created["metadata"]["name"]
    run = await wait_run(admin_api, name, finished, timeout=BUILD_TIMEOUT, what="finished")
    core = k8s.CoreV1Api(admin_api)
    (pod,) = await taskrun_pods(core, name)
    logs = {c: await step_log(core, pod.metadata.name, c) for c in ("step-clone", "step-detect")}
    logs["step-build"] = await step_log(core, pod.metadata.name, "step-build")
    assert condition(run)["status"] == "True", (condition(run), logs)

    # Steps, in order, with what each is for; the variable's value is never printed.
    assert [c.name for c in pod.spec.containers] == [
        "step-clone",
        "step-detect",
        "step-build",
        "step-export",
    ]
    assert f"Checked out commit {commit}" in logs["step-clone"]
    assert "Build variable PIP_FIND_LINKS set" in logs["step-detect"]
    assert find_links not in logs["step-detect"]  # the platform never prints a value
    assert f"Looking in links: {find_links}" in logs["step-build"]  # pip got it (and says so)
    assert "toolforge/python: done" in logs["step-build"]
    assert "toolforge/procfile: processes: hello, web" in logs["step-build"]

    # The builds API's log endpoint on these real pods: Tekton's init containers and the push
    # step are hidden, the build variable's value is scrubbed where pip echoed it.
    async with builds_api(cluster) as api:
        reply = await api.call("GET", tool.name, f"/builds/{name}/logs")
    assert reply.status_code == 200, reply.text
    lines = [json.loads(line)["line"] for line in reply.text.splitlines()]
    shown = "\n".join(lines)
    assert "[prepare] output hidden" in lines
    assert "[step-export] output hidden" in lines
    assert "Saving" not in shown  # the exporter's output
    assert find_links not in shown
    assert any(
        line.startswith("[step-build] ") and line.endswith("Looking in links: ***")
        for line in lines
    ), shown
    assert any(line.startswith("[step-clone] ") and commit in line for line in lines)

    # Only the export step sees the push credentials; no step gets a Kubernetes token.
    for container in pod.spec.containers:
        mounts = {m.name for m in container.volume_mounts or []}
        assert ("registry-auth" in mounts) == (container.name == "step-export"), container.name
        assert not any(m.mount_path.startswith("/var/run/secrets") for m in container.volume_mounts)
        assert not any(e.value_from for e in container.env or [] if e.value_from), container.name

    # The results carry the pushed digest, and the registry holds that manifest under the tag.
    registry = platform.registry().address
    repository = f"tool-{tool.name}/sample"
    results = {r["name"]: r["value"] for r in run["status"]["results"]}
    digest = _manifest_digest(platform, repository, "latest")
    assert results["APP_IMAGE_DIGEST"] == digest
    assert results["APP_IMAGE_URL"] == f"{registry}/{repository}@{digest}"

    # A tool's pod pulls it from the read-only endpoint with the pull secret (made at
    # onboarding: toolforge-admin registry_pull) and runs a process.
    made = await k8s.CoreV1Api(admin_api).read_namespaced_secret(PULL_SECRET, tool.namespace)
    expected = pull_secret(tool.namespace, f"{NODE_IP}:{PULL_PORT}")["data"][".dockerconfigjson"]
    assert json.loads(base64.b64decode(made.data[".dockerconfigjson"])) == json.loads(
        base64.b64decode(expected)
    )
    pod_body: dict[str, Any] = tool_pod("built", "", tool.uid)
    container = pod_body["spec"]["containers"][0]
    container["image"] = f"{NODE_IP}:{PULL_PORT}/{repository}@{digest}"
    container["command"] = ["launcher", "hello"]
    pod_body["spec"]["imagePullSecrets"] = [{"name": PULL_SECRET}]
    await core.create_namespaced_pod(tool.namespace, pod_body)  # type: ignore[arg-type]
    phase = await wait_pod_phase(core, tool.namespace, "built", {"Succeeded", "Failed"}, 120)
    output = await core.read_namespaced_pod_log("built", tool.namespace)
    assert phase == "Succeeded", output
    assert output.strip() == GREETING


def test_pull_endpoint_is_read_only_and_push_account_is_separate(
    platform: PlatformServices,
) -> None:
    """The pull account cannot write through the pull endpoint and does not exist at the
    push endpoint; the push account does not exist at the pull endpoint."""
    with _registry_client(platform, pull=True) as pull:
        assert pull.get("/v2/").status_code == 200
        started = pull.post("/v2/tool-x/y/blobs/uploads/")
        assert started.status_code in (405, 503), started.text
    registry = platform.registry()
    with httpx.Client(
        base_url=registry.url,
        verify=registry.ssl_context(),
        auth=(PULL_CREDENTIALS.username, PULL_CREDENTIALS.password),
        timeout=10,
    ) as wrong:
        assert wrong.get("/v2/").status_code == 401
    pull_registry = platform.pull_registry()
    push = registry.credentials
    with httpx.Client(
        base_url=pull_registry.url,
        verify=pull_registry.ssl_context(),
        auth=(push.username, push.password),
        timeout=10,
    ) as wrong:
        assert wrong.get("/v2/").status_code == 401


async def test_failing_build_reports_the_buildpack_message(
    platform: PlatformServices,
    builds_identity: k8s.ApiClient,
    admin_api: k8s.ApiClient,
    build_tool: str,
) -> None:
    # The same app without PIP_FIND_LINKS: pip finds no wheel, the Python buildpack fails.
    commit = publish_app(platform, build_tool, lambda d: write_sample_app(d, wheels_dir="vendor"))
    created = await start_build(
        builds_identity, platform, tool=build_tool, repository=build_tool, commit=commit
    )
    name = created["metadata"]["name"]
    run = await wait_run(admin_api, name, finished, timeout=BUILD_TIMEOUT, what="finished")
    assert condition(run)["status"] == "False"
    assert condition(run)["reason"] == "Failed"
    core = k8s.CoreV1Api(admin_api)
    (pod,) = await taskrun_pods(core, name)
    log = await step_log(core, pod.metadata.name, "step-build")
    assert "toolforge/python: ERROR: pip could not install requirements.txt" in log
    assert "No matching distribution found for greeting==1.0" in log
    # Nothing was pushed.
    with _registry_client(platform) as client:
        reply = client.head(
            f"/v2/tool-{build_tool}/tool-{build_tool}/manifests/latest",
            headers={"Accept": MANIFEST_TYPES},
        )
    assert reply.status_code == 404


async def test_cancel_stops_the_build_and_its_pods(
    platform: PlatformServices,
    builds_identity: k8s.ApiClient,
    admin_api: k8s.ApiClient,
    build_tool: str,
) -> None:
    # This app's build blocks in pip for an hour: the run is running until it is cancelled.
    commit = publish_app(platform, build_tool, write_blocking_app)
    created = await start_build(
        builds_identity, platform, tool=build_tool, repository=build_tool, commit=commit
    )
    name = created["metadata"]["name"]
    core = k8s.CoreV1Api(admin_api)
    # Cancel (as the builds API does) once the build step is inside pip, as its log shows.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BUILD_TIMEOUT
    log = ""
    while loop.time() < deadline and "Preparing metadata" not in log:
        await asyncio.sleep(0.5)
        pods = await taskrun_pods(core, name)
        if pods:
            with contextlib.suppress(k8s.ApiException):  # not started yet
                log = await step_log(core, pods[0].metadata.name, "step-build")
    assert "Preparing metadata" in log, log
    assert condition(await get_run(admin_api, name))["reason"] == "Running"
    await cancel(builds_identity, name)
    run = await wait_run(admin_api, name, finished, timeout=60, what="cancelled")
    assert condition(run)["status"] == "False"
    assert condition(run)["reason"] == "Cancelled"
    # keep-pod-on-cancel is off: the controller deletes the TaskRun's pod.
    pods_left = await taskrun_pods(core, name)
    while loop.time() < deadline and pods_left:
        await asyncio.sleep(0.5)
        pods_left = await taskrun_pods(core, name)
    assert pods_left == []
