"""Prometheus metrics every backend has (prometheus_client), one registry per app.

With ``prefix`` ``toolforge_<api>`` (e.g. ``toolforge_jobs``):

- ``<prefix>_requests_total{route,method,status}``: finished HTTP requests; ``route`` is the
  route template (``/v1/tool/{tool}/jobs/{name}``) or ``unmatched``, so clients cannot create
  label values;
- ``<prefix>_request_duration_seconds{route,method}``: from the request to the last byte of
  the response (a followed stream counts until it ends);
- ``<prefix>_kube_requests_total{method,resource,code}``: calls to kube-apiserver; ``code``
  is the HTTP status, or ``error`` when no response came;
- ``<prefix>_kube_request_duration_seconds{method,resource}``: their latency until the
  response headers;
- ``<prefix>_kube_errors_total{kind}``: failed calls by mapped kind (``forbidden``, ``quota``,
  ``not_found``, ``conflict``, ``invalid``, ``unavailable``, ``bad_request``, ``cluster``).

A backend adds its own metrics to :attr:`ServiceMetrics.registry` (subclass it).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["CONTENT_TYPE_LATEST", "ServiceMetrics"]

_KUBE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ServiceMetrics:
    """The common metrics of one backend app, named ``<prefix>_...``, in their own
    :class:`CollectorRegistry` (so two apps in one process, as in tests, do not clash)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            f"{prefix}_requests",
            "Requests handled, by route template, method and HTTP status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.request_duration = Histogram(
            f"{prefix}_request_duration_seconds",
            "Time from receiving a request to sending the last byte of its response.",
            ["route", "method"],
            registry=self.registry,
        )
        self.kube_requests = Counter(
            f"{prefix}_kube_requests",
            "Calls to kube-apiserver, by HTTP method, resource and response status.",
            ["method", "resource", "code"],
            registry=self.registry,
        )
        self.kube_duration = Histogram(
            f"{prefix}_kube_request_duration_seconds",
            "Time until kube-apiserver's response headers arrived.",
            ["method", "resource"],
            buckets=_KUBE_BUCKETS,
            registry=self.registry,
        )
        self.kube_errors = Counter(
            f"{prefix}_kube_errors",
            "Failed kube-apiserver calls, by the kind of error they were mapped to.",
            ["kind"],
            registry=self.registry,
        )

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one finished HTTP request."""
        self.requests.labels(route, method, str(status)).inc()
        self.request_duration.labels(route, method).observe(seconds)

    def observe_kube(self, method: str, resource: str, code: int | None, seconds: float) -> None:
        """Count one kube-apiserver call (``code`` ``None``: no response came)."""
        self.kube_requests.labels(method, resource, "error" if code is None else str(code)).inc()
        self.kube_duration.labels(method, resource).observe(seconds)

    def kube_error(self, kind: str) -> None:
        """Count one kube-apiserver call that failed as ``kind``."""
        self.kube_errors.labels(kind).inc()

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format (:data:`CONTENT_TYPE_LATEST`)."""
        return generate_latest(self.registry)
