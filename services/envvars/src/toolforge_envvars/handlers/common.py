"""What the envvars API's handlers share: the service dependency and documented errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Path, Request

from toolforge_envvars.models import NAME_PATTERN
from toolforge_envvars.service import EnvvarsService
from toolforge_kit.app import Responses, error_responses
from toolforge_kit.wire import ErrorBody

__all__ = ["AUTH", "NOT_FOUND", "EnvvarName", "Service", "errors"]


def _service(request: Request) -> EnvvarsService:
    service: EnvvarsService = request.app.state.envvars_service
    return service


#: The app's :class:`EnvvarsService` (built by :mod:`toolforge_envvars.factory`).
Service = Annotated[EnvvarsService, Depends(_service)]
EnvvarName = Annotated[
    str, Path(description=f"The variable's name ({NAME_PATTERN}).", max_length=128)
]

#: Error answers of every tool route.
AUTH = {
    400: "A name or value breaks a rule; the message names the rule (never the value).",
    401: "No gateway client certificate, or no valid identity header.",
    403: "Another tool's path, a service identity, or Kubernetes RBAC refused it.",
    422: "A path parameter breaks a rule.",
    503: "kube-apiserver cannot be reached, or the variables kept changing; see Retry-After.",
}
NOT_FOUND = {404: "Envvar 'X' does not exist."}


def errors(*groups: Mapping[int, str]) -> Responses:
    """The documented error answers of a tool route: :data:`AUTH` and ``groups``."""
    return error_responses(ErrorBody, AUTH, *groups)
