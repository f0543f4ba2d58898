"""Serving the jobs API with uvicorn: TLS 1.2+ with an optional client certificate.

The socket verifies client certificates against the backend CA only. A certificate is optional
at the handshake, so health probes and Prometheus get in without one; every
``/v1/tool/...`` route then requires the gateway's certificate (401/403 otherwise, see
:mod:`toolforge_auth.dependencies`). uvicorn runs the httptools protocol extended by
:class:`toolforge_auth.uvicorn.TLSHttpToolsProtocol`, which hands the verified certificate to
the app. On SIGTERM/SIGINT uvicorn stops accepting, gives in-flight requests (and log follows)
``graceful_shutdown_seconds``, then cancels them; the app's lifespan then closes the
kube-apiserver connection pool.
"""

from __future__ import annotations

from typing import Any

import uvicorn
from fastapi import FastAPI

from toolforge_auth.serving import uvicorn_config
from toolforge_auth.tls import server_ssl_context
from toolforge_jobs.app import create_app
from toolforge_jobs.settings import JobsSettings

__all__ = ["build_config", "build_server"]


def build_config(
    settings: JobsSettings, app: FastAPI | None = None, **overrides: Any
) -> uvicorn.Config:
    """The uvicorn configuration for ``settings`` (``app`` defaults to ``create_app(settings)``).

    ``overrides`` are passed to :class:`uvicorn.Config` last. Raises
    :class:`OSError`/:class:`ssl.SSLError` when the server certificate, key or the backend CA
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


def build_server(settings: JobsSettings, **overrides: Any) -> uvicorn.Server:
    """A :class:`uvicorn.Server` for ``settings``; see :func:`build_config`."""
    return uvicorn.Server(build_config(settings, **overrides))
