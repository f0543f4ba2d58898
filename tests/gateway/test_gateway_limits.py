"""The gateway's connection limits (issue 14, finding 1), over real TLS sockets: a head far
too large, or dribbled, or never sent, a body dribbled, idle keep-alive connections. Each is
answered or closed within the documented bound while other clients are served meanwhile, and
nothing reaches a backend.

The timeouts are set to 2 s here; bounds are upper limits with a margin, never exact times.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

import httpx
import pytest
from auth.slow_clients import dribble, idle, many_headers, one_megabyte_header, send_all
from gateway.gateway_harness import (
    LIMITS,
    Backends,
    GatewayPKI,
    GatewayUnderTest,
    OddBackends,
    gateway_settings,
    serving,
)

from toolforge_gateway.app import create_app
from toolforge_gateway.server import build_config

TIMEOUT = 2.0
MARGIN = 5.0
DEADLINE = 20.0
TOOL_PATH = "/jobs/v1/tool/alice/echo"


@pytest.fixture
async def limited(
    gw_pki: GatewayPKI, backends: Backends, odd_backends: OddBackends
) -> AsyncIterator[GatewayUnderTest]:
    limits = LIMITS.model_copy(
        update={
            "header_timeout": TIMEOUT,
            "body_timeout": TIMEOUT,
            "keepalive_timeout": TIMEOUT,
        }
    )
    settings = gateway_settings(gw_pki, backends, odd_backends).model_copy(
        update={"limits": limits}
    )
    app = create_app(settings)
    async with serving(build_config(settings, app, loop="asyncio")) as (running,):
        yield GatewayUnderTest(running.url, running.port, app, running.server, running.task, gw_pki)


def alice_context(gateway: GatewayUnderTest) -> ssl.SSLContext:
    return gateway.pki.client_context(gateway.pki.alice)


async def keeps_serving(gateway: GatewayUnderTest, probe: asyncio.Task[object]) -> int:
    """Proxied requests, each on a new connection, until ``probe`` is done; all succeed."""
    sent = 0
    while True:
        async with gateway.client(gateway.pki.alice) as client:
            response = await client.get(TOOL_PATH)
        assert response.status_code == 200
        sent += 1
        if probe.done():
            return sent
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("head", [one_megabyte_header(TOOL_PATH), many_headers(TOOL_PATH)])
async def test_an_oversized_head_is_431_and_closed(
    limited: GatewayUnderTest, backends: Backends, head: bytes
) -> None:
    probe = asyncio.create_task(
        send_all(limited.port, alice_context(limited), head, deadline=DEADLINE)
    )
    served = await keeps_serving(limited, probe)
    outcome = probe.result()
    assert outcome.seconds < MARGIN
    assert outcome.status in (431, None)  # a TCP reset may eat the answer
    if outcome.status == 431:
        assert b"larger than 5632 bytes" in outcome.answer  # the gateway's error envelope
        assert b'"messages"' in outcome.answer
    assert backends.seen() == [("GET", "/v1/tool/alice/echo")] * served


async def test_an_oversized_head_without_a_certificate_is_431(
    limited: GatewayUnderTest, backends: Backends
) -> None:
    context = limited.pki.client_context(None)
    outcome = await send_all(limited.port, context, many_headers(TOOL_PATH), deadline=DEADLINE)
    assert outcome.status in (431, None)
    assert outcome.seconds < MARGIN
    assert backends.seen() == []


async def test_headers_dribbled_a_byte_a_second_are_cut_off(
    limited: GatewayUnderTest, backends: Backends
) -> None:
    head = f"GET {TOOL_PATH} HTTP/1.1\r\nHost: x\r\nX-Slow: {'a' * 100}\r\n\r\n".encode()
    probe = asyncio.create_task(
        dribble(limited.port, alice_context(limited), head, deadline=DEADLINE)
    )
    served = await keeps_serving(limited, probe)
    outcome = probe.result()
    assert outcome.seconds < TIMEOUT + MARGIN
    assert outcome.status == 408
    assert backends.seen() == [("GET", "/v1/tool/alice/echo")] * served


async def test_a_body_dribbled_a_byte_a_second_is_cut_off(
    limited: GatewayUnderTest, backends: Backends
) -> None:
    request = (
        b"POST /jobs/v1/tool/alice/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
    ) + b"x" * 100
    start = request.index(b"\r\n\r\n") + 4
    probe = asyncio.create_task(
        dribble(limited.port, alice_context(limited), request, deadline=DEADLINE, start=start)
    )
    await keeps_serving(limited, probe)
    outcome = probe.result()
    assert outcome.seconds < TIMEOUT + MARGIN
    # The body was being streamed to the backend and nothing answered yet: 408.
    assert outcome.status == 408
    assert b"the request body took longer than 2.0 s" in outcome.answer


async def test_a_connection_without_a_request_is_closed(limited: GatewayUnderTest) -> None:
    outcome = await idle(limited.port, alice_context(limited), deadline=DEADLINE)
    assert outcome.answer == b""
    assert outcome.seconds < TIMEOUT + MARGIN


async def test_an_idle_keep_alive_connection_is_closed(limited: GatewayUnderTest) -> None:
    request = f"GET {TOOL_PATH} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    outcome = await idle(limited.port, alice_context(limited), deadline=DEADLINE, first=request)
    assert outcome.status == 200
    assert outcome.seconds < TIMEOUT + MARGIN


async def test_connections_above_the_limit_get_503(
    gw_pki: GatewayPKI, backends: Backends, odd_backends: OddBackends
) -> None:
    settings = gateway_settings(gw_pki, backends, odd_backends)
    settings = settings.model_copy(
        update={"limits": settings.limits.model_copy(update={"max_connections": 2})}
    )
    async with serving(build_config(settings, create_app(settings), loop="asyncio")) as (gw,):
        context = gw_pki.client_context(gw_pki.alice)
        async with (
            httpx.AsyncClient(verify=context, base_url=gw.url) as one,
            httpx.AsyncClient(verify=context, base_url=gw.url) as two,
            httpx.AsyncClient(verify=context, base_url=gw.url) as three,
        ):
            assert (await one.get(TOOL_PATH)).status_code == 200
            assert (await two.get(TOOL_PATH)).status_code == 200
            refused = await three.get(TOOL_PATH)
            assert refused.status_code == 503
            assert refused.headers["connection"] == "close"
    assert len(backends.seen()) == 2


def test_the_protocol_enforces_the_settings(gateway: GatewayUnderTest) -> None:
    config = build_config(gateway.app.settings, gateway.app)
    limits = gateway.app.settings.limits
    protocol_limits = config.http.limits  # type: ignore[union-attr]
    assert protocol_limits.max_head_bytes == limits.max_header_bytes + limits.max_url_bytes + 1024
    assert protocol_limits.header_timeout == limits.header_timeout == 10.0
    assert protocol_limits.body_timeout == limits.body_timeout == 60.0
    assert config.timeout_keep_alive == limits.keepalive_timeout == 5.0
    assert config.limit_concurrency == limits.max_connections + 1 == 1025
