"""The tool's LimitRange and ResourceQuota: checking a job against them, and the quota view.

Both objects are named ``tool-<tool>`` in the tool's namespace (REFERENCE.md, "Kubernetes
mapping"). A job's ``memory`` and ``cpu`` become both the request and the limit of its single
container, so they must lie within the LimitRange's ``min``/``max`` of type ``Container`` (and
``Pod``); otherwise the API answers 400 (REFERENCE.md, "Job fields") instead of leaving the
controller failing to create pods.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from toolforge_jobs.errors import JobSpecError
from toolforge_jobs.models import JobSpec, Quota, QuotaCategory, QuotaItem
from toolforge_jobs.quantity import format_count, format_cpu, format_memory, parse_quantity

__all__ = ["check_limits", "quota_view"]

_FORMATTERS: dict[str, Callable[[Decimal], str]] = {"cpu": format_cpu, "memory": format_memory}


def check_limits(spec: JobSpec, limit_range: dict[str, Any] | None) -> None:
    """Check ``spec.memory`` and ``spec.cpu`` against a LimitRange dict (``None``: no limits).

    Raises:
        JobSpecError: (field ``memory`` or ``cpu``) the value is above a ``max`` or below a
            ``min`` of a ``Container`` or ``Pod`` limit, e.g. ``"memory 8Gi is above the
            maximum of 4Gi per container (LimitRange tool-foo)"``.
    """
    if not limit_range:
        return
    name = limit_range.get("metadata", {}).get("name", "")
    for limit in (limit_range.get("spec") or {}).get("limits") or []:
        scope = limit.get("type")
        if scope not in ("Container", "Pod"):
            continue
        for field in ("memory", "cpu"):
            given: str = getattr(spec, field)
            value = parse_quantity(given)
            fmt = _FORMATTERS[field]
            bound = (limit.get("max") or {}).get(field)
            if bound is not None and value > parse_quantity(bound):
                raise JobSpecError(
                    field,
                    f"{given} is above the maximum of {fmt(parse_quantity(bound))} per "
                    f"{scope.lower()} (LimitRange {name})",
                )
            bound = (limit.get("min") or {}).get(field)
            if bound is not None and value < parse_quantity(bound):
                raise JobSpecError(
                    field,
                    f"{given} is below the minimum of {fmt(parse_quantity(bound))} per "
                    f"{scope.lower()} (LimitRange {name})",
                )


def _binding(hard: dict[str, str], resource: str) -> str | None:
    """The quota key that limits ``resource`` first. Containers request what they limit, so
    of ``requests.<r>``, ``limits.<r>`` and ``<r>`` the smallest hard value binds."""
    keys = [k for k in (f"requests.{resource}", f"limits.{resource}", resource) if k in hard]
    return min(keys, key=lambda k: parse_quantity(hard[k]), default=None)


def quota_view(resource_quota: dict[str, Any] | None, limit_range: dict[str, Any] | None) -> Quota:
    """The ``quota`` of GET ``/v1/tool/{t}/quotas`` in human units.

    Categories (an item is left out when the quota does not limit it; an empty category too):

    - ``Running jobs``: pods, ``count/jobs.batch``, CPU and memory (the binding one of
      ``requests.*``/``limits.*``), with their use;
    - ``Per-job limits``: the LimitRange ``Container`` maximum of CPU and memory (``used`` is
      null);
    - ``Job definitions``: ``count/cronjobs.batch``, ``count/deployments.apps`` and
      ``services``, with their use.

    Hard limits come from the ResourceQuota's ``status.hard`` (else ``spec.hard``), use from
    ``status.used`` (``"0"`` when not reported yet).
    """
    quota = resource_quota or {}
    status = quota.get("status") or {}
    hard: dict[str, str] = status.get("hard") or (quota.get("spec") or {}).get("hard") or {}
    used: dict[str, str] = status.get("used") or {}

    def item(label: str, key: str | None, fmt: Callable[[Decimal], str]) -> list[QuotaItem]:
        if key is None or key not in hard:
            return []
        return [
            QuotaItem(
                name=label,
                limit=fmt(parse_quantity(hard[key])),
                used=fmt(parse_quantity(used.get(key, "0"))),
            )
        ]

    running = [
        *item("Total running jobs at once (Kubernetes pods)", "pods", format_count),
        *item("Running one-off and cron jobs", "count/jobs.batch", format_count),
        *item("CPU", _binding(hard, "cpu"), format_cpu),
        *item("Memory", _binding(hard, "memory"), format_memory),
    ]
    per_job: list[QuotaItem] = []
    for limit in ((limit_range or {}).get("spec") or {}).get("limits") or []:
        if limit.get("type") != "Container":
            continue
        maximum = limit.get("max") or {}
        for label, resource in (("CPU", "cpu"), ("Memory", "memory")):
            if resource in maximum:
                value = _FORMATTERS[resource](parse_quantity(maximum[resource]))
                per_job.append(QuotaItem(name=label, limit=value, used=None))
    definitions = [
        *item("Cron jobs", "count/cronjobs.batch", format_count),
        *item("Continuous jobs (including web services)", "count/deployments.apps", format_count),
        *item("Services", "services", format_count),
    ]
    categories = [
        QuotaCategory(name=name, items=items)
        for name, items in (
            ("Running jobs", running),
            ("Per-job limits", per_job),
            ("Job definitions", definitions),
        )
        if items
    ]
    return Quota(categories=categories)
