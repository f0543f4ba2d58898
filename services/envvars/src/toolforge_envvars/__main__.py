"""``toolforge-envvars-api [--config FILE] [--host HOST] [--port PORT]``: serve the envvars API
until SIGINT/SIGTERM (settings: flags > ``TOOLFORGE_ENVVARS_*`` > YAML file > defaults). Exits
2 for invalid arguments or settings."""

from __future__ import annotations

from collections.abc import Sequence

from toolforge_envvars.app import create_app
from toolforge_envvars.settings import EnvvarsSettings
from toolforge_kit.server import main as serve


def main(argv: Sequence[str] | None = None) -> None:
    """Run the envvars API (blocks until stopped)."""
    serve(
        argv,
        prog="toolforge-envvars-api",
        description="Toolforge envvars API (behind the API gateway).",
        settings_cls=EnvvarsSettings,
        create_app=create_app,
    )


if __name__ == "__main__":
    main()
