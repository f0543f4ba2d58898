"""The real upstream ``toolforge-build`` (toolforge-builds-cli 0.0.29, from PyPI) against our
gateway and builds API, as a tool on Toolforge runs it: every command with the flags users
use, the JSON outputs, and the error paths. Exit codes and output are the assertions.

Source repositories: the API resolves a ref with ``git ls-remote``; a full commit id needs no
remote, so every start passes ``--ref <commit>`` and nothing leaves the machine (a start
without ``--ref`` is the unreachable-repository error path).

These tests drive the client through states on demand (a run that stays pending, one that
runs and prints chosen lines, one that ends with a given digest), for sources that are not
reachable here (``gitlab.wikimedia.org``): the real Tekton controller cannot produce those, so
the module stops it and :mod:`builds.tekton_standin`, a stand-in for it, moves the runs on and
creates their TaskRun pods. Real builds, end to end, are in ``tests/builds/test_builds_tekton.py``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from builds.build_runs import params_of, pipelinerun, pipelineruns, remove_builds, wait_pod_finished
from builds.registry_push import manifest_exists, push_image, registry_client, tags_of
from builds.tekton_standin import create_taskrun_pod, real_controller_stopped, set_condition
from kubernetes_asyncio import client as k8s
from upstream.conftest import Upstream, UpstreamFactory

from toolforge_dev.cluster import Cluster
from toolforge_dev.pytest_plugin import Tool
from toolforge_dev.services import PlatformServices
from toolforge_dev.upstream_clients import UpstreamResult

pytestmark = pytest.mark.cluster

COMMIT = "0123456789abcdef0123456789abcdef01234567"
SOURCE = "https://gitlab.wikimedia.org/toolforge-repos/sample-python-buildpack-app"
DIGEST = "sha256:" + "c0" * 32
TOKEN = "tok-4f3e2d1c0b9a"  # noqa: S105 - a test value
NAME_RE = re.compile(r"build name is '([a-z0-9-]+)'")


async def build(client: Upstream, *args: str, input_text: str | None = None) -> UpstreamResult:
    """``toolforge-build ARGS`` in a thread (the event loop keeps serving the stand-in)."""
    return await asyncio.to_thread(
        client.run, "toolforge-build", *args, timeout=300, input_text=input_text
    )


def ok(result: UpstreamResult) -> UpstreamResult:
    assert result.returncode == 0, result.describe()
    return result


def failed(result: UpstreamResult, error: str) -> UpstreamResult:
    """Exit code 1 and ``Error: <error>`` on stderr (a 4xx, as upstream prints it)."""
    assert result.returncode == 1, result.describe()
    assert f"Error: {error}" in result.stderr_lines, result.describe()
    return result


async def start_detached(client: Upstream, *extra: str) -> str:
    """``start SOURCE --ref COMMIT -D``; the new build's name."""
    result = ok(await build(client, "start", SOURCE, "--ref", COMMIT, "-D", *extra))
    match = NAME_RE.search(result.stdout)
    assert match, result.describe()
    return match.group(1)


@pytest.fixture(scope="module", autouse=True)
def tekton_controller_stopped(cluster: Cluster) -> Iterator[None]:
    """The real Tekton controller is stopped for this module (see the module docstring)."""
    with real_controller_stopped(cluster):
        yield


@pytest.fixture
async def cleanup(admin_api: k8s.ApiClient, tool: Tool) -> AsyncIterator[None]:
    """The tool's builds live in the shared builds namespace: removed after the test."""
    yield
    await remove_builds(admin_api, tool.name)


async def test_start_detached_list_and_show_with_and_without_json(
    upstream: Upstream, tool: Tool, admin_api: k8s.ApiClient, cleanup: None
) -> None:
    empty = ok(await build(upstream, "list"))
    assert empty.stdout == ""
    assert empty.stderr_lines[-1].startswith("No builds found, you can start one using")
    assert json.loads(ok(await build(upstream, "list", "--json")).stdout) == {
        "messages": {"info": [], "warning": [], "error": []},
        "builds": [],
    }
    failed(await build(upstream, "show"), "No builds exist yet.")

    flags = ["-i", "web", "-e", f"API_TOKEN={TOKEN}", "-e", "MODE=a=b", "-D"]
    started = ok(await build(upstream, "start", SOURCE, "--ref", COMMIT, *flags))
    (run,) = await pipelineruns(admin_api, tool.name)
    name = run["metadata"]["name"]
    assert started.stdout == (
        f"Building '{SOURCE}', build name is '{name}'\n"
        "You can see the status with:\n\ttoolforge build show\n"
    )
    params = params_of(run)
    assert params["ENV_VARS"] == [f"API_TOKEN={TOKEN}", "MODE=a=b"]  # split at the first '='
    assert params["APP_IMAGE"].endswith(f"/tool-{tool.name}/web:latest")
    assert params["SOURCE_REFERENCE"] == COMMIT

    table = ok(await build(upstream, "list"))
    header, row, *_rest = table.stdout.splitlines()
    assert header.split()[:3] == ["build_id", "status", "start_time"]
    assert row.split()[:4] == [name, "pending", "N/A", "N/A"]
    assert "API_TOKEN=***" in table.stdout
    assert TOKEN not in table.stdout

    listed = json.loads(ok(await build(upstream, "list", "--json")).stdout)["builds"]
    assert listed == [
        {
            "build_id": name,
            "start_time": "N/A",
            "end_time": "N/A",
            "status": "pending",
            "message": "Waiting for the build to start.",
            "ref": COMMIT,
            "image_name": "web",
            "envvars": ["API_TOKEN=***", "MODE=***"],
            "source_url": SOURCE,
            "use_latest_versions": False,
            "use_deprecated_versions": False,
            "destination_image": params["APP_IMAGE"],
        }
    ]

    shown = ok(await build(upstream, "show")).stdout
    for line in (f"Build ID: {name}", "Status: pending", "Start Time: N/A", "End Time: N/A"):
        assert line in shown.splitlines(), shown
    assert f"    Ref: {COMMIT}" in shown.splitlines()
    assert "    Image Name: web" in shown.splitlines()

    await set_condition(admin_api, name, "Unknown", "Running")
    running = json.loads(ok(await build(upstream, "show", name, "--json")).stdout)["build"]
    assert running["status"] == "running"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", running["start_time"])
    assert running["end_time"] == "N/A"

    await set_condition(admin_api, name, "True", "Succeeded", results={"APP_IMAGE_DIGEST": DIGEST})
    finished = ok(await build(upstream, "show", name)).stdout.splitlines()
    assert "Status: ok" in finished
    assert f"Destination Image: {params['APP_IMAGE']}@{DIGEST}" in finished


async def test_start_flags_and_json(
    upstream: Upstream, tool: Tool, admin_api: k8s.ApiClient, cleanup: None
) -> None:
    answer = json.loads(
        ok(await build(upstream, "start", SOURCE, "--ref", COMMIT, "-D", "--json")).stdout
    )
    assert set(answer) == {"new_build", "messages"}
    assert answer["new_build"]["resolved_ref"] == COMMIT
    assert answer["new_build"]["parameters"]["source_url"] == SOURCE

    # -L: this platform has one builder; the build still runs and the client shows why
    latest = ok(await build(upstream, "start", SOURCE, "--ref", COMMIT, "-D", "-L"))
    assert (
        "Warning: use_latest_versions: this platform has no other builder configured; the "
        "default builder (current buildpack versions) was used"
    ) in latest.stderr_lines, latest.describe()
    name = NAME_RE.search(latest.stdout)
    assert name
    shown = json.loads(ok(await build(upstream, "show", name.group(1), "--json")).stdout)
    assert shown["build"]["use_latest_versions"] is True

    flags = ["-D", "--use-deprecated-versions", "--json"]
    deprecated = json.loads(
        ok(await build(upstream, "start", SOURCE, "--ref", COMMIT, *flags)).stdout
    )
    assert deprecated["new_build"]["parameters"]["use_deprecated_versions"] is True
    assert deprecated["messages"]["warning"][0].startswith("use_deprecated_versions: ")
    run = await pipelinerun(admin_api, deprecated["new_build"]["name"])
    assert run["metadata"]["annotations"]["builds.toolforge.org/use-deprecated-versions"] == "true"

    failed(
        await build(
            upstream, "start", SOURCE, "--ref", COMMIT, "-D", "-L", "--use-deprecated-versions"
        ),
        "use_deprecated_versions: cannot be combined with use_latest_versions; choose one",
    )
    assert len(await pipelineruns(admin_api, tool.name)) == 3


async def _finish_with_logs(admin_api: k8s.ApiClient, tool: str) -> str:
    """The stand-in's part of a build: wait for the run, run its TaskRun pod, end it."""
    for _ in range(300):  # at most 60 s
        runs = await pipelineruns(admin_api, tool)
        if runs:
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError("no PipelineRun was created")
    name = str(runs[0]["metadata"]["name"])
    await set_condition(admin_api, name, "Unknown", "Running")
    pod = await create_taskrun_pod(
        admin_api,
        name,
        {"clone": ["cloning", f"token {TOKEN} seen"], "build": ["building", "built"]},
        step_delay=0.3,
    )
    assert await wait_pod_finished(admin_api, pod) == "Succeeded"
    await set_condition(admin_api, name, "True", "Succeeded", results={"APP_IMAGE_DIGEST": DIGEST})
    return name


def _log_texts(stdout: str) -> list[tuple[str, str]]:
    """``(container, text)`` of each ``[container] <ts> text`` line (hidden ones: no ts)."""
    out = []
    for line in stdout.splitlines():
        container, _, rest = line.partition(" ")
        if rest == "output hidden":
            out.append((container, rest))
        else:
            timestamp, _, text = rest.partition(" ")
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", timestamp), line
            out.append((container, text))
    return out


EXPECTED_LOG = [
    ("[prepare]", "output hidden"),
    ("[place-scripts]", "output hidden"),
    ("[step-clone]", "cloning"),
    ("[step-clone]", "token *** seen"),
    ("[step-build]", "building"),
    ("[step-build]", "built"),
]


async def test_start_follows_the_logs_and_logs_shows_them(
    upstream: Upstream, tool: Tool, admin_api: k8s.ApiClient, cleanup: None
) -> None:
    # without -D, start streams the build's log until the build ends
    starting = asyncio.create_task(
        build(upstream, "start", SOURCE, "--ref", COMMIT, "-e", f"API_TOKEN={TOKEN}")
    )
    name = await _finish_with_logs(admin_api, tool.name)
    started = ok(await asyncio.wait_for(starting, 120))
    assert "Waiting for the logs... if the build just started this might take a minute" in (
        started.stderr_lines
    )
    assert _log_texts(started.stdout) == EXPECTED_LOG
    assert TOKEN not in started.stdout

    for args in (("logs",), ("logs", name), ("logs", name, "-f"), ("logs", "--follow")):
        shown = ok(await build(upstream, *args))
        assert _log_texts(shown.stdout) == EXPECTED_LOG, shown.describe()


async def test_logs_follow_waits_for_a_build_that_has_not_started(
    upstream: Upstream, tool: Tool, admin_api: k8s.ApiClient, cleanup: None
) -> None:
    name = await start_detached(upstream, "-e", f"API_TOKEN={TOKEN}")
    # not started: nothing to show yet, and the API says so
    failed(
        await build(upstream, "logs", name), f"Build '{name}' has no logs yet (it has not started)."
    )
    following = asyncio.create_task(build(upstream, "logs", name, "-f"))
    assert await _finish_with_logs(admin_api, tool.name) == name
    followed = ok(await asyncio.wait_for(following, 120))
    assert _log_texts(followed.stdout) == EXPECTED_LOG


async def test_cancel_and_delete(
    upstream: Upstream, tool: Tool, admin_api: k8s.ApiClient, cleanup: None
) -> None:
    first, second, third = [await start_detached(upstream) for _ in range(3)]

    cancelled = ok(await build(upstream, "cancel", first, "--yes-i-know"))
    assert cancelled.stdout.splitlines() == [
        f"Build '{first}' is being cancelled",
        "Cancelled 1 builds",
    ]
    assert (await pipelinerun(admin_api, first))["spec"]["status"] == "Cancelled"

    # without --yes-i-know it asks; "n" aborts and changes nothing
    declined = await build(upstream, "cancel", second, third, input_text="n\n")
    assert declined.returncode == 1, declined.describe()
    assert "I'm going to cancel 2 builds, continue? [y/N]" in declined.stdout
    assert "Aborted!" in declined.stderr_lines
    assert "status" not in (await pipelinerun(admin_api, second))["spec"]

    # a finished build cannot be cancelled: the error, and the count without it
    await set_condition(admin_api, first, "False", "Cancelled")
    again = failed(
        await build(upstream, "cancel", first, "-y"),
        f"Build '{first}' has already finished (cancelled); it cannot be cancelled.",
    )
    assert again.stdout.splitlines()[-1] == "Cancelled 0 builds"
    # toolforge-build 0.0.29 sends no request for `cancel --all` (it lists builds only for
    # delete --all): nothing is cancelled, and it says so
    assert ok(await build(upstream, "cancel", "--all", "-y")).stdout == "Cancelled 0 builds\n"
    assert "status" not in (await pipelinerun(admin_api, second))["spec"]

    deleted = ok(await build(upstream, "delete", second, "--yes-i-know"))
    assert deleted.stdout.splitlines() == [f"Build '{second}' deleted", "Deleted 1 builds"]
    asked = ok(await build(upstream, "delete", "--all", input_text="y\n"))
    assert "I'm going to delete 2 builds, continue? [y/N]" in asked.stdout
    assert asked.stdout.splitlines()[-1] == "Deleted 2 builds"
    assert await pipelineruns(admin_api, tool.name) == []
    assert ok(await build(upstream, "delete", "--all", "-y")).stdout == "Deleted 0 builds\n"


async def test_another_tools_build_and_unknown_builds_are_not_found(
    upstream: Upstream,
    upstream_for: UpstreamFactory,
    tool: Tool,
    other_tool: Tool,
    admin_api: k8s.ApiClient,
    cleanup: None,
) -> None:
    theirs_client = upstream_for(other_tool)
    try:
        theirs = await start_detached(theirs_client)
        for build_id in (theirs, f"{tool.name}-buildpacks-pipelinerun-nope0"):
            missing = f"Build '{build_id}' does not exist."
            failed(await build(upstream, "show", build_id), missing)
            failed(await build(upstream, "show", build_id, "--json"), missing)
            failed(await build(upstream, "logs", build_id), missing)
            cancel = failed(await build(upstream, "cancel", build_id, "-y"), missing)
            assert cancel.stdout.splitlines()[-1] == "Cancelled 0 builds"
            delete = failed(await build(upstream, "delete", build_id, "-y"), missing)
            assert delete.stdout.splitlines()[-1] == "Deleted 0 builds"
        # untouched, and invisible to the tool
        assert "status" not in (await pipelinerun(admin_api, theirs))["spec"]
        assert ok(await build(upstream, "list")).stdout == ""
        listed = json.loads(ok(await build(theirs_client, "list", "--json")).stdout)
        assert [b["build_id"] for b in listed["builds"]] == [theirs]
    finally:
        await remove_builds(admin_api, other_tool.name)


async def test_over_the_parallel_build_quota_and_bad_sources(
    upstream: Upstream, tool: Tool, admin_api: k8s.ApiClient, cleanup: None
) -> None:
    for _ in range(4):  # the platform's max_parallel_builds
        await start_detached(upstream)
    failed(
        await build(upstream, "start", SOURCE, "--ref", COMMIT, "-D"),
        "4 out of 4 builds running; wait for one to finish or cancel one (toolforge build cancel)",
    )
    quota = json.loads(ok(await build(upstream, "quota", "--json")).stdout)["quota"]
    builds = next(c for c in quota["categories"] if c["name"] == "Builds")
    assert builds["items"] == [
        {"name": "Parallel builds", "limit": "4", "used": "4", "available": "0", "capacity": "100%"}
    ]
    await remove_builds(admin_api, tool.name)

    bad = await build(upstream, "start", "http://example.org/app.git", "-D")
    assert bad.returncode == 1, bad.describe()
    assert bad.stderr_lines[0].startswith("Error: source_url: must be an https:// URL")
    unreachable = await build(upstream, "start", "https://git.example.invalid/team/app", "-D")
    assert unreachable.returncode == 1, unreachable.describe()
    assert unreachable.stderr_lines[0].startswith("Error: source_url: cannot resolve the ref: ")
    bad_ref = await build(upstream, "start", SOURCE, "--ref=-x", "-D")
    assert bad_ref.returncode == 1, bad_ref.describe()
    assert "Error: ref: must not start with '-'" in bad_ref.stderr_lines
    assert await pipelineruns(admin_api, tool.name) == []


def _quota_rows(stdout: str) -> dict[str, dict[str, str]]:
    """``quota``'s text output: ``{item name: {Key: value}}`` (an item's name is the line
    above its ``-----------`` line; its rows are ``Key  value``)."""
    lines = [line.strip() for line in stdout.splitlines()]
    rows: dict[str, dict[str, str]] = {}
    item: dict[str, str] | None = None
    for index, line in enumerate(lines):
        if index + 1 < len(lines) and lines[index + 1] == "-----------":
            item = rows.setdefault(line, {})
        elif item is not None and line and not set(line) <= set("=-"):
            key, _, value = line.rpartition(" ")
            if key.strip():
                item[key.strip()] = value
    return rows


async def test_quota_and_clean(
    upstream: Upstream, platform: PlatformServices, tool: Tool, other_tool: Tool
) -> None:
    registry = platform.registry()
    async with registry_client(registry) as push:
        web = await push_image(push, f"tool-{tool.name}/web", "latest", layers=[b"w" * 5000])
        theirs = await push_image(push, f"tool-{other_tool.name}/web", "latest")

    text = ok(await build(upstream, "quota"))
    assert text.stdout.splitlines()[:2] == ["Registry", "==================="]
    rows = _quota_rows(text.stdout)
    storage = rows["Storage"]
    # upstream's item: no Limit_bytes / Used_bytes rows, a Capacity
    assert list(storage) == ["Limit", "Used", "Available", "Capacity"]
    assert (storage["Limit"], storage["Capacity"]) == ("1.00Gi", "0%")
    assert storage["Used"].endswith("Ki")
    assert rows["Parallel builds"] == {
        "Limit": "4", "Used": "0", "Available": "4", "Capacity": "0%"
    }  # fmt: skip
    quota = json.loads(ok(await build(upstream, "quota", "--json")).stdout)
    assert quota["quota"]["storage_bytes"] == {"limit": 1 << 30, "used": sum(web.blobs.values())}
    registry_item = quota["quota"]["categories"][0]["items"][0]
    assert registry_item["used"] == storage["Used"]

    declined = await build(upstream, "clean", input_text="n\n")
    assert declined.returncode == 1, declined.describe()
    assert "Aborted!" in declined.stderr_lines
    async with registry_client(registry) as check:
        assert await tags_of(check, f"tool-{tool.name}/web") == ["latest"]

    cleaned = ok(await build(upstream, "clean", "--yes-i-know")).stdout.splitlines()
    assert len(cleaned) == 2, cleaned
    assert re.fullmatch(
        rf"Deleted 1 artifacts from the registry \([a-z0-9.:-]+/tool-{tool.name}/web:latest\); "
        r"their space is freed at the registry's next garbage collection",
        cleaned[0],
    ), cleaned
    assert cleaned[1] == (
        "If you still need more space, please contact a toolforge maintainer (https://w.wiki/6Zuu)."
    )
    async with registry_client(registry) as check:
        assert await tags_of(check, f"tool-{tool.name}/web") == []
        assert await manifest_exists(check, f"tool-{other_tool.name}/web", theirs.digest)
    again: dict[str, Any] = json.loads(ok(await build(upstream, "clean", "--json", "-y")).stdout)
    assert again["messages"]["info"] == ["Nothing to clean up"]
    assert again["deleted_images"] == []
    after = json.loads(ok(await build(upstream, "quota", "--json")).stdout)
    assert after["quota"]["storage_bytes"]["used"] == 0
