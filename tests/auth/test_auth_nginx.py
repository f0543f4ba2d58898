"""toolforge_auth behind the seed gateway: nginx with ``ssl_verify_client on`` and
``proxy_set_header ssl-client-subject-dn $ssl_client_s_dn``, mTLS to the backend."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from backends import backend_app, backend_context
from certs import AuthPKI, Pair
from tlsserver import serve
from toolforge_dev.seed_gateway import SeedGateway, run_seed_gateway

DN = "ssl-client-subject-dn"


@pytest.fixture
async def nginx(auth_pki: AuthPKI, tmp_path: Path) -> AsyncIterator[str]:
    async with serve(backend_app(auth_pki), backend_context(auth_pki)) as backend:
        seed = SeedGateway(
            directory=tmp_path / "nginx",
            pki=auth_pki.dir,
            port=0,  # a socket bound here and handed to nginx: no port to race for
            routes={"jobs": backend},
            workers=1,
        )
        with run_seed_gateway(seed) as url:
            yield url


def tool_client(pki: AuthPKI, pair: Pair | None) -> httpx.AsyncClient:
    context = ssl.create_default_context(cafile=pki.path("cluster-ca.crt"))
    if pair is not None:
        context.load_cert_chain(pair.cert, pair.key)
    return httpx.AsyncClient(verify=context)


async def test_tool_identity_through_nginx(auth_pki: AuthPKI, nginx: str) -> None:
    foo = auth_pki.client(auth_pki.platform.cluster_ca, "nginx-foo", "foo", ["toolforge"])
    async with tool_client(auth_pki, foo) as client:
        response = await client.get(f"{nginx}/jobs/v1/tool/foo/whoami")
        assert response.status_code == 200, response.text
        assert response.json() == {"tool": "foo"}

        # Another tool's path: the backend refuses, from the DN nginx forwarded.
        other = await client.get(f"{nginx}/jobs/v1/tool/bar/whoami")
        assert other.status_code == 403
        assert other.json()["detail"] == "tool 'foo' may not act on tool 'bar'"

        # A client-sent identity header is replaced by nginx, never forwarded.
        forged = await client.get(
            f"{nginx}/jobs/v1/tool/bar/whoami", headers={DN: "CN=bar,O=toolforge"}
        )
        assert forged.status_code == 403
        assert forged.json()["detail"] == "tool 'foo' may not act on tool 'bar'"


async def test_nginx_refuses_without_client_certificate(auth_pki: AuthPKI, nginx: str) -> None:
    async with tool_client(auth_pki, None) as client:
        response = await client.get(f"{nginx}/jobs/v1/tool/foo/whoami")
    # nginx answers 400 "No required SSL certificate was sent" and forwards nothing.
    assert response.status_code == 400
    assert "No required SSL certificate" in response.text


async def test_cluster_admin_certificate_is_no_identity(auth_pki: AuthPKI, nginx: str) -> None:
    admin = auth_pki.client(
        auth_pki.platform.cluster_ca, "nginx-admin", "admin", ["system:masters"]
    )
    async with tool_client(auth_pki, admin) as client:
        response = await client.get(f"{nginx}/jobs/v1/tool/admin/whoami")
    assert response.status_code == 401
    assert "invalid identity" in response.json()["detail"]
