"""Fixtures for the auth tests."""

from __future__ import annotations

import pytest

from certs import AuthPKI
from toolforge_admin.pki import PlatformPKI


@pytest.fixture(scope="session")
def auth_pki(tmp_path_factory: pytest.TempPathFactory) -> AuthPKI:
    directory = tmp_path_factory.mktemp("auth-pki")
    return AuthPKI(directory, PlatformPKI.ensure(directory))
