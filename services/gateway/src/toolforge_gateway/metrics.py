"""Prometheus metrics of the gateway (prometheus_client), one registry per app.

Served at ``/metrics`` on the gateway's TLS port: scraping needs a client certificate the
gateway trusts (any subject; no identity check), so there is no second, plain-text port.

- ``toolforge_gateway_requests_total{route,status}``: finished requests;
- ``toolforge_gateway_request_duration_seconds{route}``: time from request to the last byte of
  the response, in seconds;
- ``toolforge_gateway_upstream_errors_total{route,kind}``: failures talking to a backend, by
  kind (``connect``, ``tls``, ``connect_timeout``, ``read_timeout``, ``write_timeout``,
  ``pool_timeout``, ``total_timeout``, ``protocol``, ``read``, ``write``).

``route`` is a configured route name, ``gateway`` for the gateway's own paths, or ``unknown``
for paths that name no route (so clients cannot create new label values).

With several worker processes (``workers.py``) each one writes its values to files in a shared
directory (prometheus_client's multiprocess mode) and ``/metrics`` sums them over all workers.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["CONTENT_TYPE_LATEST", "GatewayMetrics"]


class GatewayMetrics:
    """The gateway's metrics in their own :class:`CollectorRegistry`.

    ``multiprocess_dir``: the directory shared by all worker processes (then the process must
    have switched prometheus_client to its multiprocess values before, as
    :class:`toolforge_gateway.workers.Supervisor` does), or ``None`` for a single process.
    """

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            "toolforge_gateway_requests",
            "Requests handled by the gateway, by route and HTTP status.",
            ["route", "status"],
            registry=self.registry,
        )
        self._duration = Histogram(
            "toolforge_gateway_request_duration_seconds",
            "Time from receiving a request to sending the last byte of its response.",
            ["route"],
            registry=self.registry,
        )
        self._upstream_errors = Counter(
            "toolforge_gateway_upstream_errors",
            "Failures talking to a backend, by route and kind.",
            ["route", "kind"],
            registry=self.registry,
        )
        # Label lookups take a lock and build a tuple; the hot path reuses the children.
        self._request_children: dict[tuple[str, int], Counter] = {}
        self._duration_children: dict[str, Histogram] = {}

    def observe(self, route: str, status: int, seconds: float) -> None:
        """Count one finished request of ``route`` with ``status`` that took ``seconds``."""
        counter = self._request_children.get((route, status))
        if counter is None:
            counter = self._requests.labels(route, str(status))
            self._request_children[(route, status)] = counter
        counter.inc()
        histogram = self._duration_children.get(route)
        if histogram is None:
            histogram = self._duration.labels(route)
            self._duration_children[route] = histogram
        histogram.observe(seconds)

    def upstream_error(self, route: str, kind: str) -> None:
        """Count one failure of ``kind`` talking to the backend of ``route``."""
        self._upstream_errors.labels(route, kind).inc()

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format (``CONTENT_TYPE_LATEST``), summed over
        all workers in multiprocess mode."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
