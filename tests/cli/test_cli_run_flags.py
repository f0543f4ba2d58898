"""``toolforge jobs run`` flags -> request body, parsed by the real Typer command.

Every body is also validated with the jobs API's own model (``toolforge_jobs.models.JobSpec``),
so the client never builds a body the server's model refuses.
"""

from __future__ import annotations

from typing import Any

import pytest
from cli.harness import Home, clean_env, run_cli
from typer.main import get_command

from toolforge_cli import jobs
from toolforge_cli.errors import UserError
from toolforge_cli.jobspec import DEFAULT_WAIT_SECONDS, JobOptions
from toolforge_jobs.models import JobSpec

BASE = ["myjob", "--command", "./run.sh --fast", "--image", "bookworm"]
BASE_BODY = {
    "name": "myjob",
    "cmd": "./run.sh --fast",
    "imagename": "bookworm",
    "job_type": "one-off",
}


def parse_run(args: list[str]) -> JobOptions:
    """Parse ``run`` arguments exactly as the CLI does and build the options."""
    group = get_command(jobs.app)
    command = group.commands["run"]  # type: ignore[attr-defined]
    ctx = command.make_context("run", list(args))
    return jobs.run_options(**ctx.params)


@pytest.mark.parametrize(
    ("flags", "extra"),
    [
        pytest.param([], {}, id="minimal-one-off"),
        pytest.param(
            ["--retry", "3", "--mem", "1Gi", "--cpu", "0.5", "--emails", "onfailure"],
            {"retry": 3, "memory": "1Gi", "cpu": "0.5", "emails": "onfailure"},
            id="one-off-resources-emails",
        ),
        pytest.param(["--mount", "none", "--no-filelog"], {"mount": "none", "filelog": False}),
        pytest.param(["--filelog"], {"filelog": True}),
        pytest.param(
            ["-o", "logs/out.txt", "-e", "logs/err.txt"],
            {"filelog": True, "filelog_stdout": "logs/out.txt", "filelog_stderr": "logs/err.txt"},
            id="o-e-imply-filelog",
        ),
        pytest.param(
            ["--filelog-stdout", "o", "--filelog-stderr", "e", "--filelog"],
            {"filelog": True, "filelog_stdout": "o", "filelog_stderr": "e"},
            id="long-names",
        ),
        pytest.param(
            ["--schedule", "@daily", "--timeout", "3600", "--retry", "1"],
            {"job_type": "scheduled", "schedule": "@daily", "timeout": 3600, "retry": 1},
            id="scheduled",
        ),
        pytest.param(
            ["--schedule", "*/5 * * * *"], {"job_type": "scheduled", "schedule": "*/5 * * * *"}
        ),
        pytest.param(["--continuous"], {"job_type": "continuous"}),
        pytest.param(
            ["--continuous", "-p", "8080/udp", "--replicas", "3"],
            {"job_type": "continuous", "port": 8080, "port_protocol": "udp", "replicas": 3},
            id="udp-port",
        ),
        pytest.param(
            ["--continuous", "--port", "8080/tcp"],
            {"job_type": "continuous", "port": 8080, "port_protocol": "tcp"},
            id="tcp-port-explicit",
        ),
        pytest.param(
            ["--continuous", "-p", "8080", "--health-check-http", "/healthz"],
            {
                "job_type": "continuous",
                "port": 8080,
                "health_check": {"type": "http", "path": "/healthz"},
            },
            id="http-health-check",
        ),
        pytest.param(
            ["--continuous", "--health-check-script", "pgrep -f serve"],
            {
                "job_type": "continuous",
                "health_check": {"type": "script", "script": "pgrep -f serve"},
            },
            id="script-health-check",
        ),
        pytest.param(["--wait"], {}, id="wait-is-client-side"),
    ],
)
def test_flags_become_the_documented_body(flags: list[str], extra: dict[str, Any]) -> None:
    body = parse_run(BASE + flags).to_body()
    assert body == {**BASE_BODY, **extra}
    JobSpec.model_validate(body)  # the jobs API's own model accepts it


@pytest.mark.parametrize(
    ("args", "seconds"),
    [
        (BASE, None),
        ([*BASE, "--wait"], DEFAULT_WAIT_SECONDS),
        (["--wait", *BASE], DEFAULT_WAIT_SECONDS),  # followed by the NAME argument
        ([*BASE, "--wait", "30"], 30),
        ([*BASE, "--wait=45"], 45),
        (["myjob", "--wait", "--command", "c", "--image", "i"], DEFAULT_WAIT_SECONDS),
        (["myjob", "--wait", "5", "--command", "c", "--image", "i"], 5),
    ],
)
def test_wait_takes_an_optional_number_of_seconds(args: list[str], seconds: int | None) -> None:
    assert parse_run(args).wait_seconds == seconds


def test_optional_values_leave_arguments_after_double_dash_alone() -> None:
    args = ["x", "--", "--wait"]
    assert jobs.with_optional_values(args, {"--wait": "600"}) == args
    assert jobs.with_optional_values(["--wait", "--", "a"], {"--wait": "600"}) == [
        "--wait=600",
        "--",
        "a",
    ]


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        (["--schedule", "@daily", "--continuous"], "--schedule and --continuous are mutually"),
        (
            ["--continuous", "-p", "80", "--health-check-script", "s", "--health-check-http", "/"],
            "--health-check-script and --health-check-http are mutually exclusive",
        ),
        (["-p", "8080"], "--port is only valid with --continuous"),
        (["--replicas", "2"], "--replicas is only valid with --continuous"),
        (["--health-check-script", "true"], "--health-check-script is only valid with"),
        (["--continuous", "-p", "70000"], "port must be between 1 and 65535"),
        (["--continuous", "-p", "0"], "port must be between 1 and 65535"),
        (["--continuous", "-p", "80/sctp"], "is not PORT or PORT/tcp or PORT/udp"),
        (["--continuous", "-p", "http"], "is not PORT or PORT/tcp or PORT/udp"),
        (
            ["--continuous", "-p", "80", "--health-check-http", "healthz"],
            "--health-check-http must be a path starting with '/'",
        ),
        (["--continuous", "--health-check-http", "/h"], "--health-check-http needs a TCP --port"),
        (
            ["--continuous", "-p", "53/udp", "--health-check-http", "/h"],
            "--health-check-http needs a TCP --port",
        ),
        (["--timeout", "60"], "--timeout is only valid with --schedule"),
        (["--continuous", "--retry", "2"], "--retry is not valid with --continuous"),
        (["--no-filelog", "-o", "out"], "--filelog-stdout needs file logs"),
        (["--no-filelog", "-e", "err"], "--filelog-stderr needs file logs"),
        (["--schedule", "@hourly", "--wait"], "--wait is not valid with --schedule"),
    ],
)
def test_invalid_flag_combinations_name_the_flags(flags: list[str], problem: str) -> None:
    with pytest.raises(UserError) as info:
        parse_run(BASE + flags)
    assert any(problem in line for line in info.value.details), info.value.details
    assert info.value.exit_code == 1


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("My_Job", "NAME 'My_Job' must consist of lower case letters"),
        ("job-", "must consist of lower case letters"),
        ("a" * 53, "longer than 52 characters"),
    ],
)
def test_job_names_follow_the_reference_rule(name: str, problem: str) -> None:
    with pytest.raises(UserError) as info:
        parse_run([name, "--command", "c", "--image", "i"])
    assert any(problem in line for line in info.value.details)


def test_dotted_names_of_52_characters_are_fine() -> None:
    name = "a." + "b" * 50
    assert parse_run([name, "--command", "c", "--image", "i"]).name == name


def test_bad_combination_exits_1_before_reading_credentials(home: Home) -> None:
    home.cert.unlink()  # would be a credentials error if the CLI got that far
    result = run_cli(
        ["jobs", "run", *BASE, "--schedule", "@daily", "--continuous"], clean_env(home)
    )
    assert result.exit_code == 1
    assert "error: invalid options" in result.stderr
    assert "--schedule and --continuous are mutually exclusive" in result.stderr
    assert "certificate" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "flags",
    [
        ["--retry", "9"],
        ["--emails", "sometimes"],
        ["--mount", "some"],
        ["--replicas", "0"],
        ["--wait", "0"],
        ["--bogus"],
    ],
)
def test_parser_errors_are_usage_errors(home: Home, flags: list[str]) -> None:
    result = run_cli(["jobs", "run", *BASE, *flags], clean_env(home))
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_required_flags_are_required(home: Home) -> None:
    result = run_cli(["jobs", "run", "myjob", "--image", "bookworm"], clean_env(home))
    assert result.exit_code == 2
    assert "--command" in result.stderr
