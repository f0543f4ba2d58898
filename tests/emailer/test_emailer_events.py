"""Which events a pod shows, with stable keys, and which each emails option mails."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from emailer.pods import job_pod, running, terminated, waiting

from toolforge_emailer.events import WANTED, pod_events, pod_ref

NOW = datetime(2026, 12, 4, 22, 30, tzinfo=UTC)


def kinds(pod: dict[str, object]) -> list[tuple[str, str]]:
    return [(e.kind, e.key) for e in pod_events(pod, NOW)]


def test_a_failed_run_gives_its_start_and_its_failure_with_the_exit_code() -> None:
    events = pod_events(job_pod(statuses=[terminated(3)]), NOW)
    assert [(e.kind, e.key) for e in events] == [
        ("started", "start:containerd://c1"),
        ("failed", "end:containerd://c1"),
    ]
    failed = events[1]
    assert (failed.tool, failed.job, failed.exit_code, failed.job_type) == (
        "mytool", "boom", 3, "one-off",
    )  # fmt: skip
    assert failed.at == datetime(2026, 12, 4, 22, 13, 5, tzinfo=UTC)


def test_success_is_finished_and_oom_is_a_failure() -> None:
    assert kinds(job_pod(statuses=[terminated(0)]))[1][0] == "finished"
    oom = pod_events(job_pod(statuses=[terminated(137, reason="OOMKilled")]), NOW)[1]
    assert (oom.kind, oom.reason) == ("failed", "OOMKilled")


def test_the_same_pod_seen_again_gives_the_same_keys() -> None:
    """A MODIFIED event or a re-list must not look like new events."""
    pod = job_pod(statuses=[terminated(3)])
    assert kinds(pod) == kinds(pod)
    later = datetime(2027, 1, 1, tzinfo=UTC)
    assert [e.key for e in pod_events(pod, later)] == [e.key for e in pod_events(pod, NOW)]


def test_a_restart_gives_the_previous_run_end_and_a_restarted_event() -> None:
    last = terminated(1, cid="containerd://old")["state"]["terminated"]
    events = pod_events(
        job_pod(
            component="deployments",
            statuses=[running(cid="containerd://new", restarts=1, last=last)],
        ),
        NOW,
    )
    by_kind = {e.kind: e for e in events}
    assert by_kind["failed"].key == "end:containerd://old"
    assert by_kind["failed"].previous is True
    assert by_kind["restarted"].key == "start:containerd://new"
    assert by_kind["restarted"].job_type == "continuous"


def test_start_failures_and_failed_pods() -> None:
    (nostart,) = pod_events(job_pod(statuses=[waiting("ErrImagePull")]), NOW)
    assert (nostart.kind, nostart.reason) == ("start_failed", "ErrImagePull")
    assert pod_events(job_pod(statuses=[waiting("ContainerCreating")]), NOW) == []
    (evicted,) = pod_events(job_pod(phase="Failed", reason="Evicted", message="low memory"), NOW)
    assert (evicted.kind, evicted.reason, evicted.key) == ("pod_failed", "Evicted", "podfail:uid-1")
    # a failed pod whose container failed reports the container, not the pod a second time
    assert [e.kind for e in pod_events(job_pod(phase="Failed", statuses=[terminated(2)]), NOW)] == [
        "started", "failed",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("namespace", "emails"),
    [
        ("kube-system", "all"),
        ("tool-", "all"),
        ("tool-Bad_Name", "all"),
        ("tool-ok", "none"),
        ("tool-ok", "sometimes"),
    ],
)
def test_pods_outside_tool_namespaces_or_without_mails_are_ignored(
    namespace: str, emails: str
) -> None:
    pod = job_pod(namespace=namespace, emails=emails, statuses=[terminated(1)])
    assert pod_ref(pod) is None
    assert pod_events(pod, NOW) == []


def test_the_tool_comes_from_the_namespace_not_from_a_label() -> None:
    pod = job_pod(tool="victim", namespace="tool-attacker", statuses=[terminated(1)])
    assert {e.tool for e in pod_events(pod, NOW)} == {"attacker"}


def test_what_each_option_mails() -> None:
    assert WANTED["onfailure"] == {"failed", "pod_failed"}
    assert WANTED["onfinish"] == {"finished", "failed", "pod_failed"}
    assert WANTED["all"] >= {"started", "restarted", "finished", "failed", "start_failed"}
