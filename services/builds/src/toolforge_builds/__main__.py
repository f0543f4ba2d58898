"""``toolforge-builds-api [--config FILE] [--host HOST] [--port PORT]``.

Loads :class:`~toolforge_builds.settings.BuildsSettings` (flags > ``TOOLFORGE_BUILDS_*``
environment > YAML file > defaults) and serves until SIGINT/SIGTERM, then drains in-flight
requests for ``graceful_shutdown_seconds``. Exits 2 for invalid arguments or settings.
"""

from __future__ import annotations

from collections.abc import Sequence

from toolforge_builds.app import create_app
from toolforge_builds.settings import BuildsSettings
from toolforge_kit.server import main as serve


def main(argv: Sequence[str] | None = None) -> None:
    """Run the builds API (blocks until stopped)."""
    serve(
        argv,
        prog="toolforge-builds-api",
        description="Toolforge builds API (behind the API gateway).",
        settings_cls=BuildsSettings,
        create_app=create_app,
    )


if __name__ == "__main__":
    main()
