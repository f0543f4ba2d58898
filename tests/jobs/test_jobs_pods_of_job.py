"""Which pods belong to a Job (``toolforge_jobs.status.pods_of_job``): a replaced one-off job's
status and logs must not come from the previous run's pod, which keeps the same name labels
until the garbage collector removes it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from toolforge_jobs.status import job_status, pods_of_job

NEW_UID, OLD_UID = "uid-new", "uid-old"


def _job(uid: str | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "again", "namespace": "tool-t"}
    if uid:
        metadata["uid"] = uid
    return {"kind": "Job", "metadata": metadata, "spec": {"backoffLimit": 0}, "status": {}}


def _pod(name: str, owner_uid: str | None, phase: str, *, label_uid: str | None = None) -> Any:
    labels = {"job-name": "again", "batch.kubernetes.io/job-name": "again"}
    if label_uid:
        labels["batch.kubernetes.io/controller-uid"] = label_uid
    metadata: dict[str, Any] = {"name": name, "labels": labels}
    if owner_uid:
        metadata["ownerReferences"] = [{"kind": "Job", "name": "again", "uid": owner_uid}]
    return {"metadata": metadata, "status": {"phase": phase}}


def test_the_previous_runs_pod_is_not_the_new_jobs() -> None:
    old = _pod("again-old", OLD_UID, "Succeeded", label_uid=OLD_UID)
    new = _pod("again-new", NEW_UID, "Pending", label_uid=NEW_UID)
    assert pods_of_job(_job(NEW_UID), [old, new]) == [new]
    assert pods_of_job(_job(OLD_UID), [old, new]) == [old]


def test_the_controller_uid_label_alone_decides_too() -> None:
    old = _pod("again-old", None, "Succeeded", label_uid=OLD_UID)
    assert pods_of_job(_job(NEW_UID), [old]) == []


def test_a_pod_naming_no_controller_is_matched_by_its_job_name_labels() -> None:
    bare = _pod("again-x", None, "Running")
    assert pods_of_job(_job(NEW_UID), [bare]) == [bare]
    assert pods_of_job(_job(None), [_pod("again-y", OLD_UID, "Running")]) != []


def test_a_replaced_job_is_not_reported_finished_by_the_old_pod() -> None:
    old = _pod("again-old", OLD_UID, "Succeeded", label_uid=OLD_UID)
    report = job_status(_job(NEW_UID), [old], [], dt.datetime(2026, 12, 5, tzinfo=dt.UTC))
    assert report.status.short != "succeeded", report
