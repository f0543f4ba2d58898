"""Business rules of the jobs API (REFERENCE.md, "Jobs API (v1)"), on top of the storage layer.

A job is its primary object - a Job (one-off), CronJob (scheduled) or Deployment (continuous)
labelled ``app.kubernetes.io/managed-by=toolforge-jobs-framework`` and carrying the spec
annotation (:data:`~toolforge_jobs.builders.SPEC_ANNOTATION`) - plus, for a continuous job with
a port, a Service of the same name. Job names are unique over the three kinds.

Every call acts as the tool through :class:`~toolforge_jobs.storage.KubeStorage`, so
Kubernetes RBAC confines it to ``tool-<tool>``. Reads of several objects are sent in parallel:
``list`` costs a constant number of apiserver round trips whatever the number of jobs (one
list each of Jobs, CronJobs, Deployments, pods and ``FailedCreate`` events), ``show`` one round
trip of six calls.

Rules:

- create: 409 when a job of that name exists, unless it is a finished one-off job, which is
  replaced; memory/cpu are checked against the LimitRange (400 naming the field); the image
  must be in the image list (400); objects are created primary first, and when one fails the
  ones already created are deleted again, so a failed create leaves nothing behind.
- upsert (PATCH): create when missing; "already up to date" when the stored spec equals the
  new one (:func:`~toolforge_jobs.models.specs_equal`) and the image is the same; else
  update: a CronJob or Deployment of the same kind is replaced in place (a Deployment rolls
  out), anything else is deleted and created again.
- restart: continuous -> rollout via the ``restartedAt`` pod template annotation; scheduled ->
  a Job from the CronJob's template, owned by the CronJob, started now; one-off -> 400.
- logs: the pod log API over the job's pods; 404 when the job writes its output to files
  (filelog) or has no pods.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import secrets
import time
from collections import OrderedDict, defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from toolforge_jobs.builders import (
    CONTAINER_NAME,
    MANAGED_BY,
    SPEC_ANNOTATION,
    ToolContext,
    UnreadableJobError,
    build_objects,
    deployment_restart_patch,
    image_of,
    job_from_objects,
    manual_job_from_cronjob,
    resolve_filelog_paths,
    schedule_actual_of,
)
from toolforge_jobs.cache import MANAGED_SELECTOR, SELECTIONS, ObjectCache
from toolforge_jobs.errors import (
    BadRequestError,
    ClusterError,
    ConflictError,
    JobsAPIError,
    NotFoundError,
)
from toolforge_jobs.images import (
    CONFIGMAP_KEY,
    ImageCatalog,
    ImageConfigError,
    ImageList,
)
from toolforge_jobs.limits import check_limits, quota_view
from toolforge_jobs.logs import LogRecord, iter_lines, parse_log_line
from toolforge_jobs.models import (
    NAME_MAX_LENGTH,
    NAME_PATTERN,
    ImageSummary,
    Job,
    JobSpec,
    Quota,
    specs_equal,
)
from toolforge_jobs.settings import JobsSettings
from toolforge_jobs.status import StatusReport, compute_status
from toolforge_jobs.storage import KubeStorage, Obj, gather_all, namespace_of

__all__ = ["MANAGED_SELECTOR", "JobsService", "ListResult", "image_catalog"]

UID_ANNOTATION = "toolforge.org/uid"
HOME_ANNOTATION = "toolforge.org/home"
_NAME_LABEL = "app.kubernetes.io/name"
_PLURAL = {"Job": "jobs", "CronJob": "cronjobs", "Deployment": "deployments", "Service": "services"}
_EPOCH = dt.datetime.fromtimestamp(0, dt.UTC)
_PUT_ATTEMPTS = 3
#: Primary object versions whose spec and last Job are kept (:class:`_JobMemo`).
_MEMO_SIZE = 16384
_K = TypeVar("_K")
_V = TypeVar("_V")
#: What reading a job from objects the tool may have edited by hand can raise (a missing
#: field, a schedule croniter cannot read, a bad spec annotation): such objects are reported,
#: not allowed to fail the whole request.
_UNREADABLE = (UnreadableJobError, KeyError, IndexError, TypeError, ValueError)
_log = logging.getLogger(__name__)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _meta(obj: Obj) -> dict[str, Any]:
    meta: dict[str, Any] = obj.get("metadata") or {}
    return meta


def _is_primary(obj: Obj) -> bool:
    meta = _meta(obj)
    return (meta.get("labels") or {}).get(
        "app.kubernetes.io/managed-by"
    ) == MANAGED_BY and SPEC_ANNOTATION in (meta.get("annotations") or {})


def _finished(job: Obj) -> bool:
    """A batch Job whose ``Complete`` or ``Failed`` condition is true."""
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions") or []
    )


def _time(value: Any) -> dt.datetime:
    if not isinstance(value, str) or not value:
        return _EPOCH
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return _EPOCH
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _event_time(event: Obj) -> dt.datetime:
    return max(
        _time(event.get("lastTimestamp")),
        _time(event.get("eventTime")),
        _time(_meta(event).get("creationTimestamp")),
    )


@dataclass
class _Snapshot:
    """What was read of a namespace (or of one job), grouped for status computation."""

    pods: dict[str, list[Obj]] = field(default_factory=lambda: defaultdict(list))
    children: dict[str, list[Obj]] = field(default_factory=lambda: defaultdict(list))
    events_by_uid: dict[str, list[Obj]] = field(default_factory=lambda: defaultdict(list))
    replicaset_events: list[Obj] = field(default_factory=list)

    @classmethod
    def build(cls, jobs: Iterable[Obj], pods: Iterable[Obj], events: Iterable[Obj]) -> _Snapshot:
        snap = cls()
        for pod in pods:
            name = (_meta(pod).get("labels") or {}).get(_NAME_LABEL)
            if name:
                snap.pods[name].append(pod)
        for job in jobs:
            for owner in _meta(job).get("ownerReferences") or []:
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
        out: list[Obj] = []
        for obj in objs:
            out.extend(self.events_by_uid.get(_meta(obj).get("uid", ""), ()))
        return out

    def deployment_events(self, deployment: Obj, pods: list[Obj]) -> list[Obj]:
        """Events of the Deployment's ReplicaSets (``<name>-<hash>``, not older than the
        Deployment: a re-created Deployment reuses ReplicaSet names), its pods and itself."""
        meta = _meta(deployment)
        pattern = re.compile(re.escape(meta.get("name", "")) + r"-[a-z0-9]+")
        since = _time(meta.get("creationTimestamp"))
        out = [
            e
            for e in self.replicaset_events
            if pattern.fullmatch((e.get("involvedObject") or {}).get("name", ""))
            and _event_time(e) >= since
        ]
        return out + self.events_for([deployment, *pods])


@dataclass
class _JobMemo:
    """What one version of a primary object gives: its spec, image and cron line, and the
    last status report and :class:`Job` built from them (a Job is immutable once built)."""

    spec: JobSpec
    image: str
    schedule_actual: str | None
    report: StatusReport | None = None
    job: Job | None = None


class _LRU(Generic[_K, _V]):
    """A dict of at most ``size`` entries that drops the least recently used one."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._data: OrderedDict[_K, _V] = OrderedDict()

    def get(self, key: _K) -> _V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: _K, value: _V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        if len(self._data) > self._size:
            self._data.popitem(last=False)


@dataclass(frozen=True)
class ListResult:
    """The jobs of a tool, and warnings about objects that could not be read as jobs."""

    jobs: list[Job]
    warnings: list[str]


def image_catalog(storage: KubeStorage, settings: JobsSettings) -> ImageCatalog:
    """The image list cache, reading ConfigMap ``image_config_namespace/name`` as the
    service every ``image_cache_seconds``."""

    async def fetch() -> str:
        config_map = await storage.config_map(
            settings.image_config_namespace, settings.image_config_name
        )
        text = (config_map.get("data") or {}).get(CONFIGMAP_KEY)
        if not isinstance(text, str):
            raise ImageConfigError(
                f"ConfigMap {settings.image_config_namespace}/{settings.image_config_name} "
                f"has no key {CONFIGMAP_KEY}"
            )
        return text

    return ImageCatalog(fetch, settings.image_cache_seconds)


class JobsService:
    """The jobs API's operations for one tool at a time (``tool`` is the verified tool name).

    Raises (every method): the :mod:`toolforge_jobs.errors` of the storage layer - 403 when
    RBAC refuses, 503 when kube-apiserver cannot be reached - plus those documented per
    method.
    """

    def __init__(
        self,
        storage: KubeStorage,
        images: ImageCatalog,
        settings: JobsSettings,
        *,
        cache: ObjectCache | None = None,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self._storage = storage
        self._images = images
        self._settings = settings
        self._cache = cache
        self._clock = clock
        self._memo: _LRU[tuple[str, str], _JobMemo] = _LRU(_MEMO_SIZE)

    # ----- reading --------------------------------------------------------------------

    async def _find(self, tool: str, name: str) -> Obj | None:
        """The primary object of job ``name``, or ``None`` (also for a name no job can have)."""
        if not _possible_name(name):
            return None
        found = await gather_all(
            *(
                self._storage.get(tool, plural, name)
                for plural in ("jobs", "cronjobs", "deployments")
            )
        )
        return next((obj for obj in found if obj is not None and _is_primary(obj)), None)

    async def _require(self, tool: str, name: str) -> Obj:
        primary = await self._find(tool, name)
        if primary is None:
            raise NotFoundError(f"Job '{name}' does not exist")
        return primary

    def _job(self, primary: Obj, snap: _Snapshot, now: dt.datetime) -> Job:
        """The job of ``primary`` with its status. The spec, image and cron line read from a
        primary are kept per ``(uid, resourceVersion)``, and the :class:`Job` built last for
        it is reused while its status report stays equal (:class:`_JobMemo`)."""
        meta = _meta(primary)
        key = (str(meta.get("uid") or ""), str(meta.get("resourceVersion") or ""))
        memo = self._memo.get(key) if all(key) else None
        if memo is None:
            memo = _JobMemo(
                spec=job_from_objects([primary]),
                image=image_of(primary),
                schedule_actual=schedule_actual_of(primary),
            )
            if all(key):
                self._memo.put(key, memo)
        spec = memo.spec
        pods = snap.pods.get(spec.name, [])
        kind = primary.get("kind")
        children: list[Obj] = []
        if kind == "CronJob":
            children = snap.children.get(_meta(primary).get("uid", ""), [])
            events = snap.events_for([*children, *pods])
        elif kind == "Deployment":
            events = snap.deployment_events(primary, pods)
        else:
            events = snap.events_for([primary, *pods])
        report = compute_status(primary, jobs=children, pods=pods, events=events, now=now)
        if memo.job is None or memo.report != report:
            memo.report = report
            memo.job = Job.from_spec(
                spec,
                image=memo.image,
                status=report.status,
                status_short=report.status_short,
                status_long=report.status_long,
                schedule_actual=memo.schedule_actual,
            )
        return memo.job

    async def _list_objects(self, tool: str) -> dict[str, list[Obj]]:
        """What ``list`` reads (:data:`~toolforge_jobs.cache.SELECTIONS`): from the object
        cache when it can answer, else from the apiserver (5 lists in parallel)."""
        if self._cache is not None:
            cached = await self._cache.read(tool)
            if cached is not None:
                return cached
        found = await gather_all(
            *(
                self._storage.list(tool, resource, label_selector=label, field_selector=field)
                for resource, (label, field) in SELECTIONS.items()
            )
        )
        return dict(zip(SELECTIONS, found, strict=True))

    async def list_jobs(self, tool: str) -> ListResult:
        """All jobs of the tool, sorted by name, with their status."""
        objects = await self._list_objects(tool)
        jobs, cronjobs, deployments = objects["jobs"], objects["cronjobs"], objects["deployments"]
        pods, events = objects["pods"], objects["events"]
        snap = _Snapshot.build(jobs, pods, events)
        now = self._clock()
        result: list[Job] = []
        warnings: list[str] = []
        for primary in [*jobs, *cronjobs, *deployments]:
            if not _is_primary(primary):
                continue
            try:
                result.append(self._job(primary, snap, now))
            except _UNREADABLE as exc:
                name = _meta(primary).get("name")
                _log.warning("tool %s: %s %s: %r", tool, primary.get("kind"), name, exc)
                warnings.append(f"{primary.get('kind')} '{name}' is not a readable job; skipped")
        result.sort(key=lambda job: job.name)
        return ListResult(jobs=result, warnings=warnings)

    async def _job_snapshot(
        self, tool: str, name: str, *, find: bool = True
    ) -> tuple[Obj | None, _Snapshot]:
        selector = f"{MANAGED_SELECTOR},{_NAME_LABEL}={name}"
        primary, jobs, pods, events = await gather_all(
            self._find(tool, name) if find else _none(),
            self._storage.list(tool, "jobs", label_selector=selector),
            self._storage.list(tool, "pods", label_selector=selector),
            self._storage.list(tool, "events", field_selector="reason=FailedCreate"),
        )
        return primary, _Snapshot.build(jobs, pods, events)

    async def show(self, tool: str, name: str) -> Job:
        """One job with its status.

        Raises:
            NotFoundError: ``Job 'x' does not exist``.
        """
        if not _possible_name(name):
            raise NotFoundError(f"Job '{name}' does not exist")
        primary, snap = await self._job_snapshot(tool, name)
        if primary is None:
            raise NotFoundError(f"Job '{name}' does not exist")
        try:
            return self._job(primary, snap, self._clock())
        except _UNREADABLE as exc:
            _log.warning("tool %s: %s", tool, exc)
            raise ConflictError(
                f"{primary.get('kind')} '{name}' was changed outside the jobs API and cannot be "
                "read as a job; delete it and create it again"
            ) from exc

    # ----- images and quotas ------------------------------------------------------------

    async def image_list(self) -> ImageList:
        """The current image list (cached).

        Raises:
            UnavailableError: the ConfigMap cannot be read now and no list is cached.
            ClusterError: the ConfigMap is missing or malformed.
        """
        try:
            return await self._images.get()
        except ImageConfigError as exc:
            if isinstance(exc.__cause__, JobsAPIError):
                raise exc.__cause__ from None
            _log.error("image list: %s", exc)
            raise ClusterError("the image list of the platform cannot be read") from exc

    async def images(self) -> list[ImageSummary]:
        """The usable (stable) images, sorted by shortname."""
        listed = (await self.image_list()).listed()
        return [ImageSummary(shortname=i.shortname, image=i.image) for i in listed]

    async def quota(self, tool: str) -> Quota:
        """The tool's quota (ResourceQuota and LimitRange ``tool-<tool>``) in human units."""
        name = namespace_of(tool)
        resource_quota, limit_range = await gather_all(
            self._storage.get(tool, "resourcequotas", name),
            self._storage.get(tool, "limitranges", name),
        )
        return quota_view(resource_quota, limit_range)

    # ----- writing ----------------------------------------------------------------------

    async def _tool_context(self, tool: str) -> ToolContext:
        namespace = await self._storage.tool_namespace(tool)
        if namespace is None:
            raise NotFoundError(f"tool '{tool}' has no namespace {namespace_of(tool)}")
        annotations = _meta(namespace).get("annotations") or {}
        uid, home = annotations.get(UID_ANNOTATION, ""), annotations.get(HOME_ANNOTATION, "")
        homes = self._settings.homes_dir
        try:
            context = ToolContext(name=tool, uid=int(uid), home_host_path=home)
            if homes is not None and str(homes).rstrip("/") + f"/{tool}" != home.rstrip("/"):
                raise ValueError(f"home {home!r} is not {homes}/{tool}")
        except ValueError as exc:
            _log.error("namespace %s: bad onboarding annotations: %s", namespace_of(tool), exc)
            raise ClusterError(
                f"tool '{tool}' is not fully set up (its namespace lacks a valid uid or home)"
            ) from exc
        return context

    async def _prepare(self, tool: str, spec: JobSpec) -> tuple[list[Obj], Obj | None]:
        """The objects to create for ``spec`` and the existing job of that name.

        Raises:
            JobSpecError: unknown image, memory/cpu outside the LimitRange, filelog path
                outside the home.
        """
        images, context, limit_range, existing = await gather_all(
            self.image_list(),
            self._tool_context(tool),
            self._storage.get(tool, "limitranges", namespace_of(tool)),
            self._find(tool, spec.name),
        )
        image = images.resolve(spec.imagename)
        check_limits(spec, limit_range)
        return build_objects(spec, context, image.image), existing

    async def _create_objects(self, tool: str, objects: list[Obj]) -> Obj:
        """Create ``objects`` in order (a Service becomes owned by the Deployment before it, so
        the garbage collector removes it with the Deployment); on any failure delete what was
        created and re-raise. Returns the created primary."""
        created: list[Obj] = []
        try:
            for obj in objects:
                if obj["kind"] == "Service" and created:
                    obj = _owned_by(obj, created[0])
                created.append(await self._storage.create(tool, obj))
        except BaseException:
            for done in reversed(created):
                name = _meta(done).get("name", "")
                try:
                    await asyncio.shield(self._storage.delete(tool, _PLURAL[done["kind"]], name))
                except Exception:
                    _log.exception(
                        "tool %s: rollback: cannot delete %s %s", tool, done["kind"], name
                    )
            raise
        return created[0]

    async def _delete_objects(self, tool: str, primary: Obj) -> None:
        name = _meta(primary).get("name", "")
        await self._storage.delete(tool, _PLURAL[primary["kind"]], name)
        if primary.get("kind") == "Deployment":
            service = await self._storage.get(tool, "services", name)
            if service is not None and _manages(service):
                await self._storage.delete(tool, "services", name)

    async def _has_ended(self, tool: str, job: Obj) -> bool:
        """Whether a one-off job has finished, by its conditions or, before the Job controller
        has caught up, by the status its pods give (what ``show`` says)."""
        if _finished(job):
            return True
        _, snap = await self._job_snapshot(tool, _meta(job).get("name", ""), find=False)
        status = self._job(job, snap, self._clock()).status.short
        return status in ("succeeded", "failed")

    def _fresh_job(self, primary: Obj) -> Job:
        return self._job(primary, _Snapshot(), self._clock())

    async def create(self, tool: str, spec: JobSpec) -> tuple[Job, list[str]]:
        """Create a job; returns it (status as just created) and info messages.

        Raises:
            ConflictError: a job of that name exists and is not a finished one-off job.
            JobSpecError: see :meth:`_prepare`.
        """
        objects, existing = await self._prepare(tool, spec)
        info: list[str] = []
        if existing is not None:
            if existing.get("kind") == "Job" and await self._has_ended(tool, existing):
                await self._delete_objects(tool, existing)
                info.append(f"Job '{spec.name}' replaces the finished one-off job of that name")
            else:
                raise ConflictError(f"Job '{spec.name}' already exists")
        primary = await self._create_objects(tool, objects)
        info.append(f"Job '{spec.name}' created")
        return self._fresh_job(primary), info

    async def upsert(self, tool: str, spec: JobSpec) -> tuple[bool, str]:
        """Create or update a job so that it matches ``spec`` (PATCH, ``load``); returns
        ``(job_changed, message)`` with message ``Job 'x' created``, ``Job 'x' updated`` or
        ``Job 'x' is already up to date``."""
        objects, existing = await self._prepare(tool, spec)
        if existing is None:
            await self._create_objects(tool, objects)
            return True, f"Job '{spec.name}' created"
        try:
            current: JobSpec | None = job_from_objects([existing])
        except UnreadableJobError:
            current = None
        if (
            current is not None
            and specs_equal(current, spec)
            and image_of(existing) == image_of(objects[0])
        ):
            return False, f"Job '{spec.name}' is already up to date"
        if existing["kind"] == objects[0]["kind"] and existing["kind"] != "Job":
            await self._replace(tool, existing, objects)
        else:
            await self._delete_objects(tool, existing)
            await self._create_objects(tool, objects)
        return True, f"Job '{spec.name}' updated"

    async def _replace(self, tool: str, existing: Obj, objects: list[Obj]) -> None:
        """Replace a CronJob or Deployment in place and converge its Service."""
        stored = await self._put(tool, objects[0], existing)
        if stored.get("kind") != "Deployment":
            return
        name = _meta(stored).get("name", "")
        wanted = next((o for o in objects[1:] if o["kind"] == "Service"), None)
        current = await self._storage.get(tool, "services", name)
        if wanted is None:
            if current is not None and _manages(current):
                await self._storage.delete(tool, "services", name)
            return
        wanted = _owned_by(wanted, stored)
        if current is None:
            await self._storage.create(tool, wanted)
        else:
            await self._put(tool, wanted, current)

    async def _put(self, tool: str, wanted: Obj, current: Obj) -> Obj:
        """Replace ``current`` by ``wanted`` with optimistic concurrency: the PUT carries the
        ``resourceVersion`` read, and when the object changed meanwhile (409; controllers
        update a Deployment's status all the time) it is read again and the PUT repeated,
        at most :data:`_PUT_ATTEMPTS` times. A Service keeps what the apiserver allocated
        (its cluster IP)."""
        plural = _PLURAL[wanted["kind"]]
        name = _meta(wanted).get("name", "")
        for attempt in range(1, _PUT_ATTEMPTS + 1):
            spec = dict(wanted["spec"])
            if wanted["kind"] == "Service":
                for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                    if key in (current.get("spec") or {}):
                        spec[key] = current["spec"][key]
            metadata = {
                **wanted["metadata"],
                "resourceVersion": _meta(current).get("resourceVersion"),
            }
            try:
                return await self._storage.replace(
                    tool, {**wanted, "metadata": metadata, "spec": spec}
                )
            except ConflictError:
                if attempt == _PUT_ATTEMPTS:
                    raise
            fresh = await self._storage.get(tool, plural, name)
            if fresh is None:
                raise ConflictError(f"Job '{name}' was deleted while it was being updated")
            current = fresh
        raise AssertionError("unreachable")  # pragma: no cover

    async def delete(self, tool: str, name: str) -> None:
        """Delete a job and its objects (pods and a CronJob's Jobs are garbage-collected).

        Raises:
            NotFoundError: ``Job 'x' does not exist``.
        """
        primary = await self._require(tool, name)
        await self._delete_objects(tool, primary)

    async def flush(self, tool: str) -> None:
        """Delete every job of the tool (all objects labelled as the jobs API's)."""
        await gather_all(
            *(
                self._storage.delete_collection(tool, plural, MANAGED_SELECTOR)
                for plural in ("jobs", "cronjobs", "deployments", "services")
            )
        )

    async def restart(self, tool: str, name: str) -> str:
        """Restart a job; returns the info message.

        Raises:
            NotFoundError: ``Job 'x' does not exist``.
            BadRequestError: a one-off job (run it again instead).
        """
        primary = await self._require(tool, name)
        kind = primary.get("kind")
        if kind == "Deployment":
            await self._storage.patch(
                tool, "deployments", name, deployment_restart_patch(self._clock())
            )
            return f"Job '{name}' is being restarted (its pods are replaced)"
        if kind == "CronJob":
            manual = manual_job_from_cronjob(
                primary,
                cronjob_name=name,
                cronjob_uid=_meta(primary).get("uid", ""),
                suffix=secrets.token_hex(3),
            )
            created = await self._storage.create(tool, manual)
            return f"Job '{name}' started now (as Job {_meta(created).get('name')})"
        raise BadRequestError(
            f"Job '{name}' is a one-off job and cannot be restarted; delete it and run it again"
        )

    # ----- logs -------------------------------------------------------------------------

    async def open_logs(
        self, tool: str, name: str, *, follow: bool, lines: int | None
    ) -> AsyncIterator[bytes]:
        """The job's log as NDJSON lines (see :mod:`toolforge_jobs.logs`), as an async
        iterator to stream. Checks happen before this returns, so they can still be answered
        as errors:

        Raises:
            NotFoundError: no such job; the job writes its output to files (filelog); it has
                no pods.
            UnavailableError: too many log streams are open.
        """
        primary = await self._require(tool, name)
        try:
            spec = job_from_objects([primary])
        except UnreadableJobError as exc:
            raise NotFoundError(f"Job '{name}' cannot be read as a job") from exc
        if spec.filelog:
            context = ToolContext(name=tool, uid=1, home_host_path="/")
            paths = resolve_filelog_paths(spec, context) or ("", "")
            raise NotFoundError(
                f"Job '{name}' writes its output to files in the tool's home ({paths[0]}, "
                f"{paths[1]}); read them there"
            )
        pods = await self._pods_of(tool, name)
        if not pods:
            raise NotFoundError(f"Job '{name}' has no pods (it has not started, or has ended)")
        if follow:
            return self._follow(tool, primary, pods, lines)
        records = await self._read_logs(tool, pods, lines)
        return _aiter(record.ndjson() for record in records)

    async def _pods_of(self, tool: str, name: str) -> list[Obj]:
        pods = await self._storage.list(
            tool, "pods", label_selector=f"{MANAGED_SELECTOR},{_NAME_LABEL}={name}"
        )
        live = [p for p in pods if not _meta(p).get("deletionTimestamp")]
        live.sort(key=lambda p: _time(_meta(p).get("creationTimestamp")))
        return live[-self._settings.logs_max_pods :]

    async def _read_logs(self, tool: str, pods: list[Obj], lines: int | None) -> list[LogRecord]:
        """Whole (or the last ``lines`` of) logs of ``pods``, merged in time order."""

        async def one(pod: Obj) -> list[LogRecord]:
            pod_name = _meta(pod).get("name", "")
            records: list[LogRecord] = []
            try:
                async with self._storage.pod_log(
                    tool, pod_name, container=CONTAINER_NAME, follow=False, tail_lines=lines
                ) as stream:
                    async for raw in iter_lines(
                        stream.iter_any(), self._settings.logs_max_line_bytes
                    ):
                        records.append(parse_log_line(raw, pod=pod_name, container=CONTAINER_NAME))
            except (BadRequestError, NotFoundError):
                return []  # not started yet, or gone meanwhile
            return records

        per_pod = await gather_all(*(one(pod) for pod in pods))
        merged = sorted((r for records in per_pod for r in records), key=lambda r: r.datetime)
        return merged[-lines:] if lines is not None else merged

    async def _still_running(self, tool: str, primary: Obj) -> bool:
        """Whether more pods may come: the Job is unfinished, the Deployment exists, the
        CronJob has an active Job."""
        current = await self._storage.get(
            tool, _PLURAL[primary["kind"]], _meta(primary).get("name", "")
        )
        if current is None or _meta(current).get("uid") != _meta(primary).get("uid"):
            return False
        if current["kind"] == "Job":
            return not _finished(current)
        if current["kind"] == "CronJob":
            return bool((current.get("status") or {}).get("active"))
        return True

    async def _follow_pod(self, tool: str, pod: Obj, lines: int | None, out: _Sink) -> None:
        """Stream one pod's log into ``out`` until its container ends; while the container
        has not started, wait for it (poll)."""
        pod_name = _meta(pod).get("name", "")
        try:
            await self._follow_pod_once(tool, pod_name, lines, out)
        except JobsAPIError as exc:
            _log.warning("tool %s: log stream of pod %s ended: %s", tool, pod_name, exc)

    async def _follow_pod_once(
        self, tool: str, pod_name: str, lines: int | None, out: _Sink
    ) -> None:
        while True:
            try:
                async with self._storage.pod_log(
                    tool, pod_name, container=CONTAINER_NAME, follow=True, tail_lines=lines
                ) as stream:
                    async for raw in iter_lines(
                        stream.iter_any(), self._settings.logs_max_line_bytes
                    ):
                        await out.put(parse_log_line(raw, pod=pod_name, container=CONTAINER_NAME))
                return
            except NotFoundError:
                return
            except BadRequestError:
                pass  # the container is waiting to start
            current = await self._storage.get(tool, "pods", pod_name)
            if current is None or _meta(current).get("deletionTimestamp"):
                return
            if (current.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                for record in await self._read_logs(tool, [current], lines):
                    await out.put(record)
                return
            await asyncio.sleep(self._settings.logs_poll_seconds)

    async def _follow(
        self, tool: str, primary: Obj, pods: list[Obj], lines: int | None
    ) -> AsyncIterator[bytes]:
        """Follow the logs of ``pods`` and of pods that start later, until no pod is left
        running and no more can come (:meth:`_still_running`), or ``logs_follow_max_seconds``
        passed. Leaving early (the client went away) cancels and closes every pod stream."""
        poll = self._settings.logs_poll_seconds
        deadline = time.monotonic() + self._settings.logs_follow_max_seconds
        out = _Sink()
        tasks: dict[str, asyncio.Task[None]] = {}

        def start(found: Iterable[Obj]) -> None:
            for pod in found:
                uid = _meta(pod).get("uid", "")
                if uid and uid not in tasks:
                    tasks[uid] = asyncio.create_task(self._follow_pod(tool, pod, lines, out))

        try:
            start(pods)
            while time.monotonic() < deadline:
                record = await out.get(timeout=poll)
                if record is not None:
                    yield record.ndjson()
                    continue
                if any(not t.done() for t in tasks.values()) or not out.empty():
                    continue
                name = _meta(primary).get("name", "")
                fresh = [
                    p for p in await self._pods_of(tool, name) if _meta(p).get("uid") not in tasks
                ]
                if fresh:
                    start(fresh)
                elif not await self._still_running(tool, primary):
                    break
        except JobsAPIError as exc:
            _log.warning(
                "tool %s: log follow of %s stopped: %s", tool, _meta(primary).get("name"), exc
            )
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)


class _Sink:
    """The queue pod streams write records to; :meth:`get` waits at most ``timeout``."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[LogRecord] = asyncio.Queue(maxsize=1024)

    async def put(self, record: LogRecord) -> None:
        await self._queue.put(record)

    def empty(self) -> bool:
        return self._queue.empty()

    async def get(self, timeout: float) -> LogRecord | None:
        try:
            async with asyncio.timeout(timeout):
                return await self._queue.get()
        except TimeoutError:
            return None


async def _none() -> None:
    return None


async def _aiter(items: Iterable[bytes]) -> AsyncIterator[bytes]:
    for item in items:
        yield item


def _possible_name(name: str) -> bool:
    """Whether a job may have this name (REFERENCE.md, "Job fields"): others do not exist, and
    are never put into an apiserver path or label selector."""
    return len(name) <= NAME_MAX_LENGTH and re.fullmatch(NAME_PATTERN, name) is not None


def _manages(obj: Obj) -> bool:
    return (_meta(obj).get("labels") or {}).get("app.kubernetes.io/managed-by") == MANAGED_BY


def _owned_by(obj: Obj, owner: Obj) -> Obj:
    """``obj`` with a (non-controller) ownerReference to ``owner``, for garbage collection."""
    meta = _meta(owner)
    reference = {
        "apiVersion": owner.get("apiVersion", "apps/v1"),
        "kind": owner["kind"],
        "name": meta.get("name"),
        "uid": meta.get("uid"),
    }
    return {**obj, "metadata": {**obj["metadata"], "ownerReferences": [reference]}}
