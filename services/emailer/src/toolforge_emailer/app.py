"""The emailer's app: the kit's backend app (``/metrics``, error rendering) with ``/healthz``;
the daemon runs in its lifespan (:mod:`toolforge_emailer.factory`)."""

from __future__ import annotations

from fastapi import FastAPI

from toolforge_emailer import handlers
from toolforge_emailer.factory import lifespan
from toolforge_emailer.metrics import EmailerMetrics
from toolforge_emailer.settings import EmailerSettings
from toolforge_kit import create_backend_app

__all__ = ["create_app"]


def create_app(settings: EmailerSettings) -> FastAPI:
    """The app for ``settings`` (nothing connects before the lifespan starts)."""
    metrics = EmailerMetrics()
    return create_backend_app(
        settings,
        title="Toolforge jobs emailer",
        description="Mails tool maintainers about their jobs. Serves only /healthz and /metrics.",
        metrics=metrics,
        lifespan=lifespan(settings, metrics),
        routers=[handlers.router],
        render_error=lambda messages: {"error": messages},
    )
