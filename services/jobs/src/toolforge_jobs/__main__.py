"""``toolforge-jobs-api [--config FILE] [--host HOST] [--port PORT]``.

Loads :class:`~toolforge_jobs.settings.JobsSettings` (flags > ``TOOLFORGE_JOBS_*`` environment >
YAML file > defaults) and serves until SIGINT/SIGTERM, then drains in-flight requests for
``graceful_shutdown_seconds``. Exits 2 for invalid arguments or settings.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from toolforge_jobs.server import build_server
from toolforge_jobs.settings import load_settings


def main(argv: Sequence[str] | None = None) -> None:
    """Run the jobs API (blocks until stopped)."""
    parser = argparse.ArgumentParser(
        prog="toolforge-jobs-api", description="Toolforge jobs API (behind the API gateway)."
    )
    parser.add_argument("--config", type=Path, help="YAML file with the settings")
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
        print(f"toolforge-jobs-api: invalid settings: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        server = build_server(settings)
    except (OSError, ValueError) as exc:
        print(f"toolforge-jobs-api: cannot start: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    server.run()


if __name__ == "__main__":
    main()
