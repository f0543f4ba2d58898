"""``python3 -m toolforge_fourohfour``: serve the 404 page (settings from the environment).

Exits 2 when the settings are invalid (for example ``TOOLFORGE_FOUROHFOUR_DOMAIN`` unset).
"""

from __future__ import annotations

import sys

import uvicorn
from pydantic import ValidationError

from toolforge_fourohfour.app import create_app
from toolforge_fourohfour.settings import FourOhFourSettings


def main() -> None:
    """Run the server until SIGINT/SIGTERM."""
    try:
        settings = FourOhFourSettings()  # type: ignore[call-arg]  # domain from the env
    except ValidationError as exc:
        print(f"toolforge-fourohfour: invalid settings:\n{exc}", file=sys.stderr)
        sys.exit(2)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=settings.access_log,
        log_level=settings.log_level,
        server_header=False,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
