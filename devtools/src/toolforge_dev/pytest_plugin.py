"""Pytest fixtures on the real local cluster.

- ``cluster`` (session): the running cluster. Reused when one is already up (``make up``);
  otherwise started once for the session and stopped at its end, and then checked for
  leftovers (processes, mounts, network state): a dirty stop fails the session.
- ``admin_api`` (function): a kubernetes_asyncio ``ApiClient`` with cluster-admin rights.
- ``onboarder`` (function): a :class:`~toolforge_admin.onboarding.ToolOnboarder` on it.
- ``tool`` (function): a freshly onboarded tool with its own namespace, deleted afterwards.
- ``registry`` (session): an image registry of its own (:meth:`LocalRegistry.standalone`, a
  real ``registry serve`` on a free loopback port, TLS with its own CA, the build pods'
  credentials); it needs no cluster.

When a test that uses the cluster fails, the report gets the tail of every component's log
and the events of the test's tool namespace.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config

from toolforge_admin.onboarding import ClusterAccess, ToolOnboarder, ToolResult
from toolforge_dev import binaries as go_binaries
from toolforge_dev import images
from toolforge_dev.cli import admin_settings
from toolforge_dev.cluster import COMPONENTS, Cluster
from toolforge_dev.registry import LocalRegistry
from toolforge_dev.services import PlatformServices
from toolforge_kit.kube import KubeClient


def _progress(message: str) -> None:
    print(f"[cluster] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _uncaptured(config: pytest.Config) -> Iterator[None]:
    """Let progress output through pytest's capture (start-up takes a while)."""
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is None:
        yield
        return
    with capman.global_and_fixture_disabled():
        yield


@pytest.fixture(scope="session")
def cluster(pytestconfig: pytest.Config) -> Iterator[Cluster]:
    """The local cluster: reused if up, else started for this session and stopped after."""
    handle = Cluster(progress=_progress)
    with _uncaptured(pytestconfig):
        print(file=sys.stderr)
        if handle.is_up():
            _progress(f"reusing the running cluster in {handle.directory}")
            reused = True
        else:
            bins = go_binaries.build_all(_progress)
            archives = images.build_images(progress=_progress)
            handle.start(bins, archives)
            reused = False
    yield handle
    if reused:
        return
    with _uncaptured(pytestconfig):
        handle.stop()
    left = handle.leftovers()
    assert not left, f"the cluster's stop left state behind: {left}"


@pytest.fixture(scope="session")
def platform(cluster: Cluster, pytestconfig: pytest.Config) -> Iterator[PlatformServices]:
    """The platform APIs (gateway, jobs API) as host processes next to :func:`cluster`:
    reused if running, else started for this session and stopped after."""
    services = PlatformServices(cluster, progress=_progress)
    with _uncaptured(pytestconfig):
        healthy = services.health()
        started = not all(healthy.values())
        if started:
            services.stop()
            services.start()
    yield services
    if started:
        with _uncaptured(pytestconfig):
            services.stop()


@pytest.fixture(scope="session")
def registry(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[LocalRegistry]:
    """A registry process of the test session (not the platform's), stopped at its end."""
    with _uncaptured(pytestconfig):
        go_binaries.registry().build(_progress)
    instance = LocalRegistry.standalone(tmp_path_factory.mktemp("registry"))
    instance.start()
    yield instance
    instance.stop()


def admin_kube(api: k8s.ApiClient) -> KubeClient:
    """The kit's transport on a cluster-admin ``ApiClient`` (closed by its owner, not here)."""
    return KubeClient(api, metrics=None, timeout=60.0, retry_after=5)


async def new_admin_api(cluster: Cluster) -> k8s.ApiClient:
    """A cluster-admin ``ApiClient`` (the caller closes it)."""
    conf = k8s.Configuration()
    await k8s_config.load_kube_config(
        config_file=str(cluster.admin_kubeconfig), client_configuration=conf
    )
    return k8s.ApiClient(conf)


async def new_tool_api(kubeconfig: Path) -> k8s.ApiClient:
    """An ``ApiClient`` that authenticates with a tool's own kubeconfig (its certificate)."""
    conf = k8s.Configuration()
    await k8s_config.load_kube_config(config_file=str(kubeconfig), client_configuration=conf)
    return k8s.ApiClient(conf)


@pytest.fixture
async def admin_api(cluster: Cluster) -> AsyncIterator[k8s.ApiClient]:
    """Cluster-admin API client."""
    api = await new_admin_api(cluster)
    async with api:
        yield api


@pytest.fixture
async def onboarder(cluster: Cluster, admin_api: k8s.ApiClient) -> ToolOnboarder:
    """The onboarding service on the local cluster, homes in the run directory."""
    access = ClusterAccess.from_kubeconfig(cluster.admin_kubeconfig)
    return ToolOnboarder(admin_kube(admin_api), access, admin_settings(cluster))


@dataclass
class Tool:
    """An onboarded test tool."""

    name: str
    namespace: str
    uid: int
    home: Path
    kubeconfig: Path
    result: ToolResult


def fresh_tool_name() -> str:
    """A unique tool name for one test."""
    return f"t{uuid.uuid4().hex[:10]}"


async def _fresh_tool(onboarder: ToolOnboarder) -> AsyncIterator[Tool]:
    name = fresh_tool_name()
    result = await onboarder.create(name)
    assert result.uid is not None
    yield Tool(
        name=name,
        namespace=result.namespace,
        uid=result.uid,
        home=result.home,
        kubeconfig=onboarder.kubeconfig_path(name),
        result=result,
    )
    await onboarder.delete(name, purge_home=True)


@pytest.fixture
async def tool(onboarder: ToolOnboarder) -> AsyncIterator[Tool]:
    """A fresh tool with namespace, quota, uid, home and certificate; deleted afterwards."""
    async for fresh in _fresh_tool(onboarder):
        yield fresh


@pytest.fixture
async def other_tool(onboarder: ToolOnboarder) -> AsyncIterator[Tool]:
    """A second fresh tool, for isolation tests."""
    async for fresh in _fresh_tool(onboarder):
        yield fresh


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    """On failure of a cluster test, attach component logs and the tool's namespace events."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not report.failed or "cluster" not in getattr(item, "fixturenames", ()):
        return
    handle = Cluster(progress=_progress)
    for component in COMPONENTS:
        report.sections.append((f"{component} log (tail)", handle.log_tail(component, lines=15)))
    funcargs = getattr(item, "funcargs", {})
    tool_obj = funcargs.get("tool")
    if isinstance(tool_obj, Tool) and go_binaries.kubernetes().is_built():
        proc = subprocess.run(
            [
                str(go_binaries.kubernetes().path("kubectl")),
                "--kubeconfig",
                str(handle.admin_kubeconfig),
                "get",
                "events",
                "-n",
                tool_obj.namespace,
                "--sort-by=.lastTimestamp",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        report.sections.append((f"events in {tool_obj.namespace}", proc.stdout + proc.stderr))
