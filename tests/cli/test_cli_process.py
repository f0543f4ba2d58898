"""The installed ``toolforge`` program as a separate process: the console script. Ctrl-C during
``logs -f`` and a reader that closes the pipe early (``| head -1``) are tested against the real
platform in ``test_cli_jobs_e2e.py``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cli.harness import Home, clean_env

from toolforge_cli import __version__

TOOLFORGE = Path(sys.executable).parent / "toolforge"


def process_env(home: Home, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for name, value in clean_env(home, **extra).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    env.pop("COLUMNS", None)
    return env


def test_console_script_is_installed(home: Home) -> None:
    result = subprocess.run(
        [str(TOOLFORGE), "--version"],
        env=process_env(home),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, f"toolforge-cli {__version__}\n")
