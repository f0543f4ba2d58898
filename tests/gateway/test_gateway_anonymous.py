"""Clients without a certificate, and the tool header (issue 13, REFERENCE.md "Identity and the
gateway"): the TLS layer asks for a client certificate but does not require one, so the
unauthenticated paths answer without one; every other path is 401 at the HTTP layer and
nothing reaches a backend. The verified tool goes to the backends as ``x-toolforge-tool``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from gateway.gateway_harness import Backends, GatewayUnderTest, assert_error

FORGED = {
    "ssl-client-subject-dn": "CN=alice,O=toolforge",
    "x-toolforge-tool": "alice",
}


def forwarded(echo: dict[str, Any], name: str) -> list[str]:
    """Values of header ``name`` that the backend received (from its echo)."""
    return [value for key, value in echo["headers"] if key == name]


async def test_public_paths_answer_without_a_certificate(
    gateway: GatewayUnderTest, backends: Backends
) -> None:
    async with gateway.client(None) as anonymous:
        spec = await anonymous.get("/openapi.json")
        assert spec.status_code == 200
        assert set(spec.json()["paths"]) >= {"/jobs/v1/tool/{tool}/echo"}
        assert (await anonymous.get("/jobs/openapi.json")).json()["info"]["title"] == "jobs API"
        health = await anonymous.get("/builds/v1/healthz")
        assert (health.status_code, health.json()) == (200, {"ok": True})
        metrics = await anonymous.get("/jobs/v1/metrics", headers=FORGED)
    assert metrics.status_code == 200
    echo = metrics.json()
    # Forwarded, but with no identity at all: the forged headers were dropped.
    assert echo["path"] == "/v1/metrics"
    assert forwarded(echo, "ssl-client-subject-dn") == []
    assert forwarded(echo, "x-toolforge-tool") == []
    assert ("GET", "/v1/healthz") in backends.builds.seen
    assert ("GET", "/v1/metrics") in backends.jobs.seen


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/jobs/v1/tool/alice/echo"),
        ("POST", "/jobs/v1/tool/alice/echo"),
        ("GET", "/builds/v1/tool/alice/stream"),
        ("GET", "/jobs/v1/admin/echo"),
        ("GET", "/jobs/v1/peer/echo"),
        ("GET", "/jobs/v1/healthz/x"),
        ("GET", "/jobs/v1/metrics/"),
        ("GET", "/healthz"),
        ("GET", "/metrics"),
        ("GET", "/nosuchapi/openapi.json"),
        ("GET", "/"),
    ],
)
async def test_without_a_certificate_everything_else_is_401(
    gateway: GatewayUnderTest, backends: Backends, method: str, path: str
) -> None:
    async with gateway.client(None) as anonymous:
        response = await anonymous.request(method, path, headers=FORGED, content=b'{"x": 1}')
    assert_error(response, 401, "client certificate is required")
    assert backends.seen() == []


@pytest.mark.parametrize(
    "target",
    [
        b"/jobs/openapi.json/../v1/tool/alice/echo",
        b"/jobs/v1/healthz/../tool/alice/echo",
        b"/jobs/./v1/tool/alice/echo",
        b"/openapi.json/../jobs/v1/tool/alice/echo",
    ],
)
async def test_dot_segments_do_not_make_a_path_public(
    gateway: GatewayUnderTest, backends: Backends, target: bytes
) -> None:
    status, body = await gateway.raw_get(None, target)
    assert status == 401
    assert "client certificate is required" in body["messages"]["error"][0]
    assert backends.seen() == []


async def test_401_is_counted(gateway: GatewayUnderTest) -> None:
    async with gateway.client(None) as anonymous:
        assert (await anonymous.get("/jobs/v1/tool/alice/echo")).status_code == 401
    async with gateway.client(gateway.pki.alice) as alice:
        text = (await alice.get("/metrics")).text
    assert 'toolforge_gateway_requests_total{route="jobs",status="401"} 1.0' in text


@pytest.mark.parametrize("certificate", ["unknown_ca_alice", "expired_alice", "backend_ca_alice"])
async def test_a_bad_certificate_is_refused_even_on_public_paths(
    gateway: GatewayUnderTest, backends: Backends, certificate: str
) -> None:
    """Optional means optional, not unchecked: a certificate that does not verify fails the
    handshake whatever the path."""
    context = gateway.pki.client_context(getattr(gateway.pki, certificate))
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", gateway.port, ssl=context, server_hostname="127.0.0.1"
    )
    try:
        writer.write(b"GET /jobs/v1/healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
        await writer.drain()
        # TLS 1.3: the server checks the certificate after the client's Finished and closes.
        answer = await asyncio.wait_for(reader.read(4096), timeout=5)
    except (ConnectionError, OSError):
        answer = b""
    finally:
        writer.close()
    assert answer == b""
    assert backends.seen() == []


async def test_the_tool_header_is_the_verified_tool(alice: httpx.AsyncClient) -> None:
    response = await alice.get(
        "/jobs/v1/tool/alice/echo",
        headers=[
            ("X-Toolforge-Tool", "bob"),
            ("x-toolforge-tool", "alice"),
            ("ssl-client-subject-dn", "CN=bob,O=toolforge"),
        ],
    )
    assert response.status_code == 200
    echo = response.json()
    assert forwarded(echo, "x-toolforge-tool") == ["alice"]
    assert forwarded(echo, "ssl-client-subject-dn") == ["CN=alice,O=toolforge"]


@pytest.mark.parametrize(
    ("certificate", "path", "dn"),
    [
        ("builder", "/jobs/v1/admin/echo", ["CN=service:builder,O=toolforge"]),
        ("admin", "/jobs/v1/metrics", []),
    ],
)
async def test_no_tool_header_without_a_tool(
    gateway: GatewayUnderTest, certificate: str, path: str, dn: list[str]
) -> None:
    """A service or a certificate without a Toolforge identity is no tool: the header is not
    set, and what the client sent is dropped."""
    async with gateway.client(getattr(gateway.pki, certificate)) as client:
        response = await client.get(path, headers={"x-toolforge-tool": "alice"})
    assert response.status_code == 200
    echo = response.json()
    assert forwarded(echo, "x-toolforge-tool") == []
    assert forwarded(echo, "ssl-client-subject-dn") == dn
