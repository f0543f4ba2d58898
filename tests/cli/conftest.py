"""Fixtures for the ``toolforge`` CLI tests that need no server (the harness is
``cli.harness``):

- ``cli_pki``: the platform PKI plus client certificates (tools alice and bob, an admin, a
  service, an expired alice);
- ``home``: alice's home as onboarding leaves it; the CLI runs with ``HOME`` pointing at it.

The end-to-end tests (``test_cli_jobs_e2e.py``, ``test_cli_build_e2e.py``) use the real
platform through the ``toolforge_dev.pytest_plugin`` fixtures instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli.harness import CliPKI, Home, make_cli_pki, make_home

from toolforge_cli import upstreamconfig


@pytest.fixture(autouse=True)
def _no_system_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Upstream's system-wide configuration (``/etc/toolforge/common.yaml``) is read from an
    empty directory: the machine's own does not reach the tests."""
    monkeypatch.setattr(
        upstreamconfig, "SYSTEM_CONFIG_DIR", tmp_path_factory.mktemp("etc-toolforge")
    )


@pytest.fixture(scope="session")
def cli_pki(tmp_path_factory: pytest.TempPathFactory) -> CliPKI:
    return make_cli_pki(tmp_path_factory.mktemp("cli-pki"))


@pytest.fixture
def home(tmp_path: Path, cli_pki: CliPKI) -> Home:
    return make_home(tmp_path / "home", cli_pki)
