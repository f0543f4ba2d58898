"""``toolforge jobs load --dry-run``: what loading a jobs.yaml would change, per job, without
changing anything (only GET ``/jobs``).

Both sides are compared as jobs.yaml entries without the API's defaults: the existing job as
``dump`` writes it (:func:`~toolforge_cli.jobspec.options_from_job`), the file's entry after
the same translation of the body ``load`` would send (``options_from_job(to_body())``), so an
entry that spells a default out (``mem: 512Mi``) or says ``no-filelog: true`` equals a job
that leaves it out. Quantities compare by value, as the jobs API's PATCH does ("0.5" equals
"500m", "0.1" equals the default "100m"; Kubernetes ``resource.Quantity`` suffixes).
``wait`` is client side and never a change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from toolforge_cli.jobsapi import Job
from toolforge_cli.jobspec import (
    API_DEFAULTS,
    OPTION_KEYS,
    JobOptions,
    older_jobs_api,
    options_from_job,
)

__all__ = ["FieldChange", "JobPlan", "plan_job", "quantity_value"]

_SUFFIXES = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_QUANTITY_RE = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|([a-zA-Z]*))$")
#: jobs.yaml quantity keys and their API defaults (a key that is not set has that value).
_QUANTITY_DEFAULTS = {"mem": API_DEFAULTS["memory"], "cpu": API_DEFAULTS["cpu"]}


def quantity_value(text: str) -> Decimal | None:
    """The value of a Kubernetes quantity (``512Mi``, ``0.5``, ``100m``, ``1e3``;
    suffixes of ``k8s.io/apimachinery`` ``resource.Quantity``), or ``None`` when ``text`` is
    not one (then the texts are compared as they are)."""
    match = _QUANTITY_RE.fullmatch(text.strip())
    if match is None:
        return None
    number, exponent, suffix = match.groups()
    try:
        if exponent:
            return Decimal(number + exponent)
        if suffix not in _SUFFIXES:
            return None
        return Decimal(number) * _SUFFIXES[suffix]
    except InvalidOperation:
        return None


def _same(key: str, old: Any, new: Any) -> bool:
    if old == new:
        return True
    if key not in _QUANTITY_DEFAULTS:
        return False
    old = _QUANTITY_DEFAULTS[key] if old is None else old
    new = _QUANTITY_DEFAULTS[key] if new is None else new
    if isinstance(old, str) and isinstance(new, str):
        old_value, new_value = quantity_value(old), quantity_value(new)
        return old_value is not None and old_value == new_value
    return False


@dataclass(frozen=True)
class FieldChange:
    """One jobs.yaml key that would change; ``None``: not set (the API's default)."""

    key: str
    old: Any
    new: Any


@dataclass(frozen=True)
class JobPlan:
    """What ``load`` would do to one job: ``create`` (``changes``: every key of the entry,
    old ``None``), ``update`` (``changes``: the keys that differ) or ``unchanged``."""

    name: str
    action: Literal["create", "update", "unchanged"]
    changes: list[FieldChange] = field(default_factory=list)


def _entry(options: JobOptions) -> dict[str, Any]:
    entry = options.to_entry()
    entry.pop("wait", None)
    return entry


def plan_job(options: JobOptions, existing: Job | Mapping[str, Any] | None) -> JobPlan:
    """The :class:`JobPlan` for loading ``options`` over ``existing`` (the job as GET
    ``/jobs?include_unset=false`` returns it, ``None`` when there is none). Both sides drop
    the same defaults: those of the API that sent ``existing``
    (:func:`~toolforge_cli.jobspec.older_jobs_api`). Raises ``KeyError`` or
    ``pydantic.ValidationError`` when ``existing`` is not a job of the documented shape."""
    if existing is not None and not isinstance(existing, Job):
        existing = Job.model_validate(existing)
    legacy = existing is not None and older_jobs_api(existing)
    wanted = _entry(options_from_job(options.to_body(), legacy=legacy))
    if existing is None:
        return JobPlan(options.name, "create", [FieldChange(k, None, v) for k, v in wanted.items()])
    current = _entry(options_from_job(existing, legacy=legacy))
    changes = [
        FieldChange(key, current.get(key), wanted.get(key))
        for key in OPTION_KEYS
        if (key in current or key in wanted) and not _same(key, current.get(key), wanted.get(key))
    ]
    return JobPlan(options.name, "update" if changes else "unchanged", changes)
