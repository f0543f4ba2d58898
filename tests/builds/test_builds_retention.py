"""Pruning: keep the newest K successful and M failed finished runs; never touch the rest."""

from __future__ import annotations

from typing import Any

import pytest

from toolforge_builds.retention import newest_first, runs_to_prune

CONDITIONS: dict[str, tuple[str, str] | None] = {
    "success": ("True", "Succeeded"),
    "failure": ("False", "Failed"),
    "cancelled": ("False", "Cancelled"),
    "timeout": ("False", "PipelineRunTimeout"),
    "running": ("Unknown", "Running"),
    "cancelling": ("Unknown", "Cancelled"),
    "unknown": ("Unknown", "SomethingNew"),
    "pending": None,
}


def _run(name: str, kind: str, minute: int | None, tool: str = "mytool") -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": {"user": tool}}
    if minute is not None:
        metadata["creationTimestamp"] = f"2024-05-01T12:{minute:02d}:00Z"
    run: dict[str, Any] = {"metadata": metadata, "spec": {}, "status": {}}
    condition = CONDITIONS[kind]
    if condition is not None:
        run["status"]["conditions"] = [
            {"type": "Succeeded", "status": condition[0], "reason": condition[1]}
        ]
    return run


def _names(runs: list[Any]) -> list[str]:
    return [run["metadata"]["name"] for run in runs]


def _prune(runs: list[dict[str, Any]], keep_successful: int = 4, keep_failed: int = 2) -> list[str]:
    return _names(
        runs_to_prune(runs, tool="mytool", keep_successful=keep_successful, keep_failed=keep_failed)
    )


def test_keeps_newest_successful_and_failed() -> None:
    runs = [_run(f"ok{i}", "success", i) for i in range(6)]
    runs += [_run(f"bad{i}", "failure", 10 + i) for i in range(4)]
    assert _prune(runs) == ["bad1", "bad0", "ok1", "ok0"]


def test_failure_cancelled_and_timeout_share_the_failed_slots() -> None:
    runs = [
        _run("timeout", "timeout", 5),
        _run("cancelled", "cancelled", 4),
        _run("failure", "failure", 3),
        _run("old-timeout", "timeout", 2),
    ]
    assert _prune(runs) == ["failure", "old-timeout"]


@pytest.mark.parametrize("kind", ["running", "pending", "unknown", "cancelling"])
def test_unfinished_runs_are_never_pruned(kind: str) -> None:
    runs = [_run(f"{kind}{i}", kind, i) for i in range(10)]
    runs += [_run("ok", "success", 30)]
    assert _prune(runs, keep_successful=0, keep_failed=0) == ["ok"]


def test_unfinished_runs_do_not_use_up_slots() -> None:
    runs = [
        _run("running", "running", 9),
        _run("ok-new", "success", 8),
        _run("ok-old", "success", 1),
    ]
    assert _prune(runs, keep_successful=1) == ["ok-old"]


def test_zero_keep_prunes_every_finished_run() -> None:
    runs = [_run("ok", "success", 1), _run("bad", "failure", 2), _run("run", "running", 3)]
    assert _prune(runs, keep_successful=0, keep_failed=0) == ["bad", "ok"]


def test_nothing_to_prune_under_the_limits() -> None:
    runs = [_run("ok", "success", 1), _run("bad", "failure", 2)]
    assert _prune(runs) == []
    assert _prune([]) == []


def test_other_tools_runs_are_never_returned() -> None:
    runs = [_run(f"other{i}", "success", i, tool="other") for i in range(8)]
    runs += [_run("mine", "success", 30)]
    assert _prune(runs, keep_successful=0) == ["mine"]


def test_runs_being_deleted_are_neither_counted_nor_returned() -> None:
    deleting = _run("deleting", "success", 9)
    deleting["metadata"]["deletionTimestamp"] = "2024-05-01T13:00:00Z"
    runs = [deleting, _run("ok-new", "success", 5), _run("ok-old", "success", 1)]
    assert _prune(runs, keep_successful=1) == ["ok-old"]


def test_runs_without_creation_time_count_as_newest() -> None:
    runs = [_run("undated", "success", None), _run("dated", "success", 59)]
    assert _prune(runs, keep_successful=1) == ["dated"]


def test_order_does_not_depend_on_input_order() -> None:
    runs = [_run(f"ok{i}", "success", i) for i in (3, 0, 5, 1, 4, 2)]
    assert _prune(runs, keep_successful=2) == ["ok3", "ok2", "ok1", "ok0"]
    assert _names(newest_first(runs)) == ["ok5", "ok4", "ok3", "ok2", "ok1", "ok0"]


def test_same_creation_time_is_ordered_by_name() -> None:
    runs = [_run("b", "success", 1), _run("a", "success", 1), _run("c", "success", 1)]
    assert _prune(runs, keep_successful=1) == ["b", "a"]


def test_negative_keep_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        runs_to_prune([], tool="mytool", keep_successful=-1, keep_failed=0)
