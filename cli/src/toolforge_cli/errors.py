"""Errors of the ``toolforge`` client and their exit codes.

Exit codes (REFERENCE.md, CLI paragraph: "Exit code 1 for user errors, 2 for internal errors"):

- ``0``: success;
- ``1`` (:class:`UserError`): something the user can fix: an API answer 4xx, a bad
  ``jobs.yaml``, missing or unusable credentials, a job that failed or did not finish under
  ``--wait``;
- ``2`` (:class:`InternalError`): the platform or the network: an API answer 5xx, a refused
  connection, a failed TLS handshake, a time-out, an answer that is not the documented shape.
  Typer's own command-line usage errors (unknown option, missing argument) also exit 2, as
  argparse/click programs (and upstream's argparse-based CLI) do;
- ``130``: interrupted with Ctrl-C.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_USER = 1
EXIT_INTERNAL = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """An expected failure: printed as ``error: <message>`` (plus ``hint``), no traceback.

    ``details`` are further lines (e.g. every error message of an API answer).
    """

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str, *, details: list[str] | None = None, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.details = list(details or [])
        self.hint = hint


class UserError(CliError):
    """The user can fix it (exit code 1)."""

    exit_code = EXIT_USER


class InternalError(CliError):
    """The platform or the network failed (exit code 2)."""

    exit_code = EXIT_INTERNAL
