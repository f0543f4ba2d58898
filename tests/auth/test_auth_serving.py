"""toolforge_auth.serving: settings sources and the command line shared by the services."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import uvicorn
from pydantic_settings import SettingsConfigDict

from toolforge_auth.serving import FileSettings, load_file_settings, run_main


class DemoSettings(FileSettings):
    model_config = SettingsConfigDict(env_prefix="TOOLFORGE_DEMO_", extra="forbid")

    host: str = "0.0.0.0"  # noqa: S104
    port: int = 1
    name: str = "default"


def test_sources_in_priority_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "demo.yaml"
    config.write_text("port: 2\nname: from-file\nhost: file-host\n")
    assert load_file_settings(DemoSettings, config).model_dump() == {
        "host": "file-host",
        "port": 2,
        "name": "from-file",
    }
    monkeypatch.setenv("TOOLFORGE_DEMO_NAME", "from-env")
    settings = load_file_settings(DemoSettings, config, port=3)
    assert (settings.port, settings.name, settings.host) == (3, "from-env", "file-host")
    assert isinstance(settings, DemoSettings)
    with pytest.raises(OSError, match="missing"):
        load_file_settings(DemoSettings, tmp_path / "missing.yaml")


def _main(argv: list[str], build: Any) -> None:
    run_main(
        argv,
        prog="demo",
        description="demo",
        load_settings=lambda config, **o: load_file_settings(DemoSettings, config, **o),
        configure_logging=lambda settings: None,
        build_server=build,
    )


def test_flags_override_and_start_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[DemoSettings] = []

    def build(settings: DemoSettings) -> uvicorn.Server:
        seen.append(settings)
        raise OSError("no such file: server.crt")

    with pytest.raises(SystemExit) as exc:
        _main(["--host", "127.0.0.1", "--port", "9"], build)
    assert exc.value.code == 2
    assert (seen[0].host, seen[0].port) == ("127.0.0.1", 9)
    assert "demo: cannot start: no such file: server.crt" in capsys.readouterr().err

    bad = tmp_path / "bad.yaml"
    bad.write_text("port: not-a-number\n")
    with pytest.raises(SystemExit) as exc:
        _main(["--config", str(bad)], build)
    assert exc.value.code == 2
    assert "demo: invalid settings" in capsys.readouterr().err
