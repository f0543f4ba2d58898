"""The installed ``toolforge`` program as a separate process: the console script, Ctrl-C during
``logs -f`` and a reader that closes the pipe early (``| head -1``). The server is the jobs API
test double (see conftest), which STANDS IN FOR THE JOBS API UNTIL IT EXISTS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from cli.harness import Home, RunningDouble, clean_env

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


def test_ctrl_c_while_following_logs_exits_130_quietly(jobs_api: RunningDouble, home: Home) -> None:
    double = jobs_api.double
    double.add_job(
        {"name": "web", "cmd": "./serve.sh", "imagename": "bookworm", "continuous": True}
    )
    double.log_entries = [
        {"pod": "web-0", "container": "job", "datetime": "2026-01-01T00:00:00Z", "message": "up"}
    ]
    double.follow_extra = None  # the stream never ends by itself
    with subprocess.Popen(
        [str(TOOLFORGE), "jobs", "logs", "web", "-f"],
        env=process_env(home, TOOLFORGE_API_URL=jobs_api.url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        first = proc.stdout.readline()
        second = proc.stdout.readline()  # a line that arrived while following
        proc.send_signal(signal.SIGINT)
        _, errors = proc.communicate(timeout=30)
    assert first == "2026-01-01T00:00:00Z [web-0] up\n"
    assert second == "2026-01-01T00:00:00Z [web-0] more 1\n"
    assert proc.returncode == 130
    assert errors == ""


def test_a_reader_that_closes_the_pipe_ends_the_program_quietly(
    jobs_api: RunningDouble, home: Home
) -> None:
    double = jobs_api.double
    prefix = "a-job-name-long-enough-to-fill-the-pipe"  # 3000 names: 135 kB > 64 kB buffer
    for i in range(3000):
        double.jobs[f"{prefix}-{i:04}"] = {
            "name": f"{prefix}-{i:04}",
            "cmd": "true",
            "imagename": "bookworm",
            "job_type": "one-off",
        }
    with subprocess.Popen(
        [str(TOOLFORGE), "jobs", "list", "-o", "name"],
        env=process_env(home, TOOLFORGE_API_URL=jobs_api.url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        first = proc.stdout.readline()
        proc.stdout.close()  # like `head -1`
        errors = proc.stderr.read()
        proc.wait(timeout=60)
    assert first == f"{prefix}-0000\n".encode()
    assert errors == b""
    assert proc.returncode == 0
