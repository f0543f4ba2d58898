"""Pure helpers on the jobs API's Kubernetes objects (JSON dicts as the apiserver serves them):
metadata access, which objects are the jobs framework's, times, ownership. No I/O.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from toolforge_auth.tools import JOBS_MANAGER, MANAGED_BY_LABEL
from toolforge_jobs.builders import SPEC_ANNOTATION
from toolforge_jobs.models import NAME_MAX_LENGTH, NAME_PATTERN

__all__ = [
    "EPOCH",
    "MANAGED_SELECTOR",
    "NAME_LABEL",
    "PLURAL",
    "Obj",
    "event_time",
    "finished",
    "is_primary",
    "manages",
    "meta",
    "owned_by",
    "parse_time",
    "possible_name",
    "utcnow",
]

Obj = dict[str, Any]
#: Label selector of every object the jobs API makes.
MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={JOBS_MANAGER}"
#: The label that names a job's objects and pods (REFERENCE.md, "Kubernetes mapping").
NAME_LABEL = "app.kubernetes.io/name"
#: The resource (plural) of each kind the jobs API writes.
PLURAL = {
    "Job": "jobs",
    "CronJob": "cronjobs",
    "Deployment": "deployments",
    "Service": "services",
    "HTTPRoute": "httproutes",
}
EPOCH = dt.datetime.fromtimestamp(0, dt.UTC)


def utcnow() -> dt.datetime:
    """Now, in UTC."""
    return dt.datetime.now(dt.UTC)


def meta(obj: Obj) -> dict[str, Any]:
    """``obj["metadata"]`` ({} when absent)."""
    found: dict[str, Any] = obj.get("metadata") or {}
    return found


def is_primary(obj: Obj) -> bool:
    """Whether ``obj`` is a job's primary object: the jobs framework's, with the spec
    annotation."""
    data = meta(obj)
    return (data.get("labels") or {}).get(MANAGED_BY_LABEL) == JOBS_MANAGER and (
        SPEC_ANNOTATION in (data.get("annotations") or {})
    )


def finished(job: Obj) -> bool:
    """A batch Job whose ``Complete`` or ``Failed`` condition is true."""
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions") or []
    )


def parse_time(value: Any) -> dt.datetime:
    """An RFC 3339 time of an object (UTC when it has no zone); :data:`EPOCH` when absent or
    unreadable."""
    if not isinstance(value, str) or not value:
        return EPOCH
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return EPOCH
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def event_time(event: Obj) -> dt.datetime:
    """The latest of an Event's times (``lastTimestamp``, ``eventTime``, creation)."""
    return max(
        parse_time(event.get("lastTimestamp")),
        parse_time(event.get("eventTime")),
        parse_time(meta(event).get("creationTimestamp")),
    )


def possible_name(name: str) -> bool:
    """Whether a job may have this name (REFERENCE.md, "Job fields"): others do not exist, and
    are never put into an apiserver path or label selector."""
    return len(name) <= NAME_MAX_LENGTH and re.fullmatch(NAME_PATTERN, name) is not None


def manages(obj: Obj) -> bool:
    """Whether ``obj`` is labelled as the jobs framework's."""
    return (meta(obj).get("labels") or {}).get(MANAGED_BY_LABEL) == JOBS_MANAGER


def owned_by(obj: Obj, owner: Obj) -> Obj:
    """``obj`` with a (non-controller) ownerReference to ``owner``, for garbage collection."""
    data = meta(owner)
    reference = {
        "apiVersion": owner.get("apiVersion", "apps/v1"),
        "kind": owner["kind"],
        "name": data.get("name"),
        "uid": data.get("uid"),
    }
    return {**obj, "metadata": {**obj["metadata"], "ownerReferences": [reference]}}
