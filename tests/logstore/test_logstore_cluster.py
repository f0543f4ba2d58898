"""The log store and its collector on the real cluster: a tool pod's lines reach the store
through vlagent with the tool, job, pod, container and time, stay after the pod is gone, and a
tool can neither write into another tool's logs nor read the store directly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from kube import python_pod, scratch_namespace, tool_pod, wait_pod_phase
from toolforge_dev import logcollector, netpol
from toolforge_dev.binaries import Binaries
from toolforge_dev.cluster import Cluster
from toolforge_dev.logstore import platform_store
from toolforge_dev.pytest_plugin import Tool
from toolforge_dev.services import PlatformServices
from toolforge_logstore import LogEntry, LogQuery, LogStoreClient, StreamSelector, TailQuery

pytestmark = pytest.mark.cluster

JOB = "printer"
#: The NetworkPolicies of every tool namespace (toolforge_admin.policies).
TOOL_POLICIES = ("toolforge-tool-isolation", "toolforge-tool-egress")


@pytest.fixture
async def store(platform: PlatformServices, cluster: Cluster) -> AsyncIterator[LogStoreClient]:
    """A client of the platform's store (``https://10.244.0.1:9428``)."""
    async with LogStoreClient(platform_store(cluster).client_config()) as client:
        yield client


async def _run_pod(core: k8s.CoreV1Api, tool: Tool, name: str, script: str, job: str = JOB) -> Any:
    pod = tool_pod(name, script, tool.uid)
    pod["metadata"]["labels"]["app.kubernetes.io/name"] = job
    await core.create_namespaced_pod(tool.namespace, pod)
    phase = await wait_pod_phase(core, tool.namespace, name, {"Succeeded", "Failed"})
    assert phase == "Succeeded", await core.read_namespaced_pod_log(name, tool.namespace)
    return await core.read_namespaced_pod(name, tool.namespace)


async def _wait_until(
    client: LogStoreClient,
    query: LogQuery,
    done: Callable[[list[LogEntry]], bool],
    timeout: float = 60,
) -> list[LogEntry]:
    """Query until ``done(entries)``; fails with what was found after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    found: list[LogEntry] = []
    while time.monotonic() < deadline:
        found = await client.query(query)
        if done(found):
            return found
        await asyncio.sleep(0.5)
    raise AssertionError(f"after {timeout} s the store has {[e.message for e in found]}")


async def _delete_pod(core: k8s.CoreV1Api, namespace: str, name: str) -> None:
    await core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            await core.read_namespaced_pod(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        await asyncio.sleep(0.3)
    raise AssertionError(f"pod {namespace}/{name} still there after 60 s")


async def test_a_pods_lines_are_stored_in_order_with_metadata_and_outlive_the_pod(
    store: LogStoreClient, tool: Tool, admin_api: k8s.ApiClient
) -> None:
    core = k8s.CoreV1Api(admin_api)
    marker = uuid.uuid4().hex
    count = 40
    expected = [f"line {i:03d} {marker}" for i in range(count)]
    script = f"for i in range({count}): print(f'line {{i:03d}} {marker}', flush=True)"
    pod = await _run_pod(core, tool, "printer-1", script)

    query = LogQuery(StreamSelector(tool.namespace, job=JOB))
    found = await _wait_until(store, query, lambda f: len(f) >= count)
    assert [e.message for e in found] == expected
    times = [e.time_ns for e in found]
    assert times == sorted(times)
    assert len(set(times)) == count  # distinct, so the order is the printing order
    state = pod.status.container_statuses[0].state.terminated
    assert state.started_at.timestamp() - 1 <= times[0] / 1e9
    assert times[-1] / 1e9 <= state.finished_at.timestamp() + 1
    assert {(e.namespace, e.job, e.pod, e.container) for e in found} == {
        (tool.namespace, JOB, "printer-1", "main")
    }
    assert {e.container_id for e in found} == {pod.status.container_statuses[0].container_id}

    by_namespace = await store.query(LogQuery(StreamSelector(tool.namespace)))
    assert [e.message for e in by_namespace] == expected
    assert await store.query(LogQuery(StreamSelector(tool.namespace, job="other"))) == []

    await _delete_pod(core, tool.namespace, "printer-1")
    after = await store.query(query)
    assert [(e.time_ns, e.message) for e in after] == [(e.time_ns, e.message) for e in found]


async def test_json_lines_cannot_write_into_another_tools_logs(
    platform: PlatformServices,
    store: LogStoreClient,
    tool: Tool,
    other_tool: Tool,
    admin_api: k8s.ApiClient,
) -> None:
    core = k8s.CoreV1Api(admin_api)
    victim = other_tool.namespace
    forged = [
        {"kubernetes.pod_namespace": victim, "msg": "forged namespace"},
        {"_stream": f'{{kubernetes.pod_namespace="{victim}"}}', "msg": "forged stream"},
        {"_stream_id": "0" * 32, "msg": "forged stream id"},
        {"kubernetes.pod_labels.app.kubernetes.io/name": "victim-job", "msg": "forged job"},
        {"msg": "structured", "level": "info"},
    ]
    lines = [json.dumps(f) for f in forged] + ["plain end marker"]
    script = f"for line in {lines!r}: print(line, flush=True)"
    await _run_pod(core, tool, "forger", script)

    own = await _wait_until(
        store,
        LogQuery(StreamSelector(tool.namespace)),
        lambda f: any(e.message == "plain end marker" for e in f),
    )
    # vlagent parses JSON lines: "msg" becomes the message; a row that repeats a stream field
    # (namespace, job) is dropped by the store, _stream and _stream_id keys are ignored.
    assert [e.message for e in own] == [
        "forged stream",
        "forged stream id",
        "structured",
        "plain end marker",
    ]
    assert {e.namespace for e in own} == {tool.namespace}
    assert await store.query(LogQuery(StreamSelector(victim))) == []
    assert platform.health()["logstore"]
    pods = await core.list_namespaced_pod(logcollector.NAMESPACE)
    assert [p.status.container_statuses[0].restart_count for p in pods.items] == [0]


SNOOP = """
import ssl, urllib.request, urllib.error
ctx = ssl._create_unverified_context()  # an attacker would not verify either
for path, data in (("/select/logsql/query?query=*", None), ("/insert/jsonline", b"{}")):
    try:
        reply = urllib.request.urlopen(
            urllib.request.Request("https://10.244.0.1:9428" + path, data=data),
            context=ctx, timeout=5)
        print(path, reply.status, reply.read()[:200])
    except urllib.error.HTTPError as exc:
        print(path, exc.code)
    except OSError as exc:
        print(path, "blocked")
"""


async def test_a_tool_pod_cannot_reach_the_store(
    platform: PlatformServices, cluster: Cluster, tool: Tool, admin_api: k8s.ApiClient
) -> None:
    """Tool pods may not open connections to the node address (the tool egress policy). The
    probe runs once kube-router has programmed the pod's policies: before that it lets a new
    pod's traffic through (``toolforge_dev.netpol``)."""
    core = k8s.CoreV1Api(admin_api)
    await core.create_namespaced_pod(
        tool.namespace, tool_pod("snoop", "import time; time.sleep(3600)", tool.uid)
    )
    assert await wait_pod_phase(core, tool.namespace, "snoop", {"Running"}) == "Running"
    await asyncio.to_thread(netpol.wait_programmed, tool.namespace, "snoop", TOOL_POLICIES)
    log = await asyncio.to_thread(
        cluster.kubectl,
        Binaries.from_cache(),
        *("-n", tool.namespace, "exec", "snoop", "--", "python3", "-c", SNOOP),
    )
    assert log.split("\n")[:2] == [
        "/select/logsql/query?query=* blocked",
        "/insert/jsonline blocked",
    ]


async def test_a_pod_that_reaches_the_store_gets_nothing_without_credentials(
    platform: PlatformServices, admin_api: k8s.ApiClient
) -> None:
    """Pods outside tool namespaces reach the node address (the collector must); without the
    credentials the store answers 401 to queries and inserts."""
    core = k8s.CoreV1Api(admin_api)
    namespace = await scratch_namespace(core)
    try:
        await core.create_namespaced_pod(namespace, python_pod("snoop", SNOOP))
        phase = await wait_pod_phase(core, namespace, "snoop", {"Succeeded", "Failed"})
        log = await core.read_namespaced_pod_log("snoop", namespace)
    finally:
        await core.delete_namespace(namespace)
    assert phase == "Succeeded", log
    assert log.split("\n")[:2] == ["/select/logsql/query?query=* 401", "/insert/jsonline 401"]


async def test_every_run_of_a_restarting_container_is_kept(
    store: LogStoreClient, tool: Tool, admin_api: k8s.ApiClient
) -> None:
    core = k8s.CoreV1Api(admin_api)
    script = "import sys, uuid; print('run', uuid.uuid4().hex, flush=True); sys.exit(1)"
    pod = tool_pod("crasher", script, tool.uid, restartPolicy="Always")
    pod["metadata"]["labels"]["app.kubernetes.io/name"] = "crasher"
    await core.create_namespaced_pod(tool.namespace, pod)
    query = LogQuery(StreamSelector(tool.namespace, job="crasher"))
    # The kubelet restarts it after 10 s, then 20 s (crash loop back-off).
    found = await _wait_until(store, query, lambda f: len(f) >= 3, timeout=120)
    assert all(e.message.startswith("run ") for e in found)
    assert len({e.message for e in found}) == len(found)
    assert len({e.container_id for e in found}) == len(found)  # one line per container run
    assert {(e.pod, e.container) for e in found} == {("crasher", "main")}
    await _delete_pod(core, tool.namespace, "crasher")
    assert [e.message for e in await store.query(query)][:3] == [e.message for e in found][:3]


async def test_lines_printed_while_the_store_is_down_arrive_when_it_is_back(
    platform: PlatformServices, store: LogStoreClient, tool: Tool, admin_api: k8s.ApiClient
) -> None:
    core = k8s.CoreV1Api(admin_api)
    expected = [f"while down {i}" for i in range(10)]
    platform.stop_service("logstore")
    try:
        assert not await store.healthy()
        await _run_pod(core, tool, "offline", f"for line in {expected!r}: print(line, flush=True)")
    finally:
        platform.start()
    # vlagent keeps what it could not send in its on-disk buffer and retries.
    found = await _wait_until(
        store, LogQuery(StreamSelector(tool.namespace)), lambda f: len(f) >= 10, timeout=120
    )
    assert [e.message for e in found] == expected


async def test_a_live_tail_with_enough_delay_shows_every_line_in_order(
    store: LogStoreClient, tool: Tool, admin_api: k8s.ApiClient
) -> None:
    """Lines of one stream become searchable out of order (docs/logs.md), and the store's tail
    drops a line older than one it already sent: with a delay (offset) above the collector's
    worst print-to-searchable time (under 5 s measured), nothing is lost."""
    core = k8s.CoreV1Api(admin_api)
    expected = [f"fast {i}" for i in range(20)] + [f"slow {i}" for i in range(3)]
    script = (
        "import time\n"
        "for i in range(20): print(f'fast {i}', flush=True); time.sleep(0.2)\n"
        "for i in range(3): print(f'slow {i}', flush=True); time.sleep(4)\n"
    )
    tail = store.tail(
        TailQuery(StreamSelector(tool.namespace, job="tailed"), delay=timedelta(seconds=12))
    )
    seen: list[LogEntry] = []

    async def follow() -> None:
        async for entry in tail:
            seen.append(entry)
            if len(seen) == len(expected):
                return

    following = asyncio.create_task(follow())
    try:
        pod = tool_pod("tailed", script, tool.uid)
        pod["metadata"]["labels"]["app.kubernetes.io/name"] = "tailed"
        await core.create_namespaced_pod(tool.namespace, pod)
        await asyncio.wait_for(following, timeout=90)
    finally:
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
        await tail.aclose()
    assert [e.message for e in seen] == expected
