"""Serving a backend: uvicorn over TLS 1.2+ with an optional client certificate, and ``main``.

The socket verifies client certificates against the backend CA only. A certificate is optional
at the handshake so that health probes and Prometheus get in without one; every
``/v1/tool/...`` route then requires the gateway's certificate
(:mod:`toolforge_auth.dependencies`). uvicorn runs
:class:`toolforge_auth.uvicorn.TLSHttpToolsProtocol`, which hands the verified certificate to
the app, with the suite's connection limits (:mod:`toolforge_auth.serving`). On SIGTERM/SIGINT
uvicorn stops accepting, gives in-flight requests ``graceful_shutdown_seconds``, then cancels
them; the app's lifespan then closes its clients.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI

from toolforge_auth.serving import run_main, uvicorn_config
from toolforge_auth.tls import server_ssl_context
from toolforge_kit.settings import BackendSettings, load_settings

__all__ = ["build_config", "build_server", "main"]

S = TypeVar("S", bound=BackendSettings)


def build_config(settings: BackendSettings, app: FastAPI, **overrides: Any) -> uvicorn.Config:
    """The uvicorn configuration serving ``app`` as ``settings`` say; ``overrides`` go to
    :class:`uvicorn.Config` last.

    Raises:
        OSError, ssl.SSLError: the server certificate, key or the backend CA cannot be loaded.
    """
    context = server_ssl_context(
        certfile=settings.tls_cert_file,
        keyfile=settings.tls_key_file,
        client_ca_files=[settings.backend_ca_file],
        client_cert="optional",
    )
    return uvicorn_config(
        app,
        host=settings.host,
        port=settings.port,
        context=context,
        graceful_shutdown_seconds=settings.graceful_shutdown_seconds,
        log_level=settings.log_level,
        **overrides,
    )


def build_server(settings: BackendSettings, app: FastAPI, **overrides: Any) -> uvicorn.Server:
    """A :class:`uvicorn.Server` for ``settings``; see :func:`build_config`."""
    return uvicorn.Server(build_config(settings, app, **overrides))


def _basic_logging(settings: BackendSettings) -> None:
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def main(
    argv: Sequence[str] | None,
    *,
    prog: str,
    description: str,
    settings_cls: type[S],
    create_app: Callable[[S], FastAPI],
) -> None:
    """``PROG [--config FILE] [--host HOST] [--port PORT]``: load ``settings_cls`` (flags >
    environment > YAML file > defaults), configure logging, serve ``create_app(settings)``
    until SIGINT/SIGTERM, then drain. Exits 2 for invalid arguments or settings, or when the
    server cannot be built (a certificate or CA that cannot be read).
    """

    def load(config_file: Path | None, **overrides: Any) -> S:
        return load_settings(settings_cls, config_file, **overrides)

    def build(settings: S) -> uvicorn.Server:
        return build_server(settings, create_app(settings))

    run_main(
        argv,
        prog=prog,
        description=description,
        load_settings=load,
        configure_logging=_basic_logging,
        build_server=build,
    )
