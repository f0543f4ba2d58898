"""What happened to a job, read from its pod: the events the emailer mails about.

:func:`pod_events` turns one pod (a JSON dict as the apiserver serves it) into every event its
current status shows, each with a stable ``key``: seeing the same pod again (a MODIFIED event,
a re-list after a restart or a ``410 Gone``) gives the same keys, so the daemon mails each event
once (it remembers the keys per pod uid, :mod:`toolforge_emailer.state`).

Kinds and keys (container runtime IDs are unique per run of a container):

- ``started`` / ``restarted``: a container run began (``restarted`` when the container's
  ``restartCount`` is above 0); key ``start:<containerID>``. A run seen only after it ended
  (short one-off jobs) gets its ``started`` event from ``terminated.startedAt``.
- ``finished``: a run ended with exit code 0; ``failed``: with another code, or
  ``OOMKilled``; key ``end:<containerID>``. ``lastState.terminated`` counts too (the run
  before a restart).
- ``start_failed``: the container cannot start (``waiting`` with an image or configuration
  error, e.g. ``ErrImagePull``, ``CreateContainerConfigError``); key
  ``nostart:<pod uid>/<container>/<restartCount>``.
- ``pod_failed``: the pod failed without a failed container to show for it (evicted, node
  lost, deadline exceeded); key ``podfail:<pod uid>``.

Which kinds each ``jobs.toolforge.org/emails`` option mails (REFERENCE.md, "Emailer";
issue 19): :data:`WANTED`. ``onfailure``: a failed run or pod; ``onfinish``: every ended run
or failed pod; ``all``: every event above.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from toolforge_auth.tools import is_tool_name

__all__ = [
    "EMAILS_LABEL",
    "EMAILS_SELECTOR",
    "WANTED",
    "EventKind",
    "JobEvent",
    "PodRef",
    "parse_time",
    "pod_events",
    "pod_ref",
]

EMAILS_LABEL = "jobs.toolforge.org/emails"
#: The pods the emailer watches: jobs that asked for mails (label selector).
EMAILS_SELECTOR = f"{EMAILS_LABEL} in (all,onfailure,onfinish)"
FILELOG_LABEL = "jobs.toolforge.org/filelog"
JOB_LABEL = "app.kubernetes.io/name"
COMPONENT_LABEL = "app.kubernetes.io/component"
_JOB_TYPES = {"jobs": "one-off", "cronjobs": "scheduled", "deployments": "continuous"}
#: ``waiting`` reasons that mean the container cannot start (kubelet's image and
#: configuration errors); ``CrashLoopBackOff`` is not one: its runs' ends are reported.
START_FAILURES = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
_MAX_MESSAGE = 500

EventKind = Literal["started", "restarted", "finished", "failed", "start_failed", "pod_failed"]
Option = Literal["all", "onfailure", "onfinish"]

#: Event kinds mailed for each ``emails`` option.
WANTED: Mapping[str, frozenset[str]] = {
    "onfailure": frozenset({"failed", "pod_failed"}),
    "onfinish": frozenset({"finished", "failed", "pod_failed"}),
    "all": frozenset({"started", "restarted", "finished", "failed", "start_failed", "pod_failed"}),
}


class PodRef(BaseModel):
    """The job a pod belongs to, from its namespace and labels."""

    model_config = ConfigDict(frozen=True)

    tool: str
    namespace: str
    pod: str
    uid: str
    job: str
    job_type: str
    option: Option
    filelog: bool
    deleting: bool


class JobEvent(BaseModel):
    """One event of a job (see the module documentation). ``output`` is filled later with
    the last lines of the container's log where there is one (``output_note`` says why not)."""

    key: str
    kind: EventKind
    tool: str
    job: str
    job_type: str
    pod: str
    pod_uid: str
    container: str | None = None
    at: datetime
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    #: The pod was being deleted when the run ended (a deleted job, a Job deadline).
    deleting: bool = False
    #: The run is the one before a restart (its log is the container's ``previous`` one).
    previous: bool = False
    output: list[str] | None = None
    output_note: str | None = None

    @property
    def ended(self) -> bool:
        """A run ended (its output can be read)."""
        return self.kind in ("finished", "failed")


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time of the apiserver (``2026-12-04T22:13:05Z``), ``None`` if absent."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def pod_ref(pod: Mapping[str, Any]) -> PodRef | None:
    """The job of ``pod``, or ``None`` when it is not a tool's job pod that asked for mails
    (namespace not ``tool-<valid tool name>``, no uid, an unknown ``emails`` option). The tool
    comes from the namespace, never from a label the tool could set."""
    meta = pod.get("metadata") or {}
    namespace = str(meta.get("namespace") or "")
    tool = namespace.removeprefix("tool-")
    labels = meta.get("labels") or {}
    option = labels.get(EMAILS_LABEL)
    uid = meta.get("uid")
    if not (namespace.startswith("tool-") and is_tool_name(tool) and uid):
        return None
    if option not in ("all", "onfailure", "onfinish"):
        return None
    name = str(meta.get("name") or "")
    return PodRef(
        tool=tool,  # option is one of the three (checked above)
        namespace=namespace,
        pod=name,
        uid=str(uid),
        job=str(labels.get(JOB_LABEL) or name)[:253],
        job_type=_JOB_TYPES.get(str(labels.get(COMPONENT_LABEL)), "job"),
        option=option,
        filelog=labels.get(FILELOG_LABEL) == "yes",
        deleting=bool(meta.get("deletionTimestamp")),
    )


def _short(text: Any) -> str | None:
    if not text:
        return None
    text = str(text).strip()
    short: str = text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"
    return short


def pod_events(pod: Mapping[str, Any], now: datetime) -> list[JobEvent]:
    """Every event ``pod``'s status shows, oldest first (see the module documentation);
    ``[]`` for a pod that :func:`pod_ref` does not take. ``now`` dates the events that carry
    no time of their own (``start_failed``, ``pod_failed`` without a condition time)."""
    ref = pod_ref(pod)
    if ref is None:
        return []
    events = list(_container_events(ref, pod, now))
    status = pod.get("status") or {}
    if status.get("phase") == "Failed" and not any(e.kind == "failed" for e in events):
        events.append(
            _event(
                ref,
                key=f"podfail:{ref.uid}",
                kind="pod_failed",
                at=_failed_at(status) or now,
                reason=status.get("reason") or "Failed",
                message=_short(status.get("message")),
            )
        )
    events.sort(key=lambda e: (e.at, e.kind != "started" and e.kind != "restarted"))
    return events


def _event(ref: PodRef, **fields: Any) -> JobEvent:
    return JobEvent(
        tool=ref.tool,
        job=ref.job,
        job_type=ref.job_type,
        pod=ref.pod,
        pod_uid=ref.uid,
        deleting=ref.deleting,
        **fields,
    )


def _failed_at(status: Mapping[str, Any]) -> datetime | None:
    for condition in status.get("conditions") or ():
        if condition.get("type") == "Ready" and condition.get("status") == "False":
            return parse_time(condition.get("lastTransitionTime"))
    return None


def _container_events(ref: PodRef, pod: Mapping[str, Any], now: datetime) -> Iterator[JobEvent]:
    status = pod.get("status") or {}
    for cs in status.get("containerStatuses") or ():
        name = str(cs.get("name") or "")
        restarts = int(cs.get("restartCount") or 0)
        state = cs.get("state") or {}
        last = cs.get("lastState") or {}
        for term, previous in ((last.get("terminated"), True), (state.get("terminated"), False)):
            if not term:
                continue
            cid = term.get("containerID") or (
                f"{ref.uid}/{name}/{term.get('startedAt')}/{term.get('finishedAt')}"
            )
            code = int(term.get("exitCode") or 0)
            reason = term.get("reason")
            started = parse_time(term.get("startedAt"))
            if started is not None:
                yield _event(ref, key=f"start:{cid}", kind="started", container=name, at=started)
            yield _event(
                ref,
                key=f"end:{cid}",
                kind="failed" if code != 0 or reason == "OOMKilled" else "finished",
                container=name,
                at=parse_time(term.get("finishedAt")) or now,
                exit_code=code,
                reason=reason,
                message=_short(term.get("message")),
                previous=previous,
            )
        running = state.get("running")
        if running and cs.get("containerID"):
            yield _event(
                ref,
                key=f"start:{cs['containerID']}",
                kind="restarted" if restarts > 0 else "started",
                container=name,
                at=parse_time(running.get("startedAt")) or now,
            )
        waiting = state.get("waiting")
        if waiting and waiting.get("reason") in START_FAILURES:
            yield _event(
                ref,
                key=f"nostart:{ref.uid}/{name}/{restarts}",
                kind="start_failed",
                container=name,
                at=now,
                reason=waiting.get("reason"),
                message=_short(waiting.get("message")),
            )


def now_utc() -> datetime:
    """The current time, UTC."""
    return datetime.now(UTC)
