"""``toolforge build``: flags -> request body, views of API answers, and the checks that run
before any request (pure; no server)."""

from __future__ import annotations

import json

import pytest
from cli.harness import Home, clean_env, run_cli
from rich.console import Console
from typer.testing import CliRunner

from toolforge_cli.__main__ import app
from toolforge_cli.apibase import Quota
from toolforge_cli.buildsapi import Build
from toolforge_cli.buildspec import parse_envvars, start_body
from toolforge_cli.buildsview import (
    build_detail_table,
    builds_table,
    log_line_text,
    quota_tables,
)
from toolforge_cli.errors import UserError

URL = "https://gitlab.wikimedia.org/toolforge-repos/app"


def render(renderable: object) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_only_given_flags_are_sent() -> None:
    assert start_body(URL) == {"source_url": URL}
    assert start_body(
        URL,
        ref="v1.2",
        image_name="web",
        envvars=["API_TOKEN=a=b", "EMPTY="],
        use_latest_versions=True,
    ) == {
        "source_url": URL,
        "ref": "v1.2",
        "image_name": "web",
        "envvars": {"API_TOKEN": "a=b", "EMPTY": ""},
        "use_latest_versions": True,
    }


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        ("NOVALUE", "expected NAME=VALUE"),
        ("AB=1", "at least 3 characters"),
        ("1ABC=1", "do not start with a digit"),
        ("MY-VAR=1", "letters, digits and '_'"),
        ("=x", "at least 3 characters"),
    ],
)
def test_bad_envvar_is_refused_naming_it(item: str, problem: str) -> None:
    with pytest.raises(UserError) as caught:
        parse_envvars([item])
    (detail,) = caught.value.details
    named = item.partition("=")[0] if "=" in item else item
    assert detail.startswith(f"-e {named!r}: ")
    assert problem in detail


def test_every_bad_envvar_is_listed_and_duplicates_refused() -> None:
    with pytest.raises(UserError) as caught:
        parse_envvars(["GOOD=1", "X=1", "GOOD=2", "nope"])
    assert caught.value.details == [
        "-e 'X': env var names have at least 3 characters, letters, digits and '_', and do "
        "not start with a digit",
        "-e 'GOOD': given more than once",
        "-e 'nope': expected NAME=VALUE",
    ]


def test_empty_url_ref_and_image_name_are_refused() -> None:
    with pytest.raises(UserError) as caught:
        start_body(" ", ref="", image_name="")
    assert caught.value.details == [
        "URL must not be empty",
        "--ref must not be empty",
        "--image-name must not be empty",
    ]


def test_bad_flags_exit_1_before_any_request(home: Home) -> None:
    # The API URL points at a closed port: reaching it would exit 2, not 1.
    env = clean_env(home, TOOLFORGE_API_URL="https://127.0.0.1:9")
    result = run_cli(["build", "start", URL, "-e", "X=1", "-e", "LONG_ENOUGH"], env)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "error: invalid options" in result.stderr
    assert "-e 'X'" in result.stderr
    assert "-e 'LONG_ENOUGH': expected NAME=VALUE" in result.stderr


def test_unreachable_gateway_exits_2(home: Home) -> None:
    env = clean_env(home, TOOLFORGE_API_URL="https://127.0.0.1:9")
    result = run_cli(["build", "list"], env)
    assert result.exit_code == 2
    assert "cannot connect to https://127.0.0.1:9" in result.stderr


def test_clean_asks_first(home: Home) -> None:
    env = clean_env(home, TOOLFORGE_API_URL="https://127.0.0.1:9")
    result = CliRunner().invoke(app, ["build", "clean"], env=env, input="n\n")
    assert result.exit_code == 1
    assert "Delete all images" in result.stderr
    assert "cannot connect" not in result.stderr  # nothing was sent


@pytest.mark.parametrize(
    "command", ["start", "list", "show", "logs", "cancel", "delete", "clean", "quota"]
)
def test_every_command_has_help_with_examples(home: Home, command: str) -> None:
    result = run_cli(["build", command, "--help"], clean_env(home))
    assert result.exit_code == 0
    assert "Examples:" in result.stdout
    assert f"toolforge build {command}" in result.stdout


def test_build_is_registered_in_the_root_help(home: Home) -> None:
    result = run_cli(["--help"], clean_env(home))
    assert result.exit_code == 0
    assert "build" in result.stdout


BUILD = {
    "build_id": "alice-buildpacks-pipelinerun-abcde",
    "status": "failure",
    "start_time": "2026-01-01T10:00:00Z",
    "end_time": "2026-01-01T10:05:00Z",
    "message": "step-build exited 1 [bold]",
    "resolved_ref": "0123456789abcdef0123456789abcdef01234567",
    "destination_image": "registry.local/tool-alice/web:latest",
    "parameters": {
        "source_url": URL,
        "ref": "main",
        "image_name": "web",
        "envvars": ["API_TOKEN", "DEBUG_LEVEL"],
        "use_latest_versions": True,
    },
}


def test_show_lists_every_property_and_prints_values_verbatim() -> None:
    text = render(build_detail_table(Build.model_validate(BUILD)))
    for expected in (
        "alice-buildpacks-pipelinerun-abcde",
        "failure",
        "2026-01-01T10:05:00Z",
        URL,
        "0123456789abcdef0123456789abcdef01234567",
        "registry.local/tool-alice/web:latest",
        "API_TOKEN, DEBUG_LEVEL",
        "step-build exited 1 [bold]",  # markup in API values is not interpreted
    ):
        assert expected in text
    pending = {**BUILD, "status": "pending", "start_time": None, "end_time": None}
    pending["parameters"] = {**BUILD["parameters"], "envvars": []}  # type: ignore[dict-item]
    text = render(build_detail_table(Build.model_validate(pending)))
    rows = {
        line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip()
        for line in text.splitlines()
        if ":" in line
    }
    assert rows["Env vars"] == "none"
    assert rows["End time"] == "n/a"
    assert rows["Status"] == "pending"


def test_list_table_has_one_row_per_build_newest_first_as_given() -> None:
    second = {**BUILD, "build_id": "alice-buildpacks-pipelinerun-fghij", "status": "running"}
    lines = render(builds_table([Build.model_validate(b) for b in (second, BUILD)])).splitlines()
    assert lines[0].split()[:3] == ["Build", "ID", "Status"]
    rows = [line.split() for line in lines[2:] if line.strip()]
    assert [(r[0], r[1]) for r in rows] == [
        ("alice-buildpacks-pipelinerun-fghij", "running"),
        ("alice-buildpacks-pipelinerun-abcde", "failure"),
    ]


def test_quota_table() -> None:
    quota = {
        "categories": [
            {
                "name": "Builds",
                "items": [{"name": "Parallel builds", "limit": "4", "used": "1", "available": "3"}],
            },
            {
                "name": "Registry",
                "items": [
                    {
                        "name": "Storage",
                        "limit": "1.00Gi",
                        "used": "12.50Mi",
                        "available": "1011.50Mi",
                        "limit_bytes": 1 << 30,
                        "used_bytes": 13107200,
                    }
                ],
            },
        ]
    }
    text = render(quota_tables(Quota.model_validate(quota)))
    assert "Builds" in text
    row = next(line for line in text.splitlines() if line.startswith("Parallel builds"))
    assert row.split()[2:] == ["4", "1", "3"]
    assert "Registry" in text
    row = next(line for line in text.splitlines() if line.startswith("Storage"))
    assert row.split()[1:] == ["1.00Gi", "12.50Mi", "1011.50Mi"]  # the API's human units


def test_log_lines_show_the_line_field_or_the_raw_text() -> None:
    assert log_line_text(json.dumps({"line": "[step-build] 2026 [b]x[/b]"})).plain == (
        "[step-build] 2026 [b]x[/b]"
    )
    assert log_line_text("not json").plain == "not json"
    assert log_line_text('{"other": 1}').plain == '{"other": 1}'
