"""Fixtures for the gateway tests: real certificates, real TLS sockets on loopback.

- ``gw_pki``: the platform PKI (cluster CA, backend CA, gateway and backend server certs) plus
  client certificates: tools ``alice`` and ``bob`` and a cluster admin from the cluster CA,
  services from a separate service CA, a tool from an unknown CA and an expired tool cert.
- ``backends``: two FastAPI apps (the "jobs" and "builds" APIs) behind mTLS that trust only the
  backend CA and echo what they received; every request they see is recorded.
- ``gateway``: the gateway served by uvicorn exactly as :func:`build_config` configures it,
  with routes to those backends and to deliberately broken ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from gateway.gateway_harness import (
    Backends,
    GatewayPKI,
    GatewayUnderTest,
    OddBackends,
    backend_config,
    gateway_settings,
    make_backend,
    refused_port,
    serving,
)

from certs import AuthPKI
from toolforge_admin.pki import CertificateAuthority, PlatformPKI
from toolforge_auth.tls import server_ssl_context
from toolforge_gateway.app import create_app
from toolforge_gateway.server import build_config


@pytest.fixture(scope="session")
def gw_pki(tmp_path_factory: pytest.TempPathFactory) -> GatewayPKI:
    directory = tmp_path_factory.mktemp("gateway-pki")
    auth = AuthPKI(directory, PlatformPKI.ensure(directory))
    cluster = auth.platform.cluster_ca
    service_ca = CertificateAuthority.create("toolforge-service-ca")
    service_ca.save(directory, "service-ca")
    unknown_ca = CertificateAuthority.create("toolforge-cluster-ca")  # same name, other key
    return GatewayPKI(
        auth=auth,
        service_ca_file=directory / "service-ca.crt",
        alice=auth.client(cluster, "alice", "alice", ["toolforge"]),
        bob=auth.client(cluster, "bob", "bob", ["toolforge"]),
        admin=auth.client(cluster, "admin", "kubernetes-admin", ["system:masters"]),
        builder=auth.client(service_ca, "builder", "service:builder", ["toolforge"]),
        intruder=auth.client(service_ca, "intruder", "service:intruder", ["toolforge"]),
        unknown_ca_alice=auth.client(unknown_ca, "unknown-alice", "alice", ["toolforge"]),
        expired_alice=auth.expired_client(cluster, "expired-alice", "alice"),
        backend_ca_alice=auth.client(
            auth.platform.backend_ca, "backend-alice", "alice", ["toolforge"]
        ),
    )


@pytest.fixture
async def backends(gw_pki: GatewayPKI) -> AsyncIterator[Backends]:
    jobs, builds = make_backend("jobs", gw_pki), make_backend("builds", gw_pki)
    async with serving(
        backend_config(jobs.app, gw_pki, "jobs-api-server"),
        backend_config(builds.app, gw_pki, "builds-api-server"),
        backend_config(jobs.app, gw_pki, "gateway-server"),
    ) as (jobs_server, builds_server, impostor):
        jobs.url, builds.url = jobs_server.url, builds_server.url
        yield Backends(jobs, builds, impostor.url)


@pytest.fixture
async def odd_backends(gw_pki: GatewayPKI) -> AsyncIterator[OddBackends]:
    """Misbehaving backends: one accepts TCP connections and never says anything (not even
    a TLS handshake); one completes TLS properly and then answers garbage instead of HTTP;
    and a port that refuses connections (held, so nothing else can listen there meanwhile)."""
    writers: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"THIS IS NOT HTTP\r\n\r\n")
        await writer.drain()
        writer.close()

    context = server_ssl_context(
        certfile=gw_pki.path("jobs-api-server.crt"),
        keyfile=gw_pki.path("jobs-api-server.key"),
        client_ca_files=[gw_pki.path("backend-ca.crt")],
        client_cert="required",
    )
    servers = [
        await asyncio.start_server(silent, "127.0.0.1", 0),
        await asyncio.start_server(garbage, "127.0.0.1", 0, ssl=context),
    ]
    try:
        with refused_port() as refused:
            silent_port, garbage_port = (int(s.sockets[0].getsockname()[1]) for s in servers)
            yield OddBackends(silent_port, garbage_port, refused)
    finally:
        for writer in writers:
            writer.close()
        for server in servers:
            server.close()
            await server.wait_closed()


@pytest.fixture
async def gateway(
    gw_pki: GatewayPKI, backends: Backends, odd_backends: OddBackends
) -> AsyncIterator[GatewayUnderTest]:
    settings = gateway_settings(gw_pki, backends, odd_backends)
    app = create_app(settings)
    async with serving(build_config(settings, app, loop="asyncio")) as (running,):
        yield GatewayUnderTest(running.url, running.port, app, running.server, running.task, gw_pki)


@pytest.fixture
async def alice(gateway: GatewayUnderTest) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway.client(gateway.pki.alice) as client:
        yield client
