"""Benchmark: HTTP clients as the gateway's upstream, alone: CPU per request towards one backend.

Reproduce (after ``make deps``; the libraries that are not dependencies of the project go to
a directory of their own, outside the project's environment)::

    uv pip install --python .venv/bin/python --target /tmp/clients curl-cffi==0.17.0 \\
        pyreqwest==0.15.1
    uv run python bench/upstream_clients.py --extra-path /tmp/clients --repeat 3

What the gateway does per proxied request, without the gateway around it: a GET with the
headers the gateway forwards, over keep-alive mTLS (the gateway's backend client certificate,
only the backend CA trusted) to nginx answering ``200 {"ok":true}`` (as in
``bench/gateway.py``), the body read as a stream of chunks, ``--concurrency`` requests at a
time on the uvloop event loop, as in the gateway. Each client runs in a process of its own, in
turns, ``--repeat`` times; reported: requests/s and the CPU time of the client's process per
request (user + system, all its threads: Rust and C clients run some of the work in threads of
their own), the median of the repeats. A client whose library is not installed is skipped.

Clients: ``own`` (``toolforge_gateway.upstream``, httptools), ``aiohttp`` (its C parser; a
session configured as a relay: no cookies, no decompression, no default headers),
``httpx`` (httpcore and h11, pure Python: what the gateway used before), ``curl_cffi``
(libcurl), ``pyreqwest`` (Rust, reqwest and hyper on a tokio runtime).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import resource
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

CLIENTS = ("own", "aiohttp", "httpx", "curl_cffi", "pyreqwest")
TARGET = "/v1/tool/bench/ping"
HEADERS = [
    ("accept", "application/json"),
    ("user-agent", "toolforge-cli/0.1"),
    ("x-request-id", "0123456789abcdef0123456789abcdef"),
    ("x-forwarded-for", "127.0.0.1"),
    ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "127.0.0.1:30003"),
    ("ssl-client-subject-dn", "CN=bench,O=toolforge"),
    ("x-toolforge-tool", "bench"),
]

Get = Callable[[], Awaitable[int]]


def _context(pki: Path) -> ssl.SSLContext:
    from toolforge_auth.tls import client_ssl_context

    return client_ssl_context(
        ca_file=pki / "backend-ca.crt",
        certfile=pki / "gateway-backend-client.crt",
        keyfile=pki / "gateway-backend-client.key",
    )


async def _own(url: str, pki: Path, concurrency: int) -> tuple[Get, Callable[[], Awaitable[None]]]:
    from toolforge_gateway.upstream import Timeouts, UpstreamPool

    host, port = url.removeprefix("https://").split(":")
    pool = UpstreamPool(
        _context(pki),
        host=host,
        port=int(port),
        max_connections=concurrency,
        max_keepalive_connections=concurrency,
        keepalive_expiry=4,
    )
    timeouts = Timeouts(connect=5, read=30, write=30, pool=5)
    headers = [(k.encode(), v.encode()) for k, v in [*HEADERS, ("host", f"{host}:{port}")]]

    async def get() -> int:
        response = await pool.request(b"GET", TARGET.encode(), headers, b"", timeouts, 60)
        try:
            async for _ in response:
                pass
        finally:
            await response.aclose()
        return response.status

    return get, pool.aclose


async def _aiohttp(
    url: str, pki: Path, concurrency: int
) -> tuple[Get, Callable[[], Awaitable[None]]]:
    import aiohttp

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=_context(pki), limit=concurrency, keepalive_timeout=4),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        trust_env=False,
        skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=30),
    )

    async def get() -> int:
        async with session.get(url + TARGET, headers=HEADERS, allow_redirects=False) as response:
            async for _ in response.content.iter_any():
                pass
            return response.status

    return get, session.close


async def _httpx(
    url: str, pki: Path, concurrency: int
) -> tuple[Get, Callable[[], Awaitable[None]]]:
    import httpx

    client = httpx.AsyncClient(
        verify=_context(pki),
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        trust_env=False,
        timeout=30,
    )

    async def get() -> int:
        async with client.stream("GET", url + TARGET, headers=HEADERS) as response:
            async for _ in response.aiter_raw():
                pass
            return response.status_code

    return get, client.aclose


async def _curl_cffi(
    url: str, pki: Path, concurrency: int
) -> tuple[Get, Callable[[], Awaitable[None]]]:
    from curl_cffi import requests as curl  # type: ignore[import-not-found,unused-ignore]

    session = curl.AsyncSession(
        verify=str(pki / "backend-ca.crt"),
        cert=(str(pki / "gateway-backend-client.crt"), str(pki / "gateway-backend-client.key")),
        max_clients=concurrency,
        trust_env=False,
        allow_redirects=False,
        default_headers=False,
        timeout=30,
    )

    async def get() -> int:
        response = await session.request("GET", url + TARGET, headers=dict(HEADERS), stream=True)
        try:
            async for _ in response.aiter_content():
                pass
        finally:
            await response.aclose()
        return int(response.status_code)

    return get, session.close


async def _pyreqwest(
    url: str, pki: Path, concurrency: int
) -> tuple[Get, Callable[[], Awaitable[None]]]:
    from datetime import timedelta

    from pyreqwest.client import (  # type: ignore[import-not-found,unused-ignore]
        ClientBuilder,
    )

    identity = (pki / "gateway-backend-client.crt").read_bytes() + (
        pki / "gateway-backend-client.key"
    ).read_bytes()
    client = (
        ClientBuilder()
        .add_root_certificate_pem((pki / "backend-ca.crt").read_bytes())
        .identity_pem(identity)
        .max_connections(concurrency)
        .pool_max_idle_per_host(concurrency)
        .pool_idle_timeout(timedelta(seconds=4))
        .follow_redirects(False)
        .gzip(False)
        .http1_only()
        .build()
    )

    async def get() -> int:
        request = client.get(url + TARGET).headers(dict(HEADERS)).build_streamed()
        async with request as response:
            reader = response.body_reader
            while await reader.read_chunk() is not None:
                pass
            return int(response.status)

    return get, client.close


async def _run(
    client: str, url: str, pki: Path, concurrency: int, requests: int
) -> dict[str, float]:
    make = {
        "own": _own,
        "aiohttp": _aiohttp,
        "httpx": _httpx,
        "curl_cffi": _curl_cffi,
        "pyreqwest": _pyreqwest,
    }[client]
    get, close = await make(url, pki, concurrency)
    try:
        # Warm-up: open the connections (their TLS handshakes are not what is measured).
        await asyncio.gather(*(get() for _ in range(concurrency * 2)))
        left = requests
        statuses: list[int] = []

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                statuses.append(await get())

        usage = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        await close()
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    if statuses.count(200) != len(statuses):
        raise RuntimeError(f"{client}: not every answer was 200: {sorted(set(statuses))}")
    return {"rps": len(statuses) / elapsed, "cpu_us": cpu / len(statuses) * 1e6}


def _child(args: argparse.Namespace) -> None:
    import uvloop

    result = uvloop.run(_run(args.client, args.url, args.pki, args.concurrency, args.requests))
    print(json.dumps(result))


def _available(client: str, extra: list[str]) -> bool:
    module = {"curl_cffi": "curl_cffi"}.get(client, client)
    if client in ("own",):
        module = "toolforge_gateway.upstream"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(extra)}
    probe = subprocess.run([sys.executable, "-c", f"import {module}"], env=env, check=False)
    return probe.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", nargs="+", default=list(CLIENTS), choices=CLIENTS)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=40000, help="per run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--extra-path", action="append", default=[], help="added to the clients' PYTHONPATH"
    )
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--pki", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        _child(args)
        return

    sys.path.insert(0, str(Path(__file__).parent))
    nginx_backend = importlib.import_module("gateway").nginx_backend  # bench/gateway.py

    from toolforge_admin.pki import PlatformPKI

    clients = [c for c in args.clients if _available(c, args.extra_path)]
    skipped = sorted(set(args.clients) - set(clients))
    if skipped:
        print(f"not installed, skipped: {', '.join(skipped)}", file=sys.stderr)
    runs: dict[str, list[dict[str, float]]] = {c: [] for c in clients}
    with tempfile.TemporaryDirectory(prefix="clients-bench-") as tmp:
        pki = Path(tmp) / "pki"
        PlatformPKI.ensure(pki)
        with nginx_backend(Path(tmp) / "backend", pki) as url:
            url = url.replace("127.0.0.1", "localhost")
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(args.extra_path)}
            for repeat in range(args.repeat):
                shift = repeat % len(clients)
                for client in clients[shift:] + clients[:shift]:
                    proc = subprocess.run(
                        [
                            *(sys.executable, __file__, "--client", client, "--url", url),
                            *("--pki", str(pki), "--concurrency", str(args.concurrency)),
                            *("--requests", str(args.requests)),
                        ],
                        env=env,
                        capture_output=True,
                        text=True,
                        check=False,
                    )
                    if proc.returncode != 0:
                        sys.exit(f"{client} failed:\n{proc.stderr}")
                    runs[client].append(json.loads(proc.stdout))
                    print(client, runs[client][-1], file=sys.stderr, flush=True)
    print(f"| client | requests/s | CPU µs/request (median of {args.repeat}) | range |")
    print("|---|---|---|---|")
    for client, results in runs.items():
        cpu = [r["cpu_us"] for r in results]
        rps = statistics.median(r["rps"] for r in results)
        print(
            f"| {client} | {rps:,.0f} | {statistics.median(cpu):.0f} "
            f"| {min(cpu):.0f}-{max(cpu):.0f} |"
        )


if __name__ == "__main__":
    main()
