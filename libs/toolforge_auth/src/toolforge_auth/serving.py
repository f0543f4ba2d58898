"""Serving a platform API: settings from a YAML file, uvicorn over mTLS, the command line.

The gateway and the backends are started the same way, so the pieces live here:

- :class:`FileSettings` and :func:`load_file_settings`: pydantic-settings with keyword
  overrides > environment > YAML file > defaults (no ``.env``, no secrets directory);
- :func:`uvicorn_config`: uvicorn with :class:`~toolforge_auth.uvicorn.TLSHttpToolsProtocol`,
  a given server :class:`ssl.SSLContext`, graceful shutdown and
  :class:`~toolforge_auth.uvicorn.ConnectionLimits` (head size, header and body time,
  keep-alive time, concurrent connections);
- :func:`run_main`: ``PROG [--config FILE] [--host HOST] [--port PORT]``, exit 2 for invalid
  settings or when the server cannot be built (missing certificate, ...).
"""

from __future__ import annotations

import argparse
import ssl
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

import uvicorn
from pydantic import ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from toolforge_auth.uvicorn import ConnectionLimits, TLSHttpToolsProtocol, ssl_context_factory

__all__ = ["FileSettings", "Runnable", "load_file_settings", "run_main", "uvicorn_config"]


class FileSettings(BaseSettings):
    """Base for service settings that may also come from a YAML file.

    Sources, highest priority first: keyword arguments, the environment (the subclass's
    ``env_prefix``), then the YAML file that :func:`load_file_settings` sets.
    """

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then the environment, then the YAML file if one is configured."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if settings_cls.model_config.get("yaml_file"):
            sources.append(YamlConfigSettingsSource(settings_cls))
        return tuple(sources)


S = TypeVar("S", bound=FileSettings)


class Runnable(Protocol):
    """What :func:`run_main` serves with: a :class:`uvicorn.Server`, or anything else whose
    ``run()`` serves until stopped (e.g. a supervisor of several server processes)."""

    def run(self) -> None:
        """Serve until stopped."""


def load_file_settings(cls: type[S], config_file: Path | None = None, **overrides: Any) -> S:
    """``cls`` from ``overrides``, the environment and ``config_file`` (a YAML mapping of its
    keys), in that priority.

    Raises :class:`pydantic.ValidationError` for invalid values and :class:`OSError` when
    ``config_file`` cannot be read (pydantic-settings' YAML source would skip a missing file).
    """
    if config_file is None:
        return cls(**overrides)
    config_file.read_bytes()
    from_file = type(
        f"{cls.__name__}FromFile",
        (cls,),
        {"model_config": SettingsConfigDict(yaml_file=config_file)},
    )
    return cast(S, from_file(**overrides))


def uvicorn_config(
    app: Any,
    *,
    host: str,
    port: int,
    context: ssl.SSLContext,
    graceful_shutdown_seconds: float,
    log_level: str,
    limits: ConnectionLimits | None = None,
    **overrides: Any,
) -> uvicorn.Config:
    """uvicorn serving ``app`` over TLS with ``context`` and the ASGI TLS extension.

    Every connection is held to ``limits`` (default :class:`ConnectionLimits`: 64 KiB request
    head, 10 s for the head, 60 s for the body, 5 s idle keep-alive, 1024 connections per
    process; see :mod:`toolforge_auth.uvicorn`). On SIGTERM/SIGINT uvicorn stops accepting,
    gives in-flight requests ``graceful_shutdown_seconds``, then cancels them. ``overrides`` go
    to :class:`uvicorn.Config` last.
    """
    limits = limits if limits is not None else ConnectionLimits()
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "http": TLSHttpToolsProtocol.with_limits(limits),
        "timeout_keep_alive": limits.keepalive_timeout,
        # uvicorn answers 503 once connections >= limit_concurrency, the new one included.
        "limit_concurrency": limits.max_connections + 1,
        "ws": "none",
        "lifespan": "on",
        "ssl_context_factory": ssl_context_factory(context),
        "timeout_graceful_shutdown": graceful_shutdown_seconds,
        # The client address is the TCP peer's; nothing in front rewrites it.
        "proxy_headers": False,
        "server_header": False,
        "log_level": log_level.lower(),
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)


def run_main(
    argv: Sequence[str] | None,
    *,
    prog: str,
    description: str,
    load_settings: Callable[..., S],
    configure_logging: Callable[[S], None],
    build_server: Callable[[S], Runnable],
) -> None:
    """``PROG [--config FILE] [--host HOST] [--port PORT]``: load the settings (flags over
    ``load_settings``'s sources), configure logging, build the server and serve until
    stopped. Exits 2 with a one-line message for invalid settings or when the server cannot
    be built (:class:`OSError`, :class:`ValueError`: a certificate or CA that cannot be read).
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", type=Path, help="YAML file with the settings")
    parser.add_argument("--host", help="address to listen on (overrides the settings)")
    parser.add_argument("--port", type=int, help="port to listen on (overrides the settings)")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        settings = load_settings(args.config, **overrides)
    except (ValidationError, OSError) as exc:
        print(f"{prog}: invalid settings: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    configure_logging(settings)
    try:
        server = build_server(settings)
    except (OSError, ValueError) as exc:
        print(f"{prog}: cannot start: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    server.run()
