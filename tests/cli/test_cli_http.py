"""The commands over real mTLS against ``JobsApiDouble``, which STANDS IN FOR THE JOBS API
UNTIL IT EXISTS (see conftest). End-to-end tests against the real gateway and jobs API replace
these; they check what goes over the wire and what the user sees."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import yaml
from cli.harness import CliPKI, Home, RunningDouble, clean_env, run_cli


def env_for(jobs_api: RunningDouble, home: Home) -> dict[str, str | None]:
    return clean_env(home, TOOLFORGE_API_URL=jobs_api.url)


WEB = {
    "name": "web",
    "cmd": "./serve.sh",
    "imagename": "python3.11",
    "continuous": True,
    "port": 8000,
}
DAILY = {"name": "daily", "cmd": "./daily.sh", "imagename": "bookworm", "schedule": "@daily"}


def test_read_commands_as_the_certificate_tool(jobs_api: RunningDouble, home: Home) -> None:
    double, env = jobs_api.double, env_for(jobs_api, home)
    empty = run_cli(["jobs", "list"], env)
    assert (empty.exit_code, empty.stdout, empty.stderr) == (0, "", "No jobs.\n")
    double.add_job(WEB)
    double.add_job(DAILY)

    listed = run_cli(["jobs", "list"], env)
    assert listed.exit_code == 0, listed.output
    assert [line.split()[0] for line in listed.stdout.splitlines()[2:]] == ["daily", "web"]

    names = run_cli(["jobs", "list", "-o", "name"], env)
    assert names.stdout == "daily\nweb\n"

    as_json = json.loads(run_cli(["jobs", "list", "--output", "json"], env).stdout)
    assert [j["name"] for j in as_json["jobs"]] == ["daily", "web"]
    assert as_json["jobs"][1]["port_protocol"] == "tcp"  # the API's answer, as it came

    shown = run_cli(["jobs", "show", "web", "-o", "json"], env)
    assert json.loads(shown.stdout)["job"]["name"] == "web"
    assert "Port:" in run_cli(["jobs", "show", "web"], env).stdout

    images = json.loads(run_cli(["jobs", "images", "-o", "json"], env).stdout)
    assert images["images"][0]["shortname"] == "bookworm"
    quota = run_cli(["jobs", "quota"], env)
    assert "Running jobs" in quota.stdout
    assert "4Gi" in quota.stdout

    paths = {(r.method, r.path) for r in double.requests}
    assert paths == {
        ("GET", "/jobs/v1/tool/alice/jobs"),
        ("GET", "/jobs/v1/tool/alice/jobs/web"),
        ("GET", "/jobs/v1/tool/alice/images"),
        ("GET", "/jobs/v1/tool/alice/quotas"),
    }
    assert {r.client_cn for r in double.requests} == {"alice"}


def test_run_posts_the_body_and_reports_api_errors(jobs_api: RunningDouble, home: Home) -> None:
    double, env = jobs_api.double, env_for(jobs_api, home)
    args = ["jobs", "run", "dns", "--command", "./dns.sh", "--image", "bookworm", "--continuous"]
    created = run_cli([*args, "-p", "5353/udp", "--replicas", "2", "--mem", "1Gi"], env)
    assert created.exit_code == 0, created.output
    assert created.stderr == "info: Job dns created\n"
    (post,) = double.requests_to("POST", "/jobs")
    assert post.body == {
        "name": "dns",
        "cmd": "./dns.sh",
        "imagename": "bookworm",
        "continuous": True,
        "port": 5353,
        "port_protocol": "udp",
        "replicas": 2,
        "memory": "1Gi",
    }

    again = run_cli(args, env)
    assert again.exit_code == 1
    assert again.stderr == "error: A job with the name dns exists already\n"

    refused = run_cli(
        ["jobs", "run", "big", "--command", "x", "--image", "bookworm", "--mem", "lots"], env
    )
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: memory is invalid")


def test_server_errors_exit_2(jobs_api: RunningDouble, home: Home) -> None:
    double, env = jobs_api.double, env_for(jobs_api, home)
    double.forced[("GET", "/jobs/v1/tool/alice/jobs")] = (
        500,
        {"messages": {"info": [], "warning": ["degraded"], "error": ["Kubernetes is down"]}},
    )
    result = run_cli(["jobs", "list"], env)
    assert result.exit_code == 2
    assert result.stderr == "warning: degraded\nerror: Kubernetes is down\n"
    double.forced[("GET", "/jobs/v1/tool/alice/images")] = (502, "upstream went away")
    result = run_cli(["jobs", "images"], env)
    assert result.exit_code == 2
    assert "HTTP 502 from GET" in result.stderr
    assert "upstream went away" in result.stderr


def test_changes_and_their_errors(jobs_api: RunningDouble, home: Home) -> None:
    double, env = jobs_api.double, env_for(jobs_api, home)
    double.add_job(WEB)
    double.add_job({"name": "once", "cmd": "true", "imagename": "bookworm"})

    restarted = run_cli(["jobs", "restart", "web"], env)
    assert (restarted.exit_code, restarted.stderr) == (0, "info: Job web restarted\n")
    refused = run_cli(["jobs", "restart", "once"], env)
    assert (refused.exit_code, refused.stderr) == (1, "error: one-off jobs cannot be restarted\n")
    missing = run_cli(["jobs", "delete", "nope"], env)
    assert (missing.exit_code, missing.stderr) == (1, "error: Job 'nope' does not exist\n")
    assert run_cli(["jobs", "delete", "once"], env).exit_code == 0
    assert set(double.jobs) == {"web"}
    assert run_cli(["jobs", "flush"], env).exit_code == 0
    assert double.jobs == {}
    assert [r.path for r in double.requests_to("DELETE")] == [
        "/jobs/v1/tool/alice/jobs/nope",
        "/jobs/v1/tool/alice/jobs/once",
        "/jobs/v1/tool/alice/jobs",
    ]


def test_load_upserts_each_job_and_keeps_others(
    jobs_api: RunningDouble, home: Home, tmp_path: Path
) -> None:
    double, env = jobs_api.double, env_for(jobs_api, home)
    double.add_job(WEB)  # unchanged by the file
    double.add_job({**DAILY, "emails": "all"})  # changed by the file
    double.add_job({"name": "keep", "cmd": "true", "imagename": "bookworm"})  # not in the file
    jobs_file = tmp_path / "jobs.yaml"
    jobs_file.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "web",
                    "command": "./serve.sh",
                    "image": "python3.11",
                    "continuous": True,
                    "port": 8000,
                },
                {
                    "name": "daily",
                    "command": "./daily.sh",
                    "image": "bookworm",
                    "schedule": "@daily",
                },
                {"name": "new", "command": "./new.sh", "image": "bookworm", "no-filelog": True},
            ]
        )
    )
    result = run_cli(["jobs", "load", str(jobs_file)], env)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["unchanged web", "updated   daily", "created   new"]
    assert [r.body["name"] for r in double.requests_to("PATCH")] == ["web", "daily", "new"]
    assert double.requests_to("PATCH")[2].body == {
        "name": "new", "cmd": "./new.sh", "imagename": "bookworm", "filelog": False,
    }  # fmt: skip
    assert set(double.jobs) == {"web", "daily", "keep", "new"}
    assert double.requests_to("DELETE") == []

    double.requests.clear()
    only = run_cli(["jobs", "load", str(jobs_file), "--job", "new"], env)
    assert only.stdout == "unchanged new\n"
    assert [r.body["name"] for r in double.requests_to("PATCH")] == ["new"]

    assert run_cli(["jobs", "load", str(jobs_file), "--job", "other"], env).exit_code == 1


def test_load_refuses_a_bad_file_before_any_request(
    jobs_api: RunningDouble, home: Home, tmp_path: Path
) -> None:
    jobs_file = tmp_path / "jobs.yaml"
    jobs_file.write_text("- {name: a, command: x, image: i}\n- {name: a, comand: y, image: i}\n")
    result = run_cli(["jobs", "load", str(jobs_file)], env_for(jobs_api, home))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: {jobs_file} is not valid (2 problems); nothing was loaded",
        "  entry 2 ('a'): missing required key 'command'",
        "  entry 2 ('a'): unknown key 'comand' (did you mean 'command'?)",
    ]
    assert jobs_api.double.requests == []
    missing = run_cli(["jobs", "load", str(tmp_path / "nope.yaml")], env_for(jobs_api, home))
    assert missing.exit_code == 1
    assert f"error: cannot read {tmp_path / 'nope.yaml'}: No such file or directory" in (
        missing.stderr
    )


def test_load_stops_at_the_first_refused_job(
    jobs_api: RunningDouble, home: Home, tmp_path: Path
) -> None:
    jobs_file = tmp_path / "jobs.yaml"
    jobs_file.write_text(
        "- {name: a, command: x, image: bookworm}\n"
        "- {name: b, command: x, image: bookworm, mem: lots}\n"
        "- {name: c, command: x, image: bookworm}\n"
    )
    result = run_cli(["jobs", "load", str(jobs_file)], env_for(jobs_api, home))
    assert result.exit_code == 1
    assert result.stdout == "created   a\n"
    assert "error: job 'b': memory is invalid" in result.stderr
    assert "1 of 3 job(s) were loaded before this one" in result.stderr
    assert set(jobs_api.double.jobs) == {"a"}


def test_dump_then_load_changes_nothing(
    jobs_api: RunningDouble, home: Home, tmp_path: Path
) -> None:
    double, env = jobs_api.double, env_for(jobs_api, home)
    double.add_job({**WEB, "port": 5353, "port_protocol": "udp", "replicas": 2})
    double.add_job({**DAILY, "timeout": 60, "filelog": True, "filelog_stdout": "d.out"})
    double.add_job(
        {"name": "check", "cmd": "./c.sh", "imagename": "bookworm", "continuous": True,
         "health_check": {"type": "script", "script": "true"}, "cpu": "0.5"}
    )  # fmt: skip
    dumped = tmp_path / "dump.yaml"
    result = run_cli(["jobs", "dump", "-f", str(dumped)], env)
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == f"Wrote 3 job(s) to {dumped}\n"
    assert run_cli(["jobs", "dump"], env).stdout == dumped.read_text()
    as_json = json.loads(run_cli(["jobs", "dump", "-o", "json"], env).stdout)
    assert as_json == yaml.safe_load(dumped.read_text())

    before = dict(double.jobs)
    loaded = run_cli(["jobs", "load", str(dumped)], env)
    assert loaded.stdout.splitlines() == ["unchanged check", "unchanged daily", "unchanged web"]
    assert double.jobs == before


def test_logs_print_lines_as_they_come(jobs_api: RunningDouble, home: Home) -> None:
    double, env = jobs_api.double, env_for(jobs_api, home)
    double.add_job(WEB)
    double.log_entries = [
        {
            "pod": "web-1",
            "container": "job",
            "datetime": f"2026-01-01T00:00:0{i}Z",
            "message": f"line {i}",
        }
        for i in range(3)
    ]
    plain = run_cli(["jobs", "logs", "web"], env)
    assert plain.stdout.splitlines() == [
        "2026-01-01T00:00:00Z [web-1] line 0",
        "2026-01-01T00:00:01Z [web-1] line 1",
        "2026-01-01T00:00:02Z [web-1] line 2",
    ]
    last = run_cli(["jobs", "logs", "web", "-l", "1", "-o", "json"], env)
    assert [json.loads(line) for line in last.stdout.splitlines()] == double.log_entries[-1:]
    assert double.requests_to("GET", "/logs")[-1].query == {"follow": "false", "lines": "1"}

    double.follow_extra = 2  # the server ends the stream after two more lines
    followed = run_cli(["jobs", "logs", "web", "-f"], env)
    assert followed.exit_code == 0
    assert followed.stdout.splitlines()[-2:] == [
        "2026-01-01T00:00:00Z [web-0] more 1",
        "2026-01-01T00:00:00Z [web-0] more 2",
    ]
    assert double.requests_to("GET", "/logs")[-1].query == {"follow": "true"}
    missing = run_cli(["jobs", "logs", "nope"], env)
    assert (missing.exit_code, missing.stderr) == (1, "error: Job 'nope' does not exist\n")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_and_tls_failures_exit_2_with_a_hint(
    jobs_api: RunningDouble, home: Home, cli_pki: CliPKI
) -> None:
    down = run_cli(
        ["jobs", "list"], clean_env(home, TOOLFORGE_API_URL=f"https://127.0.0.1:{free_port()}")
    )
    assert down.exit_code == 2
    assert "error: cannot connect to https://127.0.0.1:" in down.stderr
    assert "make run" in down.stderr

    env = env_for(jobs_api, home)
    other_ca = run_cli(["--ca", str(cli_pki.auth.path("backend-ca.crt")), "jobs", "list"], env)
    assert other_ca.exit_code == 2
    assert f"error: TLS: the certificate of {jobs_api.url} was not accepted:" in other_ca.stderr
    assert "pass --ca FILE with the cluster CA" in other_ca.stderr

    # a tool certificate from a CA the server does not trust: the server refuses the handshake
    foreign = cli_pki.auth.client(
        cli_pki.auth.platform.backend_ca, "foreign", "alice", ["toolforge"]
    )
    refused = run_cli(["--cert", str(foreign.cert), "--key", str(foreign.key), "jobs", "list"], env)
    assert refused.exit_code == 2
    assert f"error: {jobs_api.url} closed the connection without an answer" in refused.stderr
    assert f"is {foreign.cert} the tool's current certificate" in refused.stderr
    assert "Traceback" not in down.output + other_ca.output + refused.output
