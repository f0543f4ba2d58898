"""Connection limits of every server of the suite (issue 14, finding 1), checked on a backend
app served exactly as the services serve theirs, through
:func:`toolforge_auth.serving.uvicorn_config`, over real TLS sockets.

Timeouts are set short here (2 s) so that the probes are quick; every bound is asserted as an
upper limit with a margin for a loaded machine, never as an exact time.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from auth.slow_clients import dribble, idle, many_headers, one_megabyte_header, send_all
from fastapi import FastAPI, Request

from certs import AuthPKI
from toolforge_auth.serving import uvicorn_config
from toolforge_auth.tls import server_ssl_context
from toolforge_auth.uvicorn import ConnectionLimits, TLSHttpToolsProtocol

LIMITS = ConnectionLimits(
    max_head_bytes=8 * 1024,
    header_timeout=2.0,
    body_timeout=2.0,
    keepalive_timeout=2.0,
    max_connections=4,
)
#: Added to a timeout for the upper bound: scheduling on a busy 2-core machine.
MARGIN = 5.0
#: A probe fails when the server keeps its connection open this long.
DEADLINE = 20.0


def backend_app() -> FastAPI:
    app = FastAPI()

    @app.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"received": len(await request.body())}

    return app


@asynccontextmanager
async def served(pki: AuthPKI, limits: ConnectionLimits | None) -> AsyncIterator[int]:
    """The app on a free loopback port, configured by ``uvicorn_config``; yields the port."""
    context = server_ssl_context(
        certfile=pki.path("jobs-api-server.crt"),
        keyfile=pki.path("jobs-api-server.key"),
        client_ca_files=[pki.path("backend-ca.crt")],
        client_cert="optional",
    )
    config = uvicorn_config(
        backend_app(),
        host="127.0.0.1",
        port=0,
        context=context,
        graceful_shutdown_seconds=1,
        log_level="warning",
        limits=limits,
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done(), "uvicorn stopped before it started"
            await asyncio.sleep(0.01)
        yield int(sock.getsockname()[1])
    finally:
        server.should_exit = True
        await task
        sock.close()


def client_context(pki: AuthPKI) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=pki.path("backend-ca.crt"))


@pytest.fixture
async def port(auth_pki: AuthPKI) -> AsyncIterator[int]:
    async with served(auth_pki, LIMITS) as bound:
        yield bound


async def keeps_serving(port: int, context: ssl.SSLContext, probe: asyncio.Task[object]) -> int:
    """Send normal requests, each on a new connection, until ``probe`` is done; all must
    succeed. Returns how many were sent (at least one)."""
    sent = 0
    while True:
        async with httpx.AsyncClient(verify=context, timeout=10) as client:
            response = await client.get(f"https://127.0.0.1:{port}/ok")
        assert response.status_code == 200
        sent += 1
        if probe.done():
            return sent
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("head", [one_megabyte_header("/ok"), many_headers("/ok")])
async def test_an_oversized_head_is_431_and_closed(
    auth_pki: AuthPKI, port: int, head: bytes
) -> None:
    context = client_context(auth_pki)
    probe = asyncio.create_task(send_all(port, context, head, deadline=DEADLINE))
    assert await keeps_serving(port, context, probe) >= 1
    outcome = probe.result()
    assert outcome.seconds < MARGIN
    # The answer may be lost when the server's close meets the client still sending (TCP
    # reset), but what arrives is a 431.
    assert outcome.status in (431, None)
    if outcome.status == 431:
        assert b"connection: close" in outcome.answer
        assert b'{"error": ["the request line and headers are larger than 8192 bytes"]}' in (
            outcome.answer
        )


async def test_a_head_over_the_limit_that_ends_is_431(auth_pki: AuthPKI, port: int) -> None:
    """Headers that end within one read: caught when the head is complete, and answered."""
    head = b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8200 + b"\r\n\r\n"
    outcome = await send_all(port, client_context(auth_pki), head, deadline=DEADLINE)
    assert outcome.status == 431
    assert outcome.seconds < MARGIN


async def test_a_head_within_the_limit_is_served(auth_pki: AuthPKI, port: int) -> None:
    """Positive control for the size limit."""
    async with httpx.AsyncClient(verify=client_context(auth_pki), timeout=10) as client:
        response = await client.get(f"https://127.0.0.1:{port}/ok", headers={"x-big": "a" * 7000})
    assert response.status_code == 200


async def test_headers_dribbled_a_byte_a_second_are_cut_off(auth_pki: AuthPKI, port: int) -> None:
    context = client_context(auth_pki)
    head = b"GET /ok HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 100 + b"\r\n\r\n"
    probe = asyncio.create_task(dribble(port, context, head, deadline=DEADLINE))
    assert await keeps_serving(port, context, probe) >= 1
    outcome = probe.result()
    assert outcome.seconds < LIMITS.header_timeout + MARGIN
    assert outcome.status == 408
    assert b"the request headers took longer than 2.0 s" in outcome.answer


async def test_a_body_dribbled_a_byte_a_second_is_cut_off(auth_pki: AuthPKI, port: int) -> None:
    context = client_context(auth_pki)
    request = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 100
    start = request.index(b"\r\n\r\n") + 4
    probe = asyncio.create_task(dribble(port, context, request, deadline=DEADLINE, start=start))
    assert await keeps_serving(port, context, probe) >= 1
    outcome = probe.result()
    assert outcome.seconds < LIMITS.body_timeout + MARGIN
    assert outcome.status == 408
    assert b"the request body took longer than 2.0 s" in outcome.answer


async def test_a_connection_without_a_request_is_closed(auth_pki: AuthPKI, port: int) -> None:
    outcome = await idle(port, client_context(auth_pki), deadline=DEADLINE)
    assert outcome.answer == b""
    assert outcome.seconds < LIMITS.header_timeout + MARGIN


async def test_an_idle_keep_alive_connection_is_closed(auth_pki: AuthPKI, port: int) -> None:
    request = b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"
    outcome = await idle(port, client_context(auth_pki), deadline=DEADLINE, first=request)
    assert outcome.status == 200  # answered, then closed once idle
    assert outcome.seconds < LIMITS.keepalive_timeout + MARGIN


async def test_connections_above_the_limit_get_503(auth_pki: AuthPKI) -> None:
    limits = ConnectionLimits(max_connections=2, keepalive_timeout=30.0)
    context = client_context(auth_pki)
    async with served(auth_pki, limits) as port:
        clients = [httpx.AsyncClient(verify=context, timeout=10) for _ in range(3)]
        try:
            url = f"https://127.0.0.1:{port}/ok"
            # Two kept-alive connections are the limit; a third is refused.
            assert (await clients[0].get(url)).status_code == 200
            assert (await clients[1].get(url)).status_code == 200
            refused = await clients[2].get(url)
            assert refused.status_code == 503
            assert refused.headers["connection"] == "close"
            await clients[0].aclose()  # one leaves: room again
            for _ in range(100):
                answer = await clients[2].get(url)
                if answer.status_code == 200:
                    break
                await asyncio.sleep(0.05)  # until the server has seen the close
            assert answer.status_code == 200
        finally:
            for client in clients:
                await client.aclose()


def test_uvicorn_config_applies_the_limits(auth_pki: AuthPKI) -> None:
    context = server_ssl_context(
        certfile=auth_pki.path("jobs-api-server.crt"),
        keyfile=auth_pki.path("jobs-api-server.key"),
        client_ca_files=[auth_pki.path("backend-ca.crt")],
        client_cert="optional",
    )
    options: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "context": context,
        "graceful_shutdown_seconds": 1,
        "log_level": "info",
    }
    default = uvicorn_config(backend_app(), **options)
    assert default.timeout_keep_alive == 5.0
    assert default.limit_concurrency == 1025
    assert isinstance(default.http, type)
    assert issubclass(default.http, TLSHttpToolsProtocol)
    assert default.http.limits == ConnectionLimits()
    custom = uvicorn_config(backend_app(), **options, limits=LIMITS)
    assert isinstance(custom.http, type)
    assert issubclass(custom.http, TLSHttpToolsProtocol)
    assert custom.http.limits == LIMITS
    assert TLSHttpToolsProtocol.limits == ConnectionLimits()  # the base class is unchanged
