"""TLS on both sides of the gateway, over real sockets with real certificates.

Clients whose certificate the gateway cannot verify never reach HTTP; clients without a
certificate do, and get 401 outside the public paths (``test_gateway_anonymous.py``); backends
accept only the gateway's backend-CA certificate.
"""

from __future__ import annotations

import asyncio
import ssl

import httpx
import pytest
from gateway.gateway_harness import Backends, GatewayPKI, GatewayUnderTest
from prometheus_client import CollectorRegistry

from certs import Pair
from toolforge_gateway.server import build_config


def total_requests(registry: CollectorRegistry) -> float:
    """Requests the gateway app has counted, over all routes and statuses."""
    return sum(
        sample.value
        for family in registry.collect()
        if family.name == "toolforge_gateway_requests"
        for sample in family.samples
        if sample.name == "toolforge_gateway_requests_total"
    )


async def http_over_tls(port: int, context: ssl.SSLContext) -> bytes:
    """Open a TLS connection, send ``GET /healthz`` and return what the server answers.

    With TLS 1.3 the server checks the client certificate after the client considers the
    handshake done; when that check fails, asyncio's server closes the connection (without
    flushing the alert), so the client reads end-of-stream: ``b""`` means refused in the
    handshake, before any HTTP.
    """
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
    )
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
        await writer.drain()
        return await asyncio.wait_for(reader.read(4096), timeout=5)
    finally:
        writer.close()


def pair_of(pki: GatewayPKI, name: str) -> Pair | None:
    return None if name == "none" else getattr(pki, name)


@pytest.mark.parametrize(
    "certificate",
    [
        "unknown_ca_alice",
        "expired_alice",
        # A CN=alice,O=toolforge certificate from the backend CA is not a tool certificate.
        "backend_ca_alice",
    ],
)
async def test_gateway_refuses_unverifiable_clients_in_the_handshake(
    gateway: GatewayUnderTest, certificate: str
) -> None:
    context = gateway.pki.client_context(pair_of(gateway.pki, certificate))
    assert await http_over_tls(gateway.port, context) == b""
    assert total_requests(gateway.app.metrics.registry) == 0


async def test_trusted_client_passes_the_handshake(gateway: GatewayUnderTest) -> None:
    """The positive control for the refusals above: same helper, the tool's real certificate."""
    answer = await http_over_tls(gateway.port, gateway.pki.client_context(gateway.pki.alice))
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert total_requests(gateway.app.metrics.registry) == 1


async def test_client_without_certificate_passes_the_handshake_and_gets_401(
    gateway: GatewayUnderTest,
) -> None:
    """The TLS layer asks for a certificate but does not require one; the refusal comes at
    the HTTP layer (the gateway's own /healthz is not one of the public paths)."""
    answer = await http_over_tls(gateway.port, gateway.pki.client_context(None))
    assert answer.startswith(b"HTTP/1.1 401 ")
    assert b"client certificate is required" in answer
    assert total_requests(gateway.app.metrics.registry) == 1


def test_certificate_with_someone_elses_key_cannot_be_presented(gw_pki: GatewayPKI) -> None:
    """Cert A with key B: OpenSSL refuses the pair before any handshake (a server could not
    verify the CertificateVerify signature either)."""
    context = ssl.create_default_context(cafile=gw_pki.path("cluster-ca.crt"))
    with pytest.raises(ssl.SSLError, match="KEY_VALUES_MISMATCH"):
        context.load_cert_chain(gw_pki.alice.cert, gw_pki.bob.key)


async def test_gateway_speaks_tls_1_2_and_nothing_older(gateway: GatewayUnderTest) -> None:
    config = build_config(gateway.app.settings, gateway.app)
    config.load()
    assert config.ssl is not None
    assert config.ssl.minimum_version == ssl.TLSVersion.TLSv1_2
    assert config.ssl.verify_mode == ssl.CERT_OPTIONAL
    tls12 = gateway.pki.client_context(gateway.pki.alice)
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    answer = await http_over_tls(gateway.port, tls12)
    assert answer.startswith(b"HTTP/1.1 200 ")


async def test_service_certificates_come_from_the_extra_ca(gateway: GatewayUnderTest) -> None:
    async with gateway.client(gateway.pki.builder) as client:
        response = await client.get("/jobs/v1/admin/echo")
    assert response.status_code == 200
    assert response.json()["identity"] == "CN=service:builder,O=toolforge"


# -- backends: reachable only with the gateway's certificate ---------------------------------


def backend_client(pki: GatewayPKI, pair: Pair | None) -> httpx.AsyncClient:
    return httpx.AsyncClient(verify=pki.client_context(pair, ca="backend-ca.crt"), timeout=10)


async def test_backend_refuses_a_tool_certificate_in_the_handshake(
    gw_pki: GatewayPKI, backends: Backends
) -> None:
    port = int(backends.jobs.url.rsplit(":", 1)[1])
    context = gw_pki.client_context(gw_pki.alice, ca="backend-ca.crt")
    assert await http_over_tls(port, context) == b""
    assert backends.jobs.seen == []
    # Positive control: without a certificate the same backend answers over HTTP.
    answer = await http_over_tls(port, gw_pki.client_context(None, ca="backend-ca.crt"))
    assert answer.startswith(b"HTTP/1.1 404 ")


async def test_backend_without_client_certificate_is_401(
    gw_pki: GatewayPKI, backends: Backends
) -> None:
    async with backend_client(gw_pki, None) as client:
        response = await client.get(
            f"{backends.jobs.url}/v1/tool/alice/echo",
            headers={"ssl-client-subject-dn": "CN=alice,O=toolforge"},
        )
    assert response.status_code == 401


async def test_backend_with_a_backend_ca_cert_that_is_not_the_gateway_is_403(
    gw_pki: GatewayPKI, backends: Backends
) -> None:
    async with backend_client(gw_pki, gw_pki.backend_ca_alice) as client:
        response = await client.get(
            f"{backends.jobs.url}/v1/tool/alice/echo",
            headers={"ssl-client-subject-dn": "CN=alice,O=toolforge"},
        )
    assert response.status_code == 403


async def test_backend_accepts_the_gateway_certificate(
    gw_pki: GatewayPKI, backends: Backends
) -> None:
    """Positive control: the gateway's backend-client certificate is what the backends want."""
    gateway_pair = Pair(
        gw_pki.path("gateway-backend-client.crt"), gw_pki.path("gateway-backend-client.key")
    )
    async with backend_client(gw_pki, gateway_pair) as client:
        response = await client.get(f"{backends.jobs.url}/v1/peer/echo")
    assert response.status_code == 200
    assert response.json()["identity"] == "CN=toolforge-api-gateway,O=toolforge"
