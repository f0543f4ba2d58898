"""The jobs API's FastAPI app, assembled from the kit (:func:`toolforge_kit.create_backend_app`),
the wiring (:mod:`toolforge_jobs.factory`) and the routes (:mod:`toolforge_jobs.handlers`).

Routes (REFERENCE.md, "Jobs API (v1)"), all tool routes behind the gateway's mTLS identity
(:data:`toolforge_kit.ToolName`: 401 without the gateway's certificate or identity header, 403
for another tool):

- ``GET/POST/PATCH/DELETE /v1/tool/{tool}/jobs``: list, create (201), upsert, flush;
- ``GET/DELETE /v1/tool/{tool}/jobs/{name}``: show, delete;
- ``GET /v1/tool/{tool}/jobs/{name}/logs?follow=&lines=``: NDJSON stream;
- ``POST /v1/tool/{tool}/jobs/{name}/restart``;
- ``GET /v1/tool/{tool}/images``, ``GET /v1/tool/{tool}/quotas``;
- ``GET /v1/healthz``, ``GET /metrics`` (also ``/v1/metrics``), ``GET /openapi.json``: no identity.

Every success is an envelope with ``messages: {info, warning, error}``; every error - ours,
request validation (422, messages naming the field), routing (404/405) and auth (401/403) - is
``{"error": ["..."]}`` as production answers (REFERENCE.md, "The wire as production serves
it"); a :class:`~toolforge_jobs.errors.JobSpecError` answers 400. Every route answers with and
without a trailing ``/`` and a 405 (also for ``OPTIONS``) lists every method of the path in
``Allow`` (both from :func:`toolforge_kit.create_backend_app`); every operation has a fixed
``operationId`` starting with ``jobs_`` (:func:`toolforge_kit.routing.stable_operation_ids`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI

from toolforge_jobs import factory
from toolforge_jobs.errors import JobSpecError
from toolforge_jobs.handlers import jobs, meta, tool
from toolforge_jobs.metrics import JobsMetrics
from toolforge_jobs.models import LogLine, error_messages, error_response
from toolforge_jobs.settings import JobsSettings
from toolforge_kit.app import create_backend_app, document_ndjson
from toolforge_kit.routing import stable_operation_ids

__all__ = ["create_app"]


def _error_body(errors: list[str]) -> dict[str, Any]:
    return error_response(*errors).model_dump(mode="json")


def _validation_messages(errors: Sequence[Mapping[str, Any]]) -> list[str]:
    return error_messages(errors, skip_prefixes=("body", "query", "path"))


def create_app(settings: JobsSettings) -> FastAPI:
    """The jobs API app for ``settings``. Its clients are opened by the app's lifespan
    (:func:`toolforge_jobs.factory.lifespan`) and closed at shutdown.

    Raises:
        OSError, ValueError: the backend CA file cannot be loaded.
    """
    metrics = JobsMetrics()
    app = create_backend_app(
        settings,
        title="Toolforge jobs API",
        description="One-off, scheduled and continuous jobs of Toolforge tools "
        "(reached through the API gateway at /jobs/...).",
        metrics=metrics,
        lifespan=factory.lifespan(settings, metrics),
        routers=[meta.router, jobs.router, tool.router],
        render_error=_error_body,
        validation_messages=_validation_messages,
        bad_request_errors=[JobSpecError],
    )
    # LogLine is only referenced from the NDJSON response: register its schema there.
    document_ndjson(app, "/v1/tool/{tool}/jobs/{name}/logs", "get", LogLine)
    stable_operation_ids(app, "jobs")
    return app
