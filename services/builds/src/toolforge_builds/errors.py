"""The builds API's own errors. Every other error is one of the kit's
(:mod:`toolforge_kit.errors`), each with the HTTP status it is answered with.

Messages are written for the user and never hold a raw Kubernetes or registry response body;
the storage layer (:mod:`toolforge_builds.storage`) and the registry client
(:mod:`toolforge_builds.registry`) map answers to these classes and log the details.
"""

from __future__ import annotations

from toolforge_kit.errors import APIError, ConflictError

__all__ = ["BuildQuotaExceededError", "RegistryError"]


class BuildQuotaExceededError(ConflictError):
    """409: the tool has ``N`` unfinished builds already (``N out of N builds running``)."""


class RegistryError(APIError):
    """502: the image registry refused the builds API (credentials, deletes disabled) or
    answered something unexpected; the details are logged, never returned."""

    status_code = 502
