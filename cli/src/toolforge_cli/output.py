"""Terminal output shared by every ``toolforge`` sub-command.

- :data:`out` (stdout) carries results only: tables, JSON, log lines, dumps.
- :data:`err` (stderr) carries everything else: the API's ``messages`` (info, warning,
  error), progress spinners, errors and hints.
- A closed pipe (``toolforge jobs list | head -1``) ends the program quietly with exit code 0
  (:class:`ToolforgeConsole`); rich's default raises ``SystemExit(1)``.
- :func:`handle_errors` turns :class:`~toolforge_cli.errors.CliError` into a message and its
  exit code, and Ctrl-C into exit code 130, without a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console, ConsoleDimensions
from rich.markup import escape

from toolforge_cli.errors import EXIT_INTERRUPTED, EXIT_OK, CliError

__all__ = [
    "PIPE_WIDTH",
    "ToolforgeConsole",
    "err",
    "handle_errors",
    "out",
    "print_error",
    "print_json",
    "print_messages",
]


#: Width when the output is not a terminal (and ``COLUMNS`` is not set): wide enough that
#: tables are never wrapped for scripts and pipes, as upstream's plain tables are not.
PIPE_WIDTH = 1000


class ToolforgeConsole(Console):
    """A rich console for a CLI whose reader may be a script.

    - On a broken pipe, stdout is pointed at ``/dev/null`` (so the final flush at exit does
      not fail again) and the program exits with code 0, printing nothing more.
    - When the output is not a terminal and ``COLUMNS`` is not set, lines are not wrapped at
      80 columns (rich's default) but at :data:`PIPE_WIDTH`.
    """

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if not self.is_terminal and "COLUMNS" not in os.environ:
            return ConsoleDimensions(PIPE_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]

    def on_broken_pipe(self) -> None:
        self.quiet = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)
        raise SystemExit(EXIT_OK)


#: Results (stdout). ``soft_wrap``: long lines are not broken at the terminal width.
out = ToolforgeConsole(soft_wrap=True)
#: Messages, progress and errors (stderr).
err = ToolforgeConsole(stderr=True, soft_wrap=True)

_STYLES = {"info": "cyan", "warning": "yellow", "error": "red"}


def print_messages(messages: Mapping[str, Any] | None, *, levels: tuple[str, ...] = ()) -> None:
    """Print an API ``messages`` object (``{info: [..], warning: [..], error: [..]}``) to
    stderr, one ``<level>: <text>`` line per message, in the order info, warning, error.

    ``levels`` restricts the levels printed (default: all). Anything that is not a list of
    strings is ignored.
    """
    if not isinstance(messages, Mapping):
        return
    for level in ("info", "warning", "error"):
        if levels and level not in levels:
            continue
        texts = messages.get(level)
        if not isinstance(texts, list):
            continue
        for text in texts:
            err.print(f"[{_STYLES[level]}]{level}:[/] {escape(str(text))}", highlight=False)


def print_error(error: CliError) -> None:
    """``error: <message>``, its detail lines and its hint, on stderr."""
    err.print(f"[red]error:[/] {escape(error.message)}", highlight=False)
    for line in error.details:
        err.print(f"  {escape(line)}", highlight=False)
    if error.hint:
        err.print(f"[dim]hint:[/] {escape(error.hint)}", highlight=False)


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout (colours only on a terminal), keys kept in order."""
    out.print_json(json.dumps(data, ensure_ascii=False), indent=2)


@contextmanager
def handle_errors() -> Iterator[None]:
    """Run a command body: :class:`CliError` -> message on stderr and ``typer.Exit(code)``;
    ``KeyboardInterrupt`` -> ``typer.Exit(130)`` without output."""
    try:
        yield
    except CliError as exc:
        print_error(exc)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
