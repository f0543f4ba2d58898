"""Jobs API settings: defaults, YAML file, environment and overrides in that order of
priority, and the command line's exit status for bad settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from toolforge_jobs.__main__ import main
from toolforge_jobs.settings import JobsSettings, load_settings


def test_defaults() -> None:
    settings = JobsSettings()
    assert (settings.host, settings.port) == ("0.0.0.0", 8443)  # noqa: S104
    assert settings.kubeconfig is None  # in-cluster ServiceAccount
    assert (settings.image_config_namespace, settings.image_config_name) == (
        "tf-public",
        "image-config",
    )
    auth = settings.auth_settings()
    assert auth.backend_ca_file == Path("backend-ca.crt")
    assert auth.gateway_peer_cns == ["toolforge-api-gateway"]


def test_priority_overrides_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "jobs.yaml"
    config.write_text(
        "port: 9000\nhost: 127.0.0.1\nimage_cache_seconds: 5\n"
        "gateway_peer_cns: [gw-a, gw-b]\nkubeconfig: /etc/jobs.kubeconfig\n"
    )
    monkeypatch.setenv("TOOLFORGE_JOBS_PORT", "9100")
    monkeypatch.setenv("TOOLFORGE_JOBS_LOGS_MAX_STREAMS", "3")
    settings = load_settings(config, port=9200)
    assert settings.port == 9200  # override beats env beats file
    assert settings.logs_max_streams == 3
    assert settings.host == "127.0.0.1"
    assert settings.image_cache_seconds == 5
    assert settings.kubeconfig == Path("/etc/jobs.kubeconfig")
    assert settings.auth_settings().gateway_peer_cns == ["gw-a", "gw-b"]
    monkeypatch.delenv("TOOLFORGE_JOBS_PORT")
    assert load_settings(config).port == 9000


def test_invalid_settings(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "missing.yaml")
    with pytest.raises(ValidationError, match="unknown_key"):
        JobsSettings(unknown_key=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="port"):
        JobsSettings(port=70000)


def test_command_line_exits_2_for_bad_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "jobs.yaml"
    config.write_text("logs_max_streams: 0\n")
    with pytest.raises(SystemExit) as exited:
        main(["--config", str(config)])
    assert exited.value.code == 2
    assert "logs_max_streams" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["--config", str(tmp_path / "nope.yaml")])
    assert exited.value.code == 2
