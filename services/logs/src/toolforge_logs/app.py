"""The logs API's FastAPI app, assembled from the kit (REFERENCE.md, "Logs").

Routes: ``GET /v1/tool/{tool}/logs``, ``GET /v1/tool/{tool}/job/{name}/logs``,
``GET /v1/tool/{tool}/job/{name}/logs_stream`` (the tool from the gateway's identity),
``GET /v1/healthz``, ``GET /metrics`` (``/v1/metrics``), ``GET /openapi.json``. Success bodies
carry ``messages``; errors are ``{"error": [...]}`` with the status; a parameter that cannot be
used is 400.
"""

from __future__ import annotations

from fastapi import FastAPI

from toolforge_kit.app import create_backend_app, document_ndjson
from toolforge_kit.wire import render_error
from toolforge_logs import factory
from toolforge_logs.handlers import logs, meta
from toolforge_logs.metrics import LogsMetrics
from toolforge_logs.models import LogLine
from toolforge_logs.query import InvalidParameter
from toolforge_logs.settings import LogsSettings

__all__ = ["create_app"]


def create_app(settings: LogsSettings) -> FastAPI:
    """The logs API app for ``settings``; its clients are opened by the lifespan.

    Raises:
        OSError, ValueError: the backend CA file cannot be loaded.
    """
    metrics = LogsMetrics()
    app = create_backend_app(
        settings,
        title="Toolforge logs API",
        description="The output of Toolforge tools' jobs, kept in a log store so it outlives "
        "their pods (reached through the API gateway at /logs/...).",
        metrics=metrics,
        lifespan=factory.lifespan(settings, metrics),
        routers=[meta.router, logs.router],
        render_error=render_error,
        bad_request_errors=[InvalidParameter],
    )
    document_ndjson(app, logs.STREAM_ROUTE, "GET", LogLine)
    return app
