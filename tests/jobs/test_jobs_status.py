"""Statuses from realistic object, pod and event dicts (shaped as the API server returns
them: ``kubectl get -o json``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from toolforge_jobs.schedule import next_fire_time
from toolforge_jobs.status import (
    compute_status,
    cronjob_status,
    deployment_status,
    format_duration,
    job_status,
    quota_message,
)

NOW = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
NS = "tool-tf-test"
QUOTA_CPU_MEMORY = (
    'pods "web-6d4cf56db6-x2x7q" is forbidden: exceeded quota: tool-tf-test, requested: '
    "limits.cpu=1,limits.memory=2Gi,requests.cpu=1,requests.memory=2Gi, used: "
    "limits.cpu=2,limits.memory=7Gi,requests.cpu=2,requests.memory=5Gi, limited: "
    "limits.cpu=2,limits.memory=8Gi,requests.cpu=2,requests.memory=6Gi"
)


def ago(seconds: int) -> str:
    return (NOW - dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def running(started: int, *, restarts: int = 0, last_exit: int | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {
        "name": "job",
        "state": {"running": {"startedAt": ago(started)}},
        "lastState": {},
        "ready": True,
        "started": True,
        "restartCount": restarts,
        "image": "registry.local/toolforge/python3.11:stable",
    }
    if last_exit is not None:
        status["lastState"] = {
            "terminated": {
                "exitCode": last_exit,
                "reason": "Error",
                "startedAt": ago(started + 60),
                "finishedAt": ago(started + 1),
            }
        }
    return status


def terminated(code: int, *, reason: str = "Error", started: int = 100) -> dict[str, Any]:
    return {
        "name": "job",
        "state": {
            "terminated": {
                "exitCode": code,
                "reason": reason,
                "startedAt": ago(started),
                "finishedAt": ago(started - 40),
            }
        },
        "lastState": {},
        "ready": False,
        "started": False,
        "restartCount": 0,
    }


def waiting(reason: str, message: str | None = None, *, restarts: int = 0) -> dict[str, Any]:
    state: dict[str, Any] = {"reason": reason}
    if message:
        state["message"] = message
    status: dict[str, Any] = {
        "name": "job",
        "state": {"waiting": state},
        "lastState": {},
        "ready": False,
        "started": False,
        "restartCount": restarts,
    }
    if restarts:
        status["lastState"] = {
            "terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(30)}
        }
    return status


def pod(
    name: str,
    phase: str,
    containers: list[dict[str, Any]] | None = None,
    *,
    labels: dict[str, str] | None = None,
    created: int = 300,
    conditions: list[dict[str, Any]] | None = None,
    **status: Any,
) -> dict[str, Any]:
    scheduled = {"type": "PodScheduled", "status": "True", "lastTransitionTime": ago(created)}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NS,
            "creationTimestamp": ago(created),
            "labels": labels or {},
        },
        "status": {
            "phase": phase,
            "conditions": conditions if conditions is not None else [scheduled],
            "startTime": ago(created),
            **({"containerStatuses": containers} if containers is not None else {}),
            **status,
        },
    }


def job_pod(job: str, phase: str, containers: list[dict[str, Any]] | None = None, **kw: Any) -> Any:
    labels = {"batch.kubernetes.io/job-name": job, "job-name": job}
    return pod(f"{job}-{kw.pop('suffix', 'abcde')}", phase, containers, labels=labels, **kw)


def job(name: str, *, status: dict[str, Any], backoff: int = 0, owner: str | None = None) -> Any:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": NS,
        "uid": f"uid-{name}",
        "creationTimestamp": status.get("startTime", ago(300)),
        "labels": {"app.kubernetes.io/name": name},
    }
    if owner:
        metadata["ownerReferences"] = [
            {"apiVersion": "batch/v1", "kind": "CronJob", "name": owner, "uid": f"uid-{owner}"}
        ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {"backoffLimit": backoff},
        "status": status,
    }


def condition(kind: str, *, seconds_ago: int = 0, **fields: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True",
        "lastProbeTime": ago(seconds_ago),
        "lastTransitionTime": ago(seconds_ago),
        **fields,
    }


# --- one-off jobs ---


def test_pending_unschedulable() -> None:
    unschedulable = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are "
        "available: 1 No preemption victims found for incoming pod.",
        "lastTransitionTime": ago(120),
    }
    obj = job("big", status={"startTime": ago(120), "active": 1, "ready": 0})
    pods = [job_pod("big", "Pending", conditions=[unschedulable], created=120)]
    report = job_status(obj, pods, [], NOW)
    assert report.status.short == "pending"
    assert report.status.messages == [
        f"cannot be scheduled: {unschedulable['message']}",
    ]
    assert report.status.duration == "2m0s"
    assert report.status_short == "Pending"
    assert report.status_long.startswith("Pending for 2m0s: cannot be scheduled: 0/1 nodes")


def test_running() -> None:
    obj = job("run", status={"startTime": ago(300), "active": 1, "ready": 1})
    pods = [job_pod("run", "Running", [running(295)])]
    report = job_status(obj, pods, [], NOW)
    assert report.status.short == "running"
    assert report.status.messages == []
    assert report.status.duration == "5m0s"
    assert (report.status_short, report.status_long) == ("Running", "Running for 5m0s")


def test_pods_of_other_jobs_are_ignored() -> None:
    obj = job("run", status={"startTime": ago(300), "active": 1})
    pods = [job_pod("run", "Running", [running(295)]), job_pod("other", "Failed", [terminated(1)])]
    assert job_status(obj, pods, [], NOW).status.short == "running"


def test_succeeded() -> None:
    status = {
        "startTime": ago(100),
        "completionTime": ago(58),
        "succeeded": 1,
        "conditions": [
            condition("SuccessCriteriaMet", seconds_ago=58),
            condition("Complete", seconds_ago=58),
        ],
    }
    report = job_status(
        job("once", status=status),
        [job_pod("once", "Succeeded", [terminated(0, reason="Completed")])],
        [],
        NOW,
    )
    assert report.status.short == "succeeded"
    assert report.status.messages == []
    assert report.status.duration == "42s"
    assert (report.status_short, report.status_long) == ("Completed", "Completed after 42s")


def test_failed_exit_code_1() -> None:
    status = {
        "startTime": ago(100),
        "failed": 1,
        "conditions": [
            condition("FailureTarget", seconds_ago=60, reason="BackoffLimitExceeded"),
            condition(
                "Failed",
                seconds_ago=60,
                reason="BackoffLimitExceeded",
                message="Job has reached the specified backoff limit",
            ),
        ],
    }
    pods = [job_pod("fails", "Failed", [terminated(1)])]
    report = job_status(job("fails", status=status), pods, [], NOW)
    assert report.status.short == "failed"
    assert report.status.messages == ["exit code 1"]
    assert report.status.duration == "40s"
    assert report.status_short == "Failed"
    assert report.status_long == "Failed after 40s: exit code 1"


def test_failed_after_retries() -> None:
    status = {
        "startTime": ago(300),
        "failed": 3,
        "conditions": [condition("Failed", seconds_ago=10, reason="BackoffLimitExceeded")],
    }
    pods = [
        job_pod("flaky", "Failed", [terminated(2)], suffix=s, created=c)
        for s, c in (("aaaaa", 300), ("bbbbb", 200), ("ccccc", 100))
    ]
    report = job_status(job("flaky", status=status, backoff=2), pods, [], NOW)
    assert report.status.short == "failed"
    assert report.status.messages == ["exit code 2", "failed 3 times"]


def test_timed_out() -> None:
    obj = job(
        "slow",
        status={
            "startTime": ago(100),
            "failed": 1,
            "conditions": [
                condition(
                    "Failed",
                    reason="DeadlineExceeded",
                    message="Job was active longer than specified deadline",
                )
            ],
        },
    )
    obj["spec"]["activeDeadlineSeconds"] = 100
    report = job_status(obj, [], [], NOW)
    assert report.status.short == "failed"
    assert report.status.messages == ["timed out after 100 seconds"]


def test_retrying_job_is_running_with_its_restarts() -> None:
    obj = job("retry", status={"startTime": ago(300), "active": 1, "failed": 1}, backoff=3)
    pods = [
        job_pod("retry", "Failed", [terminated(1, started=290)], suffix="first", created=300),
        job_pod("retry", "Running", [running(100)], suffix="secnd", created=110),
    ]
    report = job_status(obj, pods, [], NOW)
    assert report.status.short == "running"
    assert report.status.messages == ["restarted (1)"]


def test_failed_attempt_of_an_unfinished_job_is_retried() -> None:
    obj = job("retry", status={"startTime": ago(300), "active": 0, "failed": 1}, backoff=3)
    pods = [job_pod("retry", "Failed", [terminated(1, started=290)], created=300)]
    report = job_status(obj, pods, [], NOW)
    assert report.status.short == "pending"
    assert report.status.messages == ["retrying", "last attempt: exit code 1", "restarted (1)"]


def test_last_allowed_attempt_failed_before_the_job_controller_noticed() -> None:
    """Seen on the real cluster: the pod has failed, backoffLimit 0 leaves no retry, but the
    Job has no Failed condition yet (the controller lags the pod). That is a failure, not a
    retry."""
    obj = job("boom", status={"startTime": ago(30), "active": 1}, backoff=0)
    pods = [job_pod("boom", "Failed", [terminated(3, started=25)], created=28)]
    report = job_status(obj, pods, [], NOW)
    assert report.status.short == "failed"
    assert report.status.messages == ["exit code 3"]


def test_out_of_quota_one_off() -> None:
    event = {
        "kind": "Event",
        "type": "Warning",
        "reason": "FailedCreate",
        "involvedObject": {"kind": "Job", "name": "many", "namespace": NS},
        "message": 'Error creating: pods "many-q8x2m" is forbidden: exceeded quota: '
        "tool-tf-test, requested: pods=1, used: pods=10, limited: pods=10",
        "count": 4,
        "lastTimestamp": ago(5),
    }
    obj = job("many", status={"startTime": ago(60), "active": 0})
    report = job_status(obj, [], [event], NOW)
    assert report.status.short == "failed"
    assert report.status.messages == ["Unable to start, out of quota for pods"]
    assert report.status_short == "Failed"


def test_out_of_memory() -> None:
    status = {
        "startTime": ago(100),
        "failed": 1,
        "conditions": [condition("Failed", reason="BackoffLimitExceeded")],
    }
    pods = [job_pod("hog", "Failed", [terminated(137, reason="OOMKilled")])]
    report = job_status(job("hog", status=status), pods, [], NOW)
    assert report.status.messages == ["run out of memory (OOMKilled)"]


def test_evicted_pod() -> None:
    evicted = job_pod(
        "ev",
        "Failed",
        [],
        reason="Evicted",
        message="The node was low on resource: ephemeral-storage.",
    )
    failed = [condition("Failed", reason="BackoffLimitExceeded")]
    report = job_status(job("ev", status={"failed": 1, "conditions": failed}), [evicted], [], NOW)
    assert report.status.short == "failed"
    assert report.status.messages == ["Evicted: The node was low on resource: ephemeral-storage."]
    # with retries left, the Job controller starts another pod
    retrying = job("ev", status={"startTime": ago(100), "failed": 1}, backoff=2)
    report = job_status(retrying, [evicted], [], NOW)
    assert report.status.short == "pending"
    assert report.status.messages == [
        "retrying",
        "last attempt: Evicted: The node was low on resource: ephemeral-storage.",
        "restarted (1)",
    ]


def test_just_created_job_is_pending() -> None:
    report = job_status(job("new", status={}), [], [], NOW)
    assert report.status.short == "pending"
    assert report.status.messages == ["waiting for a pod to start"]


@pytest.mark.parametrize(
    ("container", "short", "messages"),
    [
        (waiting("ContainerCreating"), "pending", ["ContainerCreating"]),
        (
            waiting("ImagePullBackOff", 'Back-off pulling image "registry.local/toolforge/nope"'),
            "failed",
            ['ImagePullBackOff: Back-off pulling image "registry.local/toolforge/nope"'],
        ),
        (
            waiting("CreateContainerConfigError", 'secret "x" not found'),
            "failed",
            ['CreateContainerConfigError: secret "x" not found'],
        ),
        (
            waiting(
                "CrashLoopBackOff",
                "back-off 1m20s restarting failed container=job pod=crash-abcde",
                restarts=5,
            ),
            "failed",
            ["CrashLoopBackOff", "restarted (5)", "last exit code 1"],
        ),
    ],
)
def test_container_waiting_reasons(
    container: dict[str, Any], short: str, messages: list[str]
) -> None:
    obj = job("w", status={"startTime": ago(60), "active": 1})
    report = job_status(obj, [job_pod("w", "Pending", [container])], [], NOW)
    assert report.status.short == short
    assert report.status.messages == messages


# --- continuous jobs ---


SELECTOR = {
    "toolforge": "tool",
    "app.kubernetes.io/managed-by": "toolforge-jobs-framework",
    "app.kubernetes.io/created-by": "tf-test",
    "app.kubernetes.io/component": "deployments",
    "app.kubernetes.io/name": "web",
}


def deployment(
    replicas: int = 1,
    *,
    generation: int = 1,
    observed: int = 1,
    updated: int | None = None,
    total: int | None = None,
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS, "generation": generation},
        "spec": {"replicas": replicas, "selector": {"matchLabels": SELECTOR}},
        "status": {
            "observedGeneration": observed,
            "replicas": replicas if total is None else total,
            "updatedReplicas": replicas if updated is None else updated,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": conditions or [],
        },
    }


def web_pod(name: str, phase: str, containers: list[dict[str, Any]], **kw: Any) -> Any:
    return pod(
        name, phase, containers, labels={**SELECTOR, "pod-template-hash": "6d4cf56db6"}, **kw
    )


def test_continuous_running() -> None:
    report = deployment_status(
        deployment(), [web_pod("web-1", "Running", [running(3600)])], [], NOW
    )
    assert report.status.short == "running"
    assert report.status.messages == []
    assert report.status.up_to_date is True
    assert report.status.duration == "5m0s"  # the pod's startTime
    assert report.status_long == "Running for 5m0s"


def test_restarted_three_times() -> None:
    pods = [web_pod("web-1", "Running", [running(60, restarts=3, last_exit=1)])]
    report = deployment_status(deployment(), pods, [], NOW)
    assert report.status.short == "running"
    assert report.status.messages == ["restarted (3)", "last exit code 1"]
    assert report.status_short == "Running"


def test_out_of_quota_continuous() -> None:
    conditions = [
        condition("Available", reason="MinimumReplicasAvailable", status="False"),
        condition("ReplicaFailure", reason="FailedCreate", message=QUOTA_CPU_MEMORY),
    ]
    report = deployment_status(deployment(conditions=conditions, total=0, updated=0), [], [], NOW)
    assert report.status.short == "failed"
    assert report.status.messages[0] == "Unable to start, out of quota for cpu, memory"
    assert report.status_short == "Failed"


def test_old_quota_events_do_not_matter_once_pods_run() -> None:
    event = {"reason": "FailedCreate", "type": "Warning", "message": QUOTA_CPU_MEMORY}
    report = deployment_status(
        deployment(), [web_pod("web-1", "Running", [running(60)])], [event], NOW
    )
    assert report.status.short == "running"
    assert report.status.messages == []


def test_failed_pod_outranks_running_pods() -> None:
    pods = [
        web_pod("web-1", "Running", [running(600)]),
        web_pod("web-2", "Running", [waiting("CrashLoopBackOff", restarts=4)]),
    ]
    report = deployment_status(deployment(2), pods, [], NOW)
    assert report.status.short == "failed"
    assert report.status.messages == ["CrashLoopBackOff", "restarted (4)", "last exit code 1"]


def test_starting_until_the_startup_probe_passes() -> None:
    container = {**running(20), "started": False, "ready": False}
    report = deployment_status(deployment(), [web_pod("web-1", "Running", [container])], [], NOW)
    assert report.status.short == "pending"
    assert report.status.messages == ["starting, health check not passed yet"]


def test_rollout_in_progress_is_not_up_to_date() -> None:
    pods = [web_pod("web-1", "Running", [running(600)]), web_pod("web-2", "Running", [running(5)])]
    rolling = deployment(2, generation=3, observed=3, updated=1, total=3)
    assert deployment_status(rolling, pods, [], NOW).status.up_to_date is False
    unseen = deployment(2, generation=4, observed=3)
    assert deployment_status(unseen, pods, [], NOW).status.up_to_date is False
    assert deployment_status(deployment(2), pods, [], NOW).status.up_to_date is True


def test_missing_pods_and_terminating_or_ended_ones() -> None:
    leaving = web_pod("web-0", "Running", [running(900)])
    leaving["metadata"]["deletionTimestamp"] = ago(1)
    evicted = web_pod("web-e", "Failed", [], reason="Evicted", message="low on memory")
    pods = [web_pod("web-1", "Running", [running(60)]), leaving, evicted]
    report = deployment_status(deployment(2), pods, [], NOW)
    assert report.status.short == "pending"
    assert report.status.messages == ["1 of 2 pods exist"]


# --- scheduled jobs ---


def cronjob(**status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": NS, "uid": "uid-nightly"},
        "spec": {"schedule": "17 3 * * *", "suspend": False},
        "status": status,
    }


def test_waiting_for_scheduled_time() -> None:
    report = cronjob_status(cronjob(), [], [], [], NOW)
    assert report.status.short == "pending"
    assert report.status.messages == ["Waiting for scheduled time"]
    assert report.status.previous_schedule is None
    assert report.status.next_schedule == next_fire_time("17 3 * * *", NOW)
    assert report.status.next_schedule == dt.datetime(2024, 5, 2, 3, 17, tzinfo=dt.UTC)
    assert report.status_short == "Waiting for scheduled time"
    assert report.status_long == (
        "Waiting for scheduled time. Next schedule time: 2024-05-02T03:17:00Z"
    )


def test_last_run_succeeded() -> None:
    last = job(
        "nightly-28573637",
        owner="nightly",
        status={
            "startTime": ago(3600),
            "completionTime": ago(3590),
            "conditions": [condition("Complete", seconds_ago=3590)],
        },
    )
    report = cronjob_status(
        cronjob(lastScheduleTime=ago(3600), lastSuccessfulTime=ago(3590)), [last], [], [], NOW
    )
    assert report.status.short == "succeeded"
    assert report.status.duration == "10s"
    assert report.status.previous_schedule == NOW - dt.timedelta(hours=1)
    assert report.status_short == "Last schedule time: 2024-05-01T11:00:00Z"
    assert report.status_long == (
        "Last run succeeded after 10s. Last schedule time: 2024-05-01T11:00:00Z. "
        "Next schedule time: 2024-05-02T03:17:00Z"
    )


def test_last_run_failed() -> None:
    last = job(
        "nightly-28573637",
        owner="nightly",
        status={
            "startTime": ago(3600),
            "conditions": [condition("Failed", reason="BackoffLimitExceeded")],
        },
    )
    pods = [job_pod("nightly-28573637", "Failed", [terminated(2)])]
    report = cronjob_status(cronjob(lastScheduleTime=ago(3600)), [last], pods, [], NOW)
    assert report.status.short == "failed"
    assert report.status.messages == ["exit code 2"]
    assert report.status_short.startswith("Last schedule time: ")


def test_active_run_is_reported_with_the_schedule() -> None:
    old = job(
        "nightly-1",
        owner="nightly",
        status={"startTime": ago(90000), "conditions": [condition("Complete")]},
    )
    current = job("nightly-2", owner="nightly", status={"startTime": ago(60), "active": 1})
    unrelated = job("other-1", owner="other", status={"startTime": ago(30), "active": 1})
    pods = [job_pod("nightly-2", "Running", [running(55)])]
    status = {"lastScheduleTime": ago(60), "active": [{"kind": "Job", "name": "nightly-2"}]}
    report = cronjob_status(cronjob(**status), [old, current, unrelated], pods, [], NOW)
    assert report.status.short == "running"
    assert report.status.duration == "1m0s"
    assert report.status_short == "Running"
    assert report.status.next_schedule is not None


def test_suspended_cronjob_has_no_next_schedule() -> None:
    obj = cronjob()
    obj["spec"]["suspend"] = True
    report = cronjob_status(obj, [], [], [], NOW)
    assert report.status.next_schedule is None
    assert report.status_long.endswith("Suspended")


# --- helpers ---


def test_compute_status_dispatches_on_kind() -> None:
    assert compute_status(cronjob(), now=NOW).status_short == "Waiting for scheduled time"
    assert compute_status(job("x", status={}), now=NOW).status.short == "pending"
    assert compute_status(deployment(), now=NOW).status.messages == ["0 of 1 pods exist"]
    with pytest.raises(ValueError, match="Service"):
        compute_status({"kind": "Service"}, now=NOW)


def test_quota_message() -> None:
    event = {"reason": "FailedCreate", "message": QUOTA_CPU_MEMORY}
    assert quota_message([event]) == "Unable to start, out of quota for cpu, memory"
    odd = {"reason": "FailedCreate", "message": "exceeded quota: q (details cut)"}
    assert quota_message([odd]) == "Unable to start, out of quota"
    assert (
        quota_message([{"reason": "FailedCreate", "message": "admission webhook denied"}]) is None
    )
    assert quota_message([{"reason": "Scheduled", "message": QUOTA_CPU_MEMORY}]) is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (45, "45s"), (60, "1m0s"), (3723, "1h2m3s"), (90061, "1d1h1m1s")],
)
def test_format_duration(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text
