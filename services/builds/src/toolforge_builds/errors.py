"""Errors of the builds API, each with the HTTP status it is answered with.

Every error reaches the user as the ``messages`` envelope with ``messages.error`` holding
``str(exc)`` (REFERENCE.md "Builds API (v1)"). Messages are written for the user and never hold
a raw Kubernetes or registry response body; the storage layer (:mod:`toolforge_builds.storage`)
and the registry client (:mod:`toolforge_builds.registry`) map answers to these classes and log
the details.
"""

from __future__ import annotations

__all__ = [
    "BadRequestError",
    "BuildsAPIError",
    "ClusterError",
    "ConflictError",
    "ForbiddenError",
    "InvalidObjectError",
    "NotFoundError",
    "QuotaExceededError",
    "RegistryError",
    "UnavailableError",
]


class BuildsAPIError(Exception):
    """An error answered with ``status_code`` and extra ``headers``; ``str(exc)`` is the
    user-facing message."""

    status_code = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})


class BadRequestError(BuildsAPIError):
    """400: the request cannot be carried out (e.g. the repository cannot be reached)."""

    status_code = 400


class ForbiddenError(BuildsAPIError):
    """403: Kubernetes RBAC refused the builds API's own identity."""

    status_code = 403


class NotFoundError(BuildsAPIError):
    """404: no such build of this tool (another tool's build answers the same)."""

    status_code = 404


class ConflictError(BuildsAPIError):
    """409: the object changed meanwhile, exists already, or the build has finished."""

    status_code = 409


class QuotaExceededError(ConflictError):
    """409: the tool has ``N`` unfinished builds already (``N out of N builds running``)."""


class InvalidObjectError(BuildsAPIError):
    """422: the apiserver (the CRD schema) found the object invalid."""

    status_code = 422


class UnavailableError(BuildsAPIError):
    """503: kube-apiserver cannot be reached or is overloaded; ``Retry-After: <seconds>``
    (RFC 9110 section 10.2.3)."""

    status_code = 503

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class ClusterError(BuildsAPIError):
    """502: the cluster answered something the API cannot make sense of (details logged)."""

    status_code = 502


class RegistryError(BuildsAPIError):
    """502: the image registry refused the builds API (credentials, deletes disabled) or
    answered something unexpected; the details are logged, never returned."""

    status_code = 502
