"""Benchmark: the log store (VictoriaLogs) and its collector (vlagent).

Reproduce::

    uv run python bench/logstore.py store --lines 1000000 --queries 200
    uv run python bench/logstore.py delay --seconds 60     # cluster and platform running

``store`` (no cluster; a store of its own on a free loopback port, TLS and auth as the platform
runs it, ``toolforge_dev.logstore.LogStore.standalone``):

- writes ``--lines`` lines of one job (``tool-bench``/``bench-job``, one pod, one container;
  about 90 bytes of text each, their times spread evenly over the last 24 hours) through
  ``LogStoreClient.insert`` in batches of 50,000, then ``/internal/force_flush``;
- disk: ``du`` of ``-storageDataPath`` after the flush and again once the store's background
  merges have settled (no change for 10 s); memory: the store's RSS (``VmRSS``) and peak
  (``VmHWM``) after writing and after the queries;
- query latency: ``--queries`` times the last 100 lines of the job as the logs API will ask
  (``LogStoreClient.query(LogQuery(..., direction=BACKWARD, limit=100))``: the query API's
  ``limit=100`` argument, parsing and sorting in the client included), and as many times the
  same with a ``sort by (_time desc, _stream_id desc) limit 100`` pipe instead (raw request),
  each timed from request to last byte; p50 and p99.

``delay`` (cluster and platform up): a pod in a fresh tool's namespace prints, with its own
clock in each line, ``--rate`` lines per second for ``--seconds`` seconds (the *steady* case),
then one line every 5 seconds for the same time (the *sparse* case, where vlagent's file
poller backs off, up to 10 s). The host polls the platform store every 100 ms for new lines of
that job (all its lines, deduplicated); the delay of a line is the poll time at which it was
first returned minus the time the pod printed it (same machine clock). p50, p99 and max per
case, and how many lines became visible only after a newer line of the same stream had been
(what a follower that polls with a time cursor would miss).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from storebench import check, du_mib, line_text, percentile, rss_mib
from toolforge_dev.logstore import LogStore
from toolforge_logstore import (
    Direction,
    LogQuery,
    LogStoreClient,
    NewLogEntry,
    StreamSelector,
)

NAMESPACE, JOB = "tool-bench", "bench-job"
BATCH = 50_000
DAY_NS = 86_400 * 1_000_000_000


async def bench_store(lines: int, queries: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-logstore-"))
    store = LogStore.standalone(work)
    store.start()
    pid = store.pid
    if pid is None:
        raise SystemExit("the store is not running")
    try:
        async with LogStoreClient(store.client_config()) as client:
            start_ns = time.time_ns() - DAY_NS
            step = DAY_NS // lines
            t0 = time.monotonic()
            for first in range(0, lines, BATCH):
                batch = [
                    NewLogEntry(
                        start_ns + i * step, line_text(i), NAMESPACE, JOB, "bench-0", "main"
                    )
                    for i in range(first, min(lines, first + BATCH))
                ]
                await client.insert(batch)
            store.flush()
            ingest_s = time.monotonic() - t0
            print(f"wrote {lines} lines in {ingest_s:.1f} s ({lines / ingest_s:,.0f} lines/s)")
            disk_flushed = du_mib(store.data_dir)
            rss_after_write = rss_mib(pid)
            last = -1.0
            settled_since = time.monotonic()
            while time.monotonic() - settled_since < 10:
                size = du_mib(store.data_dir)
                if size != last:
                    last, settled_since = size, time.monotonic()
                await asyncio.sleep(1)
            disk_settled = last

            selector = StreamSelector(NAMESPACE, job=JOB)
            query = LogQuery(selector, direction=Direction.BACKWARD, limit=100)
            newest = [line_text(i) for i in range(lines - 1, lines - 101, -1)]
            found = await client.query(query)
            check([e.message for e in found] == newest, "the last 100 lines")
            client_ms = []
            for _ in range(queries):
                t = time.perf_counter()
                found = await client.query(query)
                client_ms.append((time.perf_counter() - t) * 1000)
                check(len(found) == 100, "100 lines")
            sort_ms = []
            sort_text = (
                f"{selector.logsql()} | sort by (_time desc, _stream_id desc) limit 100"
                " | fields _time, _stream_id, _msg"
            )
            http = client._http
            for _ in range(queries):
                t = time.perf_counter()
                reply = await http.post("/select/logsql/query", data={"query": sort_text})
                sort_ms.append((time.perf_counter() - t) * 1000)
                check(reply.status_code == 200, reply.text)
                check(reply.text.count("\n") == 100, "100 lines")
            rss_after_queries = rss_mib(pid)
    finally:
        store.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"disk after flush: {disk_flushed:.2f} MiB; after merges: {disk_settled:.2f} MiB")
    print(
        f"RSS after write {rss_after_write[0]:.0f} MiB, after queries "
        f"{rss_after_queries[0]:.0f} MiB, peak {rss_after_queries[1]:.0f} MiB"
    )
    for name, values in (
        ("LogQuery(BACKWARD, limit=100): limit argument, client", client_ms),
        ("sort pipe ... limit 100, raw", sort_ms),
    ):
        print(
            f"last 100 lines, {name}: p50 {percentile(values, 50):.1f} ms, "
            f"p99 {percentile(values, 99):.1f} ms, max {max(values):.1f} ms ({len(values)} runs)"
        )


async def bench_delay(seconds: int, rate: float) -> None:
    from kubernetes_asyncio import client as k8s

    from toolforge_admin.cli import onboarder
    from toolforge_dev.cli import admin_settings
    from toolforge_dev.cluster import Cluster
    from toolforge_dev.logstore import platform_store
    from toolforge_dev.pytest_plugin import new_admin_api

    cluster = Cluster()
    if not cluster.is_up():
        raise SystemExit("the cluster is not up (make up)")
    tool = f"benchlogs{int(time.time()) % 100000}"
    steady = int(seconds * rate)
    sparse = max(1, seconds // 5)
    script = f"""
import time
for i in range({steady}):
    print(f"steady {{i}} {{time.time_ns()}}", flush=True)
    time.sleep({1 / rate})
for i in range({sparse}):
    print(f"sparse {{i}} {{time.time_ns()}}", flush=True)
    time.sleep(5)
"""
    async with onboarder(admin_settings(cluster)) as ob:
        result = await ob.create(tool)
        if result.uid is None:
            raise SystemExit("onboarding gave no uid")
        api = await new_admin_api(cluster)
        try:
            async with api, LogStoreClient(platform_store(cluster).client_config()) as client:
                core = k8s.CoreV1Api(api)
                pod: Any = {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "delay", "labels": {"app.kubernetes.io/name": "delay"}},
                    "spec": {
                        "restartPolicy": "Never",
                        "securityContext": {
                            "runAsUser": result.uid,
                            "runAsGroup": result.uid,
                            "runAsNonRoot": True,
                        },
                        "containers": [
                            {
                                "name": "main",
                                "image": "registry.local/toolforge/python3.11:stable",
                                "imagePullPolicy": "IfNotPresent",
                                "command": ["python3", "-c", script],
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                            }
                        ],
                    },
                }
                await core.create_namespaced_pod(result.namespace, pod)
                seen: dict[str, int] = {}
                delays: dict[str, list[float]] = {"steady": [], "sparse": []}
                newest_before = 0  # the newest line time seen in earlier polls
                late = 0  # lines that became visible after a newer line of the same stream
                deadline = time.monotonic() + seconds * 2 + 120
                query = LogQuery(StreamSelector(result.namespace, job="delay"))
                while len(seen) < steady + sparse and time.monotonic() < deadline:
                    # The whole run each time (at most a few hundred lines): lines do not
                    # become visible in time order, so a time cursor would skip some.
                    found = await client.query(query)
                    now = time.time_ns()
                    for entry in found:
                        case, _index, printed = entry.message.split()
                        if entry.message not in seen:
                            seen[entry.message] = now
                            delays[case].append((now - int(printed)) / 1e6)
                            late += entry.time_ns < newest_before
                    newest_before = max([newest_before, *(e.time_ns for e in found)])
                    await asyncio.sleep(0.1)
        finally:
            await ob.delete(tool, purge_home=True)
    for case, values in delays.items():
        if not values:
            print(f"{case}: no lines seen")
            continue
        print(
            f"{case}: {len(values)} lines, delay p50 {percentile(values, 50):.0f} ms, "
            f"p99 {percentile(values, 99):.0f} ms, max {max(values):.0f} ms"
        )
    print(f"{late} lines became visible after a newer line of the same stream")
    if len(seen) < steady + sparse:
        raise SystemExit(f"only {len(seen)} of {steady + sparse} lines arrived")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    store = sub.add_parser("store", help="query latency, disk and memory for N lines")
    store.add_argument("--lines", type=int, default=1_000_000)
    store.add_argument("--queries", type=int, default=200)
    delay = sub.add_parser("delay", help="print-to-visible delay through vlagent")
    delay.add_argument("--seconds", type=int, default=60)
    delay.add_argument("--rate", type=float, default=5.0)
    args = parser.parse_args()
    if args.what == "store":
        asyncio.run(bench_store(args.lines, args.queries))
    else:
        asyncio.run(bench_delay(args.seconds, args.rate))


if __name__ == "__main__":
    main()
