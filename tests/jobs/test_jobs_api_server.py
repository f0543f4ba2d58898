"""The ``toolforge-jobs-api`` command: serves TLS with the settings file and flags, answers
health checks without a client certificate, and shuts down gracefully on SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from jobs.support import closed_port, dead_kubeconfig

from toolforge_admin.pki import PlatformPKI


@pytest.fixture
def config(tmp_path: Path) -> Path:
    PlatformPKI.ensure(tmp_path)
    path = tmp_path / "jobs.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "tls_cert_file": str(tmp_path / "jobs-api-server.crt"),
                "tls_key_file": str(tmp_path / "jobs-api-server.key"),
                "backend_ca_file": str(tmp_path / "backend-ca.crt"),
                "kubeconfig": str(dead_kubeconfig(tmp_path)),
                "port": 1,  # overridden by --port
                "graceful_shutdown_seconds": 2,
            }
        )
    )
    return path


def test_command_serves_and_shuts_down_on_sigterm(config: Path) -> None:
    command = shutil.which("toolforge-jobs-api", path=str(Path(sys.executable).parent))
    assert command is not None, "the console script is not installed (uv sync)"
    port = closed_port()
    process = subprocess.Popen(
        [command, "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        context = ssl.create_default_context(cafile=config.parent / "backend-ca.crt")
        deadline = time.monotonic() + 30
        response = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                response = httpx.get(f"https://127.0.0.1:{port}/v1/healthz", verify=context)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert response is not None, "the server did not come up"
        assert response.status_code == 200
        assert response.json()["health"]["status"] == "OK"
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    # uvicorn shuts down gracefully (lifespan included), then re-raises the signal
    assert "Application shutdown complete" in err
    assert process.returncode in (0, -signal.SIGTERM), err
