"""Upstream's command lines run with ``toolforge`` (issue 13): the spellings of
``toolforge-build`` 0.0.29 and ``toolforge-jobs`` 16.2.3, their outputs and exit codes, on
recorded answers of both wire shapes (``cli.wire``; the gateway there is a test double of the
HTTP transport). The same commands run against the real gateway in ``test_cli_*_e2e.py``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli.harness import CliPKI, Home, clean_env, run_cli
from cli.wire import (
    NO_MESSAGES,
    OLDER_FAILED_BUILD,
    PRODUCTION_BUILD_QUOTA,
    PRODUCTION_DONE_BUILD,
    PRODUCTION_ONE_OFF,
    PRODUCTION_PENDING_BUILD,
    PRODUCTION_UNSET_LEFT_OUT,
    SOURCE,
    RecordedGateway,
    envelope,
    older_error,
    production_error,
    use_gateway,
)
from typer.testing import CliRunner

from toolforge_cli.__main__ import app


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch, cli_pki: CliPKI) -> RecordedGateway:
    recorded = RecordedGateway()
    use_gateway(monkeypatch, cli_pki, recorded)
    return recorded


# -- build ----------------------------------------------------------------------------------

BUILDS = [PRODUCTION_PENDING_BUILD, PRODUCTION_DONE_BUILD, OLDER_FAILED_BUILD]


def test_build_list_json_is_upstreams_shape_and_output_json_the_answer(
    home: Home, gateway: RecordedGateway
) -> None:
    gateway.on("GET", "/builds", envelope(builds=BUILDS))
    upstream = run_cli(["build", "list", "--json"], clean_env(home))
    assert upstream.exit_code == 0, upstream.stderr
    data = json.loads(upstream.stdout)
    assert data["messages"] == NO_MESSAGES
    assert [b["status"] for b in data["builds"]] == ["pending", "ok", "error"]
    assert data["builds"][0]["envvars"] == ["API_TOKEN=s3cr3t-value"]
    raw = run_cli(["build", "list", "-o", "json"], clean_env(home))
    assert json.loads(raw.stdout) == envelope(builds=BUILDS)
    table = run_cli(["build", "list"], clean_env(home))
    assert [line.split()[1] for line in table.stdout.splitlines()[2:]] == [
        "pending",
        "success",
        "failure",
    ]


def test_build_list_without_builds_says_so_as_upstream(
    home: Home, gateway: RecordedGateway
) -> None:
    gateway.on("GET", "/builds", envelope(builds=[]))
    result = run_cli(["build", "list"], clean_env(home))
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr.startswith("No builds found, you can start one using")


def test_build_show_json(home: Home, gateway: RecordedGateway) -> None:
    gateway.on("GET", "/builds/latest", envelope(build=PRODUCTION_DONE_BUILD))
    result = run_cli(["build", "show", "--json"], clean_env(home))
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["build"]["status"] == "ok"


def test_build_start_with_upstreams_short_flags(home: Home, gateway: RecordedGateway) -> None:
    new = {"name": "alice-buildpacks-pipelinerun-pppp1", "resolved_ref": "0" * 40}
    gateway.on("POST", "/builds", envelope(new_build={**new, "parameters": {}}))
    args = ["build", "start", SOURCE, "-i", "web", "-L", "--use-deprecated-versions"]
    args += ["-e", "API_TOKEN=x=y", "--ref", "main", "-D"]
    result = run_cli(args, clean_env(home))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "alice-buildpacks-pipelinerun-pppp1\n"
    ((method, path, _, body),) = gateway.sent()
    assert (method, path) == ("POST", "/builds/v1/tool/alice/builds")
    assert body == {
        "source_url": SOURCE,
        "ref": "main",
        "image_name": "web",
        "envvars": {"API_TOKEN": "x=y"},
        "use_latest_versions": True,
        "use_deprecated_versions": True,
    }
    as_json = run_cli([*args, "--json"], clean_env(home))
    assert json.loads(as_json.stdout)["new_build"]["name"] == new["name"]


def test_build_delete_all_deletes_every_build(home: Home, gateway: RecordedGateway) -> None:
    gateway.on("GET", "/builds", envelope(builds=BUILDS))
    for build in BUILDS:
        gateway.on("DELETE", f"/builds/{build['build_id']}", envelope(id=build["build_id"]))
    result = run_cli(["build", "delete", "--all", "--yes-i-know"], clean_env(home))
    assert result.exit_code == 0, result.stderr
    deleted = [p.rsplit("/", 1)[1] for m, p, _, _ in gateway.sent() if m == "DELETE"]
    assert deleted == [b["build_id"] for b in BUILDS]
    assert result.stderr.splitlines()[-1] == "Deleted 3 builds"


def test_build_cancel_all_cancels_only_unfinished_builds(
    home: Home, gateway: RecordedGateway
) -> None:
    gateway.on("GET", "/builds", envelope(builds=BUILDS))
    pending = PRODUCTION_PENDING_BUILD["build_id"]
    gateway.on(
        "PUT",
        f"/builds/{pending}/cancel",
        {"id": pending, "messages": {"info": [f"Build {pending} cancelled"]}},
    )
    result = run_cli(["build", "cancel", "--all", "-y"], clean_env(home))
    assert result.exit_code == 0, result.stderr
    assert [m for m, *_ in gateway.sent()] == ["GET", "PUT"]
    assert result.stderr.splitlines() == [f"info: Build {pending} cancelled", "Cancelled 1 builds"]


def test_build_delete_all_asks_first(home: Home, gateway: RecordedGateway) -> None:
    gateway.on("GET", "/builds", envelope(builds=BUILDS))
    result = CliRunner().invoke(app, ["build", "delete", "--all"], env=clean_env(home), input="n\n")
    assert result.exit_code == 1
    assert "I'm going to delete 3 builds, continue?" in result.stderr
    assert [m for m, *_ in gateway.sent()] == ["GET"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["build", "cancel"], "error: No build passed to cancel."),
        (["build", "delete"], "error: No build passed to delete."),
        (["build", "delete", "x", "--all"], "error: give build IDs or --all, not both"),
    ],
)
def test_cancel_and_delete_need_ids_or_all(
    home: Home, gateway: RecordedGateway, args: list[str], message: str
) -> None:
    result = run_cli(args, clean_env(home))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == message
    assert gateway.requests == []


def test_a_refused_id_is_reported_in_both_error_shapes(
    home: Home, gateway: RecordedGateway
) -> None:
    gateway.on("DELETE", "/builds/a", production_error("Build 'a' does not exist."), 404)
    gateway.on("DELETE", "/builds/b", older_error("Build 'b' does not exist."), 404)
    gateway.on("DELETE", "/builds/c", envelope(id="c"))
    result = run_cli(["build", "delete", "a", "b", "c"], clean_env(home))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: Build 'a' does not exist.",
        "error: Build 'b' does not exist.",
        "Deleted build c",
        "Deleted 1 builds",
        "error: 2 of 3 build(s) could not be deleted",
    ]


def test_build_clean_yes_i_know_and_json(home: Home, gateway: RecordedGateway) -> None:
    answer = {"messages": {"info": ["Nothing to clean up"], "warning": [], "error": []}}
    gateway.on("POST", "/clean", answer)
    for flag in ("--yes-i-know", "-y", "--yes"):
        result = run_cli(["build", "clean", flag], clean_env(home))
        assert (result.exit_code, result.stderr) == (0, "info: Nothing to clean up\n")
    as_json = run_cli(["build", "clean", "-y", "--json"], clean_env(home))
    assert json.loads(as_json.stdout) == answer


def test_build_quota_json_is_the_answer(home: Home, gateway: RecordedGateway) -> None:
    gateway.on("GET", "/quotas", PRODUCTION_BUILD_QUOTA)
    result = run_cli(["build", "quota", "--json"], clean_env(home))
    assert json.loads(result.stdout) == PRODUCTION_BUILD_QUOTA
    table = run_cli(["build", "quota"], clean_env(home))
    assert "1%" in table.stdout


# -- jobs -----------------------------------------------------------------------------------


def test_jobs_json_flag_is_output_json(home: Home, gateway: RecordedGateway) -> None:
    answer = envelope(jobs=[PRODUCTION_ONE_OFF])
    gateway.on("GET", "/jobs", answer)
    gateway.on("GET", "/jobs/hello", envelope(job=PRODUCTION_ONE_OFF))
    assert json.loads(run_cli(["jobs", "list", "--json"], clean_env(home)).stdout) == answer
    shown = run_cli(["jobs", "show", "hello", "--json"], clean_env(home))
    assert json.loads(shown.stdout)["job"] == PRODUCTION_ONE_OFF


def test_jobs_list_long_flag_is_deprecated_but_works(home: Home, gateway: RecordedGateway) -> None:
    gateway.on("GET", "/jobs", envelope(jobs=[PRODUCTION_ONE_OFF]))
    result = run_cli(["jobs", "list", "-l"], clean_env(home))
    assert result.exit_code == 0
    assert "./hello.sh --loud" in result.stdout  # the long table has the command
    assert "`--long` flag is deprecated, use `--output long`" in result.stderr


@pytest.mark.parametrize(
    "publish", [["--publish"], ["--publish", "/"], ["--publish=/"]], ids=["bare", "slash", "eq"]
)
def test_run_publish_sends_publish_slash(
    home: Home, gateway: RecordedGateway, publish: list[str]
) -> None:
    gateway.on("POST", "/jobs", envelope(job=PRODUCTION_ONE_OFF), 201)
    args = ["jobs", "run", "web", "--command", "./serve", "--image", "python3.11"]
    result = run_cli([*args, "--continuous", "-p", "8000", *publish], clean_env(home))
    assert result.exit_code == 0, result.stderr
    ((_, _, _, body),) = gateway.sent()
    assert (body["publish"], body["port"], body["job_type"]) == ("/", 8000, "continuous")


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (["--publish"], "--publish is only valid with --continuous"),
        (["--continuous", "--publish"], "--publish needs a TCP --port"),
        (["--continuous", "-p", "53/udp", "--publish"], "--publish needs a TCP --port"),
        (["--continuous", "-p", "80", "--publish=/api"], "--publish: Input should be '/'"),
    ],
    ids=["one-off", "no-port", "udp", "path"],
)
def test_run_publish_is_checked_before_any_request(
    home: Home, gateway: RecordedGateway, extra: list[str], problem: str
) -> None:
    args = ["jobs", "run", "web", "--command", "./serve", "--image", "python3.11"]
    result = run_cli([*args, *extra], clean_env(home))
    assert result.exit_code == 1
    assert problem in result.stderr, result.stderr
    assert gateway.requests == []


def test_logs_reads_the_logs_api_with_since_until_and_the_last_lines(
    home: Home, gateway: RecordedGateway
) -> None:
    newest_first = [
        {"datetime": "2026-12-04T21:00:02.000000000Z", "pod": "web-1", "container": "job",
         "message": "second", "source": "run-logs", "job_name": "web"},
        {"datetime": "2026-12-04T21:00:01.000000000Z", "pod": "web-1", "container": "job",
         "message": "first", "source": "run-logs", "job_name": "web"},
    ]  # fmt: skip
    gateway.on("GET", "/job/web/logs", envelope(data={"logs": newest_first, "next": None}))
    args = ["jobs", "logs", "web", "--since", "2h", "--until", "2026-12-04T22:00:00Z", "-l", "5"]
    result = run_cli(args, clean_env(home))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "2026-12-04T21:00:01.000000000Z [web-1] first",
        "2026-12-04T21:00:02.000000000Z [web-1] second",
    ]
    ((method, path, query, _),) = gateway.sent()
    assert (method, path) == ("GET", "/logs/v1/tool/alice/job/web/logs")
    assert query == {
        "since": "2h",
        "until": "2026-12-04T22:00:00Z",
        "lines": "5",
        "direction": "newest_first",
    }
    as_json = run_cli([*args, "-o", "json"], clean_env(home))
    assert [json.loads(line)["message"] for line in as_json.stdout.splitlines()] == [
        "first",
        "second",
    ]


def test_load_prints_the_apis_words_on_stdout(
    home: Home, gateway: RecordedGateway, tmp_path: Path
) -> None:
    jobs_file = tmp_path / "jobs.yaml"
    jobs_file.write_text("- {name: web, command: ./serve, image: python3.11, continuous: true}\n")
    gateway.on("GET", "/jobs", envelope(jobs=[]))
    gateway.on(
        "PATCH",
        "/jobs",
        {
            "job_changed": False,
            "messages": {"info": ["Job web is already up to date"], "warning": ["w"]},
        },
    )
    result = run_cli(["jobs", "load", str(jobs_file)], clean_env(home))
    assert result.exit_code == 0, result.stderr
    assert (result.stdout, result.stderr) == ("Job web is already up to date\n", "warning: w\n")
    # an API without info messages: our own words
    gateway.on("PATCH", "/jobs", {"job_changed": True})
    result = run_cli(["jobs", "load", str(jobs_file)], clean_env(home))
    assert result.stdout == "created   web\n"


def test_dump_asks_for_what_the_user_set(home: Home, gateway: RecordedGateway) -> None:
    gateway.on("GET", "/jobs", envelope(jobs=[PRODUCTION_UNSET_LEFT_OUT]))
    result = run_cli(["jobs", "dump", "-o", "json"], clean_env(home))
    assert result.exit_code == 0, result.stderr
    ((_, _, query, _),) = gateway.sent()
    assert query == {"include_unset": "false"}
    assert json.loads(result.stdout) == [
        {
            "name": "web",
            "command": "python3 app.py",
            "image": "python3.11",
            "continuous": True,
            "mount": "all",
            "no-filelog": True,
            "port": 8000,
        }
    ]


def test_production_error_body_exits_1_with_its_message(
    home: Home, gateway: RecordedGateway
) -> None:
    gateway.on("GET", "/jobs/nope", production_error("Job 'nope' does not exist"), 404)
    result = run_cli(["jobs", "show", "nope"], clean_env(home))
    assert (result.exit_code, result.stderr) == (1, "error: Job 'nope' does not exist\n")


def test_run_sends_job_type_as_upstream(home: Home, gateway: RecordedGateway) -> None:
    gateway.on("POST", "/jobs", envelope(job=PRODUCTION_ONE_OFF), 201)
    args = ["jobs", "run", "web", "--command", "./serve", "--image", "python3.11"]
    result = run_cli([*args, "--continuous", "-p", "8000/tcp"], clean_env(home))
    assert result.exit_code == 0, result.stderr
    ((_, _, _, body),) = gateway.sent()
    assert body == {
        "name": "web",
        "cmd": "./serve",
        "imagename": "python3.11",
        "job_type": "continuous",
        "port": 8000,
        "port_protocol": "tcp",
    }
