"""The upstream clients read the logs API unchanged: ``toolforge-jobs`` 16.2.3 ``logs`` (and
``-f``) and ``toolforge-logs`` 0.0.5, against our gateway's ``/logs`` route."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time

import httpx
import pytest
from upstream.conftest import Upstream, wait_until

from toolforge_dev.upstream_clients import UpstreamResult

pytestmark = pytest.mark.cluster

JOBS_LINE = re.compile(
    r"^(?P<datetime>\S+) \[(?P<pod>[^]]+)\] \[(?P<container>[^]]+)\] (?P<message>.*)$"
)
LOGS_LINE = re.compile(
    r"^(?P<datetime>\S+) \[(?P<job>[^]]+)\] "
    r"\[(?P<pod>[^]|]+)\|(?P<container>[^]]+)\] (?P<message>.*)$"
)


def ok(result: UpstreamResult) -> UpstreamResult:
    assert result.returncode == 0, result.describe()
    return result


def run_printer(upstream: Upstream, name: str, command: str, *extra: str) -> None:
    ok(
        upstream.jobs(
            "run", name, "--command", command, "--image", "bookworm", "--no-filelog", *extra
        )
    )


def test_jobs_logs_reads_the_logs_api(upstream: Upstream) -> None:
    run_printer(upstream, "chatty", "for i in 1 2 3 4 5; do echo hi $i; done", "--wait")

    def five() -> list[re.Match[str]]:
        result = ok(upstream.jobs("logs", "chatty"))
        matches = [JOBS_LINE.match(line) for line in result.stdout.splitlines()]
        assert all(matches), result.describe()
        found = [m for m in matches if m]
        return found if len(found) >= 5 else []

    lines = wait_until(five, "five lines through toolforge-jobs logs", timeout=120)
    assert [m["message"] for m in lines] == [f"hi {i}" for i in range(1, 6)]
    assert {(m["container"]) for m in lines} == {"job"}
    assert all(m["pod"].startswith("chatty-") for m in lines)
    assert [m["datetime"] for m in lines] == sorted(m["datetime"] for m in lines)
    # --last N: the newest N, printed oldest first; --since/--until are passed through
    last = ok(upstream.jobs("logs", "chatty", "--last", "2", "--since", "1d"))
    assert [JOBS_LINE.match(line)["message"] for line in last.stdout.splitlines()] == [  # type: ignore[index]
        "hi 4",
        "hi 5",
    ]
    later = ok(upstream.jobs("logs", "chatty", "--since", "2026-01-01T00:00:00Z", "--until", "1s"))
    assert len(later.stdout.splitlines()) == 5


def test_jobs_logs_of_a_filelog_job_says_there_are_none(upstream: Upstream) -> None:
    ok(upstream.jobs("run", "tofiles", "--command", "echo x", "--image", "bookworm", "--filelog"))
    result = upstream.jobs("logs", "tofiles")
    assert result.returncode == 1, result.describe()
    assert any("does not have any logs available" in line for line in result.stderr_lines), (
        result.describe()
    )


def _tails_open(tool_http: httpx.Client) -> float:
    text = tool_http.get("/logs/v1/metrics").text
    match = re.search(r"^toolforge_logs_store_tails_open (\S+)$", text, re.M)
    assert match, text
    return float(match.group(1))


def test_jobs_logs_follow_prints_new_lines_and_stops_on_ctrl_c(
    upstream: Upstream, tool_http: httpx.Client
) -> None:
    before = _tails_open(tool_http)
    run_printer(
        upstream,
        "ticker",
        "i=0; while true; do i=$((i+1)); echo tick $i; sleep 1; done",
        "--continuous",
    )
    argv = ["env", "--default-signal=INT", str(upstream.clients.command("toolforge-jobs"))]
    env = {
        "PATH": f"{upstream.clients.bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(upstream.home),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        # a terminal gets each line as it comes; a pipe would get them in 8 KiB blocks
        "PYTHONUNBUFFERED": "1",
        **upstream.env,
    }
    started = time.monotonic()
    proc = subprocess.Popen(
        [*argv, "logs", "ticker", "-f"],
        env=env,
        cwd=str(upstream.home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ticks: list[int] = []
        while len(ticks) < 3:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            match = JOBS_LINE.match(line.rstrip("\n"))
            assert match, line
            ticks.append(int(match["message"].split()[1]))
            assert time.monotonic() - started < 120, "follow too slow"
        assert ticks == sorted(ticks)
        assert _tails_open(tool_http) == before + 1
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode in (0, 130, -signal.SIGINT), proc.returncode
    wait_until(lambda: _tails_open(tool_http) == before, "the store tail to close", timeout=20)


def test_logs_cli_reads_a_jobs_lines(upstream: Upstream) -> None:
    run_printer(upstream, "lister", "for i in 1 2 3; do echo item $i; done", "--wait")

    def three() -> list[re.Match[str]]:
        result = ok(upstream.logs("--job-names", "lister"))
        found = [m for m in map(LOGS_LINE.match, result.stdout.splitlines()) if m]
        return found if len(found) >= 3 else []

    lines = wait_until(three, "three lines through toolforge-logs", timeout=120)
    assert [(m["job"], m["container"], m["message"]) for m in lines] == [
        ("lister", "job", f"item {i}") for i in (1, 2, 3)
    ]
    as_json = ok(upstream.logs("--json", "--sources", "run-logs", "--job-names", "lister"))
    rows = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [(r["source"], r["job_name"], r["message"]) for r in rows] == [
        ("run-logs", "lister", f"item {i}") for i in (1, 2, 3)
    ]
    newest = ok(
        upstream.logs("--job-names", "lister", "--lines", "1", "--direction", "newest_first")
    )
    assert [LOGS_LINE.match(line)["message"] for line in newest.stdout.splitlines()] == ["item 3"]  # type: ignore[index]
    # the tool's lines of every job
    everything = ok(upstream.logs("--since", "1d"))
    assert "item 2" in everything.stdout
