"""Pure status computation: Kubernetes object dicts (+ pods, events, now) -> job status.

REFERENCE.md ("Jobs API"): statuses come from the objects, their pods, conditions and events;
every observation falls in one category and the job takes the highest one, in the order
failed > scheduling > initializing > running > restarted > succeeded > unknown. Categories
map to the structured ``status.short``: failed -> ``failed``, scheduling and initializing ->
``pending``, running and restarted -> ``running``, succeeded -> ``succeeded``.
``status.messages`` gathers the observations' messages in that order (``"restarted (3)"``,
``"exit code 1"``, ``"Unable to start, out of quota for cpu, memory"``).

What is observed:

- pods: unschedulable (``PodScheduled`` false) -> scheduling; waiting in
  ``ContainerCreating``/``PodInitializing``, or running before the startup probe passed ->
  initializing; ``ImagePullBackOff``, ``ErrImagePull``, ``CrashLoopBackOff``,
  ``CreateContainerConfigError`` and kin -> failed, with their reason; running -> running;
  restarts -> restarted (``restarted (N)``, and the last exit code); terminated with exit code
  0 -> succeeded, non-zero -> failed (``exit code N``, or ``out of memory (OOMKilled)``);
  evicted and other failed pods -> failed with the pod's reason;
- Job conditions ``Complete`` / ``Failed`` (``BackoffLimitExceeded``, ``DeadlineExceeded``);
  retries of a running Job (its failed pods) -> restarted;
- Deployment conditions ``ReplicaFailure`` and ``Progressing`` (``ProgressDeadlineExceeded``),
  ``observedGeneration``/``updatedReplicas`` for ``up_to_date``;
- ``FailedCreate`` events (and ``ReplicaFailure``) saying ``exceeded quota`` while pods are
  missing -> failed, ``Unable to start, out of quota for <resources>``;
- CronJobs: the newest active Job as above; without one, the last finished run's result, or
  pending with ``Waiting for scheduled time``; ``previous_schedule`` is ``lastScheduleTime``,
  ``next_schedule`` the next fire time of ``spec.schedule`` (UTC) unless suspended.

The legacy strings: ``status_short`` is ``Pending``/``Running``/``Completed``/``Failed``/
``Unknown``, and for a CronJob without an active Job ``Last schedule time: <time>`` or
``Waiting for scheduled time``; ``status_long`` is a sentence with the duration, messages and
schedule times.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from toolforge_jobs.models import JobStatus, StatusShort
from toolforge_jobs.schedule import next_fire_time

__all__ = [
    "StatusReport",
    "compute_status",
    "cronjob_status",
    "deployment_status",
    "format_duration",
    "job_status",
    "pods_of_job",
    "quota_message",
]

Obj = dict[str, Any]

_FAILED_WAITING = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "PreCreateHookError",
        "PostStartHookError",
    }
)
_QUIET_WAITING = frozenset({"CrashLoopBackOff"})  # its message repeats the pod name only
_REQUESTED_RE = re.compile(r"requested: (?P<items>.*?), used:")
_LEGACY_SHORT: dict[StatusShort, str] = {
    "pending": "Pending",
    "running": "Running",
    "succeeded": "Completed",
    "failed": "Failed",
    "unknown": "Unknown",
}


class _Category(enum.IntEnum):
    """Observation categories, most important first."""

    FAILED = 0
    SCHEDULING = 1
    INITIALIZING = 2
    RUNNING = 3
    RESTARTED = 4
    SUCCEEDED = 5
    UNKNOWN = 6


_SHORT: dict[_Category, StatusShort] = {
    _Category.FAILED: "failed",
    _Category.SCHEDULING: "pending",
    _Category.INITIALIZING: "pending",
    _Category.RUNNING: "running",
    _Category.RESTARTED: "running",
    _Category.SUCCEEDED: "succeeded",
    _Category.UNKNOWN: "unknown",
}


@dataclass(frozen=True)
class _Observation:
    category: _Category
    message: str | None = None


@dataclass(frozen=True)
class StatusReport:
    """A job's status: the structured ``status`` and the legacy ``status_short`` and
    ``status_long`` strings of the API's job model."""

    status: JobStatus
    status_short: str
    status_long: str


def _time(value: Any) -> dt.datetime | None:
    """An RFC 3339 timestamp of the API (``2024-05-01T12:00:00Z``) as an aware datetime."""
    if not isinstance(value, str) or not value:
        return None
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _seconds(start: dt.datetime | None, end: dt.datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, int((end - start).total_seconds()))


def format_duration(seconds: int) -> str:
    """``3723`` -> ``"1h2m3s"``, ``45`` -> ``"45s"``, ``90061`` -> ``"1d1h1m1s"``."""
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count, seconds = divmod(seconds, size)
        if count or parts:
            parts.append(f"{count}{unit}")
    parts.append(f"{seconds}s")
    return "".join(parts)


def _duration(seconds: int | None) -> str | None:
    """``status.duration`` on the wire: :func:`format_duration`, ``None`` when unknown."""
    return None if seconds is None else format_duration(seconds)


def _conditions(obj: Obj) -> dict[str, Obj]:
    return {c.get("type", ""): c for c in (obj.get("status") or {}).get("conditions") or []}


def _is_true(condition: Obj | None) -> bool:
    return condition is not None and condition.get("status") == "True"


def _created(obj: Obj) -> dt.datetime:
    return _time(obj.get("metadata", {}).get("creationTimestamp")) or dt.datetime.min.replace(
        tzinfo=dt.UTC
    )


def _live(pods: Iterable[Obj]) -> list[Obj]:
    """Pods not being deleted, oldest first."""
    return sorted(
        (p for p in pods if not p.get("metadata", {}).get("deletionTimestamp")), key=_created
    )


def _terminated_at(pod: Obj) -> dt.datetime | None:
    """When the pod's last container ended, from its ``state.terminated.finishedAt``."""
    ends = [
        _time(((c.get("state") or {}).get("terminated") or {}).get("finishedAt"))
        for c in (pod.get("status") or {}).get("containerStatuses") or []
    ]
    known = [e for e in ends if e is not None]
    return max(known) if known else None


def quota_message(events: Iterable[Obj]) -> str | None:
    """``"Unable to start, out of quota for cpu, memory"`` from ``FailedCreate`` events (or
    ``ReplicaFailure`` conditions passed as ``{"reason": "FailedCreate", "message": ...}``)
    whose message says ``exceeded quota``; ``None`` when there is none.

    The resources are those of the quota admission message's ``requested:`` list without
    their ``requests.``/``limits.`` prefixes, sorted.
    """
    resources: set[str] = set()
    found = False
    for event in events:
        message = event.get("message") or ""
        if event.get("reason") != "FailedCreate" or "exceeded quota" not in message:
            continue
        found = True
        match = _REQUESTED_RE.search(message)
        if match:
            for item in match["items"].split(","):
                name = item.split("=", 1)[0].strip()
                resources.add(name.removeprefix("requests.").removeprefix("limits."))
    if not found:
        return None
    if not resources:
        return "Unable to start, out of quota"
    return f"Unable to start, out of quota for {', '.join(sorted(resources))}"


def _creation_failures(events: Iterable[Obj]) -> list[_Observation]:
    """Failed observations from FailedCreate events (quota or other admission errors)."""
    events = [e for e in events if e.get("reason") == "FailedCreate"]
    quota = quota_message(events)
    observations = [_Observation(_Category.FAILED, quota)] if quota else []
    for event in events:
        if "exceeded quota" not in (event.get("message") or ""):
            observations.append(
                _Observation(_Category.FAILED, f"Unable to start: {event.get('message')}")
            )
    return observations


def _terminated(state: Obj, *, last: bool) -> _Observation:
    code = state.get("exitCode")
    prefix = "last " if last else ""
    if state.get("reason") == "OOMKilled":
        message = f"{prefix}run out of memory (OOMKilled)"
    else:
        message = f"{prefix}exit code {code}"
    if last:
        return _Observation(_Category.RESTARTED, message)
    if code == 0:
        return _Observation(_Category.SUCCEEDED)
    return _Observation(_Category.FAILED, message)


def _container_observations(status: Obj) -> list[_Observation]:
    observations = []
    state = status.get("state") or {}
    if "waiting" in state:
        waiting = state["waiting"] or {}
        reason = waiting.get("reason") or "Waiting"
        message = waiting.get("message")
        if reason in _FAILED_WAITING:
            text = f"{reason}: {message}" if message and reason not in _QUIET_WAITING else reason
            observations.append(_Observation(_Category.FAILED, text))
        else:
            observations.append(_Observation(_Category.INITIALIZING, reason))
    elif "running" in state:
        if status.get("started") is False:
            observations.append(
                _Observation(_Category.INITIALIZING, "starting, health check not passed yet")
            )
        else:
            observations.append(_Observation(_Category.RUNNING))
    elif "terminated" in state:
        observations.append(_terminated(state["terminated"] or {}, last=False))
    restarts = status.get("restartCount") or 0
    if restarts:
        observations.append(_Observation(_Category.RESTARTED, f"restarted ({restarts})"))
        last = (status.get("lastState") or {}).get("terminated")
        if last:
            observations.append(_terminated(last, last=True))
    return observations


def _pod_observations(pod: Obj) -> list[_Observation]:
    status = pod.get("status") or {}
    phase = status.get("phase")
    observations = []
    scheduled = _conditions(pod).get("PodScheduled")
    if scheduled is not None and scheduled.get("status") == "False":
        detail = scheduled.get("message") or scheduled.get("reason") or "no node fits"
        observations.append(_Observation(_Category.SCHEDULING, f"cannot be scheduled: {detail}"))
    if phase == "Failed" and status.get("reason"):
        message = status.get("message")
        reason = status["reason"]
        observations.append(
            _Observation(_Category.FAILED, f"{reason}: {message}" if message else reason)
        )
    containers = status.get("containerStatuses") or []
    for container in containers:
        observations.extend(_container_observations(container))
    if not containers and not observations:
        if phase == "Pending":
            observations.append(_Observation(_Category.INITIALIZING, "pod is starting"))
        elif phase == "Succeeded":
            observations.append(_Observation(_Category.SUCCEEDED))
        elif phase == "Failed":
            observations.append(_Observation(_Category.FAILED, "pod failed"))
        elif phase == "Running":
            observations.append(_Observation(_Category.RUNNING))
        else:
            observations.append(_Observation(_Category.UNKNOWN, f"pod phase {phase}"))
    return observations


def _combine(observations: Sequence[_Observation]) -> tuple[StatusShort, list[str]]:
    if not observations:
        return "unknown", []
    ordered = sorted(observations, key=lambda o: o.category)
    messages: list[str] = []
    for observation in ordered:
        if observation.message and observation.message not in messages:
            messages.append(observation.message)
    return _SHORT[ordered[0].category], messages


def _long(
    short: StatusShort,
    messages: Sequence[str],
    duration: int | None,
    extra: Sequence[str] = (),
    *,
    headline: str | None = None,
) -> str:
    head = headline or _LEGACY_SHORT[short]
    if duration is not None:
        word = "for" if short in ("running", "pending") else "after"
        head = f"{head} {word} {format_duration(duration)}"
    if messages:
        head = f"{head}: {', '.join(messages)}"
    return ". ".join([head, *extra])


def pods_of_job(job: Obj, pods: Iterable[Obj]) -> list[Obj]:
    """The pods of a Job dict: those it controls (ownerReference or the
    ``batch.kubernetes.io/controller-uid`` label, Kubernetes' own selector of a Job's pods),
    and, for a pod that names no controlling Job, those with its ``job-name`` labels.

    A pod of an earlier Job of the same name (a finished one-off job that was just replaced)
    names its own Job's uid and so is not this Job's, even while the garbage collector has not
    removed it yet."""
    meta = job.get("metadata", {})
    name, uid = meta.get("name"), meta.get("uid")
    result = []
    for pod in pods:
        pod_meta = pod.get("metadata", {})
        labels = pod_meta.get("labels") or {}
        owners = {o.get("uid") for o in pod_meta.get("ownerReferences") or [] if o.get("uid")}
        controller = labels.get("batch.kubernetes.io/controller-uid") or labels.get(
            "controller-uid"
        )
        if controller:
            owners.add(controller)
        if uid and owners:
            if uid in owners:
                result.append(pod)
        elif name in (labels.get("batch.kubernetes.io/job-name"), labels.get("job-name")):
            result.append(pod)
    return result


def _job_run(
    job: Obj, pods: Sequence[Obj], events: Sequence[Obj], now: dt.datetime
) -> tuple[StatusShort, list[str], int | None]:
    """``(short, messages, duration)`` of one Job run."""
    status = job.get("status") or {}
    conditions = _conditions(job)
    start = _time(status.get("startTime"))
    live = _live(pods)
    latest = live[-1:]
    if _is_true(conditions.get("Complete")) or _is_true(conditions.get("SuccessCriteriaMet")):
        end = _time(status.get("completionTime")) or _time(
            conditions.get("Complete", {}).get("lastTransitionTime")
        )
        return "succeeded", [], _seconds(start, end)
    failed = conditions.get("Failed") or conditions.get("FailureTarget")
    if failed is not None and _is_true(failed):
        observations = [o for p in latest for o in _pod_observations(p)]
        observations = [o for o in observations if o.category == _Category.FAILED]
        reason = failed.get("reason")
        if reason == "DeadlineExceeded":
            deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
            text = f"timed out after {deadline} seconds" if deadline else "timed out"
            observations.insert(0, _Observation(_Category.FAILED, text))
        elif reason == "BackoffLimitExceeded":
            retries = (job.get("spec") or {}).get("backoffLimit", 0)
            if retries:
                observations.append(_Observation(_Category.FAILED, f"failed {retries + 1} times"))
        elif not observations:
            observations.append(_Observation(_Category.FAILED, failed.get("message") or reason))
        observations.append(_Observation(_Category.FAILED))
        short, messages = _combine(observations)
        end = _time(failed.get("lastTransitionTime"))
        return short, messages, _seconds(start, end)
    failed_pods = sum(1 for p in live if (p.get("status") or {}).get("phase") == "Failed")
    backoff_limit = (job.get("spec") or {}).get("backoffLimit", 6)
    if latest and (latest[0].get("status") or {}).get("phase") == "Failed":
        if max(failed_pods, status.get("failed") or 0) > backoff_limit:
            # No retry left: the Job controller is about to set Failed (it lags the pod).
            observations = [
                o for o in _pod_observations(latest[0]) if o.category == _Category.FAILED
            ]
            observations.append(_Observation(_Category.FAILED))
            short, messages = _combine(observations)
            return short, messages, _seconds(start, _terminated_at(latest[0]))
        # the Job is not finished, so the controller will start another pod
        observations = [_Observation(_Category.INITIALIZING, "retrying")]
        observations += [
            _Observation(_Category.RESTARTED, f"last attempt: {o.message}")
            for o in _pod_observations(latest[0])
            if o.category == _Category.FAILED
        ]
    else:
        observations = [o for p in latest for o in _pod_observations(p)]
    retries = status.get("failed") or 0
    if retries:
        observations.append(_Observation(_Category.RESTARTED, f"restarted ({retries})"))
    if not any(o.category != _Category.RESTARTED for o in observations):
        observations.extend(_creation_failures(events))
    if not observations or all(o.category == _Category.RESTARTED for o in observations):
        observations.append(_Observation(_Category.INITIALIZING, "waiting for a pod to start"))
    short, messages = _combine(observations)
    return short, messages, _seconds(start, now)


def job_status(
    job: Obj, pods: Iterable[Obj], events: Iterable[Obj], now: dt.datetime
) -> StatusReport:
    """The status of a one-off job from its Job dict, its pods and the events of the Job and
    its pods. ``now`` (aware) gives the duration of a running Job."""
    short, messages, duration = _job_run(job, pods_of_job(job, pods), list(events), now)
    return StatusReport(
        status=JobStatus(short=short, messages=messages, duration=_duration(duration)),
        status_short=_LEGACY_SHORT[short],
        status_long=_long(short, messages, duration),
    )


def _finished(job: Obj) -> bool:
    conditions = _conditions(job)
    return any(_is_true(conditions.get(t)) for t in ("Complete", "Failed"))


def _events_for(events: Sequence[Obj], names: set[str]) -> list[Obj]:
    return [e for e in events if (e.get("involvedObject") or {}).get("name") in names]


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cronjob_status(
    cronjob: Obj,
    jobs: Iterable[Obj],
    pods: Iterable[Obj],
    events: Iterable[Obj],
    now: dt.datetime,
) -> StatusReport:
    """The status of a scheduled job from its CronJob dict, the Jobs it created (any in the
    namespace may be passed; those owned by the CronJob are used), their pods and events.
    ``now`` (aware) gives durations and ``next_schedule``."""
    meta = cronjob.get("metadata", {})
    uid, name = meta.get("uid"), meta.get("name")
    spec = cronjob.get("spec") or {}
    status = cronjob.get("status") or {}
    pods, events = list(pods), list(events)
    own = sorted(
        (
            j
            for j in jobs
            if any(
                o.get("kind") == "CronJob"
                and (o.get("uid") == uid if uid else o.get("name") == name)
                for o in j.get("metadata", {}).get("ownerReferences") or []
            )
        ),
        key=_created,
    )
    previous = _time(status.get("lastScheduleTime"))
    upcoming = None if spec.get("suspend") else next_fire_time(spec["schedule"], now)
    extra = []
    if previous is not None:
        extra.append(f"Last schedule time: {_iso(previous)}")
    if upcoming is not None:
        extra.append(f"Next schedule time: {_iso(upcoming)}")
    else:
        extra.append("Suspended")
    active = [j for j in own if not _finished(j)]
    run = (active or own)[-1:] or None
    if run is not None:
        job = run[0]
        job_pods = pods_of_job(job, pods)
        names = {job.get("metadata", {}).get("name", "")}
        names.update(p.get("metadata", {}).get("name", "") for p in job_pods)
        short, messages, duration = _job_run(job, job_pods, _events_for(events, names), now)
    else:
        short, messages, duration = "pending", ["Waiting for scheduled time"], None
    if active:
        legacy = _LEGACY_SHORT[short]
        long = _long(short, messages, duration, extra)
    else:
        legacy = (
            f"Last schedule time: {_iso(previous)}" if previous else "Waiting for scheduled time"
        )
        if run is None:
            long = ". ".join(["Waiting for scheduled time", *extra])
        else:
            long = _long(short, messages, duration, extra, headline=f"Last run {short}")
    return StatusReport(
        status=JobStatus(
            short=short,
            messages=messages,
            duration=_duration(duration),
            previous_schedule=previous,
            next_schedule=upcoming,
        ),
        status_short=legacy,
        status_long=long,
    )


def deployment_status(
    deployment: Obj, pods: Iterable[Obj], events: Iterable[Obj], now: dt.datetime
) -> StatusReport:
    """The status of a continuous job from its Deployment dict, its pods (any pods of the
    namespace may be passed; those matching the selector are used) and the events of the
    Deployment, its ReplicaSets and pods. ``now`` (aware) gives the duration."""
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    desired = spec.get("replicas", 1)
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    # Pods that ended (evicted, or gone from a node) linger until garbage-collected while
    # the ReplicaSet has replaced them: only the others count.
    mine = _live(
        p
        for p in pods
        if all((p.get("metadata", {}).get("labels") or {}).get(k) == v for k, v in selector.items())
        and (p.get("status") or {}).get("phase") not in ("Failed", "Succeeded")
    )
    observations = [o for p in mine for o in _pod_observations(p)]
    conditions = _conditions(deployment)
    failure = conditions.get("ReplicaFailure")
    if len(mine) < desired:
        sources = list(events)
        if failure is not None and _is_true(failure):
            sources.append({"reason": "FailedCreate", "message": failure.get("message")})
        observations.extend(_creation_failures(sources))
        observations.append(
            _Observation(_Category.INITIALIZING, f"{len(mine)} of {desired} pods exist")
        )
    progressing = conditions.get("Progressing")
    if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        observations.append(
            _Observation(_Category.FAILED, f"rollout stuck: {progressing.get('message')}")
        )
    generation = deployment.get("metadata", {}).get("generation", 0)
    up_to_date = (
        status.get("observedGeneration", -1) >= generation
        and status.get("updatedReplicas", 0) >= desired
        and status.get("replicas", 0) == status.get("updatedReplicas", 0)
    )
    short, messages = _combine(observations)
    starts = [
        t
        for p in mine
        if (p.get("status") or {}).get("phase") == "Running"
        for t in [_time((p.get("status") or {}).get("startTime"))]
        if t is not None
    ]
    duration = _seconds(min(starts), now) if starts and short == "running" else None
    return StatusReport(
        status=JobStatus(
            short=short, messages=messages, duration=_duration(duration), up_to_date=up_to_date
        ),
        status_short=_LEGACY_SHORT[short],
        status_long=_long(short, messages, duration),
    )


def compute_status(
    primary: Obj,
    *,
    jobs: Iterable[Obj] = (),
    pods: Iterable[Obj] = (),
    events: Iterable[Obj] = (),
    now: dt.datetime,
) -> StatusReport:
    """Dispatch on ``primary["kind"]`` (Job, CronJob or Deployment).

    Raises:
        ValueError: another kind.
    """
    kind = primary.get("kind")
    if kind == "Job":
        return job_status(primary, pods, events, now)
    if kind == "CronJob":
        return cronjob_status(primary, jobs, pods, events, now)
    if kind == "Deployment":
        return deployment_status(primary, pods, events, now)
    raise ValueError(f"no status for kind {kind!r}")
