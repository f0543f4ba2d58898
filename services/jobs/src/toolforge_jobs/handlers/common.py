"""What the jobs API's handlers share: their dependencies and the documented error answers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Path, Request

from toolforge_jobs.metrics import JobsMetrics
from toolforge_jobs.models import ErrorResponse
from toolforge_jobs.service import JobsService
from toolforge_kit.app import Responses, error_responses

__all__ = [
    "AUTH",
    "NOT_FOUND",
    "SPEC",
    "VALIDATION",
    "JobName",
    "Metrics",
    "Service",
    "errors",
]


def _service(request: Request) -> JobsService:
    service: JobsService = request.app.state.jobs_service
    return service


def _metrics(request: Request) -> JobsMetrics:
    metrics: JobsMetrics = request.app.state.metrics
    return metrics


#: The app's :class:`JobsService` (built by :mod:`toolforge_jobs.factory` at start-up).
Service = Annotated[JobsService, Depends(_service)]
#: The app's :class:`JobsMetrics`.
Metrics = Annotated[JobsMetrics, Depends(_metrics)]
JobName = Annotated[str, Path(description="The job's name.")]

#: Error answers of every tool route.
AUTH = {
    401: "No gateway client certificate, or no valid identity header.",
    403: "Another tool's path, a service identity, or Kubernetes RBAC refused it.",
    500: "An unexpected error of the jobs API (logged).",
    502: "kube-apiserver answered with an error, or the tool is not fully set up.",
    503: "kube-apiserver cannot be reached; see Retry-After.",
}
VALIDATION = {422: "A field of the request breaks a rule; messages name the field."}
NOT_FOUND = {404: "Job 'x' does not exist."}
SPEC = {
    400: "imagename not in the image list, memory/cpu outside the LimitRange, bad paths, "
    "mount none on a standard image.",
    409: "A job of that name exists (or changed meanwhile).",
    **VALIDATION,
}


def errors(*groups: Mapping[int, str], json_only: bool = False) -> Responses:
    """The documented error answers of a tool route: :data:`AUTH` and ``groups``, each with
    the body ``{"error": [...]}``."""
    return error_responses(ErrorResponse, AUTH, *groups, json_only=json_only)
