"""Build service images end to end, all real: the ``toolforge`` CLI as a tool (its own client
certificate) -> the platform gateway (mTLS) -> the builds API -> a PipelineRun that the real
Tekton controller runs (clone from the platform's git server, our buildpacks, push to the
registry) -> the jobs API -> a Job whose pod pulls the built image from the registry's pull
endpoint with the tool's image pull Secret and runs a Procfile process behind ``launcher``.

And the builds quota race with the real controller: 20 concurrent starts on two builds API
instances against quota 4 admit exactly 4, and those 4 really run (TaskRun pods) until they are
cancelled. No stand-in is involved anywhere in this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from builds.api_harness import builds_api
from builds.pipelineruns import (
    NAMESPACE,
    builds_settings,
    condition,
    finished,
    get_run,
    publish_app,
    taskrun_pods,
    wait_run,
)
from kubernetes_asyncio import client as k8s

from platform_cli import toolforge
from toolforge_builds.quota import quota_configmap_name
from toolforge_dev.cluster import Cluster
from toolforge_dev.pytest_plugin import Tool, fresh_tool_name
from toolforge_dev.registry_pull import PULL_PORT, PULL_SECRET
from toolforge_dev.sample_app import GREETING, write_blocking_app, write_sample_app
from toolforge_dev.services import PlatformServices

pytestmark = pytest.mark.cluster

BUILD_TIMEOUT = 300
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


async def _delete_runs(admin_api: k8s.ApiClient, tool: str) -> None:
    await k8s.CustomObjectsApi(admin_api).delete_collection_namespaced_custom_object(
        "tekton.dev", "v1", NAMESPACE, "pipelineruns", label_selector=f"user={tool}"
    )
    with contextlib.suppress(k8s.ApiException):  # absent when no build was admitted
        await k8s.CoreV1Api(admin_api).delete_namespaced_config_map(
            quota_configmap_name(tool), NAMESPACE
        )


@pytest.fixture
async def build_tool(admin_api: k8s.ApiClient, tool: Tool) -> AsyncIterator[Tool]:
    """:func:`tool`, its PipelineRuns (and their pods) deleted afterwards."""
    yield tool
    await _delete_runs(admin_api, tool.name)


async def atoolforge(tool: Tool, *args: str, timeout: float = 120) -> Any:
    """:func:`toolforge` without blocking the event loop."""
    return await asyncio.to_thread(toolforge, tool, *args, timeout=timeout)


def _manifest_digest(platform: PlatformServices, repository: str, tag: str) -> str:
    registry = platform.pull_registry()
    creds = registry.credentials
    with httpx.Client(
        base_url=registry.url,
        verify=registry.ssl_context(),
        auth=(creds.username, creds.password),
        timeout=10,
    ) as client:
        reply = client.head(f"/v2/{repository}/manifests/{tag}", headers={"Accept": MANIFEST_TYPES})
    assert reply.status_code == 200, reply.text
    return str(reply.headers["docker-content-digest"])


def _wire_build(platform: PlatformServices, tool: Tool, build_id: str) -> dict[str, Any]:
    """GET the build through the gateway with the tool's certificate (the wire, not the CLI)."""
    context = ssl.create_default_context(cafile=platform.cluster.pki_dir / "cluster-ca.crt")
    context.load_cert_chain(
        tool.home / ".toolskube" / "client.crt", tool.home / ".toolskube" / "client.key"
    )
    with httpx.Client(base_url=platform.gateway_url, verify=context, timeout=30) as client:
        reply = client.get(f"/builds/v1/tool/{tool.name}/builds/{build_id}")
    assert reply.status_code == 200, reply.text
    build: dict[str, Any] = reply.json()["build"]
    return build


async def _job_pod(core: k8s.CoreV1Api, tool: Tool, job: str) -> k8s.V1Pod:
    pods = await core.list_namespaced_pod(
        tool.namespace, label_selector=f"app.kubernetes.io/name={job}"
    )
    assert len(pods.items) == 1, [p.metadata.name for p in pods.items]
    pod: k8s.V1Pod = pods.items[0]
    return pod


async def test_build_with_the_cli_then_run_the_image_as_a_job(
    platform: PlatformServices, admin_api: k8s.ApiClient, build_tool: Tool
) -> None:
    tool = build_tool
    commit = publish_app(platform, tool.name, write_sample_app)
    source = platform.git_server().url(tool.name)

    # build start follows the real logs to the end: the exit code says BUILD_SUCCESS
    started = await atoolforge(
        tool, "build", "start", source, "--image-name", "sample", timeout=BUILD_TIMEOUT
    )
    assert started.returncode == 0, (started.stdout, started.stderr)
    assert f"of commit {commit}" in started.stderr
    assert f"Checked out commit {commit}" in started.stdout  # the clone step's real log
    assert "toolforge/procfile: processes: hello, web" in started.stdout
    assert "[step-export] output hidden" in started.stdout  # the push step stays hidden
    build_id = re.search(r"Started build (\S+)", started.stderr)
    assert build_id is not None, started.stderr

    shown = await atoolforge(tool, "build", "show", build_id[1], "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["build"]["status"] == "ok"  # upstream's client's word
    build = _wire_build(platform, tool, build_id[1])  # the API's own word
    assert build["status"] == "BUILD_SUCCESS", build
    assert build["resolved_ref"] == commit
    # the registry holds the image under the tag, with the digest the build reported
    repository = f"tool-{tool.name}/sample"
    digest = _manifest_digest(platform, repository, "latest")
    pushed = f"{platform.registry().address}/{repository}:latest@{digest}"
    assert build["destination_image"] == pushed
    run = await get_run(admin_api, build_id[1])
    assert condition(run)["reason"] == "Succeeded"  # the real controller's reason

    # the jobs API lists the tool's own image
    images = await atoolforge(tool, "jobs", "images", "--output", "json")
    assert images.returncode == 0, images.stderr
    listed = {i["shortname"]: i["image"] for i in json.loads(images.stdout)["images"]}
    pull_address = f"{platform.pull_registry().address}"
    assert listed[f"{repository}:latest"] == f"{pull_address}/{repository}:latest"
    assert not any(name.startswith("tool-") and not name.startswith(repository) for name in listed)

    # run a Procfile process of the built image as a one-off job, and read its output
    ran = await atoolforge(
        tool, "jobs", "run", "hello", "--image", f"{repository}:latest",
        "--command", "hello", "--wait", "120",
    )  # fmt: skip
    assert ran.returncode == 0, (ran.stdout, ran.stderr)
    core = k8s.CoreV1Api(admin_api)
    pod = await _job_pod(core, tool, "hello")
    (container,) = pod.spec.containers
    assert container.image == f"{pull_address}/{repository}:latest"
    assert pull_address.endswith(f":{PULL_PORT}")
    assert container.command == ["launcher", "hello"]
    env = {e.name: e.value for e in container.env or []}
    assert env["NO_HOME"] == "1"
    assert "HOME" not in env
    assert [s.name for s in pod.spec.image_pull_secrets] == [PULL_SECRET]
    assert not pod.spec.volumes or all(v.host_path is None for v in pod.spec.volumes)
    assert pod.status.container_statuses[0].image_id.endswith(digest)
    # the logs API reads the log store, which has a line a few seconds after it is printed
    # (docs/logs.md): poll, within a bound
    deadline = time.monotonic() + 60
    while True:
        logs = await atoolforge(tool, "jobs", "logs", "hello")
        assert logs.returncode == 0, logs.stderr
        if GREETING in logs.stdout or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    assert GREETING in logs.stdout

    # pinned to the digest the build reported: accepted and pulled by digest
    pinned = await atoolforge(
        tool, "jobs", "run", "pinned", "--image", f"{repository}:latest@{digest}",
        "--command", "hello", "--wait", "120",
    )  # fmt: skip
    assert pinned.returncode == 0, (pinned.stdout, pinned.stderr)

    # refused with a clear 400 before anything is created: another tool's image, a missing tag
    other = await atoolforge(
        tool, "jobs", "run", "x1", "--image", "tool-someoneelse/sample:latest",
        "--command", "hello",
    )  # fmt: skip
    assert other.returncode == 1
    assert "a tool may run only its own images" in other.stderr
    missing = await atoolforge(
        tool, "jobs", "run", "x2", "--image", f"{repository}:nosuchtag", "--command", "hello"
    )
    assert missing.returncode == 1
    assert "does not exist in the registry" in missing.stderr
    listing = await atoolforge(tool, "jobs", "list", "--output", "name")
    assert "x1" not in listing.stdout.split()
    assert "x2" not in listing.stdout.split()


async def test_quota_race_with_the_real_controller(
    cluster: Cluster, platform: PlatformServices, admin_api: k8s.ApiClient
) -> None:
    """20 concurrent starts on two builds API instances, quota 4: exactly 4 are admitted,
    and the real controller runs exactly those 4 (their TaskRun pods start), until cancelled."""
    tool = fresh_tool_name()
    commit = publish_app(platform, tool, write_blocking_app)  # builds that block in pip
    settings = builds_settings(platform).model_copy(update={"max_parallel_builds": 4})
    body = {"source_url": platform.git_server().url(tool), "ref": commit}
    core = k8s.CoreV1Api(admin_api)
    try:
        async with (
            builds_api(cluster, settings=settings) as one,
            builds_api(cluster, settings=settings) as two,
        ):
            replies = await asyncio.gather(
                *((one if i % 2 else two).call("POST", tool, "/builds", json=body)
                  for i in range(20))
            )  # fmt: skip
            codes = sorted(r.status_code for r in replies)
            assert codes == [200] * 4 + [409] * 16, [r.text for r in replies]
            admitted = {r.json()["new_build"]["name"] for r in replies if r.status_code == 200}
            runs = await k8s.CustomObjectsApi(admin_api).list_namespaced_custom_object(
                "tekton.dev", "v1", NAMESPACE, "pipelineruns", label_selector=f"user={tool}"
            )
            assert {r["metadata"]["name"] for r in runs["items"]} == admitted

            # the real controller runs them: Running, each with its TaskRun pod
            for name in admitted:
                await wait_run(
                    admin_api,
                    name,
                    lambda r: condition(r).get("reason") == "Running",
                    timeout=BUILD_TIMEOUT,
                    what="running",
                )
            deadline = time.monotonic() + BUILD_TIMEOUT
            while time.monotonic() < deadline:
                pods = [await taskrun_pods(core, name) for name in admitted]
                if all(len(p) == 1 for p in pods):
                    break
                await asyncio.sleep(0.5)
            assert all(len(p) == 1 for p in pods), pods

            # still full: one more start is refused while the 4 run
            late = await one.call("POST", tool, "/builds", json=body)
            assert late.status_code == 409, late.text

            for name in admitted:
                cancelled = await two.call("PUT", tool, f"/builds/{name}/cancel")
                assert cancelled.status_code == 200, cancelled.text
            for name in admitted:
                run = await wait_run(admin_api, name, finished, timeout=120, what="cancelled")
                assert condition(run)["reason"] == "Cancelled"
    finally:
        await _delete_runs(admin_api, tool)
