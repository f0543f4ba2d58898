"""Race-free parallel-build quota: at most N unfinished builds per tool, across replicas.

Upstream counts running PipelineRuns by listing and then creates one (REFERENCE.md "Quotas
upstream"), so concurrent starts all see "3 of 4" and all create. Here every tool has one
ConfigMap ``builds-quota-<tool>`` in the builds namespace whose key ``active.json`` holds the
tool's *slots*: ``{"<PipelineRun name>": "<reserved at, RFC 3339>"}``. A start

1. reads the ConfigMap (its ``resourceVersion``) and the tool's PipelineRuns;
2. reconciles (:func:`reconcile`): drops slots whose run has finished, and slots whose run does
   not exist and that are older than the grace period (a start that died between reserving and
   creating); adds unfinished runs that hold no slot (created before the quota object);
3. if fewer than N slots remain, adds one for the name it is about to create and writes the
   ConfigMap back with the ``resourceVersion`` it read. kube-apiserver applies the write only
   if nobody wrote in between (optimistic concurrency, Kubernetes API conventions
   "Concurrency Control and Consistency"); on 409 Conflict it starts again at 1.

Every admitted build therefore went through a successful compare-and-swap that saw all slots
admitted before it, so N is never exceeded, whatever the number of API replicas. The slot is
reserved BEFORE the PipelineRun is created (under a name chosen up front), and released when
the run is deleted, when a start fails to create it, or when a later start finds it finished.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from toolforge_builds.builders import TOOL_LABEL
from toolforge_builds.errors import BuildQuotaExceededError
from toolforge_builds.status import is_finished, parse_time
from toolforge_builds.storage import LabelScopedServiceStorage, Obj
from toolforge_kit.errors import ConflictError, UnavailableError

__all__ = [
    "SLOTS_KEY",
    "QuotaKeeper",
    "quota_configmap_name",
    "random_suffix",
    "reconcile",
]

SLOTS_KEY = "active.json"
#: kube-apiserver's SimpleNameGenerator alphabet (no vowels, no look-alikes) and length.
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_SUFFIX_LENGTH = 5
_log = logging.getLogger(__name__)


def quota_configmap_name(tool: str) -> str:
    """``builds-quota-<tool>``."""
    return f"builds-quota-{tool}"


def random_suffix() -> str:
    """5 characters as kube-apiserver's ``generateName`` adds them."""
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(_SUFFIX_LENGTH))


def _slots(configmap: Mapping[str, Any] | None) -> dict[str, str]:
    if configmap is None:
        return {}
    raw = (configmap.get("data") or {}).get(SLOTS_KEY) or "{}"
    try:
        value = json.loads(raw)
    except ValueError:
        _log.error("quota ConfigMap %s is corrupt; rebuilding it from the PipelineRuns", raw)
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def reconcile(
    slots: Mapping[str, str],
    runs: Iterable[Mapping[str, Any]],
    *,
    now: datetime,
    grace: timedelta,
) -> dict[str, str]:
    """The slots still taken: see steps 2 of the module docstring. Pure.

    ``slots`` maps run names to reservation times (RFC 3339); ``runs`` are the tool's
    PipelineRuns. A slot with an unparsable time counts as reserved now (kept for ``grace``).
    """
    by_name = {str((run.get("metadata") or {}).get("name")): run for run in runs}
    kept: dict[str, str] = {}
    for name, reserved in slots.items():
        run = by_name.get(name)
        if run is not None:
            if not is_finished(run) and not (run.get("metadata") or {}).get("deletionTimestamp"):
                kept[name] = reserved
        elif now - (parse_time(reserved) or now) < grace:
            kept[name] = reserved
    for name, run in by_name.items():
        metadata = run.get("metadata") or {}
        if name in kept or is_finished(run) or metadata.get("deletionTimestamp"):
            continue
        kept[name] = str(metadata.get("creationTimestamp") or now.isoformat())
    return kept


class QuotaKeeper:
    """Reserves and releases build slots in the per-tool ConfigMap (module docstring)."""

    def __init__(
        self,
        storage: LabelScopedServiceStorage,
        *,
        limit: int,
        grace_seconds: float,
        attempts: int,
        retry_after: int,
    ) -> None:
        self._storage = storage
        self.limit = limit
        self._grace = timedelta(seconds=grace_seconds)
        self._attempts = attempts
        self._retry_after = retry_after

    def _body(self, tool: str, slots: Mapping[str, str], base: Obj | None) -> Obj:
        metadata: Obj = {
            "name": quota_configmap_name(tool),
            "namespace": self._storage.namespace,
            "labels": {TOOL_LABEL: tool, "app.kubernetes.io/managed-by": "toolforge-builds-api"},
        }
        if base is not None:
            metadata["resourceVersion"] = base["metadata"]["resourceVersion"]
        data = {SLOTS_KEY: json.dumps(dict(sorted(slots.items())), separators=(",", ":"))}
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}

    async def _write(self, tool: str, slots: Mapping[str, str], base: Obj | None) -> None:
        """Compare-and-swap (replace with the read resourceVersion), or create when there was
        no ConfigMap; :class:`ConflictError` when someone else wrote first."""
        body = self._body(tool, slots, base)
        if base is None:
            await self._storage.create_configmap(body)
        else:
            await self._storage.replace_configmap(body)

    async def active(self, tool: str, runs: list[Obj] | None = None) -> dict[str, str]:
        """The tool's taken slots now (read-only; reconciled but not written back)."""
        configmap = await self._storage.get_configmap(quota_configmap_name(tool))
        if runs is None:
            runs = await self._storage.list_pipelineruns(f"{TOOL_LABEL}={tool}")
        return reconcile(_slots(configmap), runs, now=datetime.now(UTC), grace=self._grace)

    async def reserve(self, tool: str, name: str) -> None:
        """Take a slot for the PipelineRun ``name`` (not created yet).

        Raises:
            BuildQuotaExceededError: ``limit`` slots are taken (409, ``N out of N builds running``).
            UnavailableError: still conflicting after ``attempts`` tries (heavy contention).
        """
        for _ in range(self._attempts):
            configmap = await self._storage.get_configmap(quota_configmap_name(tool))
            runs = await self._storage.list_pipelineruns(f"{TOOL_LABEL}={tool}")
            now = datetime.now(UTC)
            slots = reconcile(_slots(configmap), runs, now=now, grace=self._grace)
            if len(slots) >= self.limit:
                raise BuildQuotaExceededError(
                    f"{len(slots)} out of {self.limit} builds running; wait for one to "
                    "finish or cancel one (toolforge build cancel)"
                )
            slots[name] = now.isoformat()
            try:
                await self._write(tool, slots, configmap)
            except ConflictError:
                continue
            return
        raise UnavailableError(
            "too many concurrent build starts; try again", retry_after=self._retry_after
        )

    async def release(self, tool: str, name: str) -> None:
        """Give back the slot of ``name`` (after a failed create or a delete). Best effort:
        a slot left behind is reclaimed by the next start's reconciliation."""
        for _ in range(self._attempts):
            configmap = await self._storage.get_configmap(quota_configmap_name(tool))
            slots = _slots(configmap)
            if configmap is None or name not in slots:
                return
            del slots[name]
            try:
                await self._write(tool, slots, configmap)
            except ConflictError:
                continue
            return
