"""The uvicorn protocols fill the ASGI TLS extension, checked over real TLS sockets."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import httpx
import pytest
from cryptography import x509
from fastapi import FastAPI, Request

from certs import AuthPKI, Pair
from tlsserver import serve
from toolforge_admin.pki import load_cert
from toolforge_auth.tls import server_ssl_context, tls_extension
from toolforge_auth.uvicorn import TLSH11Protocol, TLSHttpToolsProtocol

# IANA numbers (RFC 8446 B.4, RFC 5289 3.2).
TLS_AES_256_GCM_SHA384 = 0x1302
ECDHE_ECDSA_AES256_GCM_SHA384 = 0xC02C

PROTOCOLS: list[type[asyncio.Protocol] | str] = [
    TLSHttpToolsProtocol,
    TLSH11Protocol,
    "toolforge_auth.uvicorn:TLSHttpToolsProtocol",  # the form `uvicorn --http` takes
]


def echo_app() -> FastAPI:
    app = FastAPI()

    @app.get("/tls")
    async def tls(request: Request) -> dict[str, Any] | None:
        extension = tls_extension(request.scope)
        return dict(extension) if extension is not None else None

    return app


def server_context(pki: AuthPKI, mode: str = "optional") -> ssl.SSLContext:
    return server_ssl_context(
        certfile=pki.path("jobs-api-server.crt"),
        keyfile=pki.path("jobs-api-server.key"),
        client_ca_files=[pki.path("cluster-ca.crt")],
        client_cert="required" if mode == "required" else "optional",
    )


def client_context(
    pki: AuthPKI, pair: Pair | None, *, max_version: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki.path("backend-ca.crt"))
    if pair is not None:
        context.load_cert_chain(pair.cert, pair.key)
    if max_version is not None:
        context.maximum_version = max_version
    return context


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_client_certificate_reaches_the_app(auth_pki: AuthPKI, protocol: Any) -> None:
    tool = auth_pki.client(auth_pki.platform.cluster_ca, "tls-tool", "foo", ["toolforge"])
    async with (
        serve(echo_app(), server_context(auth_pki), http=protocol) as url,
        httpx.AsyncClient(verify=client_context(auth_pki, tool)) as client,
    ):
        # Two requests on one keep-alive connection: both carry the extension.
        for _ in range(2):
            response = await client.get(f"{url}/tls")
            assert response.status_code == 200
            tls = response.json()
            assert tls["client_cert_name"] == "CN=foo,O=toolforge"
            assert len(tls["client_cert_chain"]) == 1
            sent = load_cert(tool.cert)
            got = x509.load_pem_x509_certificate(tls["client_cert_chain"][0].encode())
            assert got == sent
            assert tls["tls_version"] == 0x0304
            assert tls["cipher_suite"] == TLS_AES_256_GCM_SHA384
            assert tls["client_cert_error"] is None


async def test_tls_1_2_is_reported(auth_pki: AuthPKI) -> None:
    tool = auth_pki.client(auth_pki.platform.cluster_ca, "tls12-tool", "foo", ["toolforge"])
    context = client_context(auth_pki, tool, max_version=ssl.TLSVersion.TLSv1_2)
    async with (
        serve(echo_app(), server_context(auth_pki)) as url,
        httpx.AsyncClient(verify=context) as client,
    ):
        tls = (await client.get(f"{url}/tls")).json()
    assert tls["tls_version"] == 0x0303
    assert tls["cipher_suite"] == ECDHE_ECDSA_AES256_GCM_SHA384


async def test_no_client_certificate_gives_an_empty_chain(auth_pki: AuthPKI) -> None:
    async with (
        serve(echo_app(), server_context(auth_pki, "optional")) as url,
        httpx.AsyncClient(verify=client_context(auth_pki, None)) as client,
    ):
        tls = (await client.get(f"{url}/tls")).json()
    assert tls["client_cert_chain"] == []
    assert tls["client_cert_name"] is None


@pytest.mark.parametrize("case", ["no certificate", "unknown CA"])
async def test_required_mode_refuses_the_handshake(auth_pki: AuthPKI, case: str) -> None:
    from toolforge_admin.pki import CertificateAuthority

    pair = None
    if case == "unknown CA":
        pair = auth_pki.client(CertificateAuthority.create("rogue"), "rogue", "foo", ["toolforge"])
    async with (
        serve(echo_app(), server_context(auth_pki, "required")) as url,
        httpx.AsyncClient(verify=client_context(auth_pki, pair)) as client,
    ):
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            await client.get(f"{url}/tls")


def test_server_context_refuses_old_tls(auth_pki: AuthPKI) -> None:
    context = server_context(auth_pki)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_OPTIONAL
    assert server_context(auth_pki, "required").verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(ValueError, match="at least one client CA"):
        server_ssl_context(
            certfile=auth_pki.path("jobs-api-server.crt"),
            keyfile=auth_pki.path("jobs-api-server.key"),
            client_ca_files=[],
            client_cert="optional",
        )
