"""Fixtures that run the real upstream Toolforge clients as a tool against our gateway.

The clients (``toolforge-jobs``, ``toolforge-build``, ``toolforge-envvars``, ``toolforge-logs``,
pinned in ``devtools/upstream/requirements.txt``) live in a Python 3.13 environment of their own
(:mod:`toolforge_dev.upstream_clients`), made on first use and cached by the pins.

- ``upstream_clients`` (session): that environment.
- ``upstream`` (function, cluster): an :class:`Upstream` for the fresh ``tool`` of the test,
  its home configured as on Toolforge (gateway URL in ``~/.toolforge.yaml``), against the
  ``platform``'s gateway. ``upstream.jobs("list", "-o", "long")`` runs ``toolforge-jobs`` and
  returns an :class:`~toolforge_dev.upstream_clients.UpstreamResult`; ``upstream.build(...)``,
  ``upstream.envvars(...)``, ``upstream.logs(...)`` likewise.
- ``upstream_for`` (function, cluster): makes an :class:`Upstream` for any onboarded tool
  (e.g. ``other_tool``), with ``via="env"`` to pass the URL as ``TOOL_TOOLFORGE_API_URL``.

Tests of any API may live in this folder and use these fixtures.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from toolforge_dev.pytest_plugin import Tool
from toolforge_dev.services import PlatformServices
from toolforge_dev.upstream_clients import (
    UpstreamClients,
    UpstreamResult,
    configure_tool_home,
    ensure_clients,
    run_upstream,
)


@dataclass
class Upstream:
    """The upstream clients as one tool: ``run(command, *args)`` and one shortcut per client.

    ``cwd`` (default: the tool's home) is where commands run, so relative paths such as
    ``dump -f jobs.yaml`` land in the home.
    """

    clients: UpstreamClients
    tool: Tool
    env: dict[str, str] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.tool.home

    def run(
        self, command: str, *args: str, timeout: float = 300, input_text: str | None = None
    ) -> UpstreamResult:
        return run_upstream(
            self.clients,
            command,
            args,
            home=self.tool.home,
            env=self.env,
            timeout=timeout,
            input_text=input_text,
        )

    def jobs(self, *args: str, timeout: float = 300) -> UpstreamResult:
        """``toolforge-jobs ARGS``."""
        return self.run("toolforge-jobs", *args, timeout=timeout)

    def build(self, *args: str, timeout: float = 300) -> UpstreamResult:
        """``toolforge-build ARGS``."""
        return self.run("toolforge-build", *args, timeout=timeout)

    def envvars(
        self, *args: str, timeout: float = 300, input_text: str | None = None
    ) -> UpstreamResult:
        """``toolforge-envvars ARGS``."""
        return self.run("toolforge-envvars", *args, timeout=timeout, input_text=input_text)

    def logs(self, *args: str, timeout: float = 300) -> UpstreamResult:
        """``toolforge-logs ARGS``."""
        return self.run("toolforge-logs", *args, timeout=timeout)


@pytest.fixture(scope="session")
def upstream_clients() -> UpstreamClients:
    """The clients' Python 3.13 environment (made on first use, cached by the pins)."""
    return ensure_clients(lambda message: print(f"[upstream] {message}", file=sys.stderr))


UpstreamFactory = Callable[..., Upstream]


@pytest.fixture
def upstream_for(upstream_clients: UpstreamClients, platform: PlatformServices) -> UpstreamFactory:
    """``upstream_for(tool, via="file"|"env")``: an :class:`Upstream` for ``tool``."""

    def make(tool: Tool, via: Literal["file", "env"] = "file") -> Upstream:
        env = configure_tool_home(tool.home, platform.gateway_url, via=via)
        return Upstream(upstream_clients, tool, env)

    return make


@pytest.fixture
def upstream(upstream_for: UpstreamFactory, tool: Tool) -> Upstream:
    """The upstream clients as this test's fresh ``tool``."""
    return upstream_for(tool)
