"""Serving the builds API with uvicorn: TLS 1.2+ with an optional client certificate.

The socket verifies client certificates against the backend CA only; a certificate is
optional at the handshake so health probes and Prometheus get in without one, and every
``/v1/tool/...`` route then requires the gateway's certificate
(:mod:`toolforge_auth.dependencies`). uvicorn runs
:class:`toolforge_auth.uvicorn.TLSHttpToolsProtocol`, which hands the verified certificate to
the app.
"""

from __future__ import annotations

from typing import Any

import uvicorn
from fastapi import FastAPI

from toolforge_auth.serving import uvicorn_config
from toolforge_auth.tls import server_ssl_context
from toolforge_builds.app import create_app
from toolforge_builds.settings import BuildsSettings

__all__ = ["build_config", "build_server"]


def build_config(
    settings: BuildsSettings, app: FastAPI | None = None, **overrides: Any
) -> uvicorn.Config:
    """The uvicorn configuration for ``settings`` (``app`` defaults to ``create_app``).

    Raises :class:`OSError`/:class:`ssl.SSLError` when the certificate, key or backend CA
    cannot be loaded.
    """
    context = server_ssl_context(
        certfile=settings.tls_cert_file,
        keyfile=settings.tls_key_file,
        client_ca_files=[settings.backend_ca_file],
        client_cert="optional",
    )
    return uvicorn_config(
        app if app is not None else create_app(settings),
        host=settings.host,
        port=settings.port,
        context=context,
        graceful_shutdown_seconds=settings.graceful_shutdown_seconds,
        log_level=settings.log_level,
        **overrides,
    )


def build_server(settings: BuildsSettings, **overrides: Any) -> uvicorn.Server:
    """A :class:`uvicorn.Server` for ``settings``; see :func:`build_config`."""
    return uvicorn.Server(build_config(settings, **overrides))
