"""Fixtures of the logs API tests: a log store of the session for the tests that need no
cluster (:mod:`logstore_fixtures`), and a client of the gateway as a tool."""

from __future__ import annotations

import ssl
from collections.abc import Callable

import httpx
import pytest

# the session's log store and its clients (shared with the other store-using tests)
from logstore_fixtures import logstore, store_client  # noqa: F401
from toolforge_dev.cluster import Cluster
from toolforge_dev.pytest_plugin import Tool
from toolforge_dev.services import PlatformServices


@pytest.fixture
def gateway_as() -> Callable[[PlatformServices, Cluster, Tool], httpx.AsyncClient]:
    """``gateway_as(platform, cluster, tool)``: an ``httpx.AsyncClient`` on the gateway with
    ``tool``'s certificate (close it)."""

    def make(platform: PlatformServices, cluster: Cluster, tool: Tool) -> httpx.AsyncClient:
        context = ssl.create_default_context(cafile=cluster.pki_dir / "cluster-ca.crt")
        context.load_cert_chain(
            tool.home / ".toolskube" / "client.crt", tool.home / ".toolskube" / "client.key"
        )
        return httpx.AsyncClient(
            base_url=platform.gateway_url, verify=context, timeout=httpx.Timeout(60.0)
        )

    return make
