"""The logs API on the real platform, through the gateway, as tools: a job's lines outlive its
pods (in order, with times), a restarted container's earlier lines stay, 5,000 lines read back
page by page exactly, tools see only their own lines whatever they put in the parameters, a
filelog job says it has no logs here, and a follow delivers new lines within a bounded wait and
closes its store tail when the client goes away."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urljoin

import httpx
import pytest
from kubernetes_asyncio import client as k8s

from toolforge_admin.pki import CertificateAuthority, subject
from toolforge_dev.cluster import Cluster
from toolforge_dev.pytest_plugin import Tool
from toolforge_dev.services import PlatformServices

pytestmark = pytest.mark.cluster

T = TypeVar("T")
GatewayAs = Callable[[PlatformServices, Cluster, Tool], httpx.AsyncClient]


@pytest.fixture
async def http(
    platform: PlatformServices, cluster: Cluster, tool: Tool, gateway_as: GatewayAs
) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_as(platform, cluster, tool) as client:
        yield client


async def eventually(check: Callable[[], Awaitable[T]], what: str, timeout: float = 120) -> T:
    """Await ``check()`` every half second until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last = await check()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}: {last!r}")
        await asyncio.sleep(0.5)
        last = await check()
    return last


async def run_job(http: httpx.AsyncClient, tool: Tool, name: str, cmd: str, **extra: Any) -> None:
    body = {"name": name, "cmd": cmd, "imagename": "bookworm", "filelog": False, **extra}
    reply = await http.post(f"/jobs/v1/tool/{tool.name}/jobs", json=body)
    assert reply.status_code in (200, 201), reply.text


async def read_pages(http: httpx.AsyncClient, url: str) -> tuple[list[dict[str, Any]], int]:
    """Every line of ``url`` and the pages after it (``next.url`` resolved against the page's
    URL, as the upstream clients do); returns the lines and the number of pages."""
    lines: list[dict[str, Any]] = []
    pages = 0
    current: str | None = url
    while current is not None:
        reply = await http.get(current)
        assert reply.status_code == 200, reply.text
        data = reply.json()["data"]
        pages += 1
        lines.extend(data["logs"])
        following = data["next"]
        assert following is None or data["logs"], "a next page after an empty one"
        current = urljoin(current, following["url"]) if following else None
    return lines, pages


def job_url(tool: Tool, job: str, **params: Any) -> str:
    query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in params.items())
    return f"/logs/v1/tool/{tool.name}/job/{quote(job, safe='')}/logs" + (
        f"?{query}" if query else ""
    )


async def job_pods(admin_api: k8s.ApiClient, tool: Tool, job: str) -> list[Any]:
    pods = await k8s.CoreV1Api(admin_api).list_namespaced_pod(
        tool.namespace, label_selector=f"app.kubernetes.io/name={job}"
    )
    return list(pods.items)


async def test_a_one_off_jobs_lines_outlive_its_pod_in_order_with_times(
    http: httpx.AsyncClient, tool: Tool, admin_api: k8s.ApiClient
) -> None:
    await run_job(http, tool, "printer", "for i in $(seq 1 40); do echo line $i; done")

    async def finished() -> bool:
        pods = await job_pods(admin_api, tool, "printer")
        return bool(pods) and all(p.status.phase == "Succeeded" for p in pods)

    await eventually(finished, "the job's pod to succeed")
    pod_names = {p.metadata.name for p in await job_pods(admin_api, tool, "printer")}
    reply = await http.delete(f"/jobs/v1/tool/{tool.name}/jobs/printer")
    assert reply.status_code == 200, reply.text

    async def pods_gone() -> bool:
        return not await job_pods(admin_api, tool, "printer")

    await eventually(pods_gone, "the job's pods to be deleted")

    async def all_lines() -> list[dict[str, Any]]:
        # Lines reach the store a few seconds after they are printed (docs/logs.md); until the
        # first does, the job is gone from Kubernetes and unknown to the store: 404.
        first = await http.get(job_url(tool, "printer"))
        if first.status_code == 404:
            return []
        lines, _ = await read_pages(http, job_url(tool, "printer"))
        return lines if len(lines) >= 40 else []

    lines = await eventually(all_lines, "40 lines in the logs API")
    assert [line["message"] for line in lines] == [f"line {i}" for i in range(1, 41)]
    times = [line["datetime"] for line in lines]
    assert times == sorted(times)
    assert len(set(times)) == 40
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", t) for t in times)
    assert {line["pod"] for line in lines} <= pod_names
    assert {(line["container"], line["job_name"], line["source"]) for line in lines} == {
        ("job", "printer", "run-logs")
    }
    # the tool-wide route has them too, by job name
    everything, _ = await read_pages(http, f"/logs/v1/tool/{tool.name}/logs?job_names=printer")
    assert [line["message"] for line in everything] == [f"line {i}" for i in range(1, 41)]


async def test_a_restarted_containers_earlier_lines_stay(
    http: httpx.AsyncClient, tool: Tool
) -> None:
    await run_job(
        http,
        tool,
        "crasher",
        "echo run $(cat /proc/sys/kernel/random/uuid); exit 1",
        continuous=True,
    )

    async def two_runs() -> list[dict[str, Any]]:
        lines, _ = await read_pages(http, job_url(tool, "crasher"))
        runs = [line for line in lines if line["message"].startswith("run ")]
        return runs if len({line["message"] for line in runs}) >= 2 else []

    runs = await eventually(two_runs, "the lines of two runs of the crashing container", 180)
    # the same pod and container printed them: the first run's container was replaced
    assert len({(line["pod"], line["container"]) for line in runs[:2]}) == 1
    assert runs[0]["datetime"] < runs[1]["datetime"]


async def test_5000_lines_read_back_in_pages_exactly(http: httpx.AsyncClient, tool: Tool) -> None:
    await run_job(http, tool, "many", "seq 1 5000 | sed 's/^/n /'")
    expected = [f"n {i}" for i in range(1, 5001)]

    async def complete() -> tuple[list[str], int] | None:
        lines, pages = await read_pages(http, job_url(tool, "many"))
        return ([line["message"] for line in lines], pages) if len(lines) >= 5000 else None

    result = await eventually(complete, "5,000 lines in the store", 180)
    assert result is not None
    messages, pages = result
    assert messages == expected
    assert pages == 10  # 500 a page; the tenth says there is no more
    newest, _ = await read_pages(http, job_url(tool, "many", direction="newest_first", lines=1234))
    assert [line["message"] for line in newest] == expected[::-1][:1234]


TRICKS = [
    'x"}',
    '"} or _stream:{kubernetes.pod_namespace=~".*"}',
    "*",
    ".*",
    "secret | delete",
    'secret" or "1"="1',
    "secret\\",
    "secret\n_stream:{}",
    "_stream:{}",
    "secret'} | limit 1",
    "../../tool-x",
    "%2e%2e",
]


async def test_a_tool_sees_only_its_own_lines_whatever_the_parameters(
    platform: PlatformServices,
    cluster: Cluster,
    tool: Tool,
    other_tool: Tool,
    gateway_as: GatewayAs,
) -> None:
    async with (
        gateway_as(platform, cluster, tool) as victim,
        gateway_as(platform, cluster, other_tool) as attacker,
    ):
        await run_job(victim, tool, "secret", "echo the-secret-line")

        async def stored() -> bool:
            lines, _ = await read_pages(victim, job_url(tool, "secret"))
            return any(line["message"] == "the-secret-line" for line in lines)

        await eventually(stored, "the victim's line in the store")
        me = other_tool.name
        answers: list[httpx.Response] = []
        for trick in TRICKS:
            answers.append(await attacker.get(job_url(other_tool, trick)))
            for param in ("since", "until", "direction", "lines", "cursor"):
                answers.append(await attacker.get(job_url(other_tool, "secret", **{param: trick})))
            for param in ("job_names", "sources", "since", "cursor", "build_ids"):
                answers.append(
                    await attacker.get(f"/logs/v1/tool/{me}/logs", params={param: trick})
                )
            answers.append(
                await attacker.get(f"/logs/v1/tool/{me}/job/{quote(trick, safe='')}/logs_stream")
            )
        # the job's own name, and the other tool's path
        answers.append(await attacker.get(job_url(other_tool, "secret", since="1d")))
        answers.append(
            await attacker.get(f"/logs/v1/tool/{me}/logs", params={"job_names": "secret"})
        )
        answers.append(await attacker.get(job_url(tool, "secret")))
        answers.append(await attacker.get(f"/logs/v1/tool/{tool.name}/logs"))
        for reply in answers:
            assert "the-secret-line" not in reply.text, reply.request.url
            assert reply.status_code in (200, 400, 403, 404, 422), (reply.request.url, reply.text)
            if reply.status_code == 200 and reply.headers["content-type"].startswith(
                "application/json"
            ):
                assert reply.json()["data"]["logs"] == [], reply.request.url
        assert answers[-1].status_code == 403
        assert answers[-2].status_code == 403


async def test_a_filelog_job_says_it_has_no_logs_here(http: httpx.AsyncClient, tool: Tool) -> None:
    reply = await http.post(
        f"/jobs/v1/tool/{tool.name}/jobs",
        json={"name": "tofiles", "cmd": "echo to a file", "imagename": "bookworm", "filelog": True},
    )
    assert reply.status_code in (200, 201), reply.text
    reply = await http.get(job_url(tool, "tofiles"))
    assert reply.status_code == 404, reply.text
    assert reply.json()["error"][0].startswith("Job 'tofiles' does not have any logs available")
    reply = await http.get(f"/logs/v1/tool/{tool.name}/job/tofiles/logs_stream")
    assert reply.status_code == 404, reply.text


async def _tails_open(http: httpx.AsyncClient) -> float:
    reply = await http.get("/logs/v1/metrics")
    match = re.search(r"^toolforge_logs_store_tails_open (\S+)$", reply.text, re.M)
    assert match, reply.text
    return float(match.group(1))


async def test_follow_delivers_new_lines_in_bounded_time_and_closes_its_tail(
    http: httpx.AsyncClient, tool: Tool
) -> None:
    before = await _tails_open(http)
    await run_job(
        http,
        tool,
        "ticker",
        "i=0; while true; do i=$((i+1)); echo tick $i; sleep 1; done",
        continuous=True,
    )
    opened = time.time()
    seen: list[dict[str, Any]] = []
    async with http.stream("GET", f"/logs/v1/tool/{tool.name}/job/ticker/logs_stream") as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("application/x-ndjson")

        # one iterator, kept referenced: an abandoned one is finalised, which closes the
        # response (and the follow) before the metric is read
        lines = reply.aiter_lines()

        async def read() -> None:
            async for line in lines:
                seen.append(json.loads(line))
                printed = seen[-1]["datetime"]
                if len(seen) >= 3 and printed > time.strftime(
                    "%Y-%m-%dT%H:%M:%S", time.gmtime(opened)
                ):
                    return

        await asyncio.wait_for(read(), timeout=90)
        # a line printed after the follow started arrived within the bounded wait
        assert time.time() - opened < 90
        assert await _tails_open(http) == before + 1
    ticks = [int(line["message"].split()[1]) for line in seen]
    assert ticks == sorted(ticks)
    assert len(set(ticks)) == len(ticks)

    async def closed() -> bool:
        return await _tails_open(http) == before

    await eventually(closed, "the store tail to close after the client went away", 20)


def _client_with(
    cluster: Cluster, platform: PlatformServices, cert: Path, key: Path
) -> httpx.AsyncClient:
    context = ssl.create_default_context(cafile=cluster.pki_dir / "cluster-ca.crt")
    context.load_cert_chain(cert, key)
    return httpx.AsyncClient(base_url=platform.gateway_url, verify=context, timeout=60)


async def test_only_the_jobs_apis_service_identity_writes_job_events(
    platform: PlatformServices,
    cluster: Cluster,
    tool: Tool,
    http: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    pki = cluster.pki_dir
    path = f"/logs/v1/tool/{tool.name}/source/jobs-api/log"
    event = {"job_name": "web", "event_type": "created", "user_name": tool.name, "message": "m"}
    other = CertificateAuthority.load(pki, "cluster-ca").issue_pair(
        tmp_path, "service-other", subject("service:other", ["toolforge"]), client=True
    )
    async with (
        _client_with(
            cluster,
            platform,
            pki / "service-jobs-api-client.crt",
            pki / "service-jobs-api-client.key",
        ) as jobs_api,
        _client_with(cluster, platform, *other) as stranger,
    ):
        reply = await jobs_api.post(path, json=event)
        assert reply.status_code == 201, reply.text
        # the jobs API's identity may call that path alone
        reply = await jobs_api.get(f"/logs/v1/tool/{tool.name}/logs")
        assert reply.status_code == 403, reply.text
        # another service, and the tool itself, may not write
        reply = await stranger.post(path, json=event)
        assert reply.status_code == 403, reply.text
        reply = await http.post(path, json={**event, "message": "forged"})
        assert reply.status_code == 403, reply.text
        assert "service:jobs-api" in reply.json()["error"][0]

    async def events() -> list[dict[str, Any]]:
        lines, _ = await read_pages(http, f"/logs/v1/tool/{tool.name}/logs?sources=jobs")
        return lines

    (stored,) = await eventually(events, "the job event")
    assert {k: stored[k] for k in ("source", "job_name", "event_type", "user_name", "message")} == {
        "source": "jobs", "job_name": "web", "event_type": "created", "user_name": tool.name,
        "message": "m",
    }  # fmt: skip
    # a job's own lines never include events
    reply = await http.get(job_url(tool, "web"))
    assert "created" not in reply.text


async def test_the_jobs_apis_own_logs_endpoint_reads_the_store_once_the_pod_is_gone(
    http: httpx.AsyncClient, tool: Tool, admin_api: k8s.ApiClient
) -> None:
    """``/jobs/v1/.../jobs/NAME/logs`` (older clients): the lines come from the log store when
    the pod is gone (here deleted within the Job's 30 s TTL, so the Job is still there)."""
    await run_job(http, tool, "older", "for i in 1 2 3; do echo old $i; done")

    async def in_store() -> bool:
        lines, _ = await read_pages(http, job_url(tool, "older"))
        return len(lines) == 3

    await eventually(in_store, "the three lines in the store")
    core = k8s.CoreV1Api(admin_api)
    for pod in await job_pods(admin_api, tool, "older"):
        await core.delete_namespaced_pod(pod.metadata.name, tool.namespace, grace_period_seconds=0)

    async def pods_gone() -> bool:
        return not await job_pods(admin_api, tool, "older")

    await eventually(pods_gone, "the pod to be deleted", 20)
    reply = await http.get(f"/jobs/v1/tool/{tool.name}/jobs/older/logs")
    assert reply.status_code == 200, reply.text
    lines = [json.loads(line) for line in reply.text.splitlines()]
    assert [line["message"] for line in lines] == ["old 1", "old 2", "old 3"]
    assert {line["container"] for line in lines} == {"job"}
    last = await http.get(f"/jobs/v1/tool/{tool.name}/jobs/older/logs?lines=1")
    assert [json.loads(line)["message"] for line in last.text.splitlines()] == ["old 3"]
