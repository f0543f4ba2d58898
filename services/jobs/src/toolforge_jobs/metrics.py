"""Prometheus metrics of the jobs API (prometheus_client), one registry per app.

Served at ``/metrics`` (and ``/v1/metrics``, the path the gateway exposes as
``/jobs/v1/metrics``) without an identity check.

- ``toolforge_jobs_requests_total{route,method,status}``: finished requests; ``route`` is the
  route template (``/v1/tool/{tool}/jobs/{name}``) or ``unmatched``, so clients cannot create
  label values;
- ``toolforge_jobs_request_duration_seconds{route,method}``: from the request to the last byte of
  the response (a followed log counts until it ends);
- ``toolforge_jobs_kube_requests_total{method,resource,code}``: calls to kube-apiserver;
  ``code`` is the HTTP status or ``error`` when no response came;
- ``toolforge_jobs_kube_request_duration_seconds{method,resource}``: their latency until the
  response headers;
- ``toolforge_jobs_kube_errors_total{kind}``: failed calls by mapped kind (``forbidden``,
  ``quota``, ``not_found``, ``conflict``, ``invalid``, ``unavailable``, ``bad_request``,
  ``cluster``);
- ``toolforge_jobs_log_streams_open``: log responses being streamed to clients;
- ``toolforge_jobs_log_upstreams_open``: pod log connections open to kube-apiserver;
- ``toolforge_jobs_cache_reads_total{result}``: lists answered from the object cache
  (``hit``) or read from kube-apiserver because the cache could not answer (``miss``);
- ``toolforge_jobs_cache_watch_restarts_total{resource,reason}``: watches listed again after
  410 Gone (``expired``) or a failure (``error``);
- ``toolforge_jobs_cache_evictions_total{reason}``: tools dropped from the cache (``idle``,
  ``capacity``);
- ``toolforge_jobs_cache_tools``, ``toolforge_jobs_cache_watches_open``: tools cached and
  watch requests open now.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["CONTENT_TYPE_LATEST", "JobsMetrics"]


class JobsMetrics:
    """The jobs API's metrics in their own :class:`CollectorRegistry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "toolforge_jobs_requests",
            "Requests handled, by route template, method and HTTP status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.request_duration = Histogram(
            "toolforge_jobs_request_duration_seconds",
            "Time from receiving a request to sending the last byte of its response.",
            ["route", "method"],
            registry=self.registry,
        )
        self.kube_requests = Counter(
            "toolforge_jobs_kube_requests",
            "Calls to kube-apiserver, by HTTP method, resource and response status.",
            ["method", "resource", "code"],
            registry=self.registry,
        )
        self.kube_duration = Histogram(
            "toolforge_jobs_kube_request_duration_seconds",
            "Time until kube-apiserver's response headers arrived.",
            ["method", "resource"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.kube_errors = Counter(
            "toolforge_jobs_kube_errors",
            "Failed kube-apiserver calls, by the kind of error they were mapped to.",
            ["kind"],
            registry=self.registry,
        )
        self.log_streams = Gauge(
            "toolforge_jobs_log_streams_open",
            "Log responses currently being streamed to clients.",
            registry=self.registry,
        )
        self.log_upstreams = Gauge(
            "toolforge_jobs_log_upstreams_open",
            "Pod log connections currently open to kube-apiserver.",
            registry=self.registry,
        )

        self.cache_reads = Counter(
            "toolforge_jobs_cache_reads",
            "Lists answered from the object cache (hit) or from kube-apiserver (miss).",
            ["result"],
            registry=self.registry,
        )
        self.cache_watch_restarts = Counter(
            "toolforge_jobs_cache_watch_restarts",
            "Object cache watches listed again, by resource and reason (expired, error).",
            ["resource", "reason"],
            registry=self.registry,
        )
        self.cache_evictions = Counter(
            "toolforge_jobs_cache_evictions",
            "Tools dropped from the object cache, by reason (idle, capacity).",
            ["reason"],
            registry=self.registry,
        )
        self.cache_tools = Gauge(
            "toolforge_jobs_cache_tools",
            "Tools whose objects are cached now.",
            registry=self.registry,
        )
        self.cache_watches = Gauge(
            "toolforge_jobs_cache_watches_open",
            "Watch requests of the object cache open now.",
            registry=self.registry,
        )

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one finished request."""
        self.requests.labels(route, method, str(status)).inc()
        self.request_duration.labels(route, method).observe(seconds)

    def observe_kube(self, method: str, resource: str, code: int | None, seconds: float) -> None:
        """Count one kube-apiserver call (``code`` ``None``: no response)."""
        self.kube_requests.labels(method, resource, "error" if code is None else str(code)).inc()
        self.kube_duration.labels(method, resource).observe(seconds)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format (:data:`CONTENT_TYPE_LATEST`)."""
        return generate_latest(self.registry)
