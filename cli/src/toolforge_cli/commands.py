"""The pattern every read command of ``toolforge jobs`` and ``toolforge build`` follows, in
one place: open the API (errors -> message and exit code), read one answer, then print it as
JSON (the API's answer as it came), as names (one per line), or as a table.

Output formats: ``-o/--output normal|json`` on every read command (``list`` adds ``name``,
and ``jobs list`` adds ``long``), and the ``--json`` flag that upstream's clients have
(:func:`json_option`). Results go to stdout; "nothing found" and the API's messages to
stderr.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from typing import Any, TypeVar

import typer
from rich.console import RenderableType
from rich.text import Text

from toolforge_cli.apibase import ApiBase
from toolforge_cli.context import api_client
from toolforge_cli.output import err, handle_errors, out, print_json

__all__ = [
    "ListFormat",
    "ReadFormat",
    "json_option",
    "open_api",
    "output_option",
    "print_list",
    "print_one",
    "read_format",
]

ApiT = TypeVar("ApiT", bound=ApiBase)
T = TypeVar("T")


class ReadFormat(StrEnum):
    """``--output`` of read commands that show one thing."""

    normal = "normal"
    json = "json"


class ListFormat(StrEnum):
    """``--output`` of ``list`` commands."""

    normal = "normal"
    name = "name"
    json = "json"


def output_option(help_text: str = "normal or json.") -> Any:
    """The ``-o/--output`` option."""
    return typer.Option("-o", "--output", help=help_text)


def json_option(
    help_text: str = "Print JSON: the same as -o json (upstream's spelling).",
) -> Any:
    """The ``--json`` flag of upstream's clients."""
    return typer.Option("--json", help=help_text)


def read_format(output: StrEnum, as_json: bool) -> str:
    """The format to print: ``json`` when ``--json`` was given, else ``output``'s value."""
    return "json" if as_json else str(output)


@contextmanager
def open_api(ctx: typer.Context, api: type[ApiT]) -> Iterator[ApiT]:
    """Handle errors (message + exit code) and open ``api`` for the command's tool."""
    with handle_errors(), api_client(ctx) as client:
        yield api(client)


def print_one(fmt: str, json_data: Any, render: Callable[[], RenderableType]) -> None:
    """``json``: ``json_data`` as JSON; otherwise the renderable that ``render`` makes."""
    if fmt == "json":
        print_json(json_data)
    else:
        out.print(render())


def print_list(
    fmt: str,
    items: Sequence[T],
    *,
    json_data: Any,
    name: Callable[[T], str],
    table: Callable[[Sequence[T]], RenderableType],
    empty: str,
) -> None:
    """A ``list`` command's output: ``json`` -> ``json_data``; ``name`` -> one name a line;
    otherwise ``table(items)``, or ``empty`` on stderr when there are none."""
    if fmt == "json":
        print_json(json_data)
    elif fmt == "name":
        for item in items:
            out.print(Text(name(item)), soft_wrap=True)
    elif not items:
        err.print(Text(empty))
    else:
        out.print(table(items))
