"""Rendering (tables, JSON, messages) and error handling (envelopes -> exit codes)."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from rich.console import Console

from toolforge_cli.apibase import Quota
from toolforge_cli.client import ApiClientError, ApiServerError, error_from_response
from toolforge_cli.errors import InternalError, UserError
from toolforge_cli.jobsapi import Image, Job
from toolforge_cli.jobsview import (
    images_table,
    job_detail_table,
    job_type_text,
    jobs_table,
    log_line_text,
    quota_tables,
)
from toolforge_cli.output import PIPE_WIDTH, ToolforgeConsole, handle_errors, print_messages

ONE_OFF = {
    "name": "hello",
    "cmd": "echo [bold]hi[/bold] :smile:",
    "imagename": "bookworm",
    "image": "registry.local/toolforge/bookworm:stable",
    "job_type": "one-off",
    "retry": 2,
    "memory": "512Mi",
    "cpu": "100m",
    "emails": "none",
    "mount": "all",
    "filelog": False,
    "status_short": "Completed",
    "status_long": "Completed at 2026-01-01",
    "status": {"short": "succeeded", "messages": []},
}
SCHEDULED = {
    **ONE_OFF,
    "name": "daily",
    "cmd": "./daily.sh",
    "job_type": "scheduled",
    "schedule": "@daily",
    "schedule_actual": "17 3 * * *",
    "timeout": 600,
    "filelog": True,
    "filelog_stdout": "/data/project/alice/daily.out",
    "filelog_stderr": "/data/project/alice/daily.err",
    "status_short": "Waiting for scheduled time",
    "status": {"short": "pending", "messages": [], "next_schedule": "2026-01-02T03:17:00Z"},
}
CONTINUOUS = {
    **ONE_OFF,
    "name": "web",
    "cmd": "./serve.sh",
    "imagename": "python3.11",
    "image": "registry.local/toolforge/python3.11:stable",
    "job_type": "continuous",
    "continuous": True,
    "replicas": 2,
    "port": 8000,
    "port_protocol": "tcp",
    "health_check": {"type": "http", "path": "/healthz"},
    "status_short": "Running",
    "status_long": "Running, restarted (3)",
    "status": {"short": "running", "messages": ["restarted (3)", "exit code 1"]},
}


def J(*answers: dict[str, Any]) -> list[Job]:  # noqa: N802
    """Recorded jobs (decoded JSON) as the jobs API client reads them."""
    return [Job.model_validate(a) for a in answers]


def render(renderable: Any, width: int = 200) -> str:
    console = Console(width=width, record=True, file=None, force_terminal=False)
    with console.capture() as capture:
        console.print(renderable)
    return capture.get()


def rows(text: str) -> list[list[str]]:
    """The table's lines split into cells on runs of 2+ spaces (header rule removed)."""
    lines = [line for line in text.splitlines() if line.strip() and set(line.strip()) != {"─"}]
    return [[cell for cell in line.strip().split("  ") if cell.strip()] for line in lines]


def cells(text: str) -> list[list[str]]:
    return [[c.strip() for c in row] for row in rows(text)]


def test_list_table_has_upstream_columns() -> None:
    text = render(jobs_table(J(ONE_OFF, SCHEDULED, CONTINUOUS)))
    assert cells(text) == [
        ["Job name", "Job type", "Status"],
        ["hello", "one-off", "Completed"],
        ["daily", "schedule: @daily", "Waiting for scheduled time"],
        ["web", "continuous", "Running"],
    ]


def test_long_list_adds_command_image_and_details() -> None:
    text = render(jobs_table(J(SCHEDULED, CONTINUOUS), long=True), width=400)
    table = cells(text)
    assert table[0] == [
        "Job name", "Command", "Job type", "Image", "Port", "File log", "Output log",
        "Error log", "Emails", "Resources", "Replicas", "Mounts", "Retry", "Health check",
        "Status",
    ]  # fmt: skip
    assert table[1] == [
        "daily", "./daily.sh", "schedule: @daily", "bookworm", "none", "yes",
        "/data/project/alice/daily.out", "/data/project/alice/daily.err", "none",
        "mem: 512Mi, cpu: 100m", "all", "2", "none", "Completed at 2026-01-01",
    ]  # fmt: skip
    assert table[2] == [
        "web", "./serve.sh", "continuous", "python3.11", "8000/tcp", "no", "none",
        "mem: 512Mi, cpu: 100m", "2", "all", "http: /healthz", "Running, restarted (3)",
    ]  # fmt: skip


def test_values_are_printed_as_written_never_as_markup() -> None:
    text = render(jobs_table(J(ONE_OFF), long=True), width=400)
    assert "echo [bold]hi[/bold] :smile:" in text
    assert "echo [bold]hi[/bold] :smile:" in render(job_detail_table(*J(ONE_OFF)))


def test_show_lists_properties_status_and_hints() -> None:
    text = render(job_detail_table(*J(CONTINUOUS)))
    table = {row[0]: " ".join(row[1:]) for row in cells(text) if row[0].endswith(":")}
    assert table["Job name:"] == "web"
    assert table["Image:"] == "python3.11 (registry.local/toolforge/python3.11:stable)"
    assert table["Port:"] == "8000/tcp"
    assert table["Replicas:"] == "2"
    assert table["Health check:"] == "http: /healthz"
    assert table["Status:"] == "Running"
    assert table["Hints:"] == "restarted (3)"
    assert "exit code 1" in text  # the second hint, on its own line


def test_show_of_a_scheduled_job_has_schedule_actual_timeout_and_logs() -> None:
    table = {row[0]: " ".join(row[1:]) for row in cells(render(job_detail_table(*J(SCHEDULED))))}
    assert table["Schedule:"] == "@daily"
    assert table["Actual schedule:"] == "17 3 * * *"
    assert table["Timeout:"] == "600 seconds"
    assert table["Output log:"] == "/data/project/alice/daily.out"
    assert table["Next run:"] == "2026-01-02T03:17:00Z"
    assert table["Retry:"] == "2"
    assert "Replicas:" not in table


@pytest.mark.parametrize(
    ("job", "text"),
    [
        ({"job_type": "scheduled", "schedule": "0 * * * *"}, "schedule: 0 * * * *"),
        ({"schedule": "@daily"}, "schedule: @daily"),  # older answers without job_type
        ({"continuous": True}, "continuous"),
        ({"job_type": "continuous"}, "continuous"),
        ({}, "one-off"),
    ],
)
def test_job_type_text(job: dict[str, Any], text: str) -> None:
    assert job_type_text(*J({"name": "j", **job})) == text


def test_images_and_quota_tables() -> None:
    images = render(
        images_table([Image(shortname="bookworm", image="registry.local/toolforge/bookworm")])
    )
    assert cells(images) == [
        ["Short name", "Container image URL"],
        ["bookworm", "registry.local/toolforge/bookworm"],
    ]
    quota = render(
        quota_tables(
            Quota.model_validate(
                {
                    "categories": [
                        {
                            "name": "Running jobs",
                            "items": [{"name": "CPU", "limit": "2", "used": "1"}],
                        },
                        {
                            "name": "Per-job limits",
                            "items": [{"name": "Memory", "limit": "4Gi", "used": None}],
                        },
                    ]
                }
            )
        )
    )
    assert cells(quota) == [
        ["Running jobs"],
        ["Name", "Limit", "Used"],
        ["CPU", "2", "1"],
        ["Per-job limits"],
        ["Name", "Limit", "Used"],
        ["Memory", "4Gi"],
    ]


def test_log_line_format() -> None:
    entry = {
        "pod": "web-7d9-x",
        "container": "job",
        "datetime": "2026-01-01T00:00:00Z",
        "message": "[x] hi",
    }
    assert log_line_text(entry).plain == "2026-01-01T00:00:00Z [web-7d9-x] [x] hi"


def test_pipes_get_unwrapped_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    console = ToolforgeConsole()
    assert not console.is_terminal
    assert console.width == PIPE_WIDTH
    long_command = "x" * 300
    console.print(jobs_table(J({**ONE_OFF, "cmd": long_command}), long=True))
    assert long_command in capsys.readouterr().out
    monkeypatch.setenv("COLUMNS", "60")
    assert ToolforgeConsole().width == 60


# -- errors ---------------------------------------------------------------------------------

URL = "https://gw/jobs/v1/tool/alice/jobs/x"


def envelope(*errors: str, info: tuple[str, ...] = ()) -> bytes:
    import json

    return json.dumps(
        {"messages": {"info": list(info), "warning": [], "error": list(errors)}}
    ).encode()


@pytest.mark.parametrize(
    ("status", "body", "cls", "exit_code", "message", "details"),
    [
        (404, envelope("Job 'x' does not exist"), ApiClientError, 1, "Job 'x' does not exist", []),
        (
            400,
            envelope("memory: too much", "cpu: too much"),
            ApiClientError,
            1,
            "memory: too much",
            ["cpu: too much"],
        ),
        (
            409,
            envelope("A job with the name x exists already"),
            ApiClientError,
            1,
            "A job with the name x exists already",
            [],
        ),
        (
            403,
            envelope("tool 'bob' does not match"),
            ApiClientError,
            1,
            "tool 'bob' does not match",
            [],
        ),
        (500, envelope("Kubernetes said no"), ApiServerError, 2, "Kubernetes said no", []),
        (
            503,
            envelope(),
            ApiServerError,
            2,
            f"HTTP 503 from GET {URL}: " + envelope().decode(),
            [],
        ),
        (
            502,
            b"<html>Bad Gateway</html>",
            ApiServerError,
            2,
            f"HTTP 502 from GET {URL}: <html>Bad Gateway</html>",
            [],
        ),
        (
            422,
            b'{"detail": [{"loc": ["body", "name"], "msg": "Field required"}]}',
            ApiClientError,
            1,
            "name: Field required",
            [],
        ),
        (
            401,
            b'{"detail": "client certificate required"}',
            ApiClientError,
            1,
            "client certificate required",
            [],
        ),
        (302, b"", ApiServerError, 2, f"HTTP 302 from GET {URL}", []),
    ],
)
def test_error_answers_map_to_exit_codes(
    status: int, body: bytes, cls: type, exit_code: int, message: str, details: list[str]
) -> None:
    error = error_from_response("GET", URL, status, body)
    assert type(error) is cls
    assert (error.status, error.exit_code, error.message, error.details) == (
        status, exit_code, message, details,
    )  # fmt: skip


def test_messages_go_to_stderr_by_level(capsys: pytest.CaptureFixture[str]) -> None:
    print_messages({"info": ["created [x]"], "warning": ["careful"], "error": ["bad"]})
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == ["info: created [x]", "warning: careful", "error: bad"]
    print_messages({"info": ["a"], "warning": ["b"]}, levels=("warning",))
    assert capsys.readouterr().err == "warning: b\n"
    print_messages(None)
    print_messages({"info": "not a list"})
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("exc", "code", "lines"),
    [
        (UserError("no such job", hint="see list"), 1, ["error: no such job", "hint: see list"]),
        (InternalError("boom", details=["one", "two"]), 2, ["error: boom", "  one", "  two"]),
        (
            error_from_response("GET", URL, 404, envelope("Job 'x' does not exist")),
            1,
            ["error: Job 'x' does not exist"],
        ),
        (KeyboardInterrupt(), 130, []),
    ],
)
def test_handle_errors_prints_and_exits_without_traceback(
    capsys: pytest.CaptureFixture[str], exc: BaseException, code: int, lines: list[str]
) -> None:
    with pytest.raises(typer.Exit) as info, handle_errors():
        raise exc
    assert info.value.exit_code == code
    captured = capsys.readouterr()
    assert captured.err.splitlines() == lines
    assert captured.out == ""


def test_unexpected_exceptions_are_not_swallowed() -> None:
    with pytest.raises(ZeroDivisionError), handle_errors():
        _ = 1 / 0
