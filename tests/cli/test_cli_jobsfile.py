"""jobs.yaml: checking a file whole before ``load``, and ``dump`` -> ``load`` round trips.

Round trips start from jobs as the jobs API returns them (built with the API's own models,
``toolforge_jobs.models``) and end with request bodies that the API's model normalises to the
same job (``specs_equal``: what PATCH uses to answer "already up to date").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from cli.harness import Home, clean_env, closed_port_url, run_cli

from toolforge_cli.errors import EXIT_USER
from toolforge_cli.jobsfile import JobsFileError, dump_jobs_yaml, parse_jobs_file
from toolforge_cli.jobspec import OPTION_KEYS, options_from_job
from toolforge_jobs.models import Job, JobSpec, JobStatus, specs_equal

FULL_FILE = """
- name: everyday
  command: ./daily.sh
  image: bookworm
  schedule: "@daily"
  emails: onfailure
  retry: 2
  timeout: 600
  mem: 1Gi
  cpu: 0.5
  filelog-stdout: logs/daily.out
  filelog-stderr: logs/daily.err
- name: endless
  command: python3 dumps-daemon.py --endless
  image: python3.11
  continuous: true
  emails: all
  mount: all
  port: 5353/udp
  replicas: 2
- name: web
  command: ./serve.sh
  image: python3.11
  continuous: true
  port: 8000
  health-check-http: /healthz
  cpu: 1
- name: checked
  command: ./worker.sh
  image: bookworm
  continuous: true
  health-check-script: pgrep -f worker
- name: prepare
  command: ./prepare-data.sh
  image: bookworm
  wait: true
  no-filelog: true
- name: process
  command: ./process-data.sh
  image: bookworm
  wait: 120
  filelog: true
  mount: all
"""


def test_a_file_with_every_key_gives_the_documented_bodies() -> None:
    jobs = parse_jobs_file(FULL_FILE)
    bodies = {job.name: job.to_body() for job in jobs}
    assert bodies == {
        "everyday": {
            "name": "everyday",
            "cmd": "./daily.sh",
            "imagename": "bookworm",
            "job_type": "scheduled",
            "schedule": "@daily",
            "emails": "onfailure",
            "retry": 2,
            "timeout": 600,
            "memory": "1Gi",
            "cpu": "0.5",
            "filelog": True,
            "filelog_stdout": "logs/daily.out",
            "filelog_stderr": "logs/daily.err",
        },
        "endless": {
            "name": "endless",
            "cmd": "python3 dumps-daemon.py --endless",
            "imagename": "python3.11",
            "job_type": "continuous",
            "emails": "all",
            "mount": "all",
            "port": 5353,
            "port_protocol": "udp",
            "replicas": 2,
        },
        "web": {
            "name": "web",
            "cmd": "./serve.sh",
            "imagename": "python3.11",
            "job_type": "continuous",
            "port": 8000,
            "health_check": {"type": "http", "path": "/healthz"},
            "cpu": "1",
        },
        "checked": {
            "name": "checked",
            "cmd": "./worker.sh",
            "imagename": "bookworm",
            "job_type": "continuous",
            "health_check": {"type": "script", "script": "pgrep -f worker"},
        },
        "prepare": {
            "name": "prepare",
            "cmd": "./prepare-data.sh",
            "imagename": "bookworm",
            "job_type": "one-off",
            "filelog": False,
        },
        "process": {
            "name": "process",
            "cmd": "./process-data.sh",
            "imagename": "bookworm",
            "job_type": "one-off",
            "filelog": True,
            "mount": "all",
        },
    }
    assert [job.wait_seconds for job in jobs] == [None, None, None, None, 600, 120]
    for body in bodies.values():
        JobSpec.model_validate(body)


def problems_of(text: str) -> list[str]:
    with pytest.raises(JobsFileError) as info:
        parse_jobs_file(text, "my-jobs.yaml")
    assert info.value.exit_code == EXIT_USER
    assert info.value.message.startswith("my-jobs.yaml is not valid")
    assert "nothing was loaded" in info.value.message
    return info.value.details


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "- {name: a, comand: x, image: i}",
            [
                "entry 1 ('a'): missing required key 'command'",
                "entry 1 ('a'): unknown key 'comand' (did you mean 'command'?)",
            ],
        ),
        (
            "- {name: a, command: x, image: i, filelog_stdout: o}",
            ["entry 1 ('a'): unknown key 'filelog_stdout' (did you mean 'filelog-stdout'?)"],
        ),
        (
            "- {name: a, command: x, image: i, colour: blue}",
            ["entry 1 ('a'): unknown key 'colour'"],
        ),
        (
            "- {command: x}",
            ["entry 1: missing required key 'name'", "entry 1: missing required key 'image'"],
        ),
        (
            "- {name: a, command: x, image: i, retry: '3'}",
            ["entry 1 ('a'): retry: Input should be a valid integer"],
        ),
        (
            "- {name: a, command: x, image: i, retry: 9}",
            ["entry 1 ('a'): retry: Input should be less than or equal to 5"],
        ),
        (
            "- {name: a, command: x, image: i, continuous: 'yes'}",
            ["entry 1 ('a'): continuous: Input should be a valid boolean"],
        ),
        (
            "- {name: a, command: x, image: i, emails: sometimes}",
            ["entry 1 ('a'): emails: Input should be 'none', 'all', 'onfinish' or 'onfailure'"],
        ),
        (
            "- {name: a, command: x, image: i, continuous: true, port: 99999}",
            ["entry 1 ('a'): port: port must be between 1 and 65535 (got 99999)"],
        ),
        (
            "- {name: a, command: x, image: i, continuous: true, port: true}",
            ["entry 1 ('a'): port: must be a port number, optionally followed by /tcp or /udp"],
        ),
        (
            "- {name: a, command: x, image: i, schedule: '@daily', continuous: true}",
            ["entry 1 ('a'): schedule and continuous are mutually exclusive"],
        ),
        (
            "- {name: a, command: x, image: i, filelog: true, no-filelog: true}",
            ["entry 1 ('a'): filelog and no-filelog contradict each other"],
        ),
        (
            "- {name: a, command: x, image: i, port: 80}",
            ["entry 1 ('a'): port is only valid with continuous"],
        ),
        (
            "- {name: a, command: x, image: i, schedule: '@daily', wait: true}",
            [
                "entry 1 ('a'): wait is not valid with schedule: a scheduled job runs at its "
                "schedule (wait works for one-off and continuous jobs)"
            ],
        ),
        (
            "- {name: Bad_Name, command: x, image: i}",
            [
                "entry 1 ('Bad_Name'): name 'Bad_Name' must consist of lower case letters, "
                "digits, '-' and '.', and start and end with a letter or digit"
            ],
        ),
        (
            "- {name: a, command: x, image: i}\n- {name: b, command: x, image: i}\n"
            "- {name: a, command: y, image: i}",
            ["entry 3 ('a'): name 'a' is also used by entry 1"],
        ),
        ("- just a string", ["entry 1: must be a mapping of options, got str"]),
        (
            "name: a\ncommand: x\nimage: i\n",
            ["expected a list of jobs at the top level, got a dict"],
        ),
        ("", ["the file is empty; expected a list of jobs"]),
    ],
)
def test_problems_are_reported_with_entry_and_key(text: str, expected: list[str]) -> None:
    assert problems_of(text) == expected


def test_every_problem_of_the_file_is_reported_at_once() -> None:
    text = (
        "- {name: a, command: x, image: i, retry: -1}\n"
        "- {name: b, command: x, image: i}\n"  # fine
        "- {name: c, image: i, mem: 1Gi, cpu: [1]}\n"
    )
    problems = problems_of(text)
    assert problems == [
        "entry 1 ('a'): retry: Input should be greater than or equal to 0",
        "entry 3 ('c'): missing required key 'command'",
        "entry 3 ('c'): cpu: Input should be a valid string",
    ]


def test_yaml_syntax_errors_are_user_errors_with_the_position() -> None:
    with pytest.raises(JobsFileError) as info:
        parse_jobs_file("- name: a\n  command: [unclosed\n", "jobs.yaml")
    assert info.value.message == "jobs.yaml is not valid YAML"
    assert "line" in info.value.details[0]


def test_an_empty_list_is_valid() -> None:
    assert parse_jobs_file("[]") == []


def test_options_keys_are_the_long_flag_names() -> None:
    assert OPTION_KEYS == (
        "name", "command", "image", "schedule", "continuous", "retry", "mem", "cpu",
        "emails", "mount", "filelog", "no-filelog", "filelog-stdout", "filelog-stderr",
        "timeout", "health-check-script", "health-check-http", "port", "replicas", "publish",
        "wait",
    )  # fmt: skip


# -- dump -> load round trip -------------------------------------------------------------------

SPECS: list[dict[str, Any]] = [
    {"name": "minimal", "cmd": "./x.sh", "imagename": "bookworm"},
    {
        "name": "busy",
        "cmd": "./x.sh --all",
        "imagename": "bookworm",
        "retry": 5,
        "memory": "2Gi",
        "cpu": "1500m",
        "emails": "onfinish",
        "mount": "none",
    },
    {
        "name": "nightly.backup",
        "cmd": "./backup.sh > /dev/null",
        "imagename": "bookworm",
        "schedule": "17 3 * * *",
        "timeout": 3600,
        "retry": 1,
        "filelog": True,
        "filelog_stdout": "logs/backup.out",
        "filelog_stderr": "logs/backup.err",
    },
    {"name": "hourly", "cmd": "./h.sh", "imagename": "bookworm", "schedule": "@hourly"},
    {
        "name": "dns",
        "cmd": "./dns.sh",
        "imagename": "bookworm",
        "continuous": True,
        "port": 5353,
        "port_protocol": "udp",
        "replicas": 3,
        "emails": "all",
    },
    {
        "name": "web",
        "cmd": "python3 app.py --port $PORT",
        "imagename": "python3.11",
        "job_type": "continuous",
        "port": 8000,
        "health_check": {"type": "http", "path": "/healthz"},
        "filelog": True,
    },
    {
        "name": "worker",
        "cmd": "./w.sh",
        "imagename": "bookworm",
        "continuous": True,
        "health_check": {"type": "script", "script": "test -f /tmp/ok"},
        "memory": "1Gi",
    },
]


def api_job(spec_body: dict[str, Any]) -> dict[str, Any]:
    """A job as ``GET /jobs?include_unset=false`` (what ``dump`` asks for) returns it: the
    jobs API's own wire form (:meth:`Job.wire`)."""
    spec = JobSpec.model_validate(spec_body)
    return Job.from_spec(
        spec,
        image="registry.local/toolforge/bookworm:stable",
        image_state="stable",
        status=JobStatus(short="running"),
        status_short="Running",
        status_long="Running",
        schedule_actual="42 * * * *" if spec.schedule == "@hourly" else spec.schedule,
    ).wire(tool="tf-test", include_unset=False)


@pytest.mark.parametrize("spec_body", SPECS, ids=[s["name"] for s in SPECS])
def test_dump_then_load_recreates_the_same_job(spec_body: dict[str, Any]) -> None:
    job = api_job(spec_body)
    text = dump_jobs_yaml([options_from_job(job)])
    (loaded,) = parse_jobs_file(text)
    body = loaded.to_body()
    assert specs_equal(JobSpec.model_validate(body), JobSpec.model_validate(spec_body))
    assert body.get("schedule") == spec_body.get("schedule")  # the user's text, not the actual


def test_dump_of_several_jobs_loads_back_in_order() -> None:
    jobs = [api_job(s) for s in SPECS]
    loaded = parse_jobs_file(dump_jobs_yaml([options_from_job(j) for j in jobs]))
    assert [j.name for j in loaded] == [s["name"] for s in SPECS]
    for spec_body, options in zip(SPECS, loaded, strict=True):
        assert specs_equal(
            JobSpec.model_validate(options.to_body()), JobSpec.model_validate(spec_body)
        )


def test_dump_leaves_out_api_defaults() -> None:
    entries = yaml.safe_load(dump_jobs_yaml([options_from_job(api_job(SPECS[0]))]))
    assert entries == [{"name": "minimal", "command": "./x.sh", "image": "bookworm"}]


def test_dump_writes_udp_ports_with_protocol_and_tcp_ports_as_numbers() -> None:
    dns, web = (options_from_job(api_job(s)).to_entry() for s in (SPECS[4], SPECS[5]))
    assert dns["port"] == "5353/udp"
    assert web["port"] == 8000
    assert web["health-check-http"] == "/healthz"
    assert web["continuous"] is True


def test_dump_of_no_jobs_loads_as_no_jobs() -> None:
    assert parse_jobs_file(dump_jobs_yaml([])) == []


# -- through the command line: refused before any request -------------------------------------
# The API URL is a closed port: a run that sent a request would fail with exit code 2
# ("cannot connect"), so exit code 1 with the file's problems shows that nothing was sent.


def test_load_refuses_a_bad_file_before_any_request(home: Home, tmp_path: Path) -> None:
    env = clean_env(home, TOOLFORGE_API_URL=closed_port_url())
    jobs_file = tmp_path / "jobs.yaml"
    jobs_file.write_text("- {name: a, command: x, image: i}\n- {name: a, comand: y, image: i}\n")
    result = run_cli(["jobs", "load", str(jobs_file)], env)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: {jobs_file} is not valid (2 problems); nothing was loaded",
        "  entry 2 ('a'): missing required key 'command'",
        "  entry 2 ('a'): unknown key 'comand' (did you mean 'command'?)",
    ]
    missing = run_cli(["jobs", "load", str(tmp_path / "nope.yaml")], env)
    assert missing.exit_code == 1
    assert f"error: cannot read {tmp_path / 'nope.yaml'}: No such file or directory" in (
        missing.stderr
    )


def test_load_of_a_job_not_in_the_file_is_refused_before_any_request(
    home: Home, tmp_path: Path
) -> None:
    jobs_file = tmp_path / "jobs.yaml"
    jobs_file.write_text("- {name: a, command: x, image: bookworm}\n")
    env = clean_env(home, TOOLFORGE_API_URL=closed_port_url())
    result = run_cli(["jobs", "load", str(jobs_file), "--job", "other"], env)
    assert result.exit_code == 1
    assert result.stderr == f"error: there is no job named 'other' in {jobs_file}\n"
    dry = run_cli(["jobs", "load", str(jobs_file), "--job", "other", "--dry-run"], env)
    assert (dry.exit_code, dry.stderr) == (1, result.stderr)
