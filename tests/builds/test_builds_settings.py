"""BuildsSettings: REFERENCE defaults and the TOOLFORGE_BUILDS_ environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsError

from toolforge_builds.settings import DEFAULT_LOG_DENY_LIST, BuildsSettings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TOOLFORGE_BUILDS_"):
            monkeypatch.delenv(name)


def test_reference_defaults() -> None:
    settings = BuildsSettings()
    assert settings.namespace == "image-build"
    assert settings.pipeline_name == "buildpacks"
    assert settings.max_parallel_builds == 4
    assert settings.keep_successful == 4
    assert settings.keep_failed == 2
    assert settings.log_deny_list == list(DEFAULT_LOG_DENY_LIST)
    assert settings.builder_image_latest is None
    assert settings.git_ca_file is None


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLFORGE_BUILDS_REGISTRY", "harbor.example.org")
    monkeypatch.setenv("TOOLFORGE_BUILDS_MAX_PARALLEL_BUILDS", "2")
    monkeypatch.setenv("TOOLFORGE_BUILDS_LOG_DENY_LIST", '["prepare", "step-upload-*"]')
    monkeypatch.setenv("TOOLFORGE_BUILDS_GIT_CA_FILE", "/etc/ssl/git.pem")
    settings = BuildsSettings()
    assert settings.registry == "harbor.example.org"
    assert settings.max_parallel_builds == 2
    assert settings.log_deny_list == ["prepare", "step-upload-*"]
    assert settings.git_ca_file == Path("/etc/ssl/git.pem")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TOOLFORGE_BUILDS_MAX_PARALLEL_BUILDS", "0"),
        ("TOOLFORGE_BUILDS_KEEP_FAILED", "-1"),
        ("TOOLFORGE_BUILDS_LS_REMOTE_TIMEOUT_SECONDS", "0"),
        ("TOOLFORGE_BUILDS_LOG_DENY_LIST", "prepare"),
    ],
)
def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    # pydantic-settings raises SettingsError (a ValueError) for unparsable JSON
    with pytest.raises((ValidationError, SettingsError)):
        BuildsSettings()


def test_unknown_settings_are_refused() -> None:
    with pytest.raises(ValidationError, match="max_builds"):
        BuildsSettings(max_builds=3)  # type: ignore[call-arg]


def test_registry_defaults_and_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = BuildsSettings()
    assert settings.registry_storage_limit == 1 << 30  # REFERENCE.md: 1 GiB per tool
    assert settings.registry_url is None  # https://<registry>
    monkeypatch.setenv("TOOLFORGE_BUILDS_REGISTRY_STORAGE_LIMIT", "2GiB")
    monkeypatch.setenv("TOOLFORGE_BUILDS_REGISTRY_PASSWORD", "env-registry-secret")
    settings = BuildsSettings()
    assert settings.registry_storage_limit == 2 << 30
    assert settings.registry_password is not None
    assert "env-registry-secret" not in repr(settings)
    monkeypatch.setenv("TOOLFORGE_BUILDS_REGISTRY_STORAGE_LIMIT", "lots")
    with pytest.raises(ValidationError, match="registry_storage_limit"):
        BuildsSettings()
