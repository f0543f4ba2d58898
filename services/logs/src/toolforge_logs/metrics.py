"""The logs API's metrics: the kit's common ones plus its store calls.

- ``toolforge_logs_store_queries_total{kind,outcome}``: store requests (``kind`` ``query`` or
  ``tail``; ``outcome`` ``ok``, ``refused``, ``unavailable``);
- ``toolforge_logs_store_query_duration_seconds``: the time of one query;
- ``toolforge_logs_store_tails_open``: follows holding an open store tail now. It returns to
  its value before a follow once the client has gone (tests read it for leaks).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from toolforge_kit.metrics import ServiceMetrics

__all__ = ["LogsMetrics"]


class LogsMetrics(ServiceMetrics):
    """:class:`ServiceMetrics` named ``toolforge_logs_...`` with the store's metrics."""

    def __init__(self) -> None:
        super().__init__("toolforge_logs")
        self.store_queries = Counter(
            "toolforge_logs_store_queries",
            "Requests to the log store, by kind (query, tail) and outcome.",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.store_query_duration = Histogram(
            "toolforge_logs_store_query_duration_seconds",
            "Time of one query of the log store.",
            registry=self.registry,
        )
        self.store_tails_open = Gauge(
            "toolforge_logs_store_tails_open",
            "Live tails of the log store held open for follows now.",
            registry=self.registry,
        )
