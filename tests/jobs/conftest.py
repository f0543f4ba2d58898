"""Fixtures for the jobs API tests (helpers in :mod:`jobs.support`).

- ``jobs_api`` (module scope, cluster): the app on the real cluster, acting with the jobs API's
  own kubeconfig (user ``toolforge-jobs-api``).
- ``module_tool`` (module scope, cluster): one onboarded tool shared by a module's tests.

Modules using them are marked ``pytest.mark.asyncio(loop_scope="module")``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from jobs.support import JobsAPI, api_settings, onboarded_tool, serve_jobs_api

from toolforge_dev.cluster import Cluster
from toolforge_dev.pytest_plugin import Tool


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def jobs_api(cluster: Cluster) -> AsyncIterator[JobsAPI]:
    """The jobs API on the real cluster, with its own identity."""
    settings = api_settings(
        cluster.pki_dir, cluster.service_kubeconfig("jobs-api"), homes_dir=cluster.homes_dir
    )
    async with serve_jobs_api(settings, cluster.pki_dir) as api:
        yield api


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_tool(cluster: Cluster) -> AsyncIterator[Tool]:
    """One onboarded tool for all tests of a module."""
    async with onboarded_tool(cluster) as tool:
        yield tool
