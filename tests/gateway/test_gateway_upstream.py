"""The gateway's HTTP/1.1 client towards the backends (``upstream.py``), against backends that
answer in the less common ways HTTP/1.1 allows, or break: a body delimited by the close, a
response cut short, a HEAD answer, an interim 1xx, a pool with no free connection. Real TLS
sockets with the backend CA; the backends are small asyncio servers written for each case.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from gateway.gateway_harness import (
    Backends,
    GatewayPKI,
    OddBackends,
    assert_error,
    gateway_settings,
    serving,
)

from toolforge_auth.tls import client_ssl_context, server_ssl_context
from toolforge_gateway.app import create_app
from toolforge_gateway.server import build_config
from toolforge_gateway.settings import RouteSettings
from toolforge_gateway.upstream import Timeouts, UpstreamPool

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_backend(pki: GatewayPKI, handler: Handler) -> AsyncIterator[str]:
    """A TLS backend (backend CA, client certificate required) running ``handler`` per
    connection; yields its URL."""
    context = server_ssl_context(
        certfile=pki.path("jobs-api-server.crt"),
        keyfile=pki.path("jobs-api-server.key"),
        client_ca_files=[pki.path("backend-ca.crt")],
        client_cert="required",
    )
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=context)
    try:
        yield f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


@asynccontextmanager
async def gateway_to(
    pki: GatewayPKI, backends: Backends, odd: OddBackends, route: RouteSettings
) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway with route ``odd`` to ``route``; yields a client presenting alice."""
    settings = gateway_settings(pki, backends, odd)
    settings = settings.model_copy(update={"routes": {**settings.routes, "odd": route}})
    async with (
        serving(build_config(settings, create_app(settings), loop="asyncio")) as (gateway,),
        httpx.AsyncClient(
            base_url=gateway.url, verify=pki.client_context(pki.alice), timeout=10
        ) as client,
    ):
        yield client


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


async def test_body_delimited_by_the_close(
    gw_pki: GatewayPKI, backends: Backends, odd_backends: OddBackends
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
        writer.write(b"first part, ")
        await writer.drain()
        writer.write(b"and the rest")
        writer.close()

    async with (
        raw_backend(gw_pki, handler) as url,
        gateway_to(gw_pki, backends, odd_backends, RouteSettings(url=url)) as client,
    ):
        response = await client.get("/odd/v1/tool/alice/x")
        assert response.status_code == 200
        assert response.text == "first part, and the rest"
        # A second request needs (and gets) a new connection.
        assert (await client.get("/odd/v1/tool/alice/x")).text == "first part, and the rest"


async def test_a_response_cut_short_is_cut_short_for_the_client(
    gw_pki: GatewayPKI, backends: Backends, odd_backends: OddBackends
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
        await writer.drain()
        writer.close()

    async with (
        raw_backend(gw_pki, handler) as url,
        gateway_to(gw_pki, backends, odd_backends, RouteSettings(url=url)) as client,
    ):
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/odd/v1/tool/alice/x")
        metrics = (await client.get("/metrics")).text
    assert 'toolforge_gateway_upstream_errors_total{kind="read",route="odd"} 1.0' in metrics


async def test_head_has_no_body_and_the_next_request_works(
    gw_pki: GatewayPKI, backends: Backends, odd_backends: OddBackends
) -> None:
    """A HEAD answer announces a Content-Length but sends no body: the gateway must not wait
    for one, nor read the next answer as that body."""
    heads: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await read_head(reader)
            except asyncio.IncompleteReadError:
                writer.close()
                return
            heads.append(head)
            if head.startswith(b"HEAD "):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
            await writer.drain()

    async with (
        raw_backend(gw_pki, handler) as url,
        gateway_to(gw_pki, backends, odd_backends, RouteSettings(url=url)) as client,
    ):
        async with asyncio.timeout(5):
            head = await client.head("/odd/v1/tool/alice/x")
            get = await client.get("/odd/v1/tool/alice/x")
    assert (head.status_code, head.headers["content-length"], head.content) == (200, "5", b"")
    assert (get.status_code, get.content) == (200, b"hello")
    assert [h.split(b" ", 1)[0] for h in heads] == [b"HEAD", b"GET"]


async def test_an_interim_response_is_skipped(
    gw_pki: GatewayPKI, backends: Backends, odd_backends: OddBackends
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n")
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    async with (
        raw_backend(gw_pki, handler) as url,
        gateway_to(gw_pki, backends, odd_backends, RouteSettings(url=url)) as client,
    ):
        response = await client.get("/odd/v1/tool/alice/x")
    assert (response.status_code, response.content) == (201, b"ok")
    assert "link" not in response.headers


async def test_a_full_pool_is_503_after_the_pool_timeout(
    gw_pki: GatewayPKI, backends: Backends, odd_backends: OddBackends
) -> None:
    route = RouteSettings(url=backends.jobs.url, max_connections=1, connect_timeout=0.3)
    async with gateway_to(gw_pki, backends, odd_backends, route) as client:
        slow = asyncio.create_task(client.get("/odd/v1/tool/alice/slow?seconds=2"))
        await asyncio.wait_for(backends.jobs.request_seen.wait(), timeout=10)
        refused = await client.get("/odd/v1/tool/alice/echo")
        assert_error(refused, 503, "the odd API has no free connection")
        assert refused.headers["retry-after"] == "7"
        assert (await slow).status_code == 200
        # The connection is free again.
        assert (await client.get("/odd/v1/tool/alice/echo")).status_code == 200


async def test_a_waiting_request_gets_the_freed_connection(
    gw_pki: GatewayPKI, backends: Backends, odd_backends: OddBackends
) -> None:
    """Positive control for the test above: with a long enough pool timeout, the second
    request waits for the first one's connection and reuses it."""
    route = RouteSettings(url=backends.jobs.url, max_connections=1, connect_timeout=10)
    async with gateway_to(gw_pki, backends, odd_backends, route) as client:
        answers = await asyncio.gather(
            client.get("/odd/v1/tool/alice/slow?seconds=0.3"),
            client.get("/odd/v1/tool/alice/echo"),
        )
    assert [answer.status_code for answer in answers] == [200, 200]
    assert len(set(backends.jobs.peers)) == 1


async def test_a_protocol_switch_is_502(
    gw_pki: GatewayPKI, backends: Backends, odd_backends: OddBackends
) -> None:
    """The gateway relays HTTP only: a backend that answers 101 has answered wrongly."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n"
        )
        await writer.drain()

    async with (
        raw_backend(gw_pki, handler) as url,
        gateway_to(gw_pki, backends, odd_backends, RouteSettings(url=url)) as client,
    ):
        response = await client.get("/odd/v1/tool/alice/x")
    assert_error(response, 502, "the odd API sent an invalid response")


async def test_a_request_cancelled_while_waiting_for_the_pool_leaks_nothing(
    gw_pki: GatewayPKI, backends: Backends
) -> None:
    """A request that is cancelled (as uvicorn does past the drain time) while it waits for a
    connection gives up its place; the connection goes to the next request, not nowhere."""
    context = client_ssl_context(
        ca_file=gw_pki.path("backend-ca.crt"),
        certfile=gw_pki.path("gateway-backend-client.crt"),
        keyfile=gw_pki.path("gateway-backend-client.key"),
    )
    port = int(backends.jobs.url.rsplit(":", 1)[1])
    pool = UpstreamPool(
        context,
        host="127.0.0.1",
        port=port,
        max_connections=1,
        max_keepalive_connections=1,
        keepalive_expiry=30,
    )
    timeouts = Timeouts(connect=5, read=10, write=10, pool=10)
    dn = [(b"host", b"jobs"), (b"ssl-client-subject-dn", b"CN=alice,O=toolforge")]

    async def get(target: bytes) -> tuple[int, bytes]:
        response = await pool.request(b"GET", target, dn, b"", timeouts)
        try:
            return response.status, b"".join([chunk async for chunk in response])
        finally:
            await response.aclose()

    try:
        slow = asyncio.create_task(get(b"/v1/tool/alice/slow?seconds=0.5"))
        await asyncio.wait_for(backends.jobs.request_seen.wait(), timeout=10)
        waiting = asyncio.create_task(get(b"/v1/tool/alice/echo"))
        await asyncio.sleep(0.1)  # it is waiting for the one connection now
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert (await slow)[0] == 200
        async with asyncio.timeout(5):  # not the 10 s pool timeout: the connection is free
            status, _ = await get(b"/v1/tool/alice/echo")
        assert status == 200
        assert len(set(backends.jobs.peers)) == 1
    finally:
        await pool.aclose()
