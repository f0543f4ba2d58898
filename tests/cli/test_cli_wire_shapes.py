"""Both wire shapes (production's and our older APIs', recorded in ``cli.wire``) read into the
same typed answers and print the same way (pure: no server)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from cli.wire import (
    OLDER_CONTINUOUS,
    OLDER_FAILED_BUILD,
    OLDER_ONE_OFF,
    PRODUCTION_BUILD_QUOTA,
    PRODUCTION_CONTINUOUS,
    PRODUCTION_DONE_BUILD,
    PRODUCTION_ONE_OFF,
    PRODUCTION_PENDING_BUILD,
    PRODUCTION_SCHEDULED,
    PRODUCTION_UNSET_LEFT_OUT,
    envelope,
    older_error,
    production_error,
)
from rich.console import Console

from toolforge_cli.apibase import QuotaAnswer
from toolforge_cli.buildsapi import Build, BuildList, build_state
from toolforge_cli.buildsview import (
    build_detail_table,
    builds_table,
    log_line_text,
    quota_tables,
    upstream_build,
)
from toolforge_cli.client import ApiClientError, ApiServerError, error_from_response
from toolforge_cli.errors import UserError
from toolforge_cli.jobsapi import Job, JobList, format_duration
from toolforge_cli.jobsdiff import plan_job
from toolforge_cli.jobsfile import dump_jobs_yaml, parse_jobs_file
from toolforge_cli.jobspec import JobOptions, older_jobs_api, options_from_job
from toolforge_cli.jobsview import job_detail_table, jobs_table


def render(renderable: Any) -> str:
    console = Console(width=400, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def rows(text: str) -> dict[str, str]:
    """``Label: value`` rows of a detail table."""
    result = {}
    for line in text.splitlines():
        label, sep, value = line.strip().partition(":  ")
        if sep:
            result[label + ":"] = value.strip()
    return result


# -- jobs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("one_off", "continuous"),
    [(PRODUCTION_ONE_OFF, PRODUCTION_CONTINUOUS), (OLDER_ONE_OFF, OLDER_CONTINUOUS)],
    ids=["production", "older"],
)
def test_both_job_shapes_print_the_same_tables(
    one_off: dict[str, Any], continuous: dict[str, Any]
) -> None:
    answer = JobList.from_body(envelope(jobs=[one_off, continuous]))
    assert answer.raw["jobs"][0] is one_off  # -o json prints the answer as it came
    assert [(j.name, j.kind) for j in answer.jobs] == [
        ("hello", "one-off"),
        ("web", "continuous"),
    ]
    table = render(jobs_table(answer.jobs, long=True))
    web = next(line for line in table.splitlines() if line.startswith("web"))
    assert "8000/tcp" in web
    assert "http: /healthz" in web
    assert "mem: 1Gi, cpu: 500m" in web
    shown = rows(render(job_detail_table(answer.jobs[1])))
    assert shown["Duration:"] == "1d2h3m4s"  # "1d2h3m4s" on the wire, or 93784 seconds
    assert shown["Replicas:"] == "2"
    assert rows(render(job_detail_table(answer.jobs[0])))["Duration:"] == "1m24s"


def test_image_state_is_shown_as_upstream_shows_it() -> None:
    deprecated = Job.model_validate(PRODUCTION_CONTINUOUS)
    assert "python3.9 (deprecated)" in render(jobs_table([deprecated], long=True))
    assert rows(render(job_detail_table(deprecated)))["Image:"] == (
        "python3.9 (deprecated) (registry.local/toolforge/python3.9:stable)"
    )
    stable = Job.model_validate(PRODUCTION_ONE_OFF)
    assert "(stable)" not in render(jobs_table([stable], long=True))


def test_scheduled_job_shows_its_runs() -> None:
    shown = rows(render(job_detail_table(Job.model_validate(PRODUCTION_SCHEDULED))))
    assert shown["Job type:"] == "schedule: @daily"
    assert shown["Actual schedule:"] == "17 3 * * *"
    assert shown["Last run:"] == "2026-01-01T03:17:00+00:00"
    assert shown["Next run:"] == "2026-01-02T03:17:00+00:00"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59, "59s"), (84, "1m24s"), (3600, "1h"), (93784, "1d2h3m4s"), ("5m", "5m")],
)
def test_durations_are_written_as_production_writes_them(seconds: int | str, text: str) -> None:
    assert format_duration(seconds) == text


def test_unknown_fields_are_ignored_and_absent_ones_read_as_unset() -> None:
    job = Job.model_validate({"name": "x", "something_new": {"a": 1}, "job_type": "one-off"})
    assert (job.cmd, job.port, job.status, job.short_status) == (None, None, None, "unknown")


def test_the_wire_shape_decides_which_defaults_a_dump_leaves_out() -> None:
    # production, include_unset=false: only what the user set; file logs and mounts have
    # image-dependent defaults, so the explicit values are kept
    production = Job.model_validate(PRODUCTION_UNSET_LEFT_OUT)
    assert not older_jobs_api(production)
    assert options_from_job(production).to_entry() == {
        "name": "web",
        "command": "python3 app.py",
        "image": "python3.11",
        "continuous": True,
        "mount": "all",
        "no-filelog": True,
        "port": 8000,
    }
    # the older API: every field filled; its defaults (file logs off, mount all) go
    older = Job.model_validate({**OLDER_CONTINUOUS, "imagename": "python3.11"})
    assert older_jobs_api(older)
    assert options_from_job(older).to_entry() == {
        "name": "web",
        "command": "python3 app.py",
        "image": "python3.11",
        "continuous": True,
        "mem": "1Gi",
        "cpu": "500m",
        "replicas": 2,
        "port": 8000,
        "health-check-http": "/healthz",
    }


def test_a_production_dump_loads_back_to_the_users_body() -> None:
    text = dump_jobs_yaml([options_from_job(PRODUCTION_UNSET_LEFT_OUT)])
    (entry,) = parse_jobs_file(text)
    assert entry.to_body() == {
        "name": "web",
        "cmd": "python3 app.py",
        "imagename": "python3.11",
        "job_type": "continuous",
        "mount": "all",
        "filelog": False,
        "port": 8000,
    }


def test_dry_run_compares_in_the_shape_of_the_existing_job() -> None:
    entry = {"name": "web", "command": "python3 app.py", "image": "python3.11"}
    wanted = JobOptions.model_validate(
        {**entry, "continuous": True, "port": 8000, "mount": "all", "no-filelog": True}
    )
    assert plan_job(wanted, PRODUCTION_UNSET_LEFT_OUT).action == "unchanged"
    # without no-filelog, production would switch file logs on: a change
    default_logs = JobOptions.model_validate(
        {**entry, "continuous": True, "port": 8000, "mount": "all"}
    )
    plan = plan_job(default_logs, PRODUCTION_UNSET_LEFT_OUT)
    assert plan.action == "update"
    assert [(c.key, c.old, c.new) for c in plan.changes] == [("no-filelog", True, None)]


def test_upstream_dump_files_load() -> None:
    # as toolforge-jobs 16.2.3 dumps them (tests/test_dump.py there)
    text = yaml.safe_dump(
        [
            {
                "name": "emails-test",
                "retry": 0,
                "mount": "all",
                "emails": "all",
                "command": "./mycommand.sh --argument1",
                "filelog": "yes",
                "filelog-stdout": "/data/project/tf-test/emails-test.out",
                "filelog-stderr": "/data/project/tf-test/emails-test.err",
                "image": "bullseye",
            },
            {
                "name": "quiet",
                "command": "./q.sh",
                "image": "bullseye",
                "no-filelog": "true",
                "continuous": True,
                "port": "8080/tcp",
                "mem": "1Gi",
            },
        ]
    )
    emails, quiet = parse_jobs_file(text)
    assert emails.to_body()["filelog"] is True
    assert quiet.to_body() == {
        "name": "quiet",
        "cmd": "./q.sh",
        "imagename": "bullseye",
        "job_type": "continuous",
        "memory": "1Gi",
        "filelog": False,
        "port": 8080,
        "port_protocol": "tcp",
    }


def test_publish_in_jobs_yaml_goes_to_the_api_and_back() -> None:
    text = "- {name: web, command: x, image: i, continuous: true, port: 80, publish: /}\n"
    (entry,) = parse_jobs_file(text)
    assert entry.to_body()["publish"] == "/"
    job = Job.model_validate(
        {**entry.to_body(), "image_state": "stable", "public_url": "https://t.example/"}
    )
    assert options_from_job(job) == entry  # dump writes what load sent
    with pytest.raises(UserError) as info:
        parse_jobs_file("- {name: web, command: x, image: i, continuous: true, publish: /}\n")
    assert info.value.details == [
        "entry 1 ('web'): publish needs a TCP port (the job serves HTTP on it)"
    ]


def test_show_has_a_public_row_with_the_url() -> None:
    job = Job.model_validate(
        {
            "name": "web",
            "cmd": "x",
            "imagename": "i",
            "job_type": "continuous",
            "port": 80,
            "publish": "/",
            "public_url": "https://t.toolforge.org/",
        }
    )
    console = Console(width=200, record=True)
    console.print(job_detail_table(job))
    rows = [line.strip() for line in console.export_text().splitlines()]
    assert any(r.startswith("Public:") and r.endswith("https://t.toolforge.org/") for r in rows)
    unpublished = job.model_copy(update={"publish": None, "public_url": None})
    console = Console(width=200, record=True)
    console.print(job_detail_table(unpublished))
    assert "Public:" not in console.export_text()


# -- errors -------------------------------------------------------------------------------

URL = "https://gw/jobs/v1/tool/alice/jobs/x"
MISSING = "Job 'x' does not exist"
FAILED = "HTTP 400: Failed to do something"


@pytest.mark.parametrize(
    ("status", "body", "cls", "message", "details"),
    [
        (404, production_error(MISSING), ApiClientError, MISSING, []),
        (400, production_error("a", "b"), ApiClientError, "a", ["b"]),
        (404, older_error(MISSING), ApiClientError, MISSING, []),
        (500, production_error("Kubernetes said no"), ApiServerError, "Kubernetes said no", []),
        (400, FAILED, ApiClientError, FAILED, []),
    ],
    ids=["production-404", "production-two", "older-404", "production-500", "json-string"],
)  # fmt: skip
def test_both_error_bodies_give_the_message(
    status: int, body: Any, cls: type, message: str, details: list[str]
) -> None:
    error = error_from_response("GET", URL, status, json.dumps(body).encode())
    assert type(error) is cls
    assert (error.message, error.details) == (message, details)


def test_an_answer_of_the_wrong_shape_is_an_internal_error() -> None:
    with pytest.raises(ApiServerError) as info:
        JobList.from_body({"jobs": [{"cmd": "no name"}]}, api="jobs")
    assert info.value.exit_code == 2
    assert info.value.message == "unexpected answer from the jobs API: jobs.0.name: Field required"


# -- builds -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("BUILD_PENDING", "pending"),
        ("BUILD_RUNNING", "running"),
        ("BUILD_SUCCESS", "success"),
        ("BUILD_FAILURE", "failure"),
        ("BUILD_CANCELLED", "cancelled"),
        ("BUILD_TIMEOUT", "timeout"),
        ("BUILD_UNKNOWN", "unknown"),
        ("success", "success"),
        ("failure", "failure"),
        (None, "unknown"),
    ],
)
def test_build_statuses_of_both_shapes_read_alike(status: str | None, state: str) -> None:
    assert build_state(status) == state


def test_both_build_shapes_print_the_same_table() -> None:
    answer = BuildList.from_body(
        envelope(builds=[PRODUCTION_PENDING_BUILD, PRODUCTION_DONE_BUILD, OLDER_FAILED_BUILD])
    )
    table = render(builds_table(answer.builds)).splitlines()
    by_id = {line.split()[0]: line.split() for line in table[2:] if line.strip()}
    assert by_id["alice-buildpacks-pipelinerun-pppp1"][1:4] == ["pending", "n/a", "n/a"]
    assert by_id["alice-buildpacks-pipelinerun-ok001"][1] == "success"
    assert by_id["alice-buildpacks-pipelinerun-old01"][1:4] == [
        "failure",
        "2026-01-01T10:00:00Z",
        "n/a",
    ]
    assert [b.finished for b in answer.builds] == [False, True, True]


def test_build_show_names_env_vars_but_never_shows_their_values() -> None:
    build = Build.model_validate(PRODUCTION_PENDING_BUILD)
    text = render(build_detail_table(build))
    shown = rows(text)
    assert shown["Env vars:"] == "API_TOKEN"
    assert shown["Use deprecated versions:"] == "yes"
    assert shown["Start time:"] == "n/a"
    assert "s3cr3t-value" not in text
    assert rows(render(build_detail_table(Build.model_validate(OLDER_FAILED_BUILD))))[
        "Env vars:"
    ] == ("API_TOKEN")


def test_json_flag_gives_upstreams_build_shape() -> None:
    assert upstream_build(Build.model_validate(PRODUCTION_DONE_BUILD)) == {
        "build_id": "alice-buildpacks-pipelinerun-ok001",
        "start_time": "2026-01-01T10:00:00Z",
        "end_time": "2026-01-01T10:05:00Z",
        "status": "ok",
        "message": "Tasks Completed: 1 (Failed: 0, Cancelled 0), Skipped: 0",
        "ref": "N/A",
        "image_name": "web",
        "envvars": ["API_TOKEN=s3cr3t-value"],
        "source_url": "https://gitlab.wikimedia.org/toolforge-repos/app",
        "use_latest_versions": False,
        "use_deprecated_versions": True,
        "destination_image": "registry.local/tool-alice/web:latest@sha256:" + "ab" * 32,
    }
    older = upstream_build(Build.model_validate(OLDER_FAILED_BUILD))
    assert (older["status"], older["end_time"], older["envvars"]) == ("error", "N/A", ["API_TOKEN"])


def test_build_quota_shows_available_and_capacity() -> None:
    answer = QuotaAnswer.from_body(PRODUCTION_BUILD_QUOTA)
    text = render(quota_tables(answer.quota))
    header = next(line for line in text.splitlines() if line.startswith("Name"))
    assert header.split() == ["Name", "Limit", "Used", "Available", "Capacity"]
    row = next(line for line in text.splitlines() if line.startswith("Storage"))
    assert row.split() == ["Storage", "1.00Gi", "12.50Mi", "1011.50Mi", "1%"]


def test_an_error_record_in_a_build_log_stream_is_a_user_error() -> None:
    with pytest.raises(UserError) as info:
        log_line_text(json.dumps({"message": "Build 'x' has no logs yet"}))
    assert info.value.message == "Build 'x' has no logs yet"
