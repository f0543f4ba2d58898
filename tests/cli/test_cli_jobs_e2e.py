"""``toolforge jobs`` end to end: the CLI as a process -> gateway (mTLS) -> jobs API -> the
real cluster, as a freshly onboarded tool (``platform_cli``).

What the user sees for each command: results on stdout in every output format, the API's
messages on stderr, exit codes 1 (the API refused) and 2 (the platform failed: a backend
really stopped, a TLS peer that is not trusted), logs streamed as they are written, Ctrl-C and
a closed pipe. Covered elsewhere: ``run --wait`` success (``tests/test_platform.py``) and
failure, restart of a scheduled job, dump -> load of scheduled jobs, quota exhaustion and
isolation between tools (``tests/test_platform_jobs.py``), ``load --dry-run``
(``test_cli_load_dry_run.py``).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from platform_cli import tool_env, toolforge
from toolforge_admin.pki import CertificateAuthority, subject
from toolforge_dev.cluster import Cluster
from toolforge_dev.pytest_plugin import Tool
from toolforge_dev.services import PlatformServices
from toolforge_dev.web import web_url
from toolforge_dev.webapp import tool_host

pytestmark = pytest.mark.cluster

#: A log line as ``logs`` prints it: ``<datetime> [<pod>] <message>``.
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\S+ \[(?P<pod>[a-z0-9.-]+)\] (?P<message>.*)$")
#: Small requests, so that several pods fit the tool's quota and the 2-core machine.
SMALL = ("--mem", "128Mi", "--cpu", "50m")
#: A one-off job that prints ``first``, waits until the file ``go`` exists in the tool's home
#: (its working directory), prints ``second`` and ends: the test decides when it ends.
GATED = "sh -c 'echo first; while [ ! -e go ]; do sleep 0.2; done; echo second'"


def ok(tool: Tool, *args: str) -> subprocess.CompletedProcess[str]:
    """``toolforge ARGS`` as ``tool``, which must exit 0."""
    result = toolforge(tool, *args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def show(tool: Tool, name: str) -> dict[str, Any]:
    job: dict[str, Any] = json.loads(ok(tool, "jobs", "show", name, "-o", "json").stdout)["job"]
    return job


def spec_of(job: dict[str, Any]) -> dict[str, Any]:
    """``job`` without its status fields (``status``, ``status_short``, ``status_long``)."""
    return {k: v for k, v in job.items() if not k.startswith("status")}


#: What ``load`` prints per job: the API's message (ours: ``Job 'a' created``, production's:
#: ``Job a is already up to date``, ``Job a was updated in storage and runtime``), or the
#: CLI's own ``created|updated|unchanged a`` when the API gave none.
_LOAD_LINE = re.compile(
    r"^(?:Job '?(?P<job>[a-z0-9.-]+)'? (?:was |is )?(?P<said>created|updated|already up to date)"
    r".*|(?P<ours>created|updated|unchanged) +(?P<name>[a-z0-9.-]+))$"
)


def loaded_jobs(stdout: str) -> list[tuple[str, str]]:
    """``(action, job)`` of each line ``load`` printed; action: created|updated|unchanged."""
    result = []
    for line in stdout.splitlines():
        match = _LOAD_LINE.fullmatch(line)
        assert match is not None, line
        if match["ours"]:
            result.append((match["ours"], match["name"]))
        else:
            said = match["said"]
            result.append(("unchanged" if said == "already up to date" else said, match["job"]))
    return result


def names(tool: Tool) -> list[str]:
    return ok(tool, "jobs", "list", "-o", "name").stdout.split()


def wait_for_log(tool: Tool, name: str, text: str, timeout: float = 120) -> None:
    """Poll ``logs NAME`` until a line has ``text`` (the job's pod runs and wrote it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = toolforge(tool, "jobs", "logs", name, "-o", "json")
        if logs.returncode == 0 and any(
            json.loads(line)["message"] == text for line in logs.stdout.splitlines()
        ):
            return
        time.sleep(1)
    raise AssertionError(f"job {name!r} did not log {text!r} within {timeout:g} s")


def popen(
    tool: Tool, *args: str, text: bool = True, default_sigint: bool = False
) -> subprocess.Popen[Any]:
    """``toolforge ARGS`` as ``tool`` in the background, stdout and stderr piped.

    ``default_sigint``: start the CLI with SIGINT's default disposition, as a terminal's
    foreground process has it, whatever this process has. A process started with SIGINT
    ignored (pytest run as a background job of a non-interactive shell) passes SIG_IGN on
    through exec, and Python then installs no KeyboardInterrupt handler, so the CLI would not
    see a Ctrl-C at all. coreutils' ``env --default-signal=INT`` resets it in the child before
    exec (no Python code runs between fork and exec)."""
    reset = ["env", "--default-signal=INT"] if default_sigint else []
    return subprocess.Popen(
        [*reset, sys.executable, "-m", "toolforge_cli", *args],
        env=tool_env(tool),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=text,
    )


def stop(proc: subprocess.Popen[Any]) -> None:
    """Kill ``proc`` if a failed assertion left it running."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()


# -- read commands --------------------------------------------------------------------------


def test_read_commands_in_every_output_format(platform: PlatformServices, tool: Tool) -> None:
    empty = toolforge(tool, "jobs", "list")
    assert (empty.returncode, empty.stdout, empty.stderr) == (0, "", "No jobs.\n")
    ok(tool, "jobs", "run", "web", "--command", "sleep 600", "--image", "python3.11",
       "--continuous", "--port", "8000", *SMALL)  # fmt: skip
    ok(tool, "jobs", "run", "daily", "--command", "echo daily", "--image", "bookworm",
       "--schedule", "@daily")  # fmt: skip

    table = ok(tool, "jobs", "list").stdout.splitlines()
    assert [line.split()[0] for line in table[2:]] == ["daily", "web"], table
    assert "schedule: @daily" in table[2]
    long = ok(tool, "jobs", "list", "-o", "long").stdout
    assert "sleep 600" in long
    assert "python3.11" in long
    assert names(tool) == ["daily", "web"]
    listed = json.loads(ok(tool, "jobs", "list", "--output", "json").stdout)
    assert [j["name"] for j in listed["jobs"]] == ["daily", "web"]
    assert (listed["jobs"][1]["port"], listed["jobs"][1]["port_protocol"]) == (8000, "tcp")
    assert listed["messages"] == {"info": [], "warning": [], "error": []}
    upstream_json = json.loads(ok(tool, "jobs", "list", "--json").stdout)  # = -o json
    assert [j["name"] for j in upstream_json["jobs"]] == ["daily", "web"]
    deprecated_long = ok(tool, "jobs", "list", "-l")
    assert "sleep 600" in deprecated_long.stdout
    assert "deprecated" in deprecated_long.stderr

    shown = ok(tool, "jobs", "show", "web").stdout
    assert re.search(r"^\s*Port:\s+8000/tcp\s*$", shown, re.MULTILINE), shown
    assert show(tool, "web")["image"].endswith("/python3.11:stable")

    images = json.loads(ok(tool, "jobs", "images", "-o", "json").stdout)["images"]
    assert [i["shortname"] for i in images] == ["bookworm", "python3.11"]
    images_table = ok(tool, "jobs", "images").stdout
    for image in images:
        assert image["shortname"] in images_table
        assert image["image"] in images_table

    quota = json.loads(ok(tool, "jobs", "quota", "-o", "json").stdout)["quota"]
    running = next(c for c in quota["categories"] if c["name"] == "Running jobs")
    memory = next(i for i in running["items"] if i["name"] == "Memory")
    assert memory["limit"] == "6Gi"
    quota_table = ok(tool, "jobs", "quota").stdout
    assert "Running jobs" in quota_table
    assert "6Gi" in quota_table


# -- changes and the API's refusals -----------------------------------------------------------


def test_run_reports_the_api_messages_and_refusals(platform: PlatformServices, tool: Tool) -> None:
    args = ("jobs", "run", "nightly", "--command", "echo hi", "--image", "bookworm",
            "--schedule", "@daily")  # fmt: skip
    created = ok(tool, *args)
    assert (created.stdout, created.stderr) == ("", "info: Job 'nightly' created\n")
    again = toolforge(tool, *args)
    assert (again.returncode, again.stderr) == (1, "error: Job 'nightly' already exists\n")
    refused = toolforge(
        tool, "jobs", "run", "big", "--command", "true", "--image", "bookworm", "--mem", "lots"
    )
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: memory is invalid"), refused.stderr
    assert names(tool) == ["nightly"]


def test_delete_restart_and_flush(platform: PlatformServices, tool: Tool) -> None:
    ok(tool, "jobs", "run", "web", "--command", "sleep 600", "--image", "python3.11",
       "--continuous", *SMALL)  # fmt: skip
    ok(tool, "jobs", "run", "once", "--command", "true", "--image", "python3.11", *SMALL)

    restarted = ok(tool, "jobs", "restart", "web")
    assert restarted.stderr == "info: Job 'web' is being restarted (its pods are replaced)\n"
    one_off = toolforge(tool, "jobs", "restart", "once")
    assert one_off.returncode == 1
    assert one_off.stderr == (
        "error: Job 'once' is a one-off job and cannot be restarted; delete it and run it again\n"
    )
    for command in ("restart", "delete", "show", "logs"):
        missing = toolforge(tool, "jobs", command, "nope")
        assert (missing.returncode, missing.stdout, missing.stderr) == (
            1, "", "error: Job 'nope' does not exist\n",
        ), command  # fmt: skip

    deleted = ok(tool, "jobs", "delete", "once")
    assert deleted.stderr == "info: Job 'once' deleted\n"
    assert names(tool) == ["web"]
    flushed = ok(tool, "jobs", "flush")
    assert flushed.stderr == "info: All jobs deleted\n"
    assert names(tool) == []


# -- load and dump ----------------------------------------------------------------------------


def test_load_keeps_other_jobs_and_loads_only_the_named_one(
    platform: PlatformServices, tool: Tool, tmp_path: Path
) -> None:
    ok(tool, "jobs", "run", "keep", "--command", "true", "--image", "bookworm",
       "--schedule", "@daily")  # fmt: skip
    entries = [
        {"name": "a", "command": "echo a", "image": "bookworm", "schedule": "@daily"},
        {"name": "b", "command": "echo b", "image": "bookworm", "schedule": "@daily"},
    ]
    jobs_file = tmp_path / "jobs.yaml"
    jobs_file.write_text(yaml.safe_dump(entries))
    loaded = ok(tool, "jobs", "load", str(jobs_file))
    assert loaded_jobs(loaded.stdout) == [("created", "a"), ("created", "b")]
    assert names(tool) == ["a", "b", "keep"]

    entries[0]["schedule"] = entries[1]["schedule"] = "@weekly"
    jobs_file.write_text(yaml.safe_dump(entries))
    only_b = ok(tool, "jobs", "load", str(jobs_file), "--job", "b")
    assert loaded_jobs(only_b.stdout) == [("updated", "b")]
    assert (show(tool, "a")["schedule"], show(tool, "b")["schedule"]) == ("@daily", "@weekly")
    again = ok(tool, "jobs", "load", str(jobs_file), "--job", "b")
    assert loaded_jobs(again.stdout) == [("unchanged", "b")]


def test_load_stops_at_the_first_refused_job(
    platform: PlatformServices, tool: Tool, tmp_path: Path
) -> None:
    jobs_file = tmp_path / "jobs.yaml"
    jobs_file.write_text(
        "- {name: a, command: echo a, image: bookworm, schedule: '@daily'}\n"
        "- {name: b, command: echo b, image: no-such-image, schedule: '@daily'}\n"
        "- {name: c, command: echo c, image: bookworm, schedule: '@daily'}\n"
    )
    result = toolforge(tool, "jobs", "load", str(jobs_file))
    assert result.returncode == 1
    assert loaded_jobs(result.stdout) == [("created", "a")]
    error, count = result.stderr.splitlines()
    assert error.startswith("error: job 'b': imagename 'no-such-image' is not a known image")
    assert count == "  1 of 3 job(s) were loaded before this one"
    assert names(tool) == ["a"]


def test_run_flags_reach_the_job_and_dump_then_load_changes_nothing(
    platform: PlatformServices, tool: Tool, tmp_path: Path
) -> None:
    ok(tool, "jobs", "run", "dns", "--command", "sleep 600", "--image", "python3.11",
       "--continuous", "-p", "5353/udp", "--replicas", "2", *SMALL)  # fmt: skip
    ok(tool, "jobs", "run", "daily", "--command", "./daily.sh", "--image", "bookworm",
       "--schedule", "@daily", "--timeout", "60", "-o", "d.out", "--emails", "onfailure",
       "--retry", "2")  # fmt: skip
    # --mount all: none is only for build service images (400 on a standard image)
    ok(tool, "jobs", "run", "check", "--command", "sleep 600", "--image", "python3.11",
       "--continuous", "--health-check-script", "true", "--mem", "200Mi", "--cpu", "0.25",
       "--mount", "all")  # fmt: skip
    dns, daily, check = show(tool, "dns"), show(tool, "daily"), show(tool, "check")
    assert (dns["job_type"], dns["port"], dns["port_protocol"], dns["replicas"]) == (
        "continuous", 5353, "udp", 2,
    )  # fmt: skip
    assert (dns["memory"], dns["cpu"]) == ("128Mi", "50m")
    assert (daily["timeout"], daily["filelog"], daily["filelog_stdout"]) == (60, True, "d.out")
    assert (daily["emails"], daily["retry"]) == ("onfailure", 2)
    assert check["health_check"] == {"type": "script", "script": "true"}
    assert (check["memory"], check["cpu"], check["mount"]) == ("200Mi", "0.25", "all")

    dumped = tmp_path / "dump.yaml"
    to_file = ok(tool, "jobs", "dump", "-f", str(dumped))
    assert (to_file.stdout, to_file.stderr) == ("", f"Wrote 3 job(s) to {dumped}\n")
    assert [e["name"] for e in yaml.safe_load(dumped.read_text())] == ["check", "daily", "dns"]
    assert ok(tool, "jobs", "dump").stdout == dumped.read_text()
    as_json = json.loads(ok(tool, "jobs", "dump", "-o", "json").stdout)
    assert as_json == yaml.safe_load(dumped.read_text())

    before = {name: show(tool, name) for name in ("check", "daily", "dns")}
    loaded = ok(tool, "jobs", "load", str(dumped))
    assert loaded_jobs(loaded.stdout) == [
        ("unchanged", "check"),
        ("unchanged", "daily"),
        ("unchanged", "dns"),
    ]
    for name, job in before.items():
        assert spec_of(show(tool, name)) == spec_of(job), name


def test_run_publish_serves_the_job_and_show_has_its_public_url(
    platform: PlatformServices, tool: Tool, tmp_path: Path
) -> None:
    """``run --publish /`` (``docs/web-traffic.md``): ``show`` prints ``Public:``, the job
    answers through the Gateway NodePort with the tool's ``Host``, ``dump`` keeps it."""
    host = tool_host(tool.name)
    ok(tool, "jobs", "run", "site", "--command", "python3 -m http.server 8000", "--image",
       "python3.11", "--continuous", "-p", "8000", "--publish", "/", *SMALL)  # fmt: skip
    table = ok(tool, "jobs", "show", "site").stdout
    assert re.search(rf"Public:\s+http://{re.escape(host)}:30000/", table), table
    assert show(tool, "site")["public_url"] == f"http://{host}:30000/"

    deadline = time.monotonic() + 120
    status = None
    while status != 200:
        assert time.monotonic() < deadline, f"{host}: last answer {status}"
        try:
            with httpx.Client(base_url=web_url(), trust_env=False, timeout=5) as web:
                status = web.get("/", headers={"Host": host}).status_code
        except httpx.HTTPError:
            status = None
        time.sleep(0.5)

    dumped = tmp_path / "dump.yaml"
    ok(tool, "jobs", "dump", "-f", str(dumped))
    (entry,) = yaml.safe_load(dumped.read_text())
    assert (entry["publish"], entry["port"]) == ("/", 8000)
    assert loaded_jobs(ok(tool, "jobs", "load", str(dumped)).stdout) == [("unchanged", "site")]


# -- --wait beyond success and failure --------------------------------------------------------


def test_wait_gives_up_after_its_time_and_the_job_keeps_going(
    platform: PlatformServices, tool: Tool
) -> None:
    started = time.monotonic()
    result = toolforge(tool, "jobs", "run", "slow", "--command", "sleep 600",
                       "--image", "python3.11", "--wait", "3", *SMALL)  # fmt: skip
    assert time.monotonic() - started >= 3
    assert result.returncode == 1
    assert re.fullmatch(
        r"info: Job 'slow' created\n"
        r"error: Job 'slow' did not finish within 3 seconds \(status: \w+\); it keeps going\n",
        result.stderr,
    ), result.stderr
    assert show(tool, "slow")["status"]["short"] in ("pending", "running")


def test_wait_reports_a_job_deleted_while_it_waits(platform: PlatformServices, tool: Tool) -> None:
    proc = popen(tool, "jobs", "run", "gone", "--command", "sleep 600", "--image", "python3.11",
                 "--wait", "300", *SMALL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while toolforge(tool, "jobs", "show", "gone").returncode != 0:
            assert time.monotonic() < deadline, "the job was not created"
            time.sleep(0.5)
        assert proc.poll() is None  # still waiting
        ok(tool, "jobs", "delete", "gone")
        _, stderr = proc.communicate(timeout=120)
    finally:
        stop(proc)
    assert proc.returncode == 1, stderr
    assert "error: Job 'gone' no longer exists: it was deleted" in stderr


# -- logs -------------------------------------------------------------------------------------


def test_logs_in_both_formats_and_the_last_lines(platform: PlatformServices, tool: Tool) -> None:
    ok(tool, "jobs", "run", "three", "--image", "python3.11", "--wait", "120", *SMALL,
       "--no-filelog",
       "--command", "python3 -c 'for i in range(3): print(f\"line {i}\")'")  # fmt: skip
    wait_for_log(tool, "three", "line 2")  # the log store has it a few seconds after the end
    plain = ok(tool, "jobs", "logs", "three").stdout.splitlines()
    matches = [LOG_LINE.match(line) for line in plain]
    assert all(matches), plain
    assert [m["message"] for m in matches if m] == ["line 0", "line 1", "line 2"]
    assert all(m["pod"].startswith("three-") for m in matches if m)

    last = ok(tool, "jobs", "logs", "three", "-l", "1", "-o", "json").stdout.splitlines()
    (entry,) = (json.loads(line) for line in last)
    assert (entry["message"], entry["container"]) == ("line 2", "job")
    assert plain[-1] == f"{entry['datetime']} [{entry['pod']}] line 2"


def test_logs_follow_prints_lines_as_they_come_until_stopped(
    platform: PlatformServices, tool: Tool
) -> None:
    """The logs API's follow keeps going after the job ends (lines stay in the store; upstream's
    jobs CLI 16.x follows the same way): the CLI prints the new line, then Ctrl-C ends it."""
    ok(tool, "jobs", "run", "gated", "--command", GATED, "--image", "python3.11", *SMALL,
       "--no-filelog")  # fmt: skip
    wait_for_log(tool, "gated", "first")
    proc = popen(tool, "jobs", "logs", "gated", "-f", default_sigint=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the job cannot end before `go` exists
        assert show(tool, "gated")["status"]["short"] == "running"
        (tool.home / "go").write_text("")
        second = proc.stdout.readline()  # within the follow delay of the logs API
        proc.send_signal(signal.SIGINT)
        rest, errors = proc.communicate(timeout=30)
    finally:
        stop(proc)
    assert first.endswith("] first\n"), first
    assert second.endswith("] second\n"), second
    assert (proc.returncode, rest, errors) == (130, "", "")


def test_ctrl_c_while_following_logs_exits_130_quietly(
    platform: PlatformServices, tool: Tool
) -> None:
    ok(tool, "jobs", "run", "gated", "--command", GATED, "--image", "python3.11", *SMALL,
       "--no-filelog")  # fmt: skip
    wait_for_log(tool, "gated", "first")
    proc = popen(tool, "jobs", "logs", "gated", "--follow", default_sigint=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert proc.poll() is None  # following: the job waits for `go`, which never comes
        proc.send_signal(signal.SIGINT)  # what Ctrl-C in a terminal sends
        rest, errors = proc.communicate(timeout=30)
    finally:
        stop(proc)
    assert first.endswith("] first\n"), first
    assert (proc.returncode, rest, errors) == (130, "", "")


def test_a_reader_that_closes_the_pipe_ends_the_program_quietly(
    platform: PlatformServices, tool: Tool
) -> None:
    # 5000 lines of about 100 bytes printed: 500 kB, far over a pipe's 64 kB buffer, so the
    # CLI is still writing when the reader goes away.
    command = 'python3 -c \'for i in range(5000): print(f"{i:05} " + 60 * "x")\''
    ok(tool, "jobs", "run", "chatty", "--image", "python3.11", "--wait", "120", *SMALL,
       "--no-filelog",
       "--command", command)  # fmt: skip
    wait_for_log(tool, "chatty", "04999 " + 60 * "x")
    assert len(ok(tool, "jobs", "logs", "chatty").stdout) > 4 * 2**16
    proc = popen(tool, "jobs", "logs", "chatty", text=False)
    try:
        assert proc.stdout is not None
        assert proc.stderr is not None
        first = proc.stdout.readline()
        proc.stdout.close()  # like `| head -1`
        errors = proc.stderr.read()
        proc.wait(timeout=60)
    finally:
        stop(proc)
    assert first.endswith(b"] 00000 " + 60 * b"x" + b"\n"), first
    assert (proc.returncode, errors) == (0, b"")


# -- the platform failing ---------------------------------------------------------------------


def test_a_stopped_jobs_api_exits_2(platform: PlatformServices, tool: Tool) -> None:
    """The jobs API process really stopped: the gateway answers 503, the CLI exits 2; once
    it runs again, so does the command."""
    ok(tool, "jobs", "list")
    platform.stop_service("jobs-api")
    try:
        down = toolforge(tool, "jobs", "list")
    finally:
        platform.start()
    assert (down.returncode, down.stdout) == (2, "")
    assert down.stderr == "error: the jobs API is not available\n"
    assert names(tool) == []


def test_a_gateway_certificate_from_another_ca_exits_2_with_a_hint(
    platform: PlatformServices, tool: Tool, cluster: Cluster
) -> None:
    result = toolforge(tool, "--ca", str(cluster.pki_dir / "backend-ca.crt"), "jobs", "list")
    assert (result.returncode, result.stdout) == (2, "")
    assert (
        f"error: TLS: the certificate of {platform.gateway_url} was not accepted:" in result.stderr
    )
    assert "pass --ca FILE with the cluster CA" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_client_certificate_from_another_ca_exits_2_with_a_hint(
    platform: PlatformServices, tool: Tool, tmp_path: Path
) -> None:
    """The tool's name, but issued by a CA the gateway does not trust: the gateway refuses
    the handshake and the hint names the certificate."""
    foreign = CertificateAuthority.create("not the cluster CA")
    cert, key = foreign.issue_pair(
        tmp_path, "foreign", subject(tool.name, ["toolforge"]), client=True
    )
    result = toolforge(tool, "--cert", str(cert), "--key", str(key), "jobs", "list")
    assert (result.returncode, result.stdout) == (2, "")
    assert f"error: {platform.gateway_url} closed the connection without an answer" in (
        result.stderr
    )
    assert f"is {cert} the tool's current certificate" in result.stderr
    assert "Traceback" not in result.stderr
