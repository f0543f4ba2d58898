"""What a list or show reads, grouped for status computation, and the per-version memo of
jobs built from primary objects. Pure data structures; no I/O.
"""

from __future__ import annotations

import re
from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from toolforge_jobs.models import Job, JobSpec
from toolforge_jobs.objects import NAME_LABEL, Obj, event_time, meta, parse_time
from toolforge_jobs.status import StatusReport

__all__ = ["LRU", "JobMemo", "Snapshot"]

_K = TypeVar("_K")
_V = TypeVar("_V")


@dataclass
class Snapshot:
    """What was read of a namespace (or of one job), grouped for status computation."""

    pods: dict[str, list[Obj]] = field(default_factory=lambda: defaultdict(list))
    children: dict[str, list[Obj]] = field(default_factory=lambda: defaultdict(list))
    events_by_uid: dict[str, list[Obj]] = field(default_factory=lambda: defaultdict(list))
    replicaset_events: list[Obj] = field(default_factory=list)

    @classmethod
    def build(cls, jobs: Iterable[Obj], pods: Iterable[Obj], events: Iterable[Obj]) -> Snapshot:
        """Group ``pods`` by job name, a CronJob's ``jobs`` by its uid, ``events`` by the uid of
        their object (a ReplicaSet's events apart)."""
        snap = cls()
        for pod in pods:
            name = (meta(pod).get("labels") or {}).get(NAME_LABEL)
            if name:
                snap.pods[name].append(pod)
        for job in jobs:
            for owner in meta(job).get("ownerReferences") or []:
                if owner.get("kind") == "CronJob" and owner.get("uid"):
                    snap.children[owner["uid"]].append(job)
        for event in events:
            involved = event.get("involvedObject") or {}
            if involved.get("kind") == "ReplicaSet":
                snap.replicaset_events.append(event)
            elif involved.get("uid"):
                snap.events_by_uid[involved["uid"]].append(event)
        return snap

    def events_for(self, objs: Iterable[Obj]) -> list[Obj]:
        """The events of ``objs``."""
        out: list[Obj] = []
        for obj in objs:
            out.extend(self.events_by_uid.get(meta(obj).get("uid", ""), ()))
        return out

    def deployment_events(self, deployment: Obj, pods: list[Obj]) -> list[Obj]:
        """Events of the Deployment's ReplicaSets (``<name>-<hash>``, not older than the
        Deployment: a re-created Deployment reuses ReplicaSet names), its pods and itself."""
        data = meta(deployment)
        pattern = re.compile(re.escape(data.get("name", "")) + r"-[a-z0-9]+")
        since = parse_time(data.get("creationTimestamp"))
        out = [
            e
            for e in self.replicaset_events
            if pattern.fullmatch((e.get("involvedObject") or {}).get("name", ""))
            and event_time(e) >= since
        ]
        return out + self.events_for([deployment, *pods])


@dataclass
class JobMemo:
    """What one version of a primary object gives: its spec, image and cron line, and the
    last status report and :class:`Job` built from them (a Job is immutable once built)."""

    spec: JobSpec
    image: str
    schedule_actual: str | None
    report: StatusReport | None = None
    job: Job | None = None


class LRU(Generic[_K, _V]):
    """A dict of at most ``size`` entries that drops the least recently used one."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._data: OrderedDict[_K, _V] = OrderedDict()

    def get(self, key: _K) -> _V | None:
        """The value of ``key`` (now the most recently used), ``None`` when absent."""
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: _K, value: _V) -> None:
        """Store ``key``; drops the least recently used entry beyond ``size``."""
        self._data[key] = value
        self._data.move_to_end(key)
        if len(self._data) > self._size:
            self._data.popitem(last=False)
