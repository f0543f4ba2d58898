"""Errors of the platform APIs, each carrying the HTTP status it is answered with.

Every backend raises :class:`APIError` (or a subclass) for anything the user should see;
:func:`toolforge_kit.app.install_error_handlers` renders it with ``status_code``, ``headers`` and
``message``. Messages are written for the user: never a traceback, nor a raw Kubernetes or
registry response body (the storage layers log those).

The Kubernetes transport (:mod:`toolforge_kit.kube`) maps apiserver answers to these classes:

=====================================  ===============================================
Kubernetes answer                      error (HTTP status)
=====================================  ===============================================
403 ``exceeded quota``                 :class:`ResourceQuotaExceededError` (403)
403 other                              :class:`ForbiddenError` (403)
404                                    :class:`NotFoundError` (404)
409 AlreadyExists / Conflict           :class:`ConflictError` (409)
410 Gone (expired resourceVersion)     :class:`GoneError` (a ConflictError, 409)
422 Invalid                            :class:`InvalidObjectError` (422)
400                                    :class:`BadRequestError` (400)
429, 502-504, no answer, timeout       :class:`UnavailableError` (503, ``Retry-After``)
401, 500, anything else                :class:`ClusterError` (502)
=====================================  ===============================================
"""

from __future__ import annotations

__all__ = [
    "APIError",
    "BadRequestError",
    "ClusterError",
    "ConflictError",
    "ForbiddenError",
    "GoneError",
    "InvalidObjectError",
    "NotFoundError",
    "ResourceQuotaExceededError",
    "UnavailableError",
]


class APIError(Exception):
    """An error answered with ``status_code`` and extra response ``headers``; ``message``
    (also ``str(exc)``) is for the user."""

    status_code = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})


class BadRequestError(APIError):
    """400: the request cannot be carried out as asked."""

    status_code = 400


class ForbiddenError(APIError):
    """403: Kubernetes RBAC or an admission policy refused the request."""

    status_code = 403


class ResourceQuotaExceededError(ForbiddenError):
    """403: the namespace's ResourceQuota does not allow the object; the message is the
    quota's (``exceeded quota: tool-foo, requested: services=1, used: ..., limited: ...``)."""


class NotFoundError(APIError):
    """404: no such object (for the user: no such job, build, variable...)."""

    status_code = 404


class ConflictError(APIError):
    """409 Conflict: an object of that name exists, or it changed meanwhile."""

    status_code = 409


class GoneError(ConflictError):
    """409 to the user: Kubernetes answered 410 Gone, the ``resourceVersion`` asked for is older
    than the apiserver keeps (Kubernetes API concepts, "Efficient detection of changes"); a
    watch lists again when it gets it."""


class InvalidObjectError(APIError):
    """422: the apiserver found the object invalid; the message is its explanation."""

    status_code = 422


class UnavailableError(APIError):
    """503: a dependency (kube-apiserver, a registry, a log store) cannot be reached or is
    overloaded; the response carries ``Retry-After: <retry_after>`` seconds (RFC 9110
    section 10.2.3)."""

    status_code = 503

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class ClusterError(APIError):
    """502: the cluster (or another dependency) answered something the API cannot make sense
    of. Details go to the log, not to the user."""

    status_code = 502
