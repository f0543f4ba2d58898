"""Fixtures of a log store of the test session, for the tests that need no cluster (imported by
the conftests of ``tests/logstore`` and ``tests/logs``): a real ``victoria-logs`` on a free
loopback port, TLS with its own CA, HTTP Basic auth, and clients of it."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator

import pytest

from toolforge_dev import binaries as go_binaries
from toolforge_dev.logstore import LogStore
from toolforge_logstore import LogStoreClient

__all__ = ["logstore", "store_client"]


@pytest.fixture(scope="session")
def logstore(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LogStore]:
    """A store process of this session, stopped at its end."""
    go_binaries.victorialogs().build(lambda m: print(m, file=sys.stderr))
    store = LogStore.standalone(tmp_path_factory.mktemp("logstore"))
    store.start()
    yield store
    store.stop()


@pytest.fixture
async def store_client(logstore: LogStore) -> AsyncIterator[LogStoreClient]:
    """A client of :func:`logstore`."""
    async with LogStoreClient(logstore.client_config()) as client:
        yield client
