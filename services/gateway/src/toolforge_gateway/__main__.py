"""``toolforge-gateway [--config FILE] [--host HOST] [--port PORT]``.

Loads :class:`~toolforge_gateway.settings.GatewaySettings` (flags > ``TOOLFORGE_GATEWAY_*``
environment > YAML file > defaults), logs JSON lines to stderr and serves until SIGINT/SIGTERM,
then drains in-flight requests for ``graceful_shutdown_seconds``. Exits 2 for invalid
arguments or settings.
"""

from __future__ import annotations

from collections.abc import Sequence

from toolforge_auth.serving import run_main
from toolforge_gateway.logs import configure_logging
from toolforge_gateway.server import build_server
from toolforge_gateway.settings import load_settings


def main(argv: Sequence[str] | None = None) -> None:
    """Run the gateway (blocks until stopped)."""
    run_main(
        argv,
        prog="toolforge-gateway",
        description="Toolforge API gateway (TLS client certificates).",
        load_settings=load_settings,
        configure_logging=lambda settings: configure_logging(settings.log_level),
        build_server=build_server,
    )


if __name__ == "__main__":
    main()
