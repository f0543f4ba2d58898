"""Test harness for the ``toolforge`` CLI tests that need no server: certificates and a tool
home on disk, and a way to run the CLI in this process.

Used by ``conftest.py`` (the fixtures) and the test modules; imported as ``cli.harness``
(``tests/`` is on the import path for pytest and mypy). The CLI against the real gateway and
jobs API is tested end to end in ``test_cli_jobs_e2e.py`` (with ``platform_cli``).
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner, Result

from certs import AuthPKI, Pair
from toolforge_admin.pki import PlatformPKI
from toolforge_cli.__main__ import app


@dataclass(frozen=True)
class CliPKI:
    auth: AuthPKI
    alice: Pair
    bob: Pair
    admin: Pair
    service: Pair
    expired_alice: Pair

    @property
    def cluster_ca_file(self) -> Path:
        return self.auth.path("cluster-ca.crt")


def write_kubeconfig(path: Path, cluster: Mapping[str, Any], *, current: str = "toolforge") -> None:
    """A kubeconfig like the one onboarding writes, with ``cluster`` as the cluster entry."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "toolforge", "cluster": dict(cluster)}],
        "users": [
            {
                "name": "tf-alice",
                "user": {
                    "client-certificate": "../.toolskube/client.crt",
                    "client-key": "../.toolskube/client.key",
                },
            }
        ],
        "contexts": [
            {
                "name": "toolforge",
                "context": {"cluster": "toolforge", "user": "tf-alice", "namespace": "tool-alice"},
            }
        ],
        "current-context": current,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


@dataclass(frozen=True)
class Home:
    """A tool's home directory as onboarding leaves it."""

    path: Path

    @property
    def cert(self) -> Path:
        return self.path / ".toolskube" / "client.crt"

    @property
    def key(self) -> Path:
        return self.path / ".toolskube" / "client.key"

    @property
    def kubeconfig(self) -> Path:
        return self.path / ".kube" / "config"


def clean_env(home: Home, **extra: str) -> dict[str, str | None]:
    """Environment for a CLI run as the tool of ``home``: HOME set, every TOOLFORGE_*,
    KUBECONFIG, TOOL_TOOLFORGE_API_URL and XDG_CONFIG_HOME of the developer's shell removed,
    ``extra`` added."""
    own = ("KUBECONFIG", "TOOL_TOOLFORGE_API_URL", "XDG_CONFIG_HOME")
    env: dict[str, str | None] = {
        k: None for k in os.environ if k.startswith("TOOLFORGE_") or k in own
    }
    env["HOME"] = str(home.path)
    env.update(extra)
    return env


def run_cli(args: list[str], env: Mapping[str, str | None], *, stdin: str | None = None) -> Result:
    """Run ``toolforge <args>`` in this process with Typer's CliRunner (stdout and stderr
    apart); ``stdin`` is what the command reads (not a terminal)."""
    return CliRunner().invoke(app, args, env=dict(env), input=stdin, catch_exceptions=False)


def closed_port_url() -> str:
    """``https://127.0.0.1:<port>`` where nothing listens (a port the kernel just handed out
    and that was closed again): a CLI run that sends a request fails with "cannot connect"."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    return f"https://127.0.0.1:{port}"


def make_cli_pki(directory: Path) -> CliPKI:
    """The platform PKI in ``directory`` plus the client certificates of :class:`CliPKI`."""
    auth = AuthPKI(directory, PlatformPKI.ensure(directory))
    cluster = auth.platform.cluster_ca
    return CliPKI(
        auth=auth,
        alice=auth.client(cluster, "alice", "alice", ["toolforge"]),
        bob=auth.client(cluster, "bob", "bob", ["toolforge"]),
        admin=auth.client(cluster, "admin", "kubernetes-admin", ["system:masters"]),
        service=auth.client(cluster, "service", "service:builder", ["toolforge"]),
        expired_alice=auth.expired_client(cluster, "expired-alice", "alice"),
    )


def make_home(path: Path, pki: CliPKI) -> Home:
    """alice's home at ``path``: her certificate and key, and a kubeconfig with the cluster
    CA inline (as onboarding writes them)."""
    result = Home(path)
    result.cert.parent.mkdir(parents=True)
    shutil.copy(pki.alice.cert, result.cert)
    shutil.copy(pki.alice.key, result.key)
    ca_data = base64.b64encode(pki.cluster_ca_file.read_bytes()).decode()
    write_kubeconfig(
        result.kubeconfig,
        {"server": "https://10.244.0.1:6443", "certificate-authority-data": ca_data},
    )
    return result
