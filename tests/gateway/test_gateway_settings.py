"""Settings (YAML, environment, overrides) and the ``toolforge-gateway`` command."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from gateway.gateway_harness import GatewayPKI, refused_port
from gateway.gateway_process import GatewayProcess, gateway_command
from pydantic import ValidationError

from toolforge_gateway.settings import GatewaySettings, load_settings

CONFIG = {
    "host": "127.0.0.1",
    "port": 31000,
    "routes": {
        "jobs": {"url": "https://jobs.example:8443/", "read_timeout": None},
        "logs": {"url": "https://logs.example:8443/api", "total_timeout": 5},
    },
    "service_identities": {"builder": ["/jobs/v1/tool/[^/]+/jobs"]},
    "limits": {"max_body_bytes": 10},
    "openapi_cache_seconds": 2,
}


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TOOLFORGE_GATEWAY_PORT", "TOOLFORGE_GATEWAY_LIMITS__MAX_BODY_BYTES"):
        monkeypatch.delenv(name, raising=False)


def test_defaults() -> None:
    settings = GatewaySettings()
    assert settings.port == 30003
    assert set(settings.routes) == {"jobs", "builds"}
    assert settings.unauthenticated_suffixes == ["/openapi.json", "/v1/healthz", "/v1/metrics"]
    assert settings.limits.max_body_bytes == 1024 * 1024


def test_yaml_file(config_file: Path) -> None:
    settings = load_settings(config_file)
    assert settings.port == 31000
    assert settings.routes["jobs"].url == "https://jobs.example:8443"
    assert settings.routes["jobs"].read_timeout is None
    assert settings.routes["logs"].url == "https://logs.example:8443/api"
    assert settings.routes["logs"].total_timeout == 5
    assert settings.routes["logs"].connect_timeout == 5.0
    (pattern,) = settings.service_identities["builder"]
    assert pattern.fullmatch("/jobs/v1/tool/foo/jobs")
    assert settings.limits.max_body_bytes == 10
    assert settings.limits.max_url_bytes == 8192
    assert isinstance(settings, GatewaySettings)


def test_environment_beats_yaml_and_overrides_beat_both(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLFORGE_GATEWAY_PORT", "32000")
    monkeypatch.setenv("TOOLFORGE_GATEWAY_LIMITS__MAX_BODY_BYTES", "20")
    from_env = load_settings(config_file)
    assert from_env.port == 32000
    assert from_env.limits.max_body_bytes == 20
    assert load_settings(config_file, port=33000).port == 33000


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"routes": {"metrics": {"url": "https://x"}}}, "route name 'metrics'"),
        ({"routes": {"Jobs": {"url": "https://x"}}}, "route name 'Jobs'"),
        ({"routes": {"jobs": {"url": "http://x"}}}, "url must be https://"),
        ({"routes": {"jobs": {"url": "https://x?q=1"}}}, "url must be https://"),
        ({"routes": {"jobs": {"url": "https://x", "read_timeout": 0}}}, "greater than 0"),
        ({"service_identities": {"service:x": []}}, "service identity name"),
        ({"service_identities": {"x": ["("]}}, "regular expression"),
        ({"unauthenticated_suffixes": ["healthz"]}, "must start with '/'"),
        ({"listen": "127.0.0.1"}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_settings_are_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        GatewaySettings.model_validate(values)


# -- the command ------------------------------------------------------------------------------


def test_command_serves_and_stops_on_sigterm(gw_pki: GatewayPKI, tmp_path: Path) -> None:
    config = {
        "tls_cert_file": str(gw_pki.path("gateway-server.crt")),
        "tls_key_file": str(gw_pki.path("gateway-server.key")),
        "client_ca_files": [str(gw_pki.path("cluster-ca.crt"))],
        "backend_client_cert_file": str(gw_pki.path("gateway-backend-client.crt")),
        "backend_client_key_file": str(gw_pki.path("gateway-backend-client.key")),
        "backend_ca_file": str(gw_pki.path("backend-ca.crt")),
        "port": 1,  # overridden on the command line: 0, the kernel picks a free port
    }
    with refused_port() as down:
        config["routes"] = {"jobs": {"url": f"https://127.0.0.1:{down}"}}
        with GatewayProcess(tmp_path, config, "--host", "127.0.0.1", "--port", "0") as gateway:
            port = gateway.port(timeout=30)
            assert port != 1, "--port overrides the file"
            with httpx.Client(
                base_url=f"https://127.0.0.1:{port}", verify=gw_pki.client_context(gw_pki.alice)
            ) as client:
                response = client.get("/healthz")
                assert response.status_code == 200
                down_answer = client.get("/jobs/v1/tool/alice/jobs")
                assert down_answer.status_code == 503
            gateway.process.send_signal(signal.SIGTERM)
            # uvicorn shuts down cleanly, then re-raises the signal so the status tells why.
            assert gateway.wait(timeout=30) == -signal.SIGTERM
            entries = gateway.log_entries()
    messages = [entry["message"] for entry in entries]
    assert f"Uvicorn running on https://127.0.0.1:{port} (Press CTRL+C to quit)" in messages
    assert "Application shutdown complete." in messages
    access = [entry for entry in entries if entry["logger"] == "toolforge_gateway.access"]
    assert [entry["status"] for entry in access] == [200, 503]
    assert access[1]["upstream_error"] == "connect"


def test_command_refuses_invalid_settings(tmp_path: Path) -> None:
    config_file = tmp_path / "gateway.yaml"
    config_file.write_text(yaml.safe_dump({"routes": {"jobs": {"url": "http://plain"}}}))
    result = subprocess.run(
        [*gateway_command(), "--config", str(config_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "url must be https://" in result.stderr
