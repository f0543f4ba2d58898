"""``toolforge-jobs-api [--config FILE] [--host HOST] [--port PORT]``.

Loads :class:`~toolforge_jobs.settings.JobsSettings` (flags > ``TOOLFORGE_JOBS_*`` environment >
YAML file > defaults) and serves until SIGINT/SIGTERM, then drains in-flight requests for
``graceful_shutdown_seconds``. Exits 2 for invalid arguments or settings.
"""

from __future__ import annotations

from collections.abc import Sequence

from toolforge_jobs.app import create_app
from toolforge_jobs.settings import JobsSettings
from toolforge_kit.server import main as serve


def main(argv: Sequence[str] | None = None) -> None:
    """Run the jobs API (blocks until stopped)."""
    serve(
        argv,
        prog="toolforge-jobs-api",
        description="Toolforge jobs API (behind the API gateway).",
        settings_cls=JobsSettings,
        create_app=create_app,
    )


if __name__ == "__main__":
    main()
