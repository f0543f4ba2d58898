"""Which of a tool's PipelineRuns to prune. Pure.

Policy (REFERENCE.md "Quotas upstream": keep the newest 4 successful and 2 failed runs, prune
the rest on each start), with two deliberate differences from upstream:

* Only *finished* runs are ever pruned (see :func:`toolforge_builds.status.build_state`):
  ``pending``, ``running`` and ``unknown`` runs, and cancelled runs whose cancellation is
  still in progress, are always kept. Upstream pruned pending runs (a known user pain).
* ``failure``, ``cancelled`` and ``timeout`` all count as *failed* and share the
  ``keep_failed`` slots. Upstream kept only ``failure`` runs and pruned cancelled and timed-out
  runs at once, which threw away the logs that explain a timeout.

"Newest" is by ``metadata.creationTimestamp`` (ties: name, descending). Runs without a
creation timestamp are treated as newest (kept). Runs that are already being deleted
(``metadata.deletionTimestamp``) are neither counted nor returned, and runs whose ``user``
label is not the tool are never returned (a guard against a wrong label selector).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from toolforge_builds.builders import TOOL_LABEL
from toolforge_builds.models import BuildStatus
from toolforge_builds.status import build_state, parse_time

__all__ = ["FAILED_STATUSES", "newest_first", "runs_to_prune"]

FAILED_STATUSES = frozenset({BuildStatus.FAILURE, BuildStatus.CANCELLED, BuildStatus.TIMEOUT})
_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


def _created(run: Mapping[str, Any]) -> datetime:
    metadata = run.get("metadata") or {}
    return parse_time(metadata.get("creationTimestamp")) or _FAR_FUTURE


def _name(run: Mapping[str, Any]) -> str:
    return str((run.get("metadata") or {}).get("name") or "")


def newest_first(runs: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """``runs`` sorted newest first (creation time, then name, both descending)."""
    return sorted(runs, key=lambda run: (_created(run), _name(run)), reverse=True)


def runs_to_prune(
    runs: Iterable[Mapping[str, Any]],
    *,
    tool: str,
    keep_successful: int,
    keep_failed: int,
) -> list[Mapping[str, Any]]:
    """The runs of ``tool`` to delete, newest first, keeping the newest ``keep_successful``
    successful and ``keep_failed`` failed (failure/cancelled/timeout) finished runs.

    Raises ``ValueError`` for a negative keep count.
    """
    if keep_successful < 0 or keep_failed < 0:
        raise ValueError("keep counts must not be negative")
    kept_successful = kept_failed = 0
    prune: list[Mapping[str, Any]] = []
    for run in newest_first(runs):
        metadata = run.get("metadata") or {}
        if (metadata.get("labels") or {}).get(TOOL_LABEL) != tool:
            continue
        if metadata.get("deletionTimestamp"):
            continue
        state = build_state(run)
        if not state.finished:
            continue
        if state.status is BuildStatus.SUCCESS:
            kept_successful += 1
            if kept_successful > keep_successful:
                prune.append(run)
        elif state.status in FAILED_STATUSES:
            kept_failed += 1
            if kept_failed > keep_failed:
                prune.append(run)
    return prune
