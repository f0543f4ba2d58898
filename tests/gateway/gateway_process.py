"""The ``toolforge-gateway`` command as a child process, on a port it binds itself.

A port picked by the test (bound, released, then bound again by the child) can be taken by
anything else on the machine in between, and the gateway then exits with status 3 at start-up
(uvicorn's "address already in use"). Here the gateway is started with ``port: 0``: the kernel
gives it a free port as it binds, and the test reads that port from the gateway's own log line
``Uvicorn running on https://HOST:PORT`` (one process), or ``gateway running on
https://HOST:PORT with N workers`` (the supervisor, which binds the shared socket). A thread
collects stderr meanwhile, so the pipe never fills up.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import yaml

__all__ = ["GatewayProcess", "gateway_command"]

#: uvicorn's line (one process) and the supervisor's (workers, which log none of their own).
_RUNNING = re.compile(r"(?:Uvicorn|gateway) running on https?://\S+:(\d+) ")


def gateway_command() -> list[str]:
    script = Path(sys.executable).parent / "toolforge-gateway"
    assert script.exists(), "the console script is declared in services/gateway/pyproject.toml"
    return [str(script)]


class GatewayProcess:
    """``toolforge-gateway --config <tmp>/gateway.yaml [extra args]`` with ``settings``
    (``port`` defaults to 0). Use as a context manager: on exit a process still running is
    killed and its stderr read to the end."""

    def __init__(self, tmp_path: Path, settings: dict[str, object], *extra_args: str) -> None:
        config_file = tmp_path / "gateway.yaml"
        config_file.write_text(yaml.safe_dump({"port": 0, **settings}))
        self.process = subprocess.Popen(
            [*gateway_command(), "--config", str(config_file), *extra_args],
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: list[str] = []
        self._port: int | None = None
        self._eof = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def __enter__(self) -> GatewayProcess:
        return self

    def __exit__(self, *_: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        self._reader.join(timeout=30)

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self) -> None:
        stream = self.process.stderr
        assert stream is not None
        for line in stream:
            with self._changed:
                self._lines.append(line)
                if self._port is None and (match := _RUNNING.search(line)):
                    self._port = int(match.group(1))
                self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    def port(self, timeout: float) -> int:
        """The port the gateway listens on, once it says so; fails the test if the gateway
        exits first or says nothing within ``timeout`` seconds."""
        with self._changed:
            self._changed.wait_for(lambda: self._port is not None or self._eof, timeout)
            port, lines = self._port, list(self._lines)
        assert port is not None, f"the gateway did not start:\n{''.join(lines)}"
        return port

    def wait(self, timeout: float) -> int:
        """The exit status (``-N`` for signal N) once the process and its stderr ended."""
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=timeout)
        return code

    def log_entries(self) -> list[dict[str, Any]]:
        """The JSON log lines read so far (other lines skipped)."""
        with self._changed:
            lines = list(self._lines)
        entries = []
        for line in lines:
            if line.startswith("{"):
                entries.append(json.loads(line))
        return entries
