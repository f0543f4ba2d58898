"""Serving the gateway with uvicorn: TLS 1.2+ asking for a client certificate.

The listening socket verifies client certificates against ``client_ca_files`` (the cluster CA
for tools, extra CAs for services); a client with an expired certificate or one from another
CA fails the TLS handshake. A client without a certificate gets through the handshake (the
unauthenticated paths answer without one, REFERENCE.md) and the app answers 401 on every
other path. uvicorn runs the httptools protocol extended by
:class:`toolforge_auth.uvicorn.TLSHttpToolsProtocol`, which hands the verified certificate to
the app, and uvloop when :meth:`uvicorn.Server.run` starts the loop.
"""

from __future__ import annotations

import ssl
from typing import Any

import uvicorn

from toolforge_auth.serving import uvicorn_config
from toolforge_auth.tls import server_ssl_context
from toolforge_auth.uvicorn import ConnectionLimits
from toolforge_gateway.app import Gateway, create_app, error_body
from toolforge_gateway.settings import GatewaySettings
from toolforge_gateway.workers import Supervisor

__all__ = ["build_config", "build_server"]


def _server_context(settings: GatewaySettings) -> ssl.SSLContext:
    return server_ssl_context(
        certfile=settings.tls_cert_file,
        keyfile=settings.tls_key_file,
        client_ca_files=settings.client_ca_files,
        client_cert="optional",
        # Its clients do not resume sessions; tickets would cost a third of each handshake.
        session_tickets=False,
    )


def build_config(
    settings: GatewaySettings, app: Gateway | None = None, **overrides: Any
) -> uvicorn.Config:
    """The uvicorn configuration for ``settings`` (``app`` defaults to ``create_app(settings)``).

    ``overrides`` are passed to :class:`uvicorn.Config` last (tests use ``loop="asyncio"``).
    Raises :class:`OSError`/:class:`ssl.SSLError` when the server certificate, key or a client
    CA file cannot be loaded.
    """
    limits = settings.limits
    context = _server_context(settings)
    return uvicorn_config(
        app if app is not None else create_app(settings),
        host=settings.host,
        port=settings.port,
        context=context,
        graceful_shutdown_seconds=settings.graceful_shutdown_seconds,
        log_level=settings.log_level,
        limits=ConnectionLimits(
            max_head_bytes=limits.max_head_bytes,
            header_timeout=limits.header_timeout,
            body_timeout=limits.body_timeout,
            keepalive_timeout=limits.keepalive_timeout,
            max_connections=limits.max_connections,
            error_body=error_body,
        ),
        **{
            "loop": "uvloop",
            # The gateway writes its own JSON access log; backends send their own Date.
            "access_log": False,
            "date_header": False,
            "log_config": None,
            **overrides,
        },
    )


def build_server(settings: GatewaySettings, **overrides: Any) -> uvicorn.Server | Supervisor:
    """A :class:`uvicorn.Server` for ``settings`` (see :func:`build_config`), or with
    ``workers > 1`` a :class:`~toolforge_gateway.workers.Supervisor` of that many (each
    worker builds its own server after the fork). Both serve with ``run()``.

    Raises :class:`OSError`/:class:`ssl.SSLError` when a certificate, key or CA file cannot be
    loaded, or (workers) the address cannot be bound.
    """
    if settings.workers == 1:
        return uvicorn.Server(build_config(settings, **overrides))
    # Load the certificates once here, so that a broken set-up fails before any fork.
    _server_context(settings)
    return Supervisor(
        settings, lambda worker_settings: uvicorn.Server(build_config(worker_settings, **overrides))
    )
