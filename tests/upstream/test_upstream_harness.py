"""The harness itself: the pinned clients are installed and reach our gateway as the tool.

The version checks keep the pins honest (a client that is not the pinned one proves nothing
about compatibility); the two ways of configuring the gateway URL are both Toolforge's.
"""

from __future__ import annotations

import subprocess

import pytest
from upstream.conftest import Upstream, UpstreamFactory

from toolforge_dev.pytest_plugin import Tool
from toolforge_dev.upstream_clients import PINS, UpstreamClients


def _installed_version(clients: UpstreamClients, package: str) -> str:
    proc = subprocess.run(
        [
            str(clients.bin_dir / "python"),
            "-c",
            f"import importlib.metadata as m; print(m.version({package!r}))",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return proc.stdout.strip()


@pytest.mark.parametrize("package", sorted(PINS))
def test_pinned_client_is_installed(upstream_clients: UpstreamClients, package: str) -> None:
    assert _installed_version(upstream_clients, package) == PINS[package]


def test_python_is_313(upstream_clients: UpstreamClients) -> None:
    proc = subprocess.run(
        [str(upstream_clients.bin_dir / "python"), "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert proc.stdout.strip() == "(3, 13)"


@pytest.mark.cluster
def test_quota_through_config_file(upstream: Upstream) -> None:
    """``~/.toolforge.yaml`` names the gateway; the tool's certificate is presented."""
    result = upstream.jobs("quota")
    assert result.returncode == 0, result.describe()
    assert "Running jobs" in result.stdout or "Limit" in result.stdout, result.describe()


@pytest.mark.cluster
def test_quota_through_env(upstream_for: UpstreamFactory, tool: Tool) -> None:
    """``TOOL_TOOLFORGE_API_URL`` names the gateway (no config file)."""
    client = upstream_for(tool, via="env")
    assert not (tool.home / ".toolforge.yaml").exists()
    result = client.jobs("quota")
    assert result.returncode == 0, result.describe()


@pytest.mark.cluster
def test_wrong_gateway_is_a_clear_error(upstream_for: UpstreamFactory, tool: Tool) -> None:
    """A gateway URL where nothing listens: the client's "service seems to be down" (exit 2),
    which shows the harness really uses the configured URL."""
    client = upstream_for(tool, via="env")
    client.env["TOOL_TOOLFORGE_API_URL"] = "https://127.0.0.1:9"
    result = client.jobs("list")
    assert result.returncode == 2, result.describe()
    assert "seems to be down" in result.stderr, result.describe()
