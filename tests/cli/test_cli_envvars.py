"""``toolforge envvars`` on recorded answers of the envvars API (``cli.wire``; the gateway there
is a test double of the HTTP transport): upstream's flags (``toolforge-envvars`` 0.0.16) and
ours, what is printed where, hidden values, the value from stdin or a hidden prompt, the
confirmation of ``delete``, and exit codes. The same commands run against the real gateway in
``test_cli_envvars_e2e.py``; upstream's own client in ``tests/envvars/test_envvars_upstream.py``.
"""

from __future__ import annotations

import json

import pytest
from cli.harness import CliPKI, Home, clean_env, run_cli
from cli.wire import (
    ENVVARS_LIST,
    ENVVARS_QUOTA,
    LONG_VALUE,
    NO_MESSAGES,
    SECRET_VALUE,
    RecordedGateway,
    envelope,
    envvar_answer,
    production_error,
    use_gateway,
)
from rich.console import Console

from toolforge_cli import envvars
from toolforge_cli.envvarsapi import Envvar
from toolforge_cli.envvarsview import HIDDEN_VALUE, envvars_table, shown_value

BASE = "/envvars/v1/tool/alice"


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch, cli_pki: CliPKI) -> RecordedGateway:
    recorded = RecordedGateway()
    use_gateway(monkeypatch, cli_pki, recorded)
    return recorded


def table_rows(stdout: str) -> dict[str, str]:
    """``{name: value}`` of a Name/Value table: the lines after the header's rule."""
    lines = stdout.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("─"))
    rows = {}
    for line in lines[rule + 1 :]:
        name, _, value = line.strip().partition(" ")
        rows[name] = value.strip()
    return rows


# -- list -----------------------------------------------------------------------------------


def test_list_hides_values_unless_asked(home: Home, gateway: RecordedGateway) -> None:
    gateway.on("GET", "/envvars", ENVVARS_LIST)
    hidden = run_cli(["envvars", "list"], clean_env(home))
    assert hidden.exit_code == 0, hidden.stderr
    assert table_rows(hidden.stdout) == {
        "API_TOKEN": HIDDEN_VALUE,
        "LONG_ONE": HIDDEN_VALUE,
        "MULTI_LINE": HIDDEN_VALUE,
    }
    assert "s3cr3t" not in hidden.stdout + hidden.stderr
    assert hidden.stdout.splitlines()[0].split() == ["Name", "Value"]
    # --truncate alone shows nothing more (upstream: it only cuts shown values)
    assert run_cli(["envvars", "list", "--truncate"], clean_env(home)).stdout == hidden.stdout

    shown = run_cli(["envvars", "list", "--show-values"], clean_env(home))
    assert shown.exit_code == 0, shown.stderr
    rows = table_rows(shown.stdout)
    assert rows["API_TOKEN"] == SECRET_VALUE
    assert rows["LONG_ONE"] == LONG_VALUE
    assert gateway.sent() == [("GET", f"{BASE}/envvars", {}, None)] * 3


def test_list_truncate_cuts_long_values_as_upstream(home: Home, gateway: RecordedGateway) -> None:
    gateway.on("GET", "/envvars", ENVVARS_LIST)
    result = run_cli(["envvars", "list", "--show-values", "--truncate"], clean_env(home))
    assert result.exit_code == 0, result.stderr
    rows = table_rows(result.stdout)
    assert rows["LONG_ONE"] == LONG_VALUE[:50] + "..."
    assert rows["API_TOKEN"] == SECRET_VALUE
    untruncated = run_cli(
        ["envvars", "list", "--show-values", "--no-truncate"], clean_env(home)
    ).stdout
    assert table_rows(untruncated)["LONG_ONE"] == LONG_VALUE


@pytest.mark.parametrize(
    ("value", "show", "truncate", "expected"),
    [
        ("abc", False, False, HIDDEN_VALUE),
        ("abc", False, True, HIDDEN_VALUE),
        ("y" * 49, True, True, "y" * 49),
        # upstream's rule is ">= 50", so a value of exactly 50 gets "..." too
        ("y" * 50, True, True, "y" * 50 + "..."),
        ("y" * 51, True, True, "y" * 50 + "..."),
        ("y" * 51, True, False, "y" * 51),
    ],
)
def test_shown_value(value: str, show: bool, truncate: bool, expected: str) -> None:
    assert shown_value(value, show=show, truncate=truncate) == expected


def test_values_are_text_not_markup() -> None:
    console = Console(width=200, record=True, color_system=None)
    console.print(envvars_table([Envvar(name="MARKUP", value="[bold]x[/bold]")], show_values=True))
    assert "[bold]x[/bold]" in console.export_text()


def test_list_json_and_output_json_are_the_answer_with_values(
    home: Home, gateway: RecordedGateway
) -> None:
    gateway.on("GET", "/envvars", ENVVARS_LIST)
    for args in (["--json"], ["-o", "json"], ["--json", "--show-values", "--truncate"]):
        result = run_cli(["envvars", "list", *args], clean_env(home))
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout) == ENVVARS_LIST


def test_list_names_and_empty_list(home: Home, gateway: RecordedGateway) -> None:
    gateway.on("GET", "/envvars", ENVVARS_LIST)
    names = run_cli(["envvars", "list", "-o", "name"], clean_env(home))
    assert names.stdout == "API_TOKEN\nLONG_ONE\nMULTI_LINE\n"
    gateway.on("GET", "/envvars", envelope(envvars=[]))
    empty = run_cli(["envvars", "list"], clean_env(home))
    assert (empty.exit_code, empty.stdout) == (0, "")
    assert empty.stderr.startswith("No envvars found, you can create one using")
    assert json.loads(run_cli(["envvars", "list", "--json"], clean_env(home)).stdout) == {
        "envvars": [],
        "messages": NO_MESSAGES,
    }


# -- show -----------------------------------------------------------------------------------


def test_show_prints_the_value_and_raw_prints_it_exactly(
    home: Home, gateway: RecordedGateway
) -> None:
    value = "a\tb \\n [red]x[/red]\n"
    gateway.on("GET", "/envvars/MULTI_LINE", envvar_answer("MULTI_LINE", value))
    table = run_cli(["envvars", "show", "MULTI_LINE"], clean_env(home))
    assert table.exit_code == 0, table.stderr
    assert table.stdout.splitlines()[2].split()[:2] == ["MULTI_LINE", "a"]
    assert "[red]x[/red]" in table.stdout
    raw = run_cli(["envvars", "show", "MULTI_LINE", "--raw"], clean_env(home))
    assert raw.exit_code == 0, raw.stderr
    assert raw.stdout == value  # byte for byte: the tab, the trailing newline, no markup
    for args in (["--json"], ["-o", "json"], ["--raw", "--json"]):  # --json wins over --raw
        shown = run_cli(["envvars", "show", "MULTI_LINE", *args], clean_env(home))
        assert json.loads(shown.stdout) == envvar_answer("MULTI_LINE", value)


def test_show_of_a_missing_variable_is_a_user_error(home: Home, gateway: RecordedGateway) -> None:
    gateway.on(
        "GET", "/envvars/NOPE_NOPE", production_error("Envvar 'NOPE_NOPE' does not exist"), 404
    )
    result = run_cli(["envvars", "show", "NOPE_NOPE"], clean_env(home))
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.startswith("error: Envvar 'NOPE_NOPE' does not exist")


def test_a_name_cannot_reach_another_path(home: Home, gateway: RecordedGateway) -> None:
    run_cli(["envvars", "show", "../quotas"], clean_env(home))
    (request,) = gateway.requests
    assert request.url.raw_path == f"{BASE}/envvars/..%2Fquotas".encode()


def test_a_server_error_is_an_internal_error(home: Home, gateway: RecordedGateway) -> None:
    gateway.on("GET", "/quotas", production_error("kube-apiserver cannot be reached"), 503)
    result = run_cli(["envvars", "quota"], clean_env(home))
    assert result.exit_code == 2
    assert "kube-apiserver cannot be reached" in result.stderr


# -- create ---------------------------------------------------------------------------------


def test_create_sends_the_value_and_does_not_print_it_back(
    home: Home, gateway: RecordedGateway
) -> None:
    answer = envvar_answer("API_TOKEN", SECRET_VALUE, "Envvar 'API_TOKEN' created")
    gateway.on("POST", "/envvars", answer)
    result = run_cli(["envvars", "create", "API_TOKEN", SECRET_VALUE], clean_env(home))
    assert result.exit_code == 0, result.stderr
    assert gateway.sent() == [
        ("POST", f"{BASE}/envvars", {}, {"name": "API_TOKEN", "value": SECRET_VALUE})
    ]
    assert table_rows(result.stdout) == {"API_TOKEN": HIDDEN_VALUE}
    assert "s3cr3t" not in result.stdout + result.stderr
    assert "info: Envvar 'API_TOKEN' created" in result.stderr
    as_json = run_cli(["envvars", "create", "API_TOKEN", "v", "--json"], clean_env(home))
    assert json.loads(as_json.stdout) == answer


def test_create_reads_all_of_stdin_when_the_value_is_absent(
    home: Home, gateway: RecordedGateway
) -> None:
    gateway.on("POST", "/envvars", envvar_answer("SSH_KEY", "x"))
    key = "-----BEGIN KEY-----\nabc\tdef\n-----END KEY-----\n"
    result = run_cli(["envvars", "create", "SSH_KEY"], clean_env(home), stdin=key)
    assert result.exit_code == 0, result.stderr
    ((_, _, _, body),) = gateway.sent()
    assert body == {"name": "SSH_KEY", "value": key}  # as upstream: the trailing newline kept
    assert envvars.VALUE_PROMPT not in result.stderr  # not a terminal: no prompt


def test_create_asks_for_the_value_on_a_terminal_without_echoing_it(
    home: Home, gateway: RecordedGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(envvars, "stdin_is_terminal", lambda: True)
    gateway.on("POST", "/envvars", envvar_answer("API_TOKEN", "typed-s3cret"))
    # an empty answer is asked again
    result = run_cli(["envvars", "create", "API_TOKEN"], clean_env(home), stdin="\ntyped-s3cret\n")
    assert result.exit_code == 0, result.stderr
    ((_, _, _, body),) = gateway.sent()
    assert body == {"name": "API_TOKEN", "value": "typed-s3cret"}
    assert result.stderr.count(envvars.VALUE_PROMPT) == 2
    assert "typed-s3cret" not in result.stdout + result.stderr


def test_end_of_input_at_the_prompt_is_an_interruption(
    home: Home, gateway: RecordedGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(envvars, "stdin_is_terminal", lambda: True)
    result = run_cli(["envvars", "create", "API_TOKEN"], clean_env(home), stdin="")
    assert result.exit_code == 130
    assert gateway.requests == []


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (400, "name: String should match pattern '^[A-Z][A-Z_0-9]{2,}[A-Z0-9]$'"),
        (400, "name 'HOME' is reserved: the platform sets it in tool pods"),
        (400, "value: String should have at least 1 character"),
        (409, "the tool has 100 of 100 variables; delete one first"),
    ],
)
def test_create_refused_by_the_api_is_a_user_error(
    home: Home, gateway: RecordedGateway, status: int, message: str
) -> None:
    gateway.on("POST", "/envvars", production_error(message), status)
    result = run_cli(["envvars", "create", "SOME_NAME", "v"], clean_env(home))
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.startswith(f"error: {message}")


# -- delete ---------------------------------------------------------------------------------


def test_delete_asks_and_a_no_sends_nothing(home: Home, gateway: RecordedGateway) -> None:
    for answer in ("n\n", "", "maybe\nno\n"):  # no, end of input, no after a bad answer
        result = run_cli(["envvars", "delete", "API_TOKEN"], clean_env(home), stdin=answer)
        assert result.exit_code == 1, (answer, result.stderr)
        assert "Are you sure you want to delete API_TOKEN? (this can't be undone)" in (
            result.stderr
        )
        assert "Aborting at user's request" in result.stderr
        assert result.stdout == ""
    assert gateway.requests == []


def test_delete_after_yes_prints_the_last_value(home: Home, gateway: RecordedGateway) -> None:
    answer = envvar_answer("API_TOKEN", SECRET_VALUE, "Envvar 'API_TOKEN' deleted")
    gateway.on("DELETE", "/envvars/API_TOKEN", answer)
    result = run_cli(
        ["envvars", "delete", "API_TOKEN", "-o", "json"], clean_env(home), stdin="yes\n"
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == answer  # stdout holds the result only
    result = run_cli(["envvars", "delete", "API_TOKEN"], clean_env(home), stdin="y\n")
    assert result.exit_code == 0, result.stderr
    assert table_rows(result.stdout) == {"API_TOKEN": SECRET_VALUE}
    assert "Deleted API_TOKEN, here is its last value:" in result.stderr
    assert gateway.sent() == [("DELETE", f"{BASE}/envvars/API_TOKEN", {}, None)] * 2


def test_delete_yes_im_sure_does_not_ask(home: Home, gateway: RecordedGateway) -> None:
    answer = envvar_answer("API_TOKEN", SECRET_VALUE)
    gateway.on("DELETE", "/envvars/API_TOKEN", answer)
    result = run_cli(["envvars", "delete", "API_TOKEN", "--yes-im-sure", "--json"], clean_env(home))
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == answer
    assert "Are you sure" not in result.stderr
    gateway.on(
        "DELETE", "/envvars/GONE_GONE", production_error("Envvar 'GONE_GONE' does not exist"), 404
    )
    missing = run_cli(["envvars", "delete", "GONE_GONE", "--yes-im-sure"], clean_env(home))
    assert missing.exit_code == 1
    assert "Envvar 'GONE_GONE' does not exist" in missing.stderr


# -- quota ----------------------------------------------------------------------------------


def test_quota_table_and_json(home: Home, gateway: RecordedGateway) -> None:
    gateway.on("GET", "/quotas", ENVVARS_QUOTA)
    result = run_cli(["envvars", "quota"], clean_env(home))
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["Quota", "Used", "Available"]
    assert lines[2].split() == ["100", "3", "97"]
    for args in (["--json"], ["-o", "json"]):
        shown = run_cli(["envvars", "quota", *args], clean_env(home))
        assert json.loads(shown.stdout) == ENVVARS_QUOTA


def test_an_answer_of_the_wrong_shape_is_an_internal_error(
    home: Home, gateway: RecordedGateway
) -> None:
    gateway.on("GET", "/quotas", envelope(quota={"quota": "many"}))
    result = run_cli(["envvars", "quota"], clean_env(home))
    assert result.exit_code == 2
    assert "unexpected answer from the envvars API: quota.quota" in result.stderr


def test_every_command_has_help_with_examples(home: Home) -> None:
    for command in ("list", "show", "create", "delete", "quota"):
        result = run_cli(["envvars", command, "--help"], clean_env(home))
        assert result.exit_code == 0
        assert "Examples:" in result.stdout
        assert f"toolforge envvars {command}" in result.stdout
