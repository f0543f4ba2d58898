"""State shared by every sub-command (``jobs``, later ``build``): the global options given to
``toolforge`` and the API client they lead to.

The root callback stores a :class:`GlobalOptions` in ``ctx.obj``; a command calls
:func:`api_client` only when it talks to the API, so ``--help`` and local checks work without
credentials. Settings are built then (never at import time).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import typer

from toolforge_cli.client import ApiClient
from toolforge_cli.config import Settings, load_settings, resolve_connection
from toolforge_cli.output import print_messages

__all__ = ["GlobalOptions", "api_client", "global_options"]


@dataclass(frozen=True)
class GlobalOptions:
    """``toolforge [--api-url URL] [--cert FILE] [--key FILE] [--ca FILE]``; ``None``: not
    given (environment or default applies)."""

    api_url: str | None = None
    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None

    def settings(self) -> Settings:
        """:class:`~toolforge_cli.config.Settings` with these options over the environment.
        Raises :class:`~toolforge_cli.config.ConfigError`."""
        return load_settings(api_url=self.api_url, cert=self.cert, key=self.key, ca=self.ca)


def global_options(ctx: typer.Context) -> GlobalOptions:
    """The :class:`GlobalOptions` of the root command (defaults when it stored none)."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, GlobalOptions) else GlobalOptions()


@contextmanager
def api_client(ctx: typer.Context) -> Iterator[ApiClient]:
    """An :class:`ApiClient` for the tool of the client certificate; the API's messages are
    printed on stderr. Raises :class:`~toolforge_cli.config.ConfigError` (exit code 1)."""
    connection = resolve_connection(global_options(ctx).settings())
    with ApiClient(connection, on_messages=print_messages) as client:
        yield client
