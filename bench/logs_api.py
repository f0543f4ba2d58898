"""Benchmark: the logs API (services/logs) over the log store.

Reproduce::

    uv run python bench/logs_api.py query --lines 1000000 --queries 200   # no cluster needed
    uv run python bench/logs_api.py delay --seconds 60                    # make up first

``query`` (no cluster): a store of its own on a free loopback port (TLS and auth as the platform
runs it, ``toolforge_dev.logstore.LogStore.standalone``) with ``--lines`` lines of one job
(about 90 bytes each, their times spread evenly over the last 24 hours), and the logs API as a
host process on a free port (its own backend PKI; its kubeconfig points at a closed port: a
read that finds lines never asks Kubernetes). Called as the gateway calls it (mTLS with the
gateway's client certificate, the identity header), over one kept-alive connection:

- ``GET .../job/bench-job/logs?direction=newest_first&lines=100&since=1d``: the last 100 lines
  (what ``toolforge jobs logs -l 100`` asks), timed from request to last byte, p50/p99;
- ``GET .../job/bench-job/logs?since=1h``: the first page (500 lines) of the last hour;
- the store's disk (``du`` of its data directory once merges settle) and memory (RSS, peak),
  and the API process's RSS.

``delay`` (cluster and platform up, ``make up``): a one-off job ``delay`` of a fresh tool (made
through the jobs API) prints ``--rate`` lines per second for ``--seconds`` seconds with its own
clock in each line. Through the gateway as the tool, the host (a) polls ``.../job/delay/logs`` every
200 ms (all pages) and (b) follows ``.../job/delay/logs_stream``; the delay of a line is when it
was first returned minus when the pod printed it (same machine clock). p50/p99/max of each.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urljoin

import httpx
import yaml

from storebench import check, du_mib, line_text, percentile, rss_mib
from toolforge_admin.pki import PlatformPKI
from toolforge_dev.logstore import LOGSTORE_USER, LogStore
from toolforge_logstore import LogStoreClient, NewLogEntry

NAMESPACE, TOOL, JOB = "tool-bench", "bench", "bench-job"
BATCH = 50_000
DAY_NS = 86_400 * 1_000_000_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def dead_kubeconfig(path: Path, ca: Path) -> Path:
    """A kubeconfig whose apiserver has no listener (the API connects lazily)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "none",
                "cluster": {
                    "server": f"https://127.0.0.1:{free_port()}",
                    "certificate-authority": str(ca),
                },
            }
        ],
        "users": [{"name": "none", "user": {"token": "none"}}],
        "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
        "current-context": "none",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def start_api(work: Path, store: LogStore) -> tuple[subprocess.Popen[bytes], str, PlatformPKI]:
    pki = PlatformPKI.ensure(work / "pki")
    port = free_port()
    config = {
        "host": "127.0.0.1",
        "port": port,
        "tls_cert_file": str(pki.directory / "logs-api-server.crt"),
        "tls_key_file": str(pki.directory / "logs-api-server.key"),
        "backend_ca_file": str(pki.directory / "backend-ca.crt"),
        "kubeconfig": str(
            dead_kubeconfig(work / "dead.kubeconfig", pki.directory / "cluster-ca.crt")
        ),
        "logstore_url": store.url,
        "logstore_username": LOGSTORE_USER,
        "logstore_password_file": str(store.password_file),
        "logstore_ca_file": str(store.ca_file),
        "log_level": "WARNING",
    }
    (work / "logs-api.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(
        [sys.executable, "-m", "toolforge_logs", "--config", str(work / "logs-api.yaml")],
        stdout=(work / "logs-api.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"https://localhost:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v1/healthz", verify=False, timeout=1).status_code == 200:  # noqa: S501 - readiness only
                return proc, url, pki
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the logs API did not start:\n{(work / 'logs-api.log').read_text()}")


def gateway_client(url: str, pki: PlatformPKI) -> httpx.AsyncClient:
    context = ssl.create_default_context(cafile=pki.directory / "backend-ca.crt")
    context.load_cert_chain(
        pki.directory / "gateway-backend-client.crt", pki.directory / "gateway-backend-client.key"
    )
    return httpx.AsyncClient(
        base_url=f"{url}/v1/tool/{TOOL}",
        verify=context,
        headers={"ssl-client-subject-dn": f"CN={TOOL},O=toolforge"},
        timeout=60,
    )


async def timed(client: httpx.AsyncClient, path: str, runs: int, expect: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        reply = await client.get(path)
        out.append((time.perf_counter() - started) * 1000)
        check(reply.status_code == 200, reply.text[:300])
        check(len(reply.json()["data"]["logs"]) == expect, f"{expect} lines")
    return out


async def bench_query(lines: int, queries: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-logs-api-"))
    store = LogStore.standalone(work / "store")
    store.start()
    api: subprocess.Popen[bytes] | None = None
    try:
        async with LogStoreClient(store.client_config()) as writer:
            start_ns = time.time_ns() - DAY_NS
            step = DAY_NS // lines
            for first in range(0, lines, BATCH):
                batch = [
                    NewLogEntry(start_ns + i * step, line_text(i), NAMESPACE, JOB, "bench-0", "job")
                    for i in range(first, min(lines, first + BATCH))
                ]
                await writer.insert(batch)
        store.flush()
        last, settled = -1.0, time.monotonic()
        while time.monotonic() - settled < 10:
            size = du_mib(store.data_dir)
            if size != last:
                last, settled = size, time.monotonic()
            await asyncio.sleep(1)
        disk = last
        api, url, pki = start_api(work, store)
        async with gateway_client(url, pki) as client:
            newest = "/job/bench-job/logs?direction=newest_first&lines=100&since=1d"
            reply = await client.get(newest)
            got = [e["message"] for e in reply.json()["data"]["logs"]]
            check(got == [line_text(i) for i in range(lines - 1, lines - 101, -1)], "last 100")
            last100 = await timed(client, newest, queries, 100)
            hour = await timed(client, "/job/bench-job/logs?since=1h", queries // 4 or 1, 500)
        check(store.pid is not None, "the store runs")
        store_rss = rss_mib(store.pid or 0)
        api_rss = rss_mib(api.pid)
    finally:
        if api is not None:
            api.send_signal(signal.SIGTERM)
            api.wait(timeout=30)
        store.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{lines} lines; store disk after merges {disk:.1f} MiB")
    print(
        f"store RSS {store_rss[0]:.0f} MiB (peak {store_rss[1]:.0f}); API RSS {api_rss[0]:.0f} MiB"
    )
    for name, values in (
        ("last 100 lines (newest_first, lines=100)", last100),
        ("first page of the last hour (500 lines)", hour),
    ):
        print(
            f"{name}: p50 {percentile(values, 50):.1f} ms, p99 {percentile(values, 99):.1f} ms, "
            f"max {max(values):.1f} ms ({len(values)} requests)"
        )


async def bench_delay(seconds: int, rate: float) -> None:
    import json

    from toolforge_admin.cli import onboarder
    from toolforge_dev.cli import admin_settings
    from toolforge_dev.cluster import Cluster
    from toolforge_dev.services import PlatformServices

    cluster = Cluster()
    if not cluster.is_up():
        raise SystemExit("the cluster is not up (make up)")
    gateway = PlatformServices(cluster).gateway_url
    tool = f"benchlogsapi{int(time.time()) % 100000}"
    count = int(seconds * rate)
    script = f"""
import time
for i in range({count}):
    print(f"line {{i}} {{time.time_ns()}}", flush=True)
    time.sleep({1 / rate})
"""
    polled: dict[str, float] = {}
    followed: dict[str, float] = {}
    async with onboarder(admin_settings(cluster)) as ob:
        result = await ob.create(tool)
        if result.uid is None:
            raise SystemExit("onboarding gave no uid")
        context = ssl.create_default_context(cafile=cluster.pki_dir / "cluster-ca.crt")
        context.load_cert_chain(
            result.home / ".toolskube" / "client.crt", result.home / ".toolskube" / "client.key"
        )
        try:
            async with httpx.AsyncClient(base_url=gateway, verify=context, timeout=60) as http:
                job = {
                    "name": "delay",
                    "cmd": f"python3 -c '{script}'",
                    "imagename": "python3.11",
                    "filelog": False,
                }
                created = await http.post(f"/jobs/v1/tool/{tool}/jobs", json=job)
                check(created.status_code in (200, 201), created.text)
                base = f"/logs/v1/tool/{tool}/job/delay"

                async def follow() -> None:
                    async with http.stream("GET", f"{base}/logs_stream", timeout=None) as reply:
                        check(reply.status_code == 200, "follow")
                        async for raw in reply.aiter_lines():
                            message = json.loads(raw)["message"]
                            followed.setdefault(message, time.time_ns())
                            if len(followed) >= count:
                                return

                follower = asyncio.create_task(follow())
                deadline = time.monotonic() + seconds * 2 + 120
                while len(polled) < count and time.monotonic() < deadline:
                    url: str | None = f"{base}/logs?since=10m"
                    while url:
                        reply = await http.get(url)
                        now = time.time_ns()
                        if reply.status_code != 200:
                            break
                        data = reply.json()["data"]
                        for entry in data["logs"]:
                            polled.setdefault(entry["message"], now)
                        url = urljoin(url, data["next"]["url"]) if data["next"] else None
                    await asyncio.sleep(0.2)
                try:
                    await asyncio.wait_for(follower, timeout=60)
                except TimeoutError:
                    follower.cancel()
        finally:
            await ob.delete(tool, purge_home=True)
    for name, seen in (("poll every 200 ms", polled), ("follow (logs_stream)", followed)):
        delays = [(at - int(m.split()[2])) / 1e6 for m, at in seen.items()]
        if not delays:
            print(f"{name}: no lines")
            continue
        print(
            f"{name}: {len(delays)}/{count} lines, delay p50 {percentile(delays, 50):.0f} ms, "
            f"p99 {percentile(delays, 99):.0f} ms, max {max(delays):.0f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    query = sub.add_parser("query", help="last-100-lines latency, store disk and memory")
    query.add_argument("--lines", type=int, default=1_000_000)
    query.add_argument("--queries", type=int, default=200)
    delay = sub.add_parser("delay", help="print-to-visible delay through the API")
    delay.add_argument("--seconds", type=int, default=60)
    delay.add_argument("--rate", type=float, default=5.0)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    if args.what == "query":
        asyncio.run(bench_query(args.lines, args.queries))
    else:
        asyncio.run(bench_delay(args.seconds, args.rate))


if __name__ == "__main__":
    main()
