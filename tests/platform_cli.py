"""Run the ``toolforge`` CLI as a tool against the local platform (``make run``'s gateway)."""

from __future__ import annotations

import os
import subprocess
import sys

from toolforge_dev.pytest_plugin import Tool
from toolforge_dev.services import GATEWAY_PORT


def tool_env(tool: Tool) -> dict[str, str]:
    """The environment that points the CLI at the gateway with ``tool``'s credentials."""
    return {
        **os.environ,
        "TOOLFORGE_CERT": str(tool.home / ".toolskube" / "client.crt"),
        "TOOLFORGE_KEY": str(tool.home / ".toolskube" / "client.key"),
        "TOOLFORGE_KUBECONFIG": str(tool.kubeconfig),
        "TOOLFORGE_API_URL": f"https://127.0.0.1:{GATEWAY_PORT}",
    }


def toolforge(tool: Tool, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``toolforge ARGS`` as ``tool``; returns the finished process (never raises on a
    non-zero exit)."""
    return subprocess.run(
        [sys.executable, "-m", "toolforge_cli", *args],
        env=tool_env(tool),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
