"""``toolforge-envvars-webhook [--config FILE] [--host HOST] [--port PORT]``: serve the
admission webhook over TLS until SIGINT/SIGTERM (settings: flags >
``TOOLFORGE_ENVVARS_WEBHOOK_*`` > YAML file > defaults). Exits 2 for invalid settings."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn

from toolforge_auth.serving import load_file_settings, run_main, uvicorn_config
from toolforge_auth.tls import server_ssl_context
from toolforge_envvars.settings import WebhookSettings
from toolforge_envvars.webhook.app import create_webhook_app


def _load(config_file: Path | None, **overrides: Any) -> WebhookSettings:
    return load_file_settings(WebhookSettings, config_file, **overrides)


def _logging(settings: WebhookSettings) -> None:
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def build_server(settings: WebhookSettings) -> uvicorn.Server:
    """uvicorn serving the webhook with its server certificate; with ``client_ca_file`` a
    client certificate from that CA is asked for (optional at the handshake, so that kubelet
    probes of ``/healthz`` get in; ``/mutate`` then requires it, see :mod:`.app`).

    Raises:
        OSError, ssl.SSLError: a certificate, key or CA cannot be loaded.
    """
    if settings.client_ca_file is not None:
        context = server_ssl_context(
            certfile=settings.tls_cert_file,
            keyfile=settings.tls_key_file,
            client_ca_files=[settings.client_ca_file],
            client_cert="optional",
        )
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    config = uvicorn_config(
        create_webhook_app(settings),
        host=settings.host,
        port=settings.port,
        context=context,
        graceful_shutdown_seconds=settings.graceful_shutdown_seconds,
        log_level=settings.log_level,
    )
    return uvicorn.Server(config)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the webhook (blocks until stopped)."""
    run_main(
        argv,
        prog="toolforge-envvars-webhook",
        description="Toolforge envvars admission webhook (called by kube-apiserver).",
        load_settings=_load,
        configure_logging=_logging,
        build_server=build_server,
    )


if __name__ == "__main__":
    main()
