"""Prometheus metrics of the jobs API (prometheus_client), one registry per app.

Served at ``/metrics`` (and ``/v1/metrics``, the path the gateway exposes as
``/jobs/v1/metrics``) without an identity check.

- the kit's common metrics (:class:`toolforge_kit.ServiceMetrics`, prefix ``toolforge_jobs``):
  ``toolforge_jobs_requests_total``, ``..._request_duration_seconds``,
  ``..._kube_requests_total``, ``..._kube_request_duration_seconds``, ``..._kube_errors_total``;
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

from prometheus_client import Counter, Gauge

from toolforge_kit.metrics import CONTENT_TYPE_LATEST, ServiceMetrics

__all__ = ["CONTENT_TYPE_LATEST", "JobsMetrics"]


class JobsMetrics(ServiceMetrics):
    """The jobs API's metrics: the kit's, plus log streaming and the object cache."""

    def __init__(self) -> None:
        super().__init__("toolforge_jobs")
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
