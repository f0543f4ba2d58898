"""The builds API on the real local cluster: real apiserver, real Tekton CRDs and webhook,
real pods, called over mTLS as the gateway calls it. These tests need run states on demand
(pending, running, cancelled, timestamps for retention, TaskRun pods printing chosen lines),
which the real controller does not reach quickly or at all; so the module stops the real
controller and :mod:`builds.tekton_standin` plays it (status conditions, TaskRun pods).
Real builds are in ``test_builds_tekton.py``."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from builds.api_harness import builds_api
from builds.tekton_standin import (
    NAMESPACE,
    create_taskrun_pod,
    real_controller_stopped,
    set_condition,
)
from kubernetes_asyncio import client as k8s

from toolforge_builds.quota import quota_configmap_name
from toolforge_dev.cluster import Cluster
from toolforge_dev.pytest_plugin import fresh_tool_name
from toolforge_dev.registry import LocalRegistry

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("tekton_controller_stopped")]

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REGISTRY_PASSWORD = "local-dev-registry-push-password"  # noqa: S105 - 30-builds.yaml


@pytest.fixture(scope="module")
def tekton_controller_stopped(cluster: Cluster) -> Iterator[None]:
    """The real Tekton controller is stopped for this module (see the module docstring)."""
    with real_controller_stopped(cluster):
        yield


async def _runs(admin_api: k8s.ApiClient, tool: str) -> list[dict[str, Any]]:
    result = await k8s.CustomObjectsApi(admin_api).list_namespaced_custom_object(
        "tekton.dev", "v1", NAMESPACE, "pipelineruns", label_selector=f"user={tool}"
    )
    return list(result["items"])


async def _cleanup(admin_api: k8s.ApiClient, tool: str) -> None:
    custom = k8s.CustomObjectsApi(admin_api)
    await custom.delete_collection_namespaced_custom_object(
        "tekton.dev", "v1", NAMESPACE, "pipelineruns", label_selector=f"user={tool}"
    )
    core = k8s.CoreV1Api(admin_api)
    for run_pod in (await core.list_namespaced_pod(NAMESPACE)).items:
        if run_pod.metadata.name.startswith(tool):
            await core.delete_namespaced_pod(
                run_pod.metadata.name, NAMESPACE, grace_period_seconds=0
            )
    with contextlib.suppress(k8s.ApiException):  # absent when no build was admitted
        await core.delete_namespaced_config_map(quota_configmap_name(tool), NAMESPACE)


@pytest.fixture
async def tools(admin_api: k8s.ApiClient) -> AsyncIterator[tuple[str, str]]:
    """Two tool names (builds need no tool namespace); their builds are removed after."""
    names = (fresh_tool_name(), fresh_tool_name())
    yield names
    for name in names:
        await _cleanup(admin_api, name)


async def test_start_show_cancel_delete_and_ownership(
    cluster: Cluster, admin_api: k8s.ApiClient, tools: tuple[str, str]
) -> None:
    tool, other = tools
    async with builds_api(cluster) as api:
        assert (await api.call("GET", tool, "/builds/latest")).json()["error"] == [
            "No builds exist yet."
        ]
        response = await api.start(
            tool, ref=COMMIT, envvars={"API_TOKEN": "s3cr3t-token-value"}, image_name="web"
        )
        assert response.status_code == 200, response.text
        new = response.json()["new_build"]
        assert new["resolved_ref"] == COMMIT
        assert new["parameters"]["envvars"] == {"API_TOKEN": "***"}  # names only
        assert "s3cr3t-token-value" not in response.text
        name = new["name"]
        assert name.startswith(f"{tool}-buildpacks-pipelinerun-")

        # The real CRD accepted the PipelineRun; it carries the upstream params and labels.
        (run,) = await _runs(admin_api, tool)
        assert run["metadata"]["name"] == name
        assert run["metadata"]["labels"]["user"] == tool
        assert run["spec"]["pipelineRef"] == {"name": "buildpacks"}
        params = {p["name"]: p["value"] for p in run["spec"]["params"]}
        assert params["SOURCE_REFERENCE"] == COMMIT
        assert params["UNRESOLVED_SOURCE_REFERENCE"] == COMMIT
        assert params["APP_IMAGE"] == f"registry.local/tool-{tool}/web:latest"
        assert params["ENV_VARS"] == ["API_TOKEN=s3cr3t-token-value"]

        async def status() -> str:
            reply = await api.call("GET", tool, f"/builds/{name}")
            assert reply.status_code == 200, reply.text
            return str(reply.json()["build"]["status"])

        assert await status() == "BUILD_PENDING"
        await set_condition(admin_api, name, "Unknown", "Running")
        assert await status() == "BUILD_RUNNING"
        listed = (await api.call("GET", tool, "/builds")).json()["builds"]
        assert [b["build_id"] for b in listed] == [name]
        assert (await api.call("GET", tool, "/builds/latest")).json()["build"]["build_id"] == name

        # Another tool sees nothing and cannot touch it: the same 404 as a missing build.
        for method, path in (
            ("GET", f"/builds/{name}"),
            ("PUT", f"/builds/{name}/cancel"),
            ("DELETE", f"/builds/{name}"),
            ("GET", f"/builds/{name}/logs"),
        ):
            reply = await api.call(method, other, path)
            assert reply.status_code == 404, (method, path, reply.text)
            assert reply.json()["error"] == [f"Build '{name}' does not exist."]
        assert (await api.call("GET", other, "/builds")).json()["builds"] == []
        # and the gateway identity must match the path
        reply = await api.client.get(
            f"/v1/tool/{tool}/builds", headers={"ssl-client-subject-dn": f"CN={other},O=toolforge"}
        )
        assert reply.status_code == 403

        reply = await api.call("PUT", tool, f"/builds/{name}/cancel")
        assert reply.status_code == 200, reply.text
        (run,) = await _runs(admin_api, tool)
        assert run["spec"]["status"] == "Cancelled"
        await set_condition(admin_api, name, "False", "Cancelled")
        assert await status() == "BUILD_CANCELLED"
        reply = await api.call("PUT", tool, f"/builds/{name}/cancel")
        assert reply.status_code == 409
        assert "already finished (cancelled)" in reply.json()["error"][0]

        assert (await api.call("DELETE", tool, f"/builds/{name}")).status_code == 200
        assert await _runs(admin_api, tool) == []
        assert (await api.call("GET", tool, f"/builds/{name}")).status_code == 404


async def test_success_status_and_retention_prunes_only_finished(
    cluster: Cluster, admin_api: k8s.ApiClient, tools: tuple[str, str]
) -> None:
    tool, _ = tools
    async with builds_api(cluster, keep_successful=1, keep_failed=1, max_parallel_builds=10) as api:
        names = []
        for _ in range(5):
            response = await api.start(tool, ref=COMMIT)
            assert response.status_code == 200, response.text
            names.append(response.json()["new_build"]["name"])
            await asyncio.sleep(1.1)  # distinct creationTimestamps (1 s resolution)
        ok1, ok2, bad1, bad2, pending = names
        for name in (ok1, ok2):
            await set_condition(admin_api, name, "True", "Succeeded")
        for name in (bad1, bad2):
            await set_condition(admin_api, name, "False", "Failed")
        shown = (await api.call("GET", tool, f"/builds/{ok2}")).json()["build"]
        assert shown["status"] == "BUILD_SUCCESS"
        assert shown["end_time"].endswith("Z")
        assert shown["destination_image"] == f"registry.local/tool-{tool}/tool-{tool}:latest"
        # The next start prunes the older successful and failed runs, never a pending one.
        response = await api.start(tool, ref=COMMIT)
        assert response.status_code == 200
        newest = response.json()["new_build"]["name"]
        for _ in range(50):
            left = {r["metadata"]["name"] for r in await _runs(admin_api, tool)}
            if ok1 not in left and bad1 not in left:
                break
            await asyncio.sleep(0.1)
        assert left == {ok2, bad2, pending, newest}


async def test_concurrent_starts_on_two_replicas_never_exceed_quota(
    cluster: Cluster, admin_api: k8s.ApiClient, tools: tuple[str, str], registry: LocalRegistry
) -> None:
    tool, _ = tools
    async with (
        builds_api(cluster, registry, max_parallel_builds=4) as one,
        builds_api(cluster, max_parallel_builds=4) as two,
    ):
        replies = await asyncio.gather(
            *((one if i % 2 else two).start(tool, ref=COMMIT) for i in range(20))
        )
        codes = sorted(r.status_code for r in replies)
        assert codes == [200] * 4 + [409] * 16, [
            r.text for r in replies if r.status_code not in (200, 409)
        ]
        for reply in replies:
            if reply.status_code == 409:
                assert reply.json()["error"][0].startswith("4 out of 4 builds running")
        assert len(await _runs(admin_api, tool)) == 4
        quota = (await one.call("GET", tool, "/quotas")).json()["quota"]
        builds = next(c for c in quota["categories"] if c["name"] == "Builds")
        assert builds["items"][0]["used"] == "4"
        assert builds["items"][0]["capacity"] == "100%"

        # A finished build frees its slot; the next start is admitted again, and only one.
        finished = next(r.json()["new_build"]["name"] for r in replies if r.status_code == 200)
        await set_condition(admin_api, finished, "True", "Succeeded")
        again = await asyncio.gather(*(two.start(tool, ref=COMMIT) for _ in range(5)))
        assert sorted(r.status_code for r in again) == [200] + [409] * 4


async def test_logs_hide_credential_steps_and_scrub_secrets(
    cluster: Cluster, admin_api: k8s.ApiClient, tools: tuple[str, str]
) -> None:
    tool, _ = tools
    token = "tok-9f8e7d6c5b4a"  # noqa: S105 - a test value
    async with builds_api(cluster) as api:
        response = await api.start(tool, ref=COMMIT, envvars={"API_TOKEN": token})
        name = response.json()["new_build"]["name"]

        async def read_follow() -> list[str]:
            async with api.client.stream(
                "GET",
                f"/v1/tool/{tool}/builds/{name}/logs",
                params={"follow": "true"},
                headers={"ssl-client-subject-dn": f"CN={tool},O=toolforge"},
            ) as stream:
                assert stream.status_code == 200
                assert stream.headers["x-accel-buffering"] == "no"
                return [json.loads(line)["line"] async for line in stream.aiter_lines() if line]

        # follow starts while the run is still pending: it waits for the pod
        follower = asyncio.create_task(read_follow())
        await asyncio.sleep(1)
        assert not follower.done()
        await set_condition(admin_api, name, "Unknown", "Running")
        await create_taskrun_pod(
            admin_api,
            name,
            {
                "clone": ["cloning", f"the token is {token}!"],
                "build": ["building", f"password={REGISTRY_PASSWORD}", "built"],
                "export": [f"pushing with {REGISTRY_PASSWORD}"],
            },
            step_delay=0.5,
        )
        pod_name = f"{name}-build-pod"
        core = k8s.CoreV1Api(admin_api)
        for _ in range(300):
            pod = await core.read_namespaced_pod(pod_name, NAMESPACE)
            if pod.status.phase in ("Succeeded", "Failed"):
                break
            await asyncio.sleep(0.2)
        assert pod.status.phase == "Succeeded"
        await asyncio.sleep(1)
        assert not follower.done()  # the run has not ended yet
        await set_condition(admin_api, name, "True", "Succeeded")
        followed = await asyncio.wait_for(follower, 60)

        reply = await api.call("GET", tool, f"/builds/{name}/logs")
        assert reply.headers["x-accel-buffering"] == "no"
        lines = [json.loads(line)["line"] for line in reply.text.splitlines()]
        for got in (lines, followed):
            text = "\n".join(got)
            assert token not in text
            assert REGISTRY_PASSWORD not in text
            assert got[0] == "[prepare] output hidden"
            assert got[1] == "[place-scripts] output hidden"
            assert got[-1] == "[step-export] output hidden"
            assert "pushing" not in text
            shown = [line.split(" ", 2) for line in got[2:-1]]
            assert [(c, t) for c, _ts, t in shown] == [
                ("[step-clone]", "cloning"),
                ("[step-clone]", "the token is ***!"),
                ("[step-build]", "building"),
                ("[step-build]", "password=***"),
                ("[step-build]", "built"),
            ]
            assert all(ts.endswith("Z") and "T" in ts for _c, ts, _t in shown)


async def test_unreachable_repository_is_400_and_creates_nothing(
    cluster: Cluster, admin_api: k8s.ApiClient, tools: tuple[str, str]
) -> None:
    tool, _ = tools
    async with builds_api(cluster) as api:
        reply = await api.call(
            "POST",
            tool,
            "/builds",
            json={"source_url": "https://git.example.invalid/a/b", "ref": "main"},
        )
        assert reply.status_code == 400, reply.text
        assert reply.json()["error"][0].startswith("source_url: cannot resolve")
        bad = await api.call("POST", tool, "/builds", json={"source_url": "file:///etc/passwd"})
        assert bad.status_code == 400
        assert bad.json()["error"][0].startswith("source_url: ")
        bad = await api.start(tool, ref="-x")
        assert bad.status_code == 400
        assert bad.json()["error"][0].startswith("ref: ")
        assert await _runs(admin_api, tool) == []
        core = k8s.CoreV1Api(admin_api)
        with pytest.raises(k8s.ApiException):
            await core.read_namespaced_config_map(quota_configmap_name(tool), NAMESPACE)


async def test_unreachable_apiserver_is_503(cluster: Cluster, tmp_path: Path) -> None:
    config = yaml.safe_load(cluster.service_kubeconfig("builds-api").read_text())
    for entry in config["clusters"]:
        entry["cluster"]["server"] = "https://127.0.0.1:1"
    kubeconfig = tmp_path / "down.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    async with builds_api(cluster, kubeconfig=kubeconfig) as api:
        reply = await api.call("GET", "sometool", "/builds")
        assert reply.status_code == 503
        assert reply.headers["retry-after"] == "5"
        assert reply.json()["error"] == ["the Kubernetes API cannot be reached; try again later"]
