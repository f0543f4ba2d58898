"""LimitRange checks of a job's memory/cpu, and the quota view."""

from __future__ import annotations

from typing import Any

import pytest

from toolforge_jobs.errors import JobSpecError
from toolforge_jobs.limits import check_limits, quota_view
from toolforge_jobs.models import JobSpec

# As onboarding creates them (admin settings defaults), with status as the API reports it.
LIMIT_RANGE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "LimitRange",
    "metadata": {"name": "tool-tf-test", "namespace": "tool-tf-test"},
    "spec": {
        "limits": [
            {
                "type": "Container",
                "default": {"cpu": "500m", "memory": "512Mi"},
                "defaultRequest": {"cpu": "150m", "memory": "256Mi"},
                "max": {"cpu": "1", "memory": "4Gi"},
                "min": {"cpu": "50m", "memory": "100Mi"},
            }
        ]
    },
}
HARD = {
    "requests.cpu": "2",
    "requests.memory": "6Gi",
    "limits.cpu": "2",
    "limits.memory": "8Gi",
    "pods": "10",
    "services": "5",
    "configmaps": "10",
    "count/jobs.batch": "15",
    "count/cronjobs.batch": "50",
    "count/deployments.apps": "16",
}
RESOURCE_QUOTA: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ResourceQuota",
    "metadata": {"name": "tool-tf-test", "namespace": "tool-tf-test"},
    "spec": {"hard": HARD},
    "status": {
        "hard": HARD,
        "used": {
            "requests.cpu": "1500m",
            "requests.memory": "1536Mi",
            "limits.cpu": "1500m",
            "limits.memory": "1536Mi",
            "pods": "3",
            "services": "1",
            "configmaps": "1",
            "count/jobs.batch": "1",
            "count/cronjobs.batch": "2",
            "count/deployments.apps": "2",
        },
    },
}


def _spec(**fields: Any) -> JobSpec:
    return JobSpec.model_validate({"name": "x", "cmd": "c", "imagename": "i", **fields})


@pytest.mark.parametrize(
    "fields", [{}, {"memory": "4Gi", "cpu": "1"}, {"memory": "100Mi", "cpu": "50m"}]
)
def test_within_limits(fields: dict[str, Any]) -> None:
    check_limits(_spec(**fields), LIMIT_RANGE)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"memory": "4097Mi"},
            "memory 4097Mi is above the maximum of 4Gi per container (LimitRange tool-tf-test)",
        ),
        ({"cpu": "1001m"}, "cpu 1001m is above the maximum of 1 per container"),
        ({"cpu": "1.5"}, "cpu 1.5 is above the maximum of 1 per container"),
        ({"memory": "99Mi"}, "memory 99Mi is below the minimum of 100Mi per container"),
        ({"cpu": "10m"}, "cpu 10m is below the minimum of 50m per container"),
    ],
)
def test_outside_limits(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(JobSpecError) as exc:
        check_limits(_spec(**fields), LIMIT_RANGE)
    assert exc.value.field == next(iter(fields))
    assert str(exc.value).startswith(message)


def test_pod_limits_apply_too_and_no_limit_range_means_no_limits() -> None:
    pod_limit = {"spec": {"limits": [{"type": "Pod", "max": {"memory": "1Gi"}}]}}
    with pytest.raises(JobSpecError, match="per pod"):
        check_limits(_spec(memory="2Gi"), pod_limit)
    other = {"spec": {"limits": [{"type": "PersistentVolumeClaim", "max": {"storage": "1Gi"}}]}}
    check_limits(_spec(memory="64Gi"), other)
    check_limits(_spec(memory="64Gi"), None)


def test_quota_view() -> None:
    quota = quota_view(RESOURCE_QUOTA, LIMIT_RANGE)
    view = {c.name: [(i.name, i.limit, i.used) for i in c.items] for c in quota.categories}
    assert view == {
        "Running jobs": [
            ("Total running jobs at once (Kubernetes pods)", "10", "3"),
            ("Running one-off and cron jobs", "15", "1"),
            ("CPU", "2", "1500m"),
            # containers request what they limit, so requests.memory (6Gi) binds first
            ("Memory", "6Gi", "1.5Gi"),
        ],
        "Per-job limits": [("CPU", "1", None), ("Memory", "4Gi", None)],
        "Job definitions": [
            ("Cron jobs", "50", "2"),
            ("Continuous jobs (including web services)", "16", "2"),
            ("Services", "5", "1"),
        ],
    }


def test_quota_view_before_the_quota_controller_reported() -> None:
    fresh = {"metadata": {"name": "q"}, "spec": {"hard": {"pods": "4", "limits.memory": "2Gi"}}}
    quota = quota_view(fresh, None)
    assert [(c.name, [(i.name, i.limit, i.used) for i in c.items]) for c in quota.categories] == [
        (
            "Running jobs",
            [
                ("Total running jobs at once (Kubernetes pods)", "4", "0"),
                ("Memory", "2Gi", "0"),
            ],
        )
    ]
    assert quota_view(None, None).categories == []
