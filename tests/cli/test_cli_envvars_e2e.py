"""``toolforge envvars`` end to end: the CLI as a process -> gateway (mTLS) -> envvars API ->
the tool's Secret in the real cluster, as a freshly onboarded tool.

Every command with its flags, what goes to stdout and stderr, the value from stdin and its
exact round trip (``show --raw``), the API's refusals (bad and reserved names, empty value,
missing variable, over quota) as exit code 1, isolation between two tools, and a tool home
configured for upstream's clients (``~/.toolforge.yaml``) used as it is. Injection into pods
is tested in ``tests/envvars/test_envvars_platform.py``; upstream's own ``toolforge-envvars``
in ``tests/envvars/test_envvars_upstream.py``.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys

import httpx
import pytest

from platform_cli import tool_env
from toolforge_dev.pytest_plugin import Tool
from toolforge_dev.services import PlatformServices
from toolforge_dev.upstream_clients import configure_tool_home

pytestmark = pytest.mark.cluster

HIDDEN = "*" * 16
SPECIAL = "t0ken-Äb$(x)'\"`;|&"  # shell and JSON specials, non-ASCII
KEY = "-----BEGIN KEY-----\nabc\tdef\n-----END KEY-----\n"  # from stdin, trailing newline
LONG = "L" * 60 + "-end"


def envvars(
    tool: Tool, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``toolforge envvars ARGS`` as ``tool`` with ``stdin`` (a pipe, not a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "toolforge_cli", "envvars", *args],
        env=env if env is not None else tool_env(tool),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ok(tool: Tool, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    result = envvars(tool, *args, stdin=stdin)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def refused(tool: Tool, message: str, *args: str, stdin: str = "") -> None:
    """Exit 1 with ``error: <the API's message>`` on stderr and nothing on stdout."""
    result = envvars(tool, *args, stdin=stdin)
    assert (result.returncode, result.stdout) == (1, ""), (args, result.stdout, result.stderr)
    assert result.stderr.startswith(f"error: {message}"), (args, result.stderr)


def rows(stdout: str) -> dict[str, str]:
    """``{name: first line of the value}`` of a Name/Value table (a row starts at column 0;
    the further lines of a multi-line value are indented)."""
    lines = stdout.splitlines()
    assert lines[0].split() == ["Name", "Value"], stdout
    cells = [line.split(None, 1) for line in lines[2:] if line[:1].strip()]
    return {name: value.rstrip() for name, value in cells}  # the table pads the last column


def test_every_command_and_flag(platform: PlatformServices, tool: Tool) -> None:
    empty = ok(tool, "list")
    assert (empty.stdout, empty.stderr.split(",")[0]) == ("", "No envvars found")

    created = ok(tool, "create", "API_TOKEN", "first")
    assert created.stderr == "info: Envvar 'API_TOKEN' created\n"
    assert rows(created.stdout) == {"API_TOKEN": HIDDEN}
    replaced = ok(tool, "create", "API_TOKEN", SPECIAL)
    assert replaced.stderr == "info: Envvar 'API_TOKEN' updated\n"
    assert SPECIAL not in replaced.stdout + replaced.stderr
    ok(tool, "create", "SSH_KEY", stdin=KEY)
    as_json = json.loads(ok(tool, "create", "LONG_ONE", LONG, "--json").stdout)
    assert as_json["envvar"] == {"name": "LONG_ONE", "value": LONG}

    assert rows(ok(tool, "list").stdout) == {
        "API_TOKEN": HIDDEN,
        "LONG_ONE": HIDDEN,
        "SSH_KEY": HIDDEN,
    }
    shown = rows(ok(tool, "list", "--show-values").stdout)
    assert (shown["API_TOKEN"], shown["LONG_ONE"]) == (SPECIAL, LONG)
    truncated = rows(ok(tool, "list", "--show-values", "--truncate").stdout)
    assert truncated["LONG_ONE"] == LONG[:50] + "..."
    assert truncated["API_TOKEN"] == SPECIAL
    assert ok(tool, "list", "-o", "name").stdout == "API_TOKEN\nLONG_ONE\nSSH_KEY\n"
    listed = json.loads(ok(tool, "list", "--json").stdout)
    assert {e["name"]: e["value"] for e in listed["envvars"]} == {
        "API_TOKEN": SPECIAL,
        "LONG_ONE": LONG,
        "SSH_KEY": KEY,
    }
    assert json.loads(ok(tool, "list", "-o", "json").stdout) == listed

    assert rows(ok(tool, "show", "API_TOKEN").stdout) == {"API_TOKEN": SPECIAL}
    assert ok(tool, "show", "API_TOKEN", "--raw").stdout == SPECIAL
    assert ok(tool, "show", "SSH_KEY", "--raw").stdout == KEY  # byte for byte
    assert json.loads(ok(tool, "show", "SSH_KEY", "--json").stdout)["envvar"]["value"] == KEY

    quota = ok(tool, "quota").stdout.splitlines()
    assert (quota[0].split(), quota[2].split()) == (
        ["Quota", "Used", "Available"],
        ["100", "3", "97"],
    )
    assert json.loads(ok(tool, "quota", "--json").stdout)["quota"] == {"quota": 100, "used": 3}

    kept = envvars(tool, "delete", "LONG_ONE", stdin="n\n")
    assert kept.returncode == 1
    assert "Are you sure you want to delete LONG_ONE? (this can't be undone)" in kept.stderr
    assert "Aborting at user's request" in kept.stderr
    assert ok(tool, "show", "LONG_ONE", "--raw").stdout == LONG
    deleted = ok(tool, "delete", "LONG_ONE", stdin="y\n")
    assert rows(deleted.stdout) == {"LONG_ONE": LONG}  # the last value, as upstream
    assert "Deleted LONG_ONE, here is its last value:" in deleted.stderr
    gone = json.loads(ok(tool, "delete", "API_TOKEN", "--yes-im-sure", "-o", "json").stdout)
    assert gone["envvar"] == {"name": "API_TOKEN", "value": SPECIAL}
    refused(tool, "Envvar 'API_TOKEN' does not exist", "show", "API_TOKEN")
    assert ok(tool, "list", "-o", "name").stdout == "SSH_KEY\n"


def test_the_apis_refusals_are_user_errors(platform: PlatformServices, tool: Tool) -> None:
    pattern = "name: String should match pattern '^[A-Z][A-Z_0-9]{2,}[A-Z0-9]$'"
    refused(tool, pattern, "create", "lower_case", "v")
    refused(tool, pattern, "create", "AB", "v")
    refused(tool, "name 'lower_case' is not valid", "show", "lower_case")
    refused(tool, "name 'HOME' is reserved", "create", "HOME", "v")
    refused(tool, "name 'TOOL_DATA_DIR' is reserved", "create", "TOOL_DATA_DIR", "v")
    refused(tool, "value: String should have at least 1 character", "create", "EMPTY_ONE", stdin="")
    refused(tool, "Envvar 'NOPE_NOPE' does not exist", "show", "NOPE_NOPE")
    refused(tool, "Envvar 'NOPE_NOPE' does not exist", "delete", "NOPE_NOPE", "--yes-im-sure")
    assert ok(tool, "list", "-o", "name").stdout == ""  # nothing half-written


def test_over_the_quota(platform: PlatformServices, tool: Tool) -> None:
    """The platform's quota is 100 variables: the 101st new name is refused (409, exit 1);
    replacing one still works."""
    context = ssl.create_default_context(cafile=platform.cluster.pki_dir / "cluster-ca.crt")
    context.load_cert_chain(
        tool.home / ".toolskube/client.crt", tool.home / ".toolskube/client.key"
    )
    base = f"{platform.gateway_url}/envvars/v1/tool/{tool.name}"
    with httpx.Client(base_url=base, verify=context, timeout=60) as http:
        for i in range(100):
            answer = http.post("/envvars", json={"name": f"FILL_{i:03d}", "value": "v"})
            assert answer.status_code == 200, answer.text
    refused(tool, "the tool has 100 of 100 variables; delete one first", "create", "ONE_MORE", "v")
    ok(tool, "create", "FILL_000", "replaced")
    assert ok(tool, "show", "FILL_000", "--raw").stdout == "replaced"
    quota = ok(tool, "quota").stdout.splitlines()
    assert quota[2].split() == ["100", "100", "0"]


def test_one_tool_cannot_see_anothers_variables(
    platform: PlatformServices, tool: Tool, other_tool: Tool
) -> None:
    ok(tool, "create", "MINE_ONLY", "s3cret")
    assert ok(other_tool, "list", "-o", "name").stdout == ""
    refused(other_tool, "Envvar 'MINE_ONLY' does not exist", "show", "MINE_ONLY")
    refused(other_tool, "Envvar 'MINE_ONLY' does not exist", "delete", "MINE_ONLY", "--yes-im-sure")
    ok(other_tool, "create", "MINE_ONLY", "other")  # its own, not tool's
    assert ok(tool, "show", "MINE_ONLY", "--raw").stdout == "s3cret"


def test_a_home_configured_for_upstreams_clients_works_as_it_is(
    platform: PlatformServices, tool: Tool
) -> None:
    """Only HOME: no TOOLFORGE_* variable. Certificate and CA come from the home (as
    onboarding made it), the URL from ``~/.toolforge.yaml`` (as the upstream harness writes
    it), or from ``TOOL_TOOLFORGE_API_URL``."""
    home_only = {"PATH": os.environ["PATH"], "HOME": str(tool.home), "LANG": "C.UTF-8"}
    # the file is read: a URL where nothing listens fails (exit 2) and says where it came from
    configure_tool_home(tool.home, "https://127.0.0.1:9")
    unreachable = envvars(tool, "list", env=home_only)
    assert unreachable.returncode == 2, unreachable.stderr
    assert f"this URL came from {tool.home / '.toolforge.yaml'}" in unreachable.stderr
    # the gateway by another name than our default (https://127.0.0.1:8443)
    url = platform.gateway_url.replace("127.0.0.1", "localhost")
    assert url != platform.gateway_url
    configure_tool_home(tool.home, url)
    created = envvars(tool, "create", "FROM_HOME", "v", env=home_only)
    assert created.returncode == 0, created.stderr
    env = configure_tool_home(tool.home, url, via="env")
    listed = envvars(tool, "list", "-o", "name", env={**home_only, **env})
    assert (listed.returncode, listed.stdout) == (0, "FROM_HOME\n"), listed.stderr
