"""Fixtures for the ``toolforge`` CLI tests (the harness is ``cli.harness``).

- ``cli_pki``: the platform PKI plus client certificates (tools alice and bob, an admin, a
  service, an expired alice);
- ``home``: alice's home as onboarding leaves it; the CLI runs with ``HOME`` pointing at it;
- ``jobs_api``: the jobs API test double over mTLS on 127.0.0.1, which STANDS IN FOR THE JOBS
  API UNTIL IT EXISTS.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cli.harness import CliPKI, Home, RunningDouble, make_cli_pki, make_home, serve_double


@pytest.fixture(scope="session")
def cli_pki(tmp_path_factory: pytest.TempPathFactory) -> CliPKI:
    return make_cli_pki(tmp_path_factory.mktemp("cli-pki"))


@pytest.fixture
def home(tmp_path: Path, cli_pki: CliPKI) -> Home:
    return make_home(tmp_path / "home", cli_pki)


@pytest.fixture
def jobs_api(cli_pki: CliPKI) -> Iterator[RunningDouble]:
    with serve_double(cli_pki) as running:
        yield running
