"""``toolforge build`` end to end: the CLI as a process -> gateway (mTLS) -> builds API ->
real apiserver with the real Tekton CRDs and webhook. The builds here need chosen states and
log lines on demand, so the module stops the real Tekton controller and
:mod:`builds.tekton_standin` moves the PipelineRuns on and creates their TaskRun pods. Refs
are full commit ids: nothing leaves the machine. (Real builds: tests/builds/test_builds_tekton.py;
the CLI on a real build, with the real controller: tests/test_platform_built_images.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from builds.registry_push import manifest_exists, push_image, registry_client, tags_of
from builds.tekton_standin import (
    NAMESPACE,
    create_taskrun_pod,
    real_controller_stopped,
    set_condition,
)
from kubernetes_asyncio import client as k8s

from platform_cli import tool_env, toolforge
from toolforge_cli.buildsapi import build_state
from toolforge_dev.cluster import Cluster
from toolforge_dev.pytest_plugin import Tool
from toolforge_dev.services import PlatformServices

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("tekton_controller_stopped")]

COMMIT = "0123456789abcdef0123456789abcdef01234567"
SOURCE = "https://gitlab.wikimedia.org/toolforge-repos/sample-python-buildpack-app"


@pytest.fixture(scope="module")
def tekton_controller_stopped(cluster: Cluster) -> Iterator[None]:
    """The real Tekton controller is stopped for this module (see the module docstring)."""
    with real_controller_stopped(cluster):
        yield


async def atoolforge(tool: Tool, *args: str) -> subprocess.CompletedProcess[str]:
    """:func:`toolforge` without blocking the event loop."""
    return await asyncio.to_thread(toolforge, tool, *args)


async def _runs(admin_api: k8s.ApiClient, tool: str) -> list[dict[str, Any]]:
    result = await k8s.CustomObjectsApi(admin_api).list_namespaced_custom_object(
        "tekton.dev", "v1", NAMESPACE, "pipelineruns", label_selector=f"user={tool}"
    )
    return list(result["items"])


@pytest.fixture
async def builds_cleanup(admin_api: k8s.ApiClient, tool: Tool) -> AsyncIterator[None]:
    """Removes the tool's PipelineRuns, stand-in pods and quota ConfigMap afterwards (they
    live in the shared builds namespace, not in the tool's)."""
    yield
    await k8s.CustomObjectsApi(admin_api).delete_collection_namespaced_custom_object(
        "tekton.dev", "v1", NAMESPACE, "pipelineruns", label_selector=f"user={tool.name}"
    )
    core = k8s.CoreV1Api(admin_api)
    for pod in (await core.list_namespaced_pod(NAMESPACE)).items:
        if pod.metadata.name.startswith(f"{tool.name}-"):
            await core.delete_namespaced_pod(pod.metadata.name, NAMESPACE, grace_period_seconds=0)
    with contextlib.suppress(k8s.ApiException):
        await core.delete_namespaced_config_map(f"builds-quota-{tool.name}", NAMESPACE)


async def _wait_for_run(admin_api: k8s.ApiClient, tool: str) -> str:
    for _ in range(300):
        runs = await _runs(admin_api, tool)
        if runs:
            return str(runs[0]["metadata"]["name"])
        await asyncio.sleep(0.2)
    raise AssertionError("no PipelineRun was created")


async def _wait_for_pod(admin_api: k8s.ApiClient, name: str) -> None:
    core = k8s.CoreV1Api(admin_api)
    for _ in range(600):
        pod = await core.read_namespaced_pod(name, NAMESPACE)
        if pod.status.phase in ("Succeeded", "Failed"):
            assert pod.status.phase == "Succeeded"
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"pod {name} did not finish")


async def test_detached_build_lifecycle(
    platform: PlatformServices, tool: Tool, admin_api: k8s.ApiClient, builds_cleanup: None
) -> None:
    shown = await atoolforge(tool, "build", "show")
    assert (shown.returncode, shown.stdout) == (1, "")
    assert "No builds exist yet." in shown.stderr

    started = await atoolforge(
        tool, "build", "start", SOURCE, "--ref", COMMIT, "--image-name", "web",
        "-e", "API_TOKEN=s3cr3t-value", "--detach",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    build_id = started.stdout.strip()
    assert build_id.startswith(f"{tool.name}-buildpacks-pipelinerun-")
    assert f"of commit {COMMIT}" in started.stderr
    (run,) = await _runs(admin_api, tool.name)
    params = {p["name"]: p["value"] for p in run["spec"]["params"]}
    assert params["ENV_VARS"] == ["API_TOKEN=s3cr3t-value"]
    assert params["APP_IMAGE"].endswith(f"/tool-{tool.name}/web:latest")

    listed = await atoolforge(tool, "build", "list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    builds = json.loads(listed.stdout)["builds"]  # the API's answer: BUILD_PENDING or pending
    assert [(b["build_id"], build_state(b["status"])) for b in builds] == [(build_id, "pending")]
    upstream = await atoolforge(tool, "build", "list", "--json")
    assert upstream.returncode == 0, upstream.stderr
    (entry,) = json.loads(upstream.stdout)["builds"]
    assert (entry["build_id"], entry["status"], entry["end_time"]) == (build_id, "pending", "N/A")
    names = await atoolforge(tool, "build", "list", "-o", "name")
    assert names.stdout.split() == [build_id]
    latest = await atoolforge(tool, "build", "show", "-o", "json")
    assert latest.returncode == 0, latest.stderr
    build = json.loads(latest.stdout)["build"]
    assert (build["build_id"], build["resolved_ref"]) == (build_id, COMMIT)
    assert list(build["parameters"]["envvars"]) == ["API_TOKEN"]  # {NAME: value} or [NAME]
    table = await atoolforge(tool, "build", "show", build_id)
    assert table.returncode == 0, table.stderr
    assert "pending" in table.stdout
    assert "s3cr3t-value" not in table.stdout

    quota = await atoolforge(tool, "build", "quota", "--json")
    assert quota.returncode == 0, quota.stderr
    categories = {c["name"]: c["items"] for c in json.loads(quota.stdout)["quota"]["categories"]}
    if "Builds" in categories:  # our parallel-build quota; production shows only Registry
        (item,) = categories["Builds"]
        assert item["used"] == "1"

    cancelled = await atoolforge(tool, "build", "cancel", build_id)
    assert cancelled.returncode == 0, cancelled.stderr
    (run,) = await _runs(admin_api, tool.name)
    assert run["spec"]["status"] == "Cancelled"
    await set_condition(admin_api, build_id, "False", "Cancelled")
    # a finished build cannot be cancelled (409), a missing one is unknown (404): exit 1,
    # and every ID is tried
    again = await atoolforge(tool, "build", "cancel", build_id, f"{tool.name}-nope")
    assert again.returncode == 1
    assert "already finished" in again.stderr
    assert f"Build '{tool.name}-nope' does not exist." in again.stderr
    assert "2 of 2 build(s) could not be cancelled" in again.stderr

    nothing = await atoolforge(tool, "build", "cancel", "--all", "-y")  # all have finished
    assert (nothing.returncode, nothing.stderr) == (0, "Cancelled 0 builds\n")

    deleted = await atoolforge(tool, "build", "delete", "--all", "--yes-i-know")
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stderr.splitlines()[-1] == "Deleted 1 builds"
    assert await _runs(admin_api, tool.name) == []
    gone = await atoolforge(tool, "build", "show", build_id)
    assert gone.returncode == 1
    assert f"Build '{build_id}' does not exist." in gone.stderr
    empty = await atoolforge(tool, "build", "list")
    assert (empty.returncode, empty.stdout) == (0, "")
    assert empty.stderr.startswith("No builds found")


async def test_bad_input_is_a_user_error(
    platform: PlatformServices, tool: Tool, admin_api: k8s.ApiClient, builds_cleanup: None
) -> None:
    bad = await atoolforge(tool, "build", "start", "http://example.org/app.git", "--detach")
    assert bad.returncode == 1
    assert "source_url" in bad.stderr
    assert await _runs(admin_api, tool.name) == []


def _storage(quota_json: str) -> dict[str, Any]:
    categories = {c["name"]: c["items"] for c in json.loads(quota_json)["quota"]["categories"]}
    (item,) = categories["Registry"]
    return dict(item)


_UNITS = {"": 1, "B": 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def _used_bytes(storage: dict[str, Any]) -> float:
    """Bytes used: ``used_bytes`` where the API sends it, else ``used`` (``12.50Ki``) read
    back, exact to the API's two decimals."""
    if "used_bytes" in storage:
        return float(storage["used_bytes"])
    match = re.fullmatch(r"([0-9.]+)\s*([KMG]i|B)?", str(storage["used"]))
    assert match is not None, storage
    return float(match[1]) * _UNITS[match[2] or ""]


async def test_quota_shows_registry_storage_and_clean_deletes_the_tools_images(
    platform: PlatformServices, tool: Tool, other_tool: Tool
) -> None:
    registry = platform.registry()
    async with registry_client(registry) as push:
        web = await push_image(push, f"tool-{tool.name}/web", "latest", layers=[b"w" * 5000])
        theirs = await push_image(push, f"tool-{other_tool.name}/web", "latest")

    quota = await atoolforge(tool, "build", "quota", "-o", "json")
    assert quota.returncode == 0, quota.stderr
    storage = _storage(quota.stdout)
    assert _used_bytes(storage) == pytest.approx(sum(web.blobs.values()), abs=0.005 * 1024)
    table = await atoolforge(tool, "build", "quota")
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if line.startswith("Storage"))
    assert row.split()[1:3] == ["1.00Gi", storage["used"]]
    assert storage["used"].endswith("Ki")

    # without --yes it asks, and "no" deletes nothing
    declined = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "toolforge_cli", "build", "clean"],
        env=tool_env(tool),
        input="n\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert declined.returncode == 1
    async with registry_client(registry) as check:
        assert await tags_of(check, f"tool-{tool.name}/web") == ["latest"]

    clean = await atoolforge(tool, "build", "clean", "--yes-i-know")
    assert clean.returncode == 0, clean.stderr
    assert "Deleted 1 " in clean.stderr, clean.stderr
    async with registry_client(registry) as check:
        assert await tags_of(check, f"tool-{tool.name}/web") == []
        assert await manifest_exists(check, f"tool-{other_tool.name}/web", theirs.digest)
    after = await atoolforge(tool, "build", "quota", "-o", "json")
    assert _used_bytes(_storage(after.stdout)) == 0

    nothing = await atoolforge(tool, "build", "clean", "-y", "--json")
    assert nothing.returncode == 0, nothing.stderr
    (said,) = json.loads(nothing.stdout)["messages"]["info"]
    assert re.search("nothing (was deleted|to clean up)", said, re.IGNORECASE), said


def _follow_start(tool: Tool) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "toolforge_cli", "build", "start", SOURCE, "--ref", COMMIT,
         "-e", "API_TOKEN=tok-9f8e7d6c5b4a"],
        env=tool_env(tool),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


async def test_start_follows_the_logs_until_success(
    platform: PlatformServices, tool: Tool, admin_api: k8s.ApiClient, builds_cleanup: None
) -> None:
    proc = _follow_start(tool)
    try:
        name = await _wait_for_run(admin_api, tool.name)
        await set_condition(admin_api, name, "Unknown", "Running")
        pod = await create_taskrun_pod(
            admin_api,
            name,
            {
                "clone": ["cloning", "token tok-9f8e7d6c5b4a"],
                "build": ["building", "built"],
                "export": ["pushing"],
            },
            step_delay=0.3,
        )
        await _wait_for_pod(admin_api, pod)
        await asyncio.sleep(1)
        assert proc.poll() is None  # still following: the run has not ended
        await set_condition(admin_api, name, "True", "Succeeded")
        stdout, stderr = await asyncio.to_thread(proc.communicate, timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    lines = stdout.splitlines()
    assert lines[0] == "[prepare] output hidden"
    assert lines[-1] == "[step-export] output hidden"
    assert [(line.split(" ", 2)[0], line.split(" ", 2)[2]) for line in lines[2:-1]] == [
        ("[step-clone]", "cloning"),
        ("[step-clone]", "token ***"),
        ("[step-build]", "building"),
        ("[step-build]", "built"),
    ]
    assert f"Started build {name}" in stderr
    assert f"Build {name} succeeded" in stderr


async def test_start_exits_1_when_the_build_fails(
    platform: PlatformServices, tool: Tool, admin_api: k8s.ApiClient, builds_cleanup: None
) -> None:
    proc = _follow_start(tool)
    try:
        name = await _wait_for_run(admin_api, tool.name)
        await set_condition(admin_api, name, "Unknown", "Running")
        await asyncio.sleep(1)
        assert proc.poll() is None
        await set_condition(admin_api, name, "False", "Failed", "step-build exited with 1")
        _stdout, stderr = await asyncio.to_thread(proc.communicate, timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, stderr
    assert f"build {name} ended with status failure: step-build exited with 1" in stderr
    # without an ID, logs reads the latest build; this one never ran a pod (API: 4xx)
    logs = await atoolforge(tool, "build", "logs")
    assert logs.returncode == 1
    assert f"Build '{name}' has no logs yet" in logs.stderr
