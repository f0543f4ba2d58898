"""Errors of the jobs API, each with the HTTP status it is answered with.

Every error reaches the user as the ``messages`` envelope with ``messages.error`` holding
``str(exc)`` (REFERENCE.md, "Jobs API (v1)"); the message is written for the user and never
holds a traceback or a raw Kubernetes response body.

- :class:`JobSpecError` (400): a field of the job breaks a rule; the message starts with the
  field.
- :class:`JobsAPIError` and its subclasses: the rest, with ``status_code`` and ``headers``.
  The storage layer (:mod:`toolforge_jobs.storage`) maps Kubernetes API errors to them:
  Forbidden -> :class:`ForbiddenError` (403), quota exceeded -> :class:`QuotaExceededError`
  (403, the quota message), NotFound -> :class:`NotFoundError` (404), AlreadyExists/Conflict ->
  :class:`ConflictError` (409; 410 Gone, an expired ``resourceVersion``, as :class:`GoneError`),
  Invalid -> :class:`InvalidObjectError` (422), apiserver
  unreachable, overloaded or timing out -> :class:`UnavailableError` (503 with ``Retry-After``).
"""

from __future__ import annotations

__all__ = [
    "BadRequestError",
    "ClusterError",
    "ConflictError",
    "ForbiddenError",
    "GoneError",
    "InvalidObjectError",
    "JobSpecError",
    "JobsAPIError",
    "NotFoundError",
    "QuotaExceededError",
    "UnavailableError",
]


class JobSpecError(ValueError):
    """A job's field breaks a rule that needs more than the request itself to check (the
    tool's home, the image list, the namespace LimitRange, ...).

    ``field`` is the request field (``"filelog_stdout"``, ``"imagename"``, ``"memory"``) and
    ``rule`` the rest of the sentence: ``str(exc)`` is ``"<field> <rule>"``.
    """

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field} {rule}")
        self.field = field
        self.rule = rule


class JobsAPIError(Exception):
    """An error answered with ``status_code`` and extra response ``headers``; ``str(exc)`` is
    the user-facing message."""

    status_code = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})


class BadRequestError(JobsAPIError):
    """400: the request cannot be carried out as asked (e.g. restarting a one-off job)."""

    status_code = 400


class ForbiddenError(JobsAPIError):
    """403: Kubernetes RBAC or an admission policy refused the tool."""

    status_code = 403


class QuotaExceededError(ForbiddenError):
    """403: the namespace ResourceQuota does not allow the object; the message is the quota's
    (``exceeded quota: tool-foo, requested: services=1, used: services=5, limited: ...``)."""


class NotFoundError(JobsAPIError):
    """404: no such job (``Job 'x' does not exist``), or nothing to show for it."""

    status_code = 404


class ConflictError(JobsAPIError):
    """409: an object of that name exists, or it changed while we updated it."""

    status_code = 409


class GoneError(ConflictError):
    """409 to the user: Kubernetes answered 410 Gone, the ``resourceVersion`` asked for is older
    than the apiserver keeps (Kubernetes API concepts, "Efficient detection of changes"). The
    object cache (:mod:`toolforge_jobs.cache`) lists again when a watch gets it."""


class InvalidObjectError(JobsAPIError):
    """422: the apiserver found the object invalid; the message is its field-by-field
    explanation."""

    status_code = 422


class UnavailableError(JobsAPIError):
    """503: kube-apiserver (or another dependency) cannot be reached or is overloaded; the
    response carries ``Retry-After: <retry_after>`` seconds (RFC 9110 section 10.2.3)."""

    status_code = 503

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class ClusterError(JobsAPIError):
    """502: the cluster answered something the API cannot make sense of (an apiserver 500,
    rejected service credentials, a tool namespace without its onboarding annotations).
    Details go to the log, not to the user."""

    status_code = 502
