"""``toolforge-builds-api [--config FILE] [--host HOST] [--port PORT]``.

Loads :class:`~toolforge_builds.settings.BuildsSettings` (flags > ``TOOLFORGE_BUILDS_*``
environment > YAML file > defaults) and serves until SIGINT/SIGTERM, then drains in-flight
requests for ``graceful_shutdown_seconds``. Exits 2 for invalid arguments or settings.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from toolforge_auth.serving import run_main
from toolforge_builds.server import build_server
from toolforge_builds.settings import load_settings


def _basic_logging(settings: Any) -> None:
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Run the builds API (blocks until stopped)."""
    run_main(
        argv,
        prog="toolforge-builds-api",
        description="Toolforge builds API (behind the API gateway).",
        load_settings=load_settings,
        configure_logging=_basic_logging,
        build_server=build_server,
    )


if __name__ == "__main__":
    main()
