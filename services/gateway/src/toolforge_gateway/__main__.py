"""``toolforge-gateway [--config FILE] [--host HOST] [--port PORT]``.

Loads :class:`~toolforge_gateway.settings.GatewaySettings` (flags > ``TOOLFORGE_GATEWAY_*``
environment > YAML file > defaults), logs JSON lines to stderr and serves until SIGINT/SIGTERM,
then drains in-flight requests for ``graceful_shutdown_seconds``. Exits 2 for invalid
arguments or settings.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from toolforge_gateway.logs import configure_logging
from toolforge_gateway.server import build_server
from toolforge_gateway.settings import load_settings


def main(argv: Sequence[str] | None = None) -> None:
    """Run the gateway (blocks until stopped)."""
    parser = argparse.ArgumentParser(
        prog="toolforge-gateway", description="Toolforge API gateway (TLS client certificates)."
    )
    parser.add_argument("--config", type=Path, help="YAML file with the gateway settings")
    parser.add_argument("--host", help="address to listen on (overrides the settings)")
    parser.add_argument("--port", type=int, help="port to listen on (overrides the settings)")
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.host is not None:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    try:
        settings = load_settings(args.config, **overrides)
    except (ValidationError, OSError) as exc:
        print(f"toolforge-gateway: invalid settings: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    configure_logging(settings.log_level)
    build_server(settings).run()


if __name__ == "__main__":
    main()
