"""One builds API instance served over real TLS on loopback, called as the gateway calls it
(backend client certificate + ``ssl-client-subject-dn``), with the cluster's builds-api
identity and, optionally, a real registry (:class:`toolforge_dev.registry.LocalRegistry`)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from tlsserver import serve
from toolforge_auth.tls import server_ssl_context
from toolforge_builds.app import create_app
from toolforge_builds.settings import BuildsSettings
from toolforge_dev.cluster import Cluster
from toolforge_dev.registry import LocalRegistry

SOURCE = "https://gitlab.wikimedia.org/toolforge-repos/sample-python-buildpack-app"


def registry_settings(registry: LocalRegistry) -> dict[str, Any]:
    """The builds API settings that point at ``registry`` with its credentials."""
    return {
        "registry": registry.address,
        "registry_url": registry.url,
        "registry_ca_file": registry.ca_file,
        "registry_username": registry.credentials.username,
        "registry_password": registry.credentials.password,
    }


def builds_settings(
    cluster: Cluster, registry: LocalRegistry | None = None, **overrides: Any
) -> BuildsSettings:
    pki = cluster.pki_dir
    values: dict[str, Any] = {
        "kubeconfig": cluster.service_kubeconfig("builds-api"),
        "tls_cert_file": pki / "builds-api-server.crt",
        "tls_key_file": pki / "builds-api-server.key",
        "backend_ca_file": pki / "backend-ca.crt",
        "logs_poll_seconds": 0.2,
        "ls_remote_timeout_seconds": 10,
    }
    if registry is not None:
        values.update(registry_settings(registry))
    values.update(overrides)
    return BuildsSettings(**values)


class Gateway:
    """Calls one builds API instance as the gateway does (backend client cert + identity)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def call(self, method: str, tool: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"ssl-client-subject-dn": f"CN={tool},O=toolforge"}
        return await self.client.request(
            method, f"/v1/tool/{tool}{path}", headers=headers, **kwargs
        )

    async def start(self, tool: str, **body: Any) -> httpx.Response:
        return await self.call("POST", tool, "/builds", json={"source_url": SOURCE, **body})


@asynccontextmanager
async def builds_api(
    cluster: Cluster,
    registry: LocalRegistry | None = None,
    *,
    settings: BuildsSettings | None = None,
    **overrides: Any,
) -> AsyncIterator[Gateway]:
    """Serve a builds API with ``settings`` (default: :func:`builds_settings`) and yield a
    :class:`Gateway` to it."""
    settings = settings or builds_settings(cluster, registry, **overrides)
    context = server_ssl_context(
        certfile=settings.tls_cert_file,
        keyfile=settings.tls_key_file,
        client_ca_files=[settings.backend_ca_file],
        client_cert="optional",
    )
    client_context = ssl.create_default_context(cafile=str(settings.backend_ca_file))
    client_context.load_cert_chain(
        cluster.pki_dir / "gateway-backend-client.crt",
        cluster.pki_dir / "gateway-backend-client.key",
    )
    async with (
        serve(create_app(settings), context) as url,
        httpx.AsyncClient(base_url=url, verify=client_context, timeout=60) as client,
    ):
        yield Gateway(client)
