"""``toolforge-logs-api [--config FILE] [--host HOST] [--port PORT]``: serve the logs API until
SIGINT/SIGTERM (settings: flags > ``TOOLFORGE_LOGS_*`` > YAML file > defaults). Exits 2 for
invalid arguments or settings."""

from __future__ import annotations

from collections.abc import Sequence

from toolforge_kit.server import main as serve
from toolforge_logs.app import create_app
from toolforge_logs.settings import LogsSettings


def main(argv: Sequence[str] | None = None) -> None:
    """Run the logs API (blocks until stopped)."""
    serve(
        argv,
        prog="toolforge-logs-api",
        description="Toolforge logs API (behind the API gateway).",
        settings_cls=LogsSettings,
        create_app=create_app,
    )


if __name__ == "__main__":
    main()
