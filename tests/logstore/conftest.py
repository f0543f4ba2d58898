"""A log store of the test session and clients of it (:mod:`logstore_fixtures`). It needs no
cluster."""

from __future__ import annotations

# the session's log store and its clients (shared with the other store-using tests)
from logstore_fixtures import logstore, store_client  # noqa: F401
