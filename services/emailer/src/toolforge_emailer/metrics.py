"""The emailer's Prometheus metrics: the kit's common ones (:class:`toolforge_kit.ServiceMetrics`,
prefix ``toolforge_emailer``) plus:

- ``toolforge_emailer_pod_updates_total``: pod objects received (list items and watch events);
- ``toolforge_emailer_events_total{kind,queued}``: new job events seen, by kind, and whether
  they were queued for a mail (``yes``), not asked for by the job's option (``no``), part of
  the first baseline list (``baseline``) or over the per-tool limit (``dropped``);
- ``toolforge_emailer_mails_composed_total``, ``toolforge_emailer_mails_sent_total{how}``
  (``smtp`` or ``logged`` when ``send_emails_for_real`` is off),
  ``toolforge_emailer_mails_failed_total{reason}`` (``rejected``: a 5xx answer; ``expired``:
  still not accepted after ``smtp_give_up_seconds``);
- ``toolforge_emailer_smtp_attempts_total{result}``: ``ok``, ``temporary`` (4xx),
  ``rejected`` (5xx), ``unreachable`` (no connection, timeout, TLS failure);
- gauges ``toolforge_emailer_queue_events`` (events waiting for a mail),
  ``toolforge_emailer_queue_mails`` (mails waiting to be sent), ``toolforge_emailer_leader``
  (1 while this process holds the Lease), ``toolforge_emailer_config_resource_version`` (the
  ConfigMap version in force);
- ``toolforge_emailer_config_reloads_total{result}`` (``applied``, ``invalid``, ``missing``),
  ``toolforge_emailer_watch_restarts_total{reason}`` (``expired`` for 410 Gone, ``error``),
  ``toolforge_emailer_state_writes_total{result}`` (``ok``, ``conflict``, ``error``).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from toolforge_kit.metrics import ServiceMetrics

__all__ = ["EmailerMetrics"]


class EmailerMetrics(ServiceMetrics):
    """See the module documentation."""

    def __init__(self, prefix: str = "toolforge_emailer") -> None:
        super().__init__(prefix)
        r = self.registry
        self.pod_updates = Counter(
            f"{prefix}_pod_updates", "Pod objects received (list items, watch events).", registry=r
        )
        self.events = Counter(
            f"{prefix}_events",
            "New job events seen, by kind and whether they were queued for a mail.",
            ["kind", "queued"],
            registry=r,
        )
        self.mails_composed = Counter(
            f"{prefix}_mails_composed", "Mails composed (one per tool per batch).", registry=r
        )
        self.mails_sent = Counter(
            f"{prefix}_mails_sent",
            "Mails accepted by the SMTP server (smtp) or logged instead (logged).",
            ["how"],
            registry=r,
        )
        self.mails_failed = Counter(
            f"{prefix}_mails_failed",
            "Mails given up: refused with a 5xx answer (rejected) or never accepted (expired).",
            ["reason"],
            registry=r,
        )
        self.smtp_attempts = Counter(
            f"{prefix}_smtp_attempts",
            "Attempts to send one mail, by result.",
            ["result"],
            registry=r,
        )
        self.queue_events = Gauge(
            f"{prefix}_queue_events", "Events waiting for their tool's mail.", registry=r
        )
        self.queue_mails = Gauge(
            f"{prefix}_queue_mails", "Composed mails waiting to be sent.", registry=r
        )
        self.leader = Gauge(
            f"{prefix}_leader", "1 while this process holds the leader Lease.", registry=r
        )
        self.config_version = Gauge(
            f"{prefix}_config_resource_version",
            "resourceVersion of the configuration ConfigMap in force (0: defaults).",
            registry=r,
        )
        self.config_reloads = Counter(
            f"{prefix}_config_reloads",
            "Reads of a changed configuration ConfigMap, by result.",
            ["result"],
            registry=r,
        )
        self.watch_restarts = Counter(
            f"{prefix}_watch_restarts",
            "Pod watches started again with a new list, by reason.",
            ["reason"],
            registry=r,
        )
        self.state_writes = Counter(
            f"{prefix}_state_writes",
            "Writes of the state ConfigMap, by result.",
            ["result"],
            registry=r,
        )
