"""Fixtures of the web-traffic tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from kubernetes_asyncio import client as k8s
from web.support import ToolApis

from toolforge_dev.pytest_plugin import Tool, new_tool_api
from toolforge_dev.web import web_url


@pytest.fixture
async def tool_apis(tool: Tool) -> AsyncIterator[ToolApis]:
    api = await new_tool_api(tool.kubeconfig)
    async with api:
        yield ToolApis(k8s.CoreV1Api(api), k8s.AppsV1Api(api), k8s.CustomObjectsApi(api))


@pytest.fixture
async def web_client() -> AsyncIterator[httpx.AsyncClient]:
    """Keep-alive client for ``http://127.0.0.1:30000`` (no proxies from the environment)."""
    async with httpx.AsyncClient(base_url=web_url(), trust_env=False, timeout=10) as client:
        yield client
