"""Pod objects as the apiserver serves them, for the emailer's pure tests."""

from __future__ import annotations

from typing import Any


def job_pod(
    *,
    tool: str = "mytool",
    job: str = "boom",
    emails: str = "onfailure",
    uid: str = "uid-1",
    component: str = "jobs",
    filelog: bool = False,
    statuses: list[dict[str, Any]] | None = None,
    phase: str = "Running",
    namespace: str | None = None,
    **status: Any,
) -> dict[str, Any]:
    """A pod of job ``job`` of ``tool`` with the jobs API's labels and ``statuses``."""
    labels = {
        "toolforge": "tool",
        "app.kubernetes.io/managed-by": "toolforge-jobs-framework",
        "app.kubernetes.io/created-by": tool,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/name": job,
        "jobs.toolforge.org/emails": emails,
    }
    if filelog:
        labels["jobs.toolforge.org/filelog"] = "yes"
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": f"{job}-x7k2p",
            "namespace": namespace or f"tool-{tool}",
            "uid": uid,
            "resourceVersion": "100",
            "labels": labels,
        },
        "status": {"phase": phase, "containerStatuses": statuses or [], **status},
    }


def terminated(
    code: int, *, cid: str = "containerd://c1", reason: str | None = None, restarts: int = 0
) -> dict[str, Any]:
    """A container status whose current state is ``terminated`` with ``code``."""
    return {
        "name": "job",
        "restartCount": restarts,
        "containerID": cid,
        "state": {
            "terminated": {
                "exitCode": code,
                "reason": reason or ("Completed" if code == 0 else "Error"),
                "startedAt": "2026-12-04T22:13:01Z",
                "finishedAt": "2026-12-04T22:13:05Z",
                "containerID": cid,
            }
        },
    }


def running(
    *, cid: str = "containerd://c1", restarts: int = 0, last: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A running container (``last``: its ``lastState.terminated``)."""
    status: dict[str, Any] = {
        "name": "job",
        "restartCount": restarts,
        "containerID": cid,
        "state": {"running": {"startedAt": "2026-12-04T22:14:00Z"}},
    }
    if last is not None:
        status["lastState"] = {"terminated": last}
    return status


def waiting(reason: str, *, restarts: int = 0) -> dict[str, Any]:
    """A container waiting for ``reason``."""
    return {
        "name": "job",
        "restartCount": restarts,
        "state": {"waiting": {"reason": reason, "message": f"because {reason}"}},
    }
