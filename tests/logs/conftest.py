"""Fixtures of the logs API tests: a log store of the session (a real ``victoria-logs`` on a
free loopback port, TLS, HTTP Basic auth) for the tests that need no cluster."""

from __future__ import annotations

import ssl
import sys
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest

from toolforge_dev import binaries as go_binaries
from toolforge_dev.cluster import Cluster
from toolforge_dev.logstore import LogStore
from toolforge_dev.pytest_plugin import Tool
from toolforge_dev.services import PlatformServices
from toolforge_logstore import LogStoreClient


@pytest.fixture(scope="session")
def logstore(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LogStore]:
    """A store process of this session, stopped at its end."""
    go_binaries.victorialogs().build(lambda m: print(m, file=sys.stderr))
    store = LogStore.standalone(tmp_path_factory.mktemp("logs-api-store"))
    store.start()
    yield store
    store.stop()


@pytest.fixture
async def store_client(logstore: LogStore) -> AsyncIterator[LogStoreClient]:
    """A client of :func:`logstore`."""
    async with LogStoreClient(logstore.client_config()) as client:
        yield client


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
