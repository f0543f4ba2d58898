"""Authorisation through the running gateway: who may call what, and that refusals never
reach a backend."""

from __future__ import annotations

import httpx
import pytest
from gateway.gateway_harness import Backends, GatewayUnderTest, assert_error


@pytest.mark.parametrize(
    ("path", "status", "text"),
    [
        ("/jobs/v1/tool/bob/echo", 403, "'alice' may not act on tool 'bob'"),
        ("/builds/v1/tool/bob/echo?x=1", 403, "may not act on tool 'bob'"),
        # The tool segment must be the name, not start with it.
        ("/jobs/v1/tool/alice2/echo", 403, "may not act on tool 'alice2'"),
        ("/jobs/v1/tool/alic/echo", 403, "may not act on tool 'alic'"),
        # Outside /v1/tool/<name>/: nothing for tools.
        ("/jobs/v1/admin/echo", 403, "tools may only call /jobs/v1/tool/<tool name>/"),
        ("/jobs/v1/tool", 403, "tools may only call"),
        # An encoded slash would make the raw and the decoded path differ in segments.
        ("/jobs/v1/tool/alice%2F..%2Fbob/echo", 400, "%2F"),
        ("/jobs%2Fv1/tool/alice/echo", 400, "%2F"),
        ("/nosuchapi/v1/tool/alice/echo", 404, "no API is served under /nosuchapi"),
        ("/", 404, "no API"),
    ],
)
async def test_tool_is_confined_to_its_own_paths(
    gateway: GatewayUnderTest,
    backends: Backends,
    alice: httpx.AsyncClient,
    path: str,
    status: int,
    text: str,
) -> None:
    response = await alice.get(path)
    assert_error(response, status, text)
    assert backends.seen() == []
    assert response.headers["x-request-id"]


@pytest.mark.parametrize(
    "target",
    [
        b"/jobs/v1/tool/alice/../bob/echo",
        b"/jobs/v1/tool/alice/./echo",
        b"/jobs/v1/tool/alice/%2e%2e/%2E%2E/tool/bob/echo",
        b"/jobs/openapi.json/../v1/tool/bob/echo",
    ],
)
async def test_dot_segments_are_refused(
    gateway: GatewayUnderTest, backends: Backends, target: bytes
) -> None:
    """A dot segment could resolve to another tool's path behind the gateway."""
    status, body = await gateway.raw_get(gateway.pki.alice, target)
    assert status == 400
    assert "'.' or '..'" in body["messages"]["error"][0]
    assert backends.seen() == []


async def test_tool_reaches_its_own_paths(alice: httpx.AsyncClient, backends: Backends) -> None:
    """Positive control for the refusals: the same client on its own paths."""
    for api in ("jobs", "builds"):
        response = await alice.get(f"/{api}/v1/tool/alice/echo")
        assert response.status_code == 200
        assert response.json()["identity"] == "CN=alice,O=toolforge"
        assert response.json()["backend"] == api
    assert backends.seen() == [("GET", "/v1/tool/alice/echo")] * 2


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/jobs/v1/admin/echo", True),
        ("/jobs/v1/admin/", False),  # the backend has no such route, but the gateway allows it
        ("/builds/v1/admin/echo", True),
        # Patterns match the whole path, not a prefix, and only on the route they name.
        ("/builds/v1/admin/echo/more", False),
        ("/builds/v1/admin/echoes", False),
        ("/jobs/v1/admin", False),
        ("/jobs/v1/tool/alice/echo", False),
        ("/builds/v1/peer/echo", False),
    ],
)
async def test_service_identity_only_on_its_patterns(
    gateway: GatewayUnderTest, backends: Backends, path: str, allowed: bool
) -> None:
    async with gateway.client(gateway.pki.builder) as client:
        response = await client.get(path)
    if path == "/jobs/v1/admin/":
        # Allowed by r"/jobs/v1/admin/.*": forwarded, and the backend answers 404 itself.
        assert response.status_code == 404
        assert backends.seen() == [("GET", "/v1/admin/")]
    elif allowed:
        assert response.status_code == 200
        assert response.json()["identity"] == "CN=service:builder,O=toolforge"
        assert len(backends.seen()) == 1
    else:
        assert_error(response, 403, "service:builder may not call")
        assert backends.seen() == []


async def test_service_without_patterns_is_refused_everywhere(
    gateway: GatewayUnderTest, backends: Backends
) -> None:
    async with gateway.client(gateway.pki.intruder) as client:
        for path in ("/jobs/v1/admin/echo", "/builds/v1/admin/echo", "/jobs/v1/tool/x/echo"):
            assert_error(await client.get(path), 403, "service:intruder may not call")
    assert backends.seen() == []


async def test_cluster_admin_certificate_is_not_a_toolforge_identity(
    gateway: GatewayUnderTest, backends: Backends
) -> None:
    """CN=kubernetes-admin,O=system:masters chains to the cluster CA, so it passes TLS, but it
    is refused on everything except the unauthenticated paths."""
    async with gateway.client(gateway.pki.admin) as client:
        for path in (
            "/jobs/v1/tool/alice/echo",
            "/jobs/v1/tool/kubernetes-admin/echo",
            "/jobs/v1/admin/echo",
            "/builds/v1/peer/echo",
        ):
            assert_error(await client.get(path), 403, "does not carry a Toolforge identity")
        assert backends.seen() == []
        for path in ("/healthz", "/metrics", "/openapi.json", "/jobs/openapi.json"):
            assert (await client.get(path)).status_code == 200, path
        health = await client.get("/builds/v1/healthz")
        assert health.status_code == 200
        assert health.json() == {"ok": True}
    # The unauthenticated paths were forwarded without any identity header.
    assert ("GET", "/v1/healthz") in backends.builds.seen


@pytest.mark.parametrize("certificate", ["alice", "builder", "intruder", "admin"])
async def test_unauthenticated_paths_for_any_trusted_certificate(
    gateway: GatewayUnderTest, certificate: str
) -> None:
    async with gateway.client(getattr(gateway.pki, certificate)) as client:
        for path in ("/jobs/v1/healthz", "/builds/openapi.json", "/healthz"):
            assert (await client.get(path)).status_code == 200, path


async def test_gateway_paths_answer_get_only(alice: httpx.AsyncClient) -> None:
    response = await alice.post("/healthz")
    assert_error(response, 405, "GET only")
    assert response.headers["allow"] == "GET, HEAD"
