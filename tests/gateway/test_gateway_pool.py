"""Keep-alive connections from the gateway to a backend."""

from __future__ import annotations

import asyncio

import httpx
from gateway.gateway_harness import (
    Backends,
    GatewayPKI,
    GatewayUnderTest,
    OddBackends,
    backend_config,
    gateway_settings,
    make_backend,
    serving,
)

from toolforge_gateway.app import create_app
from toolforge_gateway.server import build_config
from toolforge_gateway.settings import RouteSettings


async def test_sequential_requests_share_one_connection(
    alice: httpx.AsyncClient, backends: Backends
) -> None:
    for _ in range(5):
        assert (await alice.get("/jobs/v1/tool/alice/echo")).status_code == 200
    assert len(backends.jobs.peers) == 5
    assert len(set(backends.jobs.peers)) == 1


async def test_concurrent_requests_open_more_connections(
    gateway: GatewayUnderTest, backends: Backends
) -> None:
    """Positive control for the test above: the backend can tell connections apart."""
    async with gateway.client(gateway.pki.alice) as client:
        responses = await asyncio.gather(
            *(client.get("/jobs/v1/tool/alice/slow?seconds=0.2") for _ in range(4))
        )
    assert [response.status_code for response in responses] == [200] * 4
    assert len(set(backends.jobs.peers)) == 4


async def test_connection_closed_by_the_backend_is_not_reused(
    gw_pki: GatewayPKI, backends: Backends, odd_backends: OddBackends
) -> None:
    """The backend closes idle connections after 0.2 s, long before the gateway's own
    keep-alive expiry: the next request must notice and connect anew instead of failing."""
    eager = make_backend("jobs", gw_pki)
    async with serving(
        backend_config(eager.app, gw_pki, "jobs-api-server", timeout_keep_alive=0.2)
    ) as (eager_server,):
        settings = gateway_settings(gw_pki, backends, odd_backends)
        settings = settings.model_copy(
            update={"routes": {"jobs": RouteSettings(url=eager_server.url, keepalive_expiry=60)}}
        )
        app = create_app(settings)
        async with (
            serving(build_config(settings, app, loop="asyncio")) as (gateway,),
            httpx.AsyncClient(
                base_url=gateway.url, verify=gw_pki.client_context(gw_pki.alice)
            ) as client,
        ):
            first = await client.get("/jobs/v1/tool/alice/echo")
            await asyncio.sleep(0.6)  # the backend has closed the idle connection by now
            second = await client.get("/jobs/v1/tool/alice/echo")
    assert (first.status_code, second.status_code) == (200, 200)
    assert len(set(eager.peers)) == 2
