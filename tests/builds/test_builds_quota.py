"""Reconciliation of the per-tool build slots (pure part of :mod:`toolforge_builds.quota`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from toolforge_builds.quota import random_suffix, reconcile

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(seconds=120)


def run(name: str, condition: str | None = None, **metadata: Any) -> dict[str, Any]:
    status = {"conditions": [{"type": "Succeeded", "status": condition}]} if condition else {}
    return {
        "metadata": {"name": name, "creationTimestamp": "2026-01-01T11:00:00Z", **metadata},
        "status": status,
    }


def test_finished_runs_free_their_slot_unfinished_keep_it() -> None:
    slots = {"a": "2026-01-01T11:00:00+00:00", "b": "2026-01-01T11:00:00+00:00"}
    kept = reconcile(slots, [run("a", "True"), run("b", "Unknown")], now=NOW, grace=GRACE)
    assert kept == {"b": "2026-01-01T11:00:00+00:00"}


def test_missing_run_is_kept_within_grace_then_reclaimed() -> None:
    young = (NOW - timedelta(seconds=30)).isoformat()
    old = (NOW - timedelta(seconds=300)).isoformat()
    assert reconcile({"x": young, "y": old}, [], now=NOW, grace=GRACE) == {"x": young}


def test_unfinished_runs_without_a_slot_are_counted() -> None:
    kept = reconcile(
        {}, [run("p"), run("q", "False"), run("r", deletionTimestamp="t")], now=NOW, grace=GRACE
    )
    assert kept == {"p": "2026-01-01T11:00:00Z"}


def test_runs_being_deleted_free_their_slot() -> None:
    slots = {"d": NOW.isoformat()}
    assert reconcile(slots, [run("d", deletionTimestamp="t")], now=NOW, grace=GRACE) == {}


def test_suffix_is_like_generate_name() -> None:
    suffixes = {random_suffix() for _ in range(200)}
    assert len(suffixes) > 190
    assert all(len(s) == 5 and set(s) <= set("bcdfghjklmnpqrstvwxz2456789") for s in suffixes)
