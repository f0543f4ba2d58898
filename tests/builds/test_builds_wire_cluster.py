"""The builds API on the wire as production serves it (REFERENCE.md "The wire as production
serves it", Builds; issue 13), one test per behaviour, against the real local cluster: the API
over mTLS as the gateway calls it, the real apiserver with the real Tekton CRDs.

The wire is checked in states on demand (a run that has not started, one that is running,
one that ended with a given digest) for a source that is not reachable here: the real Tekton
controller cannot produce those, so the module stops it and :mod:`builds.tekton_standin` (a
stand-in for it) moves the runs on and writes the pushed image's digest result. Real builds are
in ``test_builds_tekton.py``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from builds.api_harness import SOURCE, builds_api
from builds.build_runs import params_of, pipelinerun, pipelineruns, remove_builds
from builds.tekton_standin import real_controller_stopped, set_condition
from kubernetes_asyncio import client as k8s

from toolforge_dev.cluster import Cluster
from toolforge_dev.pytest_plugin import fresh_tool_name
from toolforge_dev.registry import LocalRegistry

pytestmark = pytest.mark.cluster

COMMIT = "0123456789abcdef0123456789abcdef01234567"
DIGEST = "sha256:" + "5e" * 32
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture(scope="module", autouse=True)
def tekton_controller_stopped(cluster: Cluster) -> Iterator[None]:
    """The real Tekton controller is stopped for this module (see the module docstring)."""
    with real_controller_stopped(cluster):
        yield


@pytest.fixture
async def tool(admin_api: k8s.ApiClient) -> AsyncIterator[str]:
    """A tool name (builds need no tool namespace); its builds are removed after."""
    name = fresh_tool_name()
    yield name
    await remove_builds(admin_api, name)


async def test_build_shape_statuses_times_envvars_and_digest(
    cluster: Cluster, admin_api: k8s.ApiClient, tool: str
) -> None:
    async with builds_api(cluster) as api:
        started = await api.start(tool, ref=COMMIT, envvars={"API_TOKEN": "tok-0123456789"})
        assert started.status_code == 200, started.text
        body = started.json()
        assert set(body) == {"new_build", "messages"}
        name = body["new_build"]["name"]
        assert body["new_build"]["parameters"] == {
            "source_url": SOURCE,
            "ref": COMMIT,
            "envvars": {"API_TOKEN": "***"},  # an object, as upstream; the value stays hidden
            "image_name": f"tool-{tool}",
            "use_latest_versions": False,
            "use_deprecated_versions": False,
        }

        async def build() -> dict[str, object]:
            reply = await api.call("GET", tool, f"/builds/{name}")
            assert reply.status_code == 200, reply.text
            shown: dict[str, object] = reply.json()["build"]
            return shown

        pending = await build()
        assert (pending["status"], pending["start_time"], pending["end_time"]) == (
            "BUILD_PENDING",
            "",
            "",
        )
        image = f"registry.local/tool-{tool}/tool-{tool}:latest"
        assert pending["destination_image"] == image

        await set_condition(admin_api, name, "Unknown", "Running")
        running = await build()
        assert running["status"] == "BUILD_RUNNING"
        assert RFC3339_UTC.match(str(running["start_time"])), running
        assert running["end_time"] == ""

        await set_condition(
            admin_api, name, "True", "Succeeded", results={"APP_IMAGE_DIGEST": DIGEST}
        )
        done = await build()
        assert done["status"] == "BUILD_SUCCESS"
        assert RFC3339_UTC.match(str(done["end_time"])), done
        assert done["destination_image"] == f"{image}@{DIGEST}"
        listed = (await api.call("GET", tool, "/builds")).json()["builds"]
        assert listed == [done]


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        ("Failed", "BUILD_FAILURE"),
        ("PipelineRunTimeout", "BUILD_TIMEOUT"),
        ("Cancelled", "BUILD_CANCELLED"),
        ("StoppedRunFinally", "BUILD_CANCELLED"),
    ],
)
async def test_finished_statuses_on_the_wire(
    cluster: Cluster, admin_api: k8s.ApiClient, tool: str, reason: str, status: str
) -> None:
    async with builds_api(cluster) as api:
        name = (await api.start(tool, ref=COMMIT)).json()["new_build"]["name"]
        await set_condition(admin_api, name, "False", reason)
        shown = (await api.call("GET", tool, "/builds/latest")).json()["build"]
        assert shown["status"] == status


async def test_use_deprecated_versions_is_stored_and_picks_its_builder(
    cluster: Cluster, admin_api: k8s.ApiClient, tool: str
) -> None:
    old = "registry.local/toolforge/buildpacks-builder:deprecated"
    async with builds_api(cluster, builder_image_deprecated=old) as api:
        reply = await api.start(tool, ref=COMMIT, use_deprecated_versions=True)
        assert reply.status_code == 200, reply.text
        assert reply.json()["messages"]["warning"] == []
        name = reply.json()["new_build"]["name"]
        assert reply.json()["new_build"]["parameters"]["use_deprecated_versions"] is True
        run = await pipelinerun(admin_api, name)
        assert params_of(run)["BUILDER_IMAGE"] == old
        annotations = run["metadata"]["annotations"]
        assert annotations["builds.toolforge.org/use-deprecated-versions"] == "true"
        shown = (await api.call("GET", tool, f"/builds/{name}")).json()["build"]
        assert shown["parameters"]["use_deprecated_versions"] is True

        both = await api.start(
            tool, ref=COMMIT, use_deprecated_versions=True, use_latest_versions=True
        )
        assert both.status_code == 400
        assert both.json()["error"] == [
            "use_deprecated_versions: cannot be combined with use_latest_versions; choose one"
        ]
    # where no such builder is configured, the default one builds and the answer says so
    async with builds_api(cluster) as api:
        reply = await api.start(tool, ref=COMMIT, use_deprecated_versions=True)
        assert reply.status_code == 200, reply.text
        (warning,) = reply.json()["messages"]["warning"]
        assert warning.startswith("use_deprecated_versions: this platform has no other builder")
        run = await pipelinerun(admin_api, reply.json()["new_build"]["name"])
        default = "registry.local/toolforge/buildpacks-builder:latest"
        assert params_of(run)["BUILDER_IMAGE"] == default
    assert len(await pipelineruns(admin_api, tool)) == 2  # nothing made for the 400


async def test_cancel_and_delete_answer_id_and_messages(
    cluster: Cluster, admin_api: k8s.ApiClient, tool: str
) -> None:
    async with builds_api(cluster) as api:
        name = (await api.start(tool, ref=COMMIT)).json()["new_build"]["name"]
        cancelled = await api.call("PUT", tool, f"/builds/{name}/cancel")
        messages = {"info": [f"Build '{name}' is being cancelled"], "warning": [], "error": []}
        assert cancelled.json() == {"id": name, "messages": messages}
        deleted = await api.call("DELETE", tool, f"/builds/{name}")
        messages = {"info": [f"Build '{name}' deleted"], "warning": [], "error": []}
        assert deleted.json() == {"id": name, "messages": messages}
    assert await pipelineruns(admin_api, tool) == []


async def test_error_bodies_are_upstreams(cluster: Cluster, tool: str) -> None:
    """``toolforge-build`` prints the top-level ``error`` list; ``messages.error`` holds the
    same for older clients. Every kind of error: ours, validation, routing, auth."""
    async with builds_api(cluster) as api:
        answers = {
            404: await api.call("GET", tool, "/builds/nope"),
            400: await api.call("POST", tool, "/builds", json={"source_url": ""}),
            405: await api.call("PATCH", tool, "/builds"),
            401: await api.client.get(f"/v1/tool/{tool}/builds"),
            422: await api.call("GET", tool, "/builds/x/logs", params={"follow": "perhaps"}),
        }
        for code, reply in answers.items():
            assert reply.status_code == code, reply.text
            body = reply.json()
            assert set(body) == {"error", "messages"}, body
            assert body["error"]
            assert all(isinstance(e, str) for e in body["error"])
            assert body["messages"] == {"info": [], "warning": [], "error": body["error"]}
        assert answers[404].json()["error"] == ["Build 'nope' does not exist."]
        assert answers[400].json()["error"][0].startswith("source_url: ")


async def test_health_shape(cluster: Cluster) -> None:
    async with builds_api(cluster) as api:
        for path in ("/v1/healthz", "/v1/healthz/"):
            reply = await api.client.get(path)
            assert reply.status_code == 200
            assert reply.json() == {
                "status": "OK",
                "messages": {"info": [], "warning": [], "error": []},
            }


async def test_every_route_answers_with_and_without_a_trailing_slash(
    cluster: Cluster, registry: LocalRegistry, tool: str
) -> None:
    async with builds_api(cluster, registry) as api:
        started = await api.call(
            "POST", tool, "/builds/", json={"source_url": SOURCE, "ref": COMMIT}
        )
        assert started.status_code == 200, started.text
        name = started.json()["new_build"]["name"]
        calls = [
            ("GET", "/builds", 200),
            ("GET", "/builds/latest", 200),
            ("GET", f"/builds/{name}", 200),
            ("GET", f"/builds/{name}/logs", 404),  # not started: no logs yet
            ("GET", "/quotas", 200),
            ("POST", "/clean", 200),
            ("PUT", f"/builds/{name}/cancel", 200),
        ]
        for method, path, code in calls:
            plain = await api.call(method, tool, path)
            slash = await api.call(method, tool, path + "/")
            assert (plain.status_code, slash.status_code) == (code, code), (method, path)
            if method == "GET":
                assert plain.json() == slash.json(), path
        for path in ("/metrics", "/v1/metrics", "/openapi.json"):
            assert (await api.client.get(path + "/")).status_code == 200, path
        deleted = await api.call("DELETE", tool, f"/builds/{name}/")
        assert deleted.status_code == 200
        assert (await api.call("GET", tool, f"/builds/{name}/")).status_code == 404


#: The methods of each path (the tool prefix left out). The kit's ``Allow`` also names HEAD
#: wherever GET is served; that is left out of the comparison here (HEAD is the kit's).
ALLOW = {
    "/builds": {"GET", "POST"},
    "/builds/latest": {"GET", "DELETE"},  # DELETE /builds/{id} takes "latest" as an id
    "/builds/some-id": {"GET", "DELETE"},
    "/builds/some-id/cancel": {"PUT"},
    "/builds/some-id/logs": {"GET"},
    "/clean": {"POST"},
    "/quotas": {"GET"},
}


def _allowed(reply: httpx.Response) -> set[str]:
    (header,) = reply.headers.get_list("allow")
    return {method.strip() for method in header.split(",")} - {"HEAD"}


async def test_options_and_405_name_every_method_of_the_path(cluster: Cluster, tool: str) -> None:
    async with builds_api(cluster) as api:
        for path, allow in ALLOW.items():
            for method in ("OPTIONS", "PATCH"):
                for variant in (path, path + "/"):
                    reply = await api.call(method, tool, variant)
                    assert reply.status_code == 405, (method, variant, reply.text)
                    assert _allowed(reply) == allow, (method, variant, reply.headers)
        healthz = await api.client.options("/v1/healthz")
        assert (healthz.status_code, _allowed(healthz)) == (405, {"GET"})
