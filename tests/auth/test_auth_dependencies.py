"""GatewayPeer, CurrentIdentity and CurrentTool on a real TLS backend.

The backend serves like the jobs and builds APIs: TLS with an optional client certificate
verified against the backend CA. Only the gateway's certificate makes the identity header count.
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from backends import backend_app, backend_context
from certs import AuthPKI, Pair
from tlsserver import serve
from toolforge_admin.pki import CertificateAuthority, load_cert
from toolforge_auth.dependencies import GatewayVerifier
from toolforge_auth.settings import AuthSettings

DN = "ssl-client-subject-dn"


def client(pki: AuthPKI, pair: Pair | None) -> httpx.AsyncClient:
    context = ssl.create_default_context(cafile=pki.path("backend-ca.crt"))
    if pair is not None:
        context.load_cert_chain(pair.cert, pair.key)
    return httpx.AsyncClient(verify=context)


@pytest.fixture
def gateway(auth_pki: AuthPKI) -> Pair:
    return Pair(
        auth_pki.path("gateway-backend-client.crt"), auth_pki.path("gateway-backend-client.key")
    )


@pytest.fixture
async def backend(auth_pki: AuthPKI) -> AsyncIterator[str]:
    async with serve(backend_app(auth_pki), backend_context(auth_pki)) as url:
        yield url


async def test_gateway_forwards_the_tool(auth_pki: AuthPKI, backend: str, gateway: Pair) -> None:
    async with client(auth_pki, gateway) as c:
        response = await c.get(f"{backend}/v1/tool/foo/whoami", headers={DN: "CN=foo,O=toolforge"})
        assert response.status_code == 200
        assert response.json() == {"tool": "foo"}
        peer = await c.get(f"{backend}/v1/peer")
        assert peer.json() == {"peer": "CN=toolforge-api-gateway,O=toolforge"}
        service = await c.get(f"{backend}/v1/whoami", headers={DN: "CN=service:mailer,O=toolforge"})
        assert service.json() == {"cn": "service:mailer"}


@pytest.mark.parametrize(
    ("path", "headers", "status", "message"),
    [
        ("/v1/tool/bar/whoami", [(DN, "CN=foo,O=toolforge")], 403, "tool 'foo' may not act on"),
        ("/v1/tool/foo/whoami", [(DN, "CN=service:x,O=toolforge")], 403, "service:x may not"),
        ("/v1/tool/foo/whoami", [], 401, "exactly one ssl-client-subject-dn header"),
        (
            "/v1/tool/foo/whoami",
            [(DN, "CN=foo,O=toolforge"), (DN, "CN=foo,O=toolforge")],
            401,
            "exactly one",
        ),
        ("/v1/tool/foo/whoami", [(DN, "CN=foo\\,O=toolforge,O=x")], 401, "invalid identity"),
        ("/v1/tool/foo/whoami", [(DN, "CN=foo,O=system:masters")], 401, "invalid identity"),
    ],
)
async def test_identity_rules(
    auth_pki: AuthPKI,
    backend: str,
    gateway: Pair,
    path: str,
    headers: list[tuple[str, str]],
    status: int,
    message: str,
) -> None:
    async with client(auth_pki, gateway) as c:
        response = await c.get(f"{backend}{path}", headers=headers)
    assert response.status_code == status
    assert message in response.json()["detail"]


async def test_forged_header_without_gateway_certificate(auth_pki: AuthPKI, backend: str) -> None:
    async with client(auth_pki, None) as c:
        response = await c.get(f"{backend}/v1/tool/foo/whoami", headers={DN: "CN=foo,O=toolforge"})
        assert response.status_code == 401
        assert "through the API gateway" in response.json()["detail"]
        # Health checks need no certificate.
        assert (await c.get(f"{backend}/v1/healthz")).status_code == 200


async def test_tool_certificate_is_refused_at_the_handshake(
    auth_pki: AuthPKI, backend: str
) -> None:
    tool = auth_pki.client(auth_pki.platform.cluster_ca, "dep-tool", "foo", ["toolforge"])
    async with client(auth_pki, tool) as c:
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            await c.get(f"{backend}/v1/tool/foo/whoami", headers={DN: "CN=foo,O=toolforge"})


async def test_other_backend_ca_certificate_is_not_the_gateway(
    auth_pki: AuthPKI, backend: str
) -> None:
    intruder = auth_pki.client(auth_pki.platform.backend_ca, "intruder", "jobs-api", ["toolforge"])
    async with client(auth_pki, intruder) as c:
        response = await c.get(f"{backend}/v1/tool/foo/whoami", headers={DN: "CN=foo,O=toolforge"})
    assert response.status_code == 403
    assert response.json()["detail"] == "the client certificate is not the API gateway's"


async def test_gateway_cn_from_another_ca_is_refused_even_if_tls_trusts_it(
    auth_pki: AuthPKI,
) -> None:
    """Defence in depth: a backend whose TLS context wrongly trusts the cluster CA still
    refuses a cluster-CA certificate named like the gateway."""
    fake = auth_pki.client(
        auth_pki.platform.cluster_ca, "fake-gateway", "toolforge-api-gateway", ["toolforge"]
    )
    context = backend_context(auth_pki, auth_pki.path("cluster-ca.crt"))
    async with serve(backend_app(auth_pki), context) as url, client(auth_pki, fake) as c:
        response = await c.get(f"{url}/v1/tool/foo/whoami", headers={DN: "CN=foo,O=toolforge"})
    assert response.status_code == 403
    assert response.json()["detail"] == "the client certificate is not issued by the backend CA"


def test_verifier_checks_validity_period(auth_pki: AuthPKI) -> None:
    verifier = GatewayVerifier.from_settings(
        AuthSettings(backend_ca_file=auth_pki.path("backend-ca.crt"))
    )
    cert = load_cert(auth_pki.path("gateway-backend-client.crt"))
    assert verifier.problem(cert) is None
    later = cert.not_valid_after_utc + dt.timedelta(seconds=1)
    assert verifier.problem(cert, now=later) == "the client certificate is not valid at this time"
    other = GatewayVerifier(
        cas=[CertificateAuthority.create("other").cert], allowed_cns=verifier.allowed_cns
    )
    assert other.problem(cert) == "the client certificate is not issued by the backend CA"


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TOOLFORGE_AUTH_BACKEND_CA_FILE", str(tmp_path / "ca.crt"))
    monkeypatch.setenv("TOOLFORGE_AUTH_GATEWAY_PEER_CNS", '["gw-a", "gw-b"]')
    settings = AuthSettings()  # type: ignore[call-arg]
    assert settings.backend_ca_file == tmp_path / "ca.crt"
    assert settings.gateway_peer_cns == ["gw-a", "gw-b"]


def test_current_tool_declares_the_tool_path_parameter(auth_pki: AuthPKI) -> None:
    spec = backend_app(auth_pki).openapi()
    parameters = spec["paths"]["/v1/tool/{tool}/whoami"]["get"]["parameters"]
    assert {"name": "tool", "in": "path", "required": True}.items() <= parameters[0].items()
