"""``toolforge envvars ...``: the tool's environment variables (secrets such as passwords and
tokens), which every job and continuous job of the tool gets (REFERENCE.md, "Envvars"), with
the commands, flags and wording of upstream's ``toolforge-envvars`` 0.0.16
(``cli/COMPATIBILITY.md``).

Every command takes ``-o/--output json`` and upstream's ``--json``: the API's answer as it
came (values included). Values are secrets: ``list`` hides them unless ``--show-values`` and
``create`` does not echo the value; ``show`` and ``delete`` (its last value) print them, as
upstream's client does. Results go to stdout; the API's messages, prompts and errors to
stderr. Exit codes: :mod:`toolforge_cli.errors` (1 also when ``delete`` is not confirmed).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.text import Text

from toolforge_cli.commands import (
    ListFormat,
    ReadFormat,
    json_option,
    open_api,
    output_option,
    print_list,
    print_one,
    read_format,
)
from toolforge_cli.envvarsapi import EnvvarsApi
from toolforge_cli.envvarsview import envvars_table, quota_table
from toolforge_cli.errors import UserError
from toolforge_cli.output import err, handle_errors, out

__all__ = [
    "ABORTED",
    "NO_ENVVARS",
    "VALUE_PROMPT",
    "app",
    "ask_yes",
    "read_value",
    "stdin_is_terminal",
]

app = typer.Typer(
    help="""Manage the tool's environment variables: secrets its jobs get.

Every job and continuous job of the tool gets the variables (passwords, tokens...) in its
environment. Values are hidden in `list` unless --show-values.

Examples:
  toolforge envvars create API_TOKEN          # asks for the value (not echoed)
  printf %s "$TOKEN" | toolforge envvars create API_TOKEN
  toolforge envvars list --show-values --truncate
  toolforge envvars show API_TOKEN --raw
  toolforge envvars delete API_TOKEN --yes-im-sure
  toolforge envvars quota""",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

#: ``list`` with no variables.
NO_ENVVARS = (
    "No envvars found, you can create one using `toolforge envvars create NAME`, "
    "run `toolforge envvars create --help` for more details"
)
#: ``create`` without VALUE on a terminal (upstream's words).
VALUE_PROMPT = "Enter the value of your envvar (Hit Ctrl+C to cancel)"
#: ``delete`` not confirmed (upstream's words; exit code 1).
ABORTED = "Aborting at user's request"

JsonFlag = Annotated[bool, json_option("Print the API's answer as JSON (the same as -o json).")]
Output = Annotated[ReadFormat, output_option()]
Name = Annotated[str, typer.Argument(metavar="NAME", help="The variable's name, e.g. API_TOKEN.")]


def stdin_is_terminal() -> bool:
    """Whether ``create`` without VALUE prompts (a terminal) or reads stdin (a pipe or
    file)."""
    return sys.stdin.isatty()


def read_value() -> str:
    """The value of ``create NAME`` without VALUE: asked for on a terminal (input hidden,
    asked again when empty), else all of stdin exactly as it came (a trailing newline
    included, as upstream; pipe with ``printf %s`` to leave it out)."""
    if stdin_is_terminal():
        try:
            value: str = typer.prompt(VALUE_PROMPT, hide_input=True, err=True)
        except typer.Abort:  # Ctrl-C or end of input at the prompt: interrupted (exit 130)
            raise KeyboardInterrupt from None
        return value
    return sys.stdin.read()


@app.command(
    "list",
    epilog="Examples:\n  toolforge envvars list\n  toolforge envvars list --show-values\n"
    "  toolforge envvars list --show-values --truncate\n  toolforge envvars list -o name\n"
    "  toolforge envvars list --json | jq -r '.envvars[] | .name + \"=\" + .value'",
)
def list_(
    ctx: typer.Context,
    show_values: Annotated[
        bool,
        typer.Option("--show-values", help="Show the values (hidden by default)."),
    ] = False,
    truncate: Annotated[
        bool,
        typer.Option(
            "--truncate/--no-truncate",
            help="With --show-values: cut values of 50 characters or more to their first 50.",
        ),
    ] = False,
    output: Annotated[
        ListFormat, output_option("normal, name (one per line) or json (values included).")
    ] = ListFormat.normal,
    as_json: Annotated[
        bool,
        json_option("Print the API's answer as JSON, values included (ignores the other flags)."),
    ] = False,
) -> None:
    """List the tool's variables; values are hidden unless --show-values."""
    with open_api(ctx, EnvvarsApi) as api:
        answer = api.list_envvars()
        print_list(
            read_format(output, as_json),
            answer.envvars,
            json_data=answer.raw,
            name=lambda envvar: envvar.name,
            table=lambda envvars: envvars_table(
                envvars, show_values=show_values, truncate=truncate
            ),
            empty=NO_ENVVARS,
        )


@app.command(
    epilog="Examples:\n  toolforge envvars show API_TOKEN\n"
    '  curl -H "Authorization: Bearer $(toolforge envvars show API_TOKEN --raw)" ...\n'
    "  toolforge envvars show API_TOKEN -o json",
)
def show(
    ctx: typer.Context,
    name: Name,
    raw: Annotated[
        bool,
        typer.Option("--raw", help="Print only the value, as it is, without a newline."),
    ] = False,
    output: Output = ReadFormat.normal,
    as_json: JsonFlag = False,
) -> None:
    """Show one variable with its value."""
    fmt = read_format(output, as_json)
    with open_api(ctx, EnvvarsApi) as api:
        answer = api.get(name)
        if raw and fmt != "json":  # upstream: --json wins over --raw
            _write_raw(answer.envvar.value)
            return
        print_one(fmt, answer.raw, lambda: envvars_table([answer.envvar], show_values=True))


def _write_raw(value: str) -> None:
    """``value`` on stdout byte for byte (no rich rendering: tabs and control characters
    stay as they are)."""
    try:
        sys.stdout.write(value)
        sys.stdout.flush()
    except BrokenPipeError:
        out.on_broken_pipe()


@app.command(
    epilog="""Examples:
  toolforge envvars create API_TOKEN            # asks for the value (not echoed)
  toolforge envvars create DB_USER bot
  printf %s "$TOKEN" | toolforge envvars create API_TOKEN
  toolforge envvars create SSH_KEY < id_ed25519""",
)
def create(
    ctx: typer.Context,
    name: Name,
    value: Annotated[
        str | None,
        typer.Argument(
            metavar="VALUE",
            help="The value. Absent: asked for on a terminal, else read from stdin (all of it, "
            "a trailing newline included).",
            show_default=False,
        ),
    ] = None,
    output: Output = ReadFormat.normal,
    as_json: JsonFlag = False,
) -> None:
    """Create a variable, or replace its value.

    Jobs started from now on get it; restart a continuous job (toolforge jobs restart NAME)
    to give it to its pods. The value is not printed back."""
    with handle_errors():
        if value is None:
            value = read_value()
    with open_api(ctx, EnvvarsApi) as api:
        answer = api.create(name, value)
        print_one(read_format(output, as_json), answer.raw, lambda: envvars_table([answer.envvar]))


@app.command(
    epilog="Examples:\n  toolforge envvars delete API_TOKEN\n"
    "  toolforge envvars delete API_TOKEN --yes-im-sure",
)
def delete(
    ctx: typer.Context,
    name: Name,
    yes_im_sure: Annotated[
        bool, typer.Option("--yes-im-sure", help="Do not ask for confirmation.")
    ] = False,
    output: Output = ReadFormat.normal,
    as_json: JsonFlag = False,
) -> None:
    """Delete a variable; prints its last value.

    Asks first unless --yes-im-sure. Pods that run keep the variable until they are
    restarted."""
    if not yes_im_sure:
        _confirm_delete(name)
    fmt = read_format(output, as_json)
    with open_api(ctx, EnvvarsApi) as api:
        answer = api.delete(name)
        if fmt != "json":
            err.print(Text(f"Deleted {name}, here is its last value:"))
        print_one(fmt, answer.raw, lambda: envvars_table([answer.envvar], show_values=True))


def _confirm_delete(name: str) -> None:
    """Ask on stderr; anything but yes -> :data:`ABORTED`, exit 1 (Ctrl-C: 130)."""
    with handle_errors():
        if not ask_yes(f"Are you sure you want to delete {name}? (this can't be undone)"):
            raise UserError(ABORTED, hint="pass --yes-im-sure to delete without a question")


def ask_yes(question: str) -> bool:
    """``question [y/N]: `` on stderr, the answer from stdin: ``y``/``yes`` -> True;
    ``n``/``no``/empty/end of input -> False; anything else is asked again.

    Not ``typer.confirm``: click writes the prompt's last character to stdout (for readline),
    which would reach the results of ``delete -o json > file``.
    """
    while True:
        err.print(Text(f"{question} [y/N]: "), end="")
        line = sys.stdin.readline()
        answer = line.strip().lower()
        if answer in ("y", "yes"):
            return True
        if not line or answer in ("", "n", "no"):
            return False
        err.print(Text("Error: invalid input"))


@app.command(epilog="Examples:\n  toolforge envvars quota\n  toolforge envvars quota --json")
def quota(
    ctx: typer.Context,
    output: Output = ReadFormat.normal,
    as_json: JsonFlag = False,
) -> None:
    """Show how many variables the tool may have, has and may still create."""
    with open_api(ctx, EnvvarsApi) as api:
        answer = api.quota()
        print_one(read_format(output, as_json), answer.raw, lambda: quota_table(answer.quota))
