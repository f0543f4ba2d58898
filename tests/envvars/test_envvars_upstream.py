"""The real upstream ``toolforge-envvars`` 0.0.16 against our gateway, as a tool runs it
(issue 16, "The CLI"; the harness of ``tests/upstream/conftest.py``: the client in its own
Python 3.13 environment, the tool's home configured as on Toolforge).

Every command with its flags, and the error paths; the exit code and the output are the
assertions. The client prints everything on stdout: the API's info messages, the tables
(``tabulate`` plain: ``name  value``), and errors as ``Error: <the API's message>`` with exit
code 1 (any error: it has no other code). ``stderr`` stays empty.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from upstream.conftest import (  # noqa: F401 - fixtures of the upstream harness, reused here
    Upstream,
    UpstreamFactory,
    tool_http,
    upstream,
    upstream_clients,
    upstream_for,
)

from platform_cli import toolforge
from toolforge_dev.pytest_plugin import Tool
from toolforge_dev.upstream_clients import UpstreamResult

pytestmark = pytest.mark.cluster

HIDDEN = "*" * 16
SPECIAL = "t0ken-Äb$(x)'\"`;|&"  # shell and JSON specials, non-ASCII
KEY = "-----BEGIN KEY-----\nabc\tdef\n-----END KEY-----\n"  # from stdin, trailing newline
LONG = "L" * 60 + "-end"
NO_MESSAGES: dict[str, list[str]] = {"info": [], "warning": [], "error": []}


def ok(result: UpstreamResult) -> UpstreamResult:
    """Exit 0 and nothing on stderr."""
    assert result.returncode == 0, result.describe()
    assert result.stderr_lines == [], result.describe()
    return result


def refused(result: UpstreamResult, message: str) -> None:
    """Exit 1 with ``Error: <message>...`` on stdout (the API's message)."""
    assert result.returncode == 1, result.describe()
    assert any(line.startswith(f"Error: {message}") for line in result.stdout.splitlines()), (
        result.describe()
    )


def rows(stdout: str) -> dict[str, str]:
    """``{name: first line of the value}`` of the client's ``name value`` table: lines
    before the header (the API's info messages) left out; a row starts at column 0, the
    further lines of a multi-line value are indented."""
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split() == ["name", "value"])
    cells = [line.split(None, 1) for line in lines[header + 1 :] if line[:1].strip()]
    return {name: value.rstrip() for name, value in cells}  # the table pads the last column


def test_every_command_and_flag(upstream: Upstream, tool: Tool) -> None:  # noqa: F811
    assert ok(upstream.envvars("list")).stdout.split() == ["name", "value"]

    created = ok(upstream.envvars("create", "API_TOKEN", "first"))
    assert created.stdout.splitlines()[0] == "Envvar 'API_TOKEN' created"
    assert rows(created.stdout) == {"API_TOKEN": "first"}  # upstream echoes the value
    updated = ok(upstream.envvars("create", "API_TOKEN", SPECIAL))
    assert updated.stdout.splitlines()[0] == "Envvar 'API_TOKEN' updated"
    assert rows(updated.stdout) == {"API_TOKEN": SPECIAL}
    ok(upstream.envvars("create", "SSH_KEY", input_text=KEY))  # value from stdin
    as_json = json.loads(ok(upstream.envvars("create", "LONG_ONE", LONG, "--json")).stdout)
    assert as_json == {
        "envvar": {"name": "LONG_ONE", "value": LONG},
        "messages": {"info": ["Envvar 'LONG_ONE' created"], "warning": [], "error": []},
    }

    hidden = ok(upstream.envvars("list")).stdout
    assert rows(hidden) == {"API_TOKEN": HIDDEN, "LONG_ONE": HIDDEN, "SSH_KEY": HIDDEN}
    assert SPECIAL not in hidden
    shown = rows(ok(upstream.envvars("list", "--show-values")).stdout)
    assert (shown["API_TOKEN"], shown["LONG_ONE"]) == (SPECIAL, LONG)
    truncated = rows(ok(upstream.envvars("list", "--show-values", "--truncate")).stdout)
    assert (truncated["API_TOKEN"], truncated["LONG_ONE"]) == (SPECIAL, LONG[:50] + "...")
    untruncated = rows(ok(upstream.envvars("list", "--show-values", "--no-truncate")).stdout)
    assert untruncated["LONG_ONE"] == LONG
    listed: dict[str, Any] = {
        "envvars": [
            {"name": "API_TOKEN", "value": SPECIAL},
            {"name": "LONG_ONE", "value": LONG},
            {"name": "SSH_KEY", "value": KEY},
        ],
        "messages": NO_MESSAGES,
    }
    assert json.loads(ok(upstream.envvars("list", "--json")).stdout) == listed
    assert json.loads(ok(upstream.envvars("list", "--json", "--show-values")).stdout) == listed

    assert rows(ok(upstream.envvars("show", "API_TOKEN")).stdout) == {"API_TOKEN": SPECIAL}
    assert ok(upstream.envvars("show", "API_TOKEN", "--raw")).stdout == SPECIAL
    assert ok(upstream.envvars("show", "SSH_KEY", "--raw")).stdout == KEY  # byte for byte
    assert json.loads(ok(upstream.envvars("show", "SSH_KEY", "--json")).stdout) == {
        "envvar": {"name": "SSH_KEY", "value": KEY},
        "messages": NO_MESSAGES,
    }
    # what upstream's client wrote, ours reads (and the other way round)
    ours = toolforge(tool, "envvars", "show", "SSH_KEY", "--raw")
    assert (ours.returncode, ours.stdout) == (0, KEY), ours.stderr
    assert toolforge(tool, "envvars", "create", "FROM_OURS", "ours").returncode == 0
    assert ok(upstream.envvars("show", "FROM_OURS", "--raw")).stdout == "ours"

    assert ok(upstream.envvars("quota")).stdout.split() == [
        "quota", "used", "available", "100", "4", "96",
    ]  # fmt: skip
    assert json.loads(ok(upstream.envvars("quota", "--json")).stdout) == {
        "quota": {"quota": 100, "used": 4},
        "messages": NO_MESSAGES,
    }

    kept = upstream.envvars("delete", "LONG_ONE", input_text="n\n")
    assert kept.returncode == 1, kept.describe()
    assert "Are you sure you want to delete LONG_ONE? (this can't be undone) [yN]" in kept.stdout
    assert "Aborting at user's request" in kept.stdout
    assert ok(upstream.envvars("show", "LONG_ONE", "--raw")).stdout == LONG
    deleted = ok(upstream.envvars("delete", "LONG_ONE", input_text="y\n"))
    assert "Deleted LONG_ONE, here is its last value:" in deleted.stdout
    assert rows(deleted.stdout) == {"LONG_ONE": LONG}
    sure = ok(upstream.envvars("delete", "API_TOKEN", "--yes-im-sure"))
    assert rows(sure.stdout) == {"API_TOKEN": SPECIAL}
    gone = json.loads(ok(upstream.envvars("delete", "SSH_KEY", "--yes-im-sure", "--json")).stdout)
    assert gone == {
        "envvar": {"name": "SSH_KEY", "value": KEY},
        "messages": {"info": ["Envvar 'SSH_KEY' deleted"], "warning": [], "error": []},
    }
    refused(upstream.envvars("show", "API_TOKEN"), "Envvar 'API_TOKEN' does not exist")
    assert rows(ok(upstream.envvars("list")).stdout) == {"FROM_OURS": HIDDEN}


def test_error_paths(
    upstream: Upstream,  # noqa: F811
    tool: Tool,
    tool_http: httpx.Client,  # noqa: F811
) -> None:
    pattern = "name: String should match pattern '^[A-Z][A-Z_0-9]{2,}[A-Z0-9]$'"
    refused(upstream.envvars("create", "lower_case", "v"), pattern)
    refused(upstream.envvars("show", "lower_case"), "name 'lower_case' is not valid")
    refused(upstream.envvars("create", "HOME", "v"), "name 'HOME' is reserved")
    refused(upstream.envvars("create", "TOOL_DATA_DIR", "v"), "name 'TOOL_DATA_DIR' is reserved")
    refused(
        upstream.envvars("create", "EMPTY_ONE", input_text=""),
        "value: String should have at least 1 character",
    )
    refused(upstream.envvars("show", "NOPE_NOPE"), "Envvar 'NOPE_NOPE' does not exist")
    refused(
        upstream.envvars("delete", "NOPE_NOPE", "--yes-im-sure"),
        "Envvar 'NOPE_NOPE' does not exist",
    )
    assert ok(upstream.envvars("list")).stdout.split() == ["name", "value"]  # nothing written

    # over the quota (100 on the platform): the 101st new name is refused, a replace is not
    base = f"/envvars/v1/tool/{tool.name}/envvars"
    for i in range(100):
        answer = tool_http.post(base, json={"name": f"FILL_{i:03d}", "value": "v"})
        assert answer.status_code == 200, answer.text
    refused(
        upstream.envvars("create", "ONE_MORE", "v"),
        "the tool has 100 of 100 variables; delete one first",
    )
    assert ok(upstream.envvars("quota")).stdout.split()[3:] == ["100", "100", "0"]
    ok(upstream.envvars("create", "FILL_000", "replaced"))
    assert ok(upstream.envvars("show", "FILL_000", "--raw")).stdout == "replaced"


def test_the_url_from_the_environment_variable(
    upstream_for: UpstreamFactory,  # noqa: F811
    tool: Tool,
) -> None:
    """``TOOL_TOOLFORGE_API_URL`` instead of ``~/.toolforge.yaml``."""
    via_env = upstream_for(tool, via="env")
    assert not (tool.home / ".toolforge.yaml").exists()
    ok(via_env.envvars("create", "VIA_ENV", "yes"))
    assert rows(ok(via_env.envvars("list", "--show-values")).stdout) == {"VIA_ENV": "yes"}
