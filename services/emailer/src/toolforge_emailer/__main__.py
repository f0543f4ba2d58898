"""``toolforge-emailer [--config FILE] [--host HOST] [--port PORT]``.

Loads :class:`~toolforge_emailer.settings.EmailerSettings` (flags > ``TOOLFORGE_EMAILER_*``
environment > YAML file > defaults), runs the daemon and serves ``/healthz`` and ``/metrics``
until SIGINT/SIGTERM; then the state is written and the Lease released. Exits 2 for invalid
arguments or settings.
"""

from __future__ import annotations

from collections.abc import Sequence

from toolforge_emailer.app import create_app
from toolforge_emailer.settings import EmailerSettings
from toolforge_kit.server import main as serve


def main(argv: Sequence[str] | None = None) -> None:
    """Run the emailer (blocks until stopped)."""
    serve(
        argv,
        prog="toolforge-emailer",
        description="Toolforge jobs emailer: mails tool maintainers about their jobs.",
        settings_cls=EmailerSettings,
        create_app=create_app,
    )


if __name__ == "__main__":
    main()
