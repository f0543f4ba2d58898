"""Fixtures of the envvars tests: the API served over real TLS on the real cluster with its
own identity (user ``toolforge-envvars-api``), called as the gateway calls it."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
from jobs.support import onboarded_tool

from tlsserver import serve
from toolforge_auth.tls import server_ssl_context
from toolforge_dev.cluster import Cluster
from toolforge_dev.pytest_plugin import Tool
from toolforge_envvars.app import create_app
from toolforge_envvars.settings import EnvvarsSettings


@dataclass(frozen=True)
class EnvvarsAPI:
    """A served envvars API and how to call it as the gateway for a tool."""

    url: str
    pki: Path
    settings: EnvvarsSettings

    def client(self, tool: str) -> httpx.AsyncClient:
        """A client presenting the gateway's certificate and ``tool``'s identity header."""
        context = ssl.create_default_context(cafile=self.pki / "backend-ca.crt")
        context.load_cert_chain(
            self.pki / "gateway-backend-client.crt", self.pki / "gateway-backend-client.key"
        )
        return httpx.AsyncClient(
            base_url=f"{self.url}/v1/tool/{tool}",
            verify=context,
            headers={"ssl-client-subject-dn": f"CN={tool},O=toolforge"},
            timeout=httpx.Timeout(60.0),
        )


def envvars_settings(cluster: Cluster, **overrides: Any) -> EnvvarsSettings:
    pki = cluster.pki_dir
    values: dict[str, Any] = {
        "tls_cert_file": pki / "envvars-api-server.crt",
        "tls_key_file": pki / "envvars-api-server.key",
        "backend_ca_file": pki / "backend-ca.crt",
        "kubeconfig": cluster.service_kubeconfig("envvars-api"),
        **overrides,
    }
    return EnvvarsSettings(**values)


async def serve_envvars_api(settings: EnvvarsSettings, pki: Path) -> AsyncIterator[EnvvarsAPI]:
    context = server_ssl_context(
        certfile=settings.tls_cert_file,
        keyfile=settings.tls_key_file,
        client_ca_files=[settings.backend_ca_file],
        client_cert="optional",
    )
    async with serve(create_app(settings), context, timeout_graceful_shutdown=5) as url:
        yield EnvvarsAPI(url=url, pki=pki, settings=settings)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def envvars_api(cluster: Cluster) -> AsyncIterator[EnvvarsAPI]:
    """The envvars API on the real cluster, at most 4 variables per tool (quota tests)."""
    async for api in serve_envvars_api(envvars_settings(cluster, max_variables=4), cluster.pki_dir):
        yield api


@pytest_asyncio.fixture(loop_scope="module")
async def fresh_tool(cluster: Cluster) -> AsyncIterator[Tool]:
    """A tool of one test (the module's event loop)."""
    async with onboarded_tool(cluster) as tool:
        yield tool


@pytest_asyncio.fixture(loop_scope="module")
async def second_tool(cluster: Cluster) -> AsyncIterator[Tool]:
    """Another tool of one test, for isolation."""
    async with onboarded_tool(cluster) as tool:
        yield tool
