"""What the builds API's handlers share: their dependencies and the documented error answers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Path, Request

from toolforge_builds.models import ErrorResponse
from toolforge_builds.service import BuildsService
from toolforge_kit.app import Responses, error_responses

__all__ = ["AUTH", "NOT_FOUND", "REGISTRY", "BuildId", "Service", "errors"]


def _service(request: Request) -> BuildsService:
    service: BuildsService = request.app.state.builds_service
    return service


#: The app's :class:`BuildsService` (built by :mod:`toolforge_builds.factory` at start-up).
Service = Annotated[BuildsService, Depends(_service)]
BuildId = Annotated[str, Path(max_length=253, description="The build id (its PipelineRun's name).")]

#: Error answers of every tool route.
AUTH = {
    401: "No gateway client certificate, or no valid identity header.",
    403: "Another tool's path, or a service identity.",
    405: "The path does not take this method; Allow lists those it takes.",
    422: "A path or query parameter breaks a rule; messages name it.",
    500: "An unexpected error of the builds API (logged; the message says nothing more).",
    502: "The cluster answered something unexpected.",
    503: "kube-apiserver cannot be reached; see Retry-After.",
}
NOT_FOUND = {404: "No such build of this tool."}
REGISTRY = {
    502: "The cluster answered something unexpected, or the image registry refused the "
    "builds API or answered something unexpected (details are logged, not returned).",
    503: "kube-apiserver or the image registry cannot be reached; see Retry-After.",
}


def errors(*groups: Mapping[int, str], json_only: bool = False) -> Responses:
    """The documented error answers of a tool route (:class:`ErrorResponse` bodies):
    :data:`AUTH` and ``groups``."""
    return error_responses(ErrorResponse, AUTH, *groups, json_only=json_only)
