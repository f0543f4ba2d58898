"""Helpers of the jobs API tests: the app served over real TLS, called as the gateway calls it.

- :func:`serve_jobs_api`: ``create_app(settings)`` served by uvicorn on loopback with the
  ``jobs-api-server`` certificate, trusting the backend CA (client certificate optional).
- :class:`JobsAPI`: clients for it - as the gateway (``gateway-backend-client`` certificate and
  ``ssl-client-subject-dn: CN=<tool>,O=toolforge``) or without a certificate - and its metrics.
- :func:`onboarded_tool`: a fresh tool; :func:`wait_for`: polling with a timeout;
  :func:`dead_kubeconfig`: a kubeconfig whose apiserver does not answer.

Fixtures built on these are in ``conftest.py``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tlsserver import serve
from toolforge_admin.onboarding import ClusterAccess, ToolOnboarder
from toolforge_auth.tls import server_ssl_context
from toolforge_dev.cli import admin_settings
from toolforge_dev.cluster import Cluster
from toolforge_dev.pytest_plugin import Tool, admin_kube, fresh_tool_name, new_admin_api
from toolforge_dev.web_manifests import jobs_api_web_settings
from toolforge_jobs.app import create_app
from toolforge_jobs.settings import JobsSettings


@dataclass(frozen=True)
class JobsAPI:
    """A served jobs API and the certificates to call it with."""

    url: str
    pki: Path
    settings: JobsSettings

    def _context(self, *, gateway: bool) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.pki / "backend-ca.crt")
        if gateway:
            context.load_cert_chain(
                self.pki / "gateway-backend-client.crt", self.pki / "gateway-backend-client.key"
            )
        return context

    def client(
        self, tool: str | None = None, *, gateway: bool = True, dn: str | None = None
    ) -> httpx.AsyncClient:
        """A client as the gateway (``gateway``: with its certificate) forwarding the identity
        of ``tool`` (or the subject DN ``dn``; no identity header when neither is given)."""
        dn = dn or (f"CN={tool},O=toolforge" if tool else None)
        headers = {"ssl-client-subject-dn": dn} if dn else {}
        return httpx.AsyncClient(
            base_url=self.url,
            verify=self._context(gateway=gateway),
            headers=headers,
            timeout=httpx.Timeout(60.0),
        )

    async def metric(self, name: str, **labels: str) -> float:
        """The value of a sample from ``/metrics`` (0 when the labelled child is not there)."""
        async with self.client(gateway=False) as client:
            text = (await client.get("/metrics")).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        if labels:
            return 0.0
        raise AssertionError(f"metric {name} not exported")


def api_settings(pki: Path, kubeconfig: Path, **overrides: Any) -> JobsSettings:
    """Settings for a test server: certificates from ``pki``, the cluster from ``kubeconfig``."""
    values: dict[str, Any] = {
        "tls_cert_file": pki / "jobs-api-server.crt",
        "tls_key_file": pki / "jobs-api-server.key",
        "backend_ca_file": pki / "backend-ca.crt",
        "kubeconfig": kubeconfig,
        "logs_poll_seconds": 0.5,
        **jobs_api_web_settings(),
        **overrides,
    }
    return JobsSettings(**values)


@asynccontextmanager
async def serve_jobs_api(settings: JobsSettings, pki: Path) -> AsyncIterator[JobsAPI]:
    """``create_app(settings)`` on ``https://127.0.0.1:<port>`` as :mod:`toolforge_jobs.server`
    configures TLS (backend CA, client certificate optional)."""
    context = server_ssl_context(
        certfile=settings.tls_cert_file,
        keyfile=settings.tls_key_file,
        client_ca_files=[settings.backend_ca_file],
        client_cert="optional",
    )
    async with serve(create_app(settings), context, timeout_graceful_shutdown=5) as url:
        yield JobsAPI(url=url, pki=pki, settings=settings)


@asynccontextmanager
async def onboarded_tool(cluster: Cluster) -> AsyncIterator[Tool]:
    """A freshly onboarded tool, deleted (with its home) afterwards."""
    api = await new_admin_api(cluster)
    async with api:
        onboarder = ToolOnboarder(
            admin_kube(api),
            ClusterAccess.from_kubeconfig(cluster.admin_kubeconfig),
            admin_settings(cluster),
        )
        name = fresh_tool_name()
        result = await onboarder.create(name)
        assert result.uid is not None
        try:
            yield Tool(
                name=name,
                namespace=result.namespace,
                uid=result.uid,
                home=result.home,
                kubeconfig=onboarder.kubeconfig_path(name),
                result=result,
            )
        finally:
            await onboarder.delete(name, purge_home=True)


async def wait_for(
    check: Callable[[], Awaitable[Any]], what: str, *, timeout: float = 90, interval: float = 0.5
) -> Any:
    """Poll ``check`` until it returns something truthy; returns it. Fails after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while loop.time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def ndjson(text: str) -> list[dict[str, Any]]:
    """Parse an NDJSON body."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def closed_port() -> int:
    """A loopback port with no listener (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def dead_kubeconfig(directory: Path) -> Path:
    """A kubeconfig whose apiserver address has no listener."""
    path = directory / "dead.kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "dead",
                        "cluster": {
                            "server": f"https://127.0.0.1:{closed_port()}",
                            "certificate-authority": str(directory / "cluster-ca.crt"),
                        },
                    }
                ],
                "users": [
                    {
                        "name": "jobs-api",
                        "user": {
                            "client-certificate": str(directory / "gateway-backend-client.crt"),
                            "client-key": str(directory / "gateway-backend-client.key"),
                        },
                    }
                ],
                "contexts": [{"name": "dead", "context": {"cluster": "dead", "user": "jobs-api"}}],
                "current-context": "dead",
            }
        )
    )
    return path
