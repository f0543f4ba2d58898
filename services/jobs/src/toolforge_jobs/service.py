"""Business rules of the jobs API (REFERENCE.md, "Jobs API (v1)"), on top of the storage layer.

A job is its primary object - a Job (one-off), CronJob (scheduled) or Deployment (continuous)
labelled ``app.kubernetes.io/managed-by=toolforge-jobs-framework`` and carrying the spec
annotation (:data:`~toolforge_jobs.builders.SPEC_ANNOTATION`) - plus, for a continuous job with
a port, a Service of the same name. Job names are unique over the three kinds.

Every call acts as the tool through :class:`~toolforge_jobs.storage.ToolImpersonatingStorage`, so
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
- logs: the pod log API over the job's pods; 404 ``Job 'x' does not have any logs available``
  when the job writes its output to files (filelog), has no pods or no output yet.
- ``mount: none`` is only for build service images: 400 on a standard image.
- build service images (``tool-<tool>/<name>:<tag>[@sha256:...]``,
  :mod:`~toolforge_jobs.builtimages`): the calling tool's own only (400 otherwise), the tag
  must exist in the registry (400 otherwise, :class:`~toolforge_jobs.registry.BuiltImageRegistry`);
  pods pull them from the pull endpoint with the tool's image pull Secret. ``images`` lists
  them after the image-config list.
- publish (continuous, ``publish: "/"``): an ``HTTPRoute`` of the job's name, owned by the
  Deployment and created after its Service (:mod:`toolforge_jobs.routes`), replaced with the
  job (a port change changes its backend port), deleted with it or when ``publish`` goes;
  409 naming the job (or route) that already serves that path of the tool's host.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from toolforge_auth.tools import (
    HOME_ANNOTATION,
    UID_ANNOTATION,
    namespace_for,
    tool_of_namespace,
)
from toolforge_jobs.builders import (
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
from toolforge_jobs.builtimages import parse_built_image
from toolforge_jobs.cache import SELECTIONS, ObjectCache
from toolforge_jobs.errors import JobSpecError
from toolforge_jobs.images import (
    CONFIGMAP_KEY,
    ImageCatalog,
    ImageConfigError,
    ImageList,
)
from toolforge_jobs.limits import check_limits, quota_view
from toolforge_jobs.logstream import PodLogs
from toolforge_jobs.models import (
    ImageSummary,
    Job,
    JobSpec,
    Quota,
    is_buildservice_image,
    specs_equal,
)
from toolforge_jobs.objects import (
    MANAGED_SELECTOR,
    NAME_LABEL,
    PLURAL,
    Obj,
    finished,
    is_primary,
    manages,
    meta,
    owned_by,
    possible_name,
    utcnow,
)
from toolforge_jobs.registry import BuiltImageRegistry
from toolforge_jobs.routes import build_route, path_holder, public_url
from toolforge_jobs.settings import JobsSettings
from toolforge_jobs.snapshot import LRU, JobMemo, Snapshot
from toolforge_jobs.status import compute_status
from toolforge_jobs.storage import ToolImpersonatingStorage, gather_all
from toolforge_kit.errors import (
    APIError,
    BadRequestError,
    ClusterError,
    ConflictError,
    NotFoundError,
)

__all__ = ["MANAGED_SELECTOR", "JobsService", "ListResult", "image_catalog"]

_PUT_ATTEMPTS = 3
#: Kinds created after a Deployment and owned by it.
_DEPENDENTS = ("Service", "HTTPRoute")
#: Primary object versions whose spec and last Job are kept (:class:`JobMemo`).
_MEMO_SIZE = 16384
#: What reading a job from objects the tool may have edited by hand can raise (a missing
#: field, a schedule croniter cannot read, a bad spec annotation): such objects are reported,
#: not allowed to fail the whole request.
_UNREADABLE = (UnreadableJobError, KeyError, IndexError, TypeError, ValueError)
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ListResult:
    """The jobs of a tool, and warnings about objects that could not be read as jobs."""

    jobs: list[Job]
    warnings: list[str]


def image_catalog(storage: ToolImpersonatingStorage, settings: JobsSettings) -> ImageCatalog:
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
        storage: ToolImpersonatingStorage,
        images: ImageCatalog,
        settings: JobsSettings,
        *,
        cache: ObjectCache | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        built: BuiltImageRegistry | None = None,
    ) -> None:
        self._storage = storage
        self._built = built
        self._images = images
        self._settings = settings
        self._web = settings.web()
        self._cache = cache
        self._clock = clock
        self._memo: LRU[tuple[str, str], JobMemo] = LRU(_MEMO_SIZE)
        self._logs = PodLogs(storage, settings)

    # ----- reading --------------------------------------------------------------------

    async def _find(self, tool: str, name: str) -> Obj | None:
        """The primary object of job ``name``, or ``None`` (also for a name no job can have)."""
        if not possible_name(name):
            return None
        found = await gather_all(
            *(
                self._storage.get(tool, plural, name)
                for plural in ("jobs", "cronjobs", "deployments")
            )
        )
        return next((obj for obj in found if obj is not None and is_primary(obj)), None)

    async def _require(self, tool: str, name: str) -> Obj:
        primary = await self._find(tool, name)
        if primary is None:
            raise NotFoundError(f"Job '{name}' does not exist")
        return primary

    def _job(
        self, primary: Obj, snap: Snapshot, now: dt.datetime, images: ImageList | None = None
    ) -> Job:
        """The job of ``primary`` with its status. The spec, image and cron line read from a
        primary are kept per ``(uid, resourceVersion)``, and the :class:`Job` built last for
        it is reused while its status report stays equal (:class:`JobMemo`)."""
        data = meta(primary)
        key = (str(data.get("uid") or ""), str(data.get("resourceVersion") or ""))
        memo = self._memo.get(key) if all(key) else None
        if memo is None:
            memo = JobMemo(
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
            children = snap.children.get(meta(primary).get("uid", ""), [])
            events = snap.events_for([*children, *pods])
        elif kind == "Deployment":
            events = snap.deployment_events(primary, pods)
        else:
            events = snap.events_for([primary, *pods])
        report = compute_status(primary, jobs=children, pods=pods, events=events, now=now)
        image_state = (images.state_of(spec.imagename) if images else None) or "unknown"
        if is_buildservice_image(spec.imagename):
            image_state = "stable"  # the build service's images have no life cycle states
        if memo.job is None or memo.report != report or memo.job.image_state != image_state:
            memo.report = report
            tool = tool_of_namespace(str(data.get("namespace") or ""))
            memo.job = Job.from_spec(
                spec,
                image=memo.image,
                image_state=image_state,
                status=report.status,
                status_short=report.status_short,
                status_long=report.status_long,
                schedule_actual=memo.schedule_actual,
                public_url=public_url(tool, spec.publish, self._web)
                if tool is not None and spec.publish is not None
                else None,
            )
        return memo.job

    async def _images_or_none(self) -> ImageList | None:
        """The image list for ``image_state``; ``None`` (state ``unknown``) when it cannot be
        read now: a job list does not fail for that."""
        try:
            return await self.image_list()
        except APIError as exc:
            _log.warning("image list unavailable for image_state: %s", exc.message)
            return None

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
        objects, images = await gather_all(self._list_objects(tool), self._images_or_none())
        jobs, cronjobs, deployments = objects["jobs"], objects["cronjobs"], objects["deployments"]
        pods, events = objects["pods"], objects["events"]
        snap = Snapshot.build(jobs, pods, events)
        now = self._clock()
        result: list[Job] = []
        warnings: list[str] = []
        for primary in [*jobs, *cronjobs, *deployments]:
            if not is_primary(primary):
                continue
            try:
                result.append(self._job(primary, snap, now, images))
            except _UNREADABLE as exc:
                name = meta(primary).get("name")
                _log.warning("tool %s: %s %s: %r", tool, primary.get("kind"), name, exc)
                warnings.append(f"{primary.get('kind')} '{name}' is not a readable job; skipped")
        result.sort(key=lambda job: job.name)
        return ListResult(jobs=result, warnings=warnings)

    async def _job_snapshot(
        self, tool: str, name: str, *, find: bool = True
    ) -> tuple[Obj | None, Snapshot]:
        selector = f"{MANAGED_SELECTOR},{NAME_LABEL}={name}"
        primary, jobs, pods, events = await gather_all(
            self._find(tool, name) if find else _none(),
            self._storage.list(tool, "jobs", label_selector=selector),
            self._storage.list(tool, "pods", label_selector=selector),
            self._storage.list(tool, "events", field_selector="reason=FailedCreate"),
        )
        return primary, Snapshot.build(jobs, pods, events)

    async def show(self, tool: str, name: str) -> Job:
        """One job with its status.

        Raises:
            NotFoundError: ``Job 'x' does not exist``.
        """
        if not possible_name(name):
            raise NotFoundError(f"Job '{name}' does not exist")
        (primary, snap), images = await gather_all(
            self._job_snapshot(tool, name), self._images_or_none()
        )
        if primary is None:
            raise NotFoundError(f"Job '{name}' does not exist")
        try:
            return self._job(primary, snap, self._clock(), images)
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
            if isinstance(exc.__cause__, APIError):
                raise exc.__cause__ from None
            _log.error("image list: %s", exc)
            raise ClusterError("the image list of the platform cannot be read") from exc

    async def images(self, tool: str) -> tuple[list[ImageSummary], list[str]]:
        """The usable (stable) images, sorted by shortname, then the tool's build service
        images (by name and tag); and warnings (the registry cannot be read now: the
        image-config list alone is answered)."""
        listed = (await self.image_list()).listed()
        images = [
            ImageSummary(shortname=i.shortname, image=i.image, aliases=list(i.aliases))
            for i in listed
        ]
        built, warnings = await self._built.summaries(tool) if self._built else ([], [])
        return images + built, warnings

    async def quota(self, tool: str) -> Quota:
        """The tool's quota (ResourceQuota and LimitRange ``tool-<tool>``) in human units."""
        name = namespace_for(tool)
        resource_quota, limit_range = await gather_all(
            self._storage.get(tool, "resourcequotas", name),
            self._storage.get(tool, "limitranges", name),
        )
        return quota_view(resource_quota, limit_range)

    # ----- writing ----------------------------------------------------------------------

    async def _tool_context(self, tool: str) -> ToolContext:
        namespace = await self._storage.tool_namespace(tool)
        if namespace is None:
            raise NotFoundError(f"tool '{tool}' has no namespace {namespace_for(tool)}")
        annotations = meta(namespace).get("annotations") or {}
        uid, home = annotations.get(UID_ANNOTATION, ""), annotations.get(HOME_ANNOTATION, "")
        homes = self._settings.homes_dir
        try:
            context = ToolContext(name=tool, uid=int(uid), home_host_path=home)
            if homes is not None and str(homes).rstrip("/") + f"/{tool}" != home.rstrip("/"):
                raise ValueError(f"home {home!r} is not {homes}/{tool}")
        except ValueError as exc:
            _log.error("namespace %s: bad onboarding annotations: %s", namespace_for(tool), exc)
            raise ClusterError(
                f"tool '{tool}' is not fully set up (its namespace lacks a valid uid or home)"
            ) from exc
        return context

    async def _prepare(self, tool: str, spec: JobSpec) -> tuple[list[Obj], Obj | None, ToolContext]:
        """The objects to create for ``spec``, the existing job of that name and the tool.

        Raises:
            BadRequestError: ``mount: none`` on a standard image (upstream's message).
            JobSpecError: unknown image, memory/cpu outside the LimitRange, filelog path
                outside the home.
            ConflictError: ``publish`` names a path of the tool's host that another job's
                (or another) HTTPRoute already serves.
        """
        if spec.mount == "none" and not is_buildservice_image(spec.imagename):
            raise BadRequestError("Mount type none is only supported for build service images")
        (image, pull_secret), context, limit_range, existing, routes = await gather_all(
            self._image_reference(tool, spec.imagename),
            self._tool_context(tool),
            self._storage.get(tool, "limitranges", namespace_for(tool)),
            self._find(tool, spec.name),
            self._storage.list(tool, "httproutes") if spec.publish else _none(),
        )
        check_limits(spec, limit_range)
        objects = build_objects(spec, context, image, pull_secret=pull_secret)
        route = build_route(spec, context, self._web)
        if route is not None and spec.publish is not None:
            self._check_path_free(tool, spec.name, spec.publish, routes or [])
            objects.append(route)
        return objects, existing, context

    async def _image_reference(self, tool: str, imagename: str) -> tuple[str, str | None]:
        """The image reference pods of ``imagename`` run and their image pull Secret.

        Raises:
            JobSpecError: an unknown image; a build service image of another tool, or one
                that is not in the registry; build service images are not configured.
        """
        if not is_buildservice_image(imagename):
            return (await self.image_list()).resolve(imagename).image, None
        built = parse_built_image(imagename, tool)
        if self._built is None:
            raise JobSpecError("imagename", "build service images are not available here")
        return await self._built.resolve(built), self._settings.registry_pull_secret

    def _check_path_free(self, tool: str, name: str, path: str, routes: list[Obj]) -> None:
        """409 when a route other than job ``name``'s serves ``path`` of the tool's host."""
        holder = path_holder(routes, name, path)
        if holder is not None:
            raise ConflictError(
                f"publish: {public_url(tool, path, self._web)} is already published by "
                f"{holder}; a tool can publish one job per path: unpublish or delete it first"
            )

    async def _create_objects(self, tool: str, objects: list[Obj]) -> Obj:
        """Create ``objects`` in order (a Service or HTTPRoute becomes owned by the Deployment
        before it, so the garbage collector removes it with the Deployment); on any failure
        delete what was created and re-raise. Returns the created primary."""
        created: list[Obj] = []
        try:
            for obj in objects:
                if obj["kind"] in _DEPENDENTS and created:
                    obj = owned_by(obj, created[0])
                created.append(await self._storage.create(tool, obj))
        except BaseException:
            for done in reversed(created):
                name = meta(done).get("name", "")
                try:
                    await asyncio.shield(self._storage.delete(tool, PLURAL[done["kind"]], name))
                except Exception:
                    _log.exception(
                        "tool %s: rollback: cannot delete %s %s", tool, done["kind"], name
                    )
            raise
        return created[0]

    async def _delete_objects(self, tool: str, primary: Obj) -> None:
        name = meta(primary).get("name", "")
        await self._storage.delete(tool, PLURAL[primary["kind"]], name)
        if primary.get("kind") == "Deployment":
            route, service = await gather_all(
                self._storage.get(tool, "httproutes", name),
                self._storage.get(tool, "services", name),
            )
            for plural, obj in (("httproutes", route), ("services", service)):
                if obj is not None and manages(obj):
                    await self._storage.delete(tool, plural, name)

    async def _has_ended(self, tool: str, job: Obj) -> bool:
        """Whether a one-off job has finished, by its conditions or, before the Job controller
        has caught up, by the status its pods give (what ``show`` says)."""
        if finished(job):
            return True
        _, snap = await self._job_snapshot(tool, meta(job).get("name", ""), find=False)
        status = self._job(job, snap, self._clock()).status.short
        return status in ("succeeded", "failed")

    def _fresh_job(self, primary: Obj, images: ImageList | None = None) -> Job:
        return self._job(primary, Snapshot(), self._clock(), images)

    async def create(self, tool: str, spec: JobSpec) -> tuple[Job, list[str]]:
        """Create a job; returns it (status as just created) and info messages.

        Raises:
            ConflictError: a job of that name exists and is not a finished one-off job.
            JobSpecError: see :meth:`_prepare`.
        """
        objects, existing, _ = await self._prepare(tool, spec)
        info: list[str] = []
        if existing is not None:
            if existing.get("kind") == "Job" and await self._has_ended(tool, existing):
                await self._delete_objects(tool, existing)
                info.append(f"Job '{spec.name}' replaces the finished one-off job of that name")
            else:
                raise ConflictError(f"Job '{spec.name}' already exists")
        primary = await self._create_objects(tool, objects)
        info.append(f"Job '{spec.name}' created")
        return self._fresh_job(primary, await self._images_or_none()), info

    async def upsert(self, tool: str, spec: JobSpec) -> tuple[bool, str]:
        """Create or update a job so that it matches ``spec`` (PATCH, ``load``); returns
        ``(job_changed, message)`` with upstream's messages (REFERENCE.md, "The wire as
        production serves it"): ``Job x created``, ``Job x was updated in storage and
        runtime`` or ``Job x is already up to date``."""
        objects, existing, context = await self._prepare(tool, spec)
        if existing is None:
            await self._create_objects(tool, objects)
            return True, f"Job {spec.name} created"
        try:
            current: JobSpec | None = job_from_objects([existing])
        except UnreadableJobError:
            current = None
        if (
            current is not None
            and specs_equal(_with_log_files(current, context), _with_log_files(spec, context))
            and image_of(existing) == image_of(objects[0])
        ):
            return False, f"Job {spec.name} is already up to date"
        if existing["kind"] == objects[0]["kind"] and existing["kind"] != "Job":
            await self._replace(tool, existing, objects)
        else:
            await self._delete_objects(tool, existing)
            await self._create_objects(tool, objects)
        return True, f"Job {spec.name} was updated in storage and runtime"

    async def _replace(self, tool: str, existing: Obj, objects: list[Obj]) -> None:
        """Replace a CronJob or Deployment in place and converge its Service and HTTPRoute
        (the route goes before the Service it points to, and comes after it)."""
        stored = await self._put(tool, objects[0], existing)
        if stored.get("kind") != "Deployment":
            return
        name = meta(stored).get("name", "")
        wanted = {o["kind"]: o for o in objects[1:]}
        order = ("Service", "HTTPRoute") if "HTTPRoute" in wanted else ("HTTPRoute", "Service")
        for kind in order:
            current = await self._storage.get(tool, PLURAL[kind], name)
            if kind not in wanted:
                if current is not None and manages(current):
                    await self._storage.delete(tool, PLURAL[kind], name)
                continue
            obj = owned_by(wanted[kind], stored)
            if current is None:
                await self._storage.create(tool, obj)
            else:
                await self._put(tool, obj, current)

    async def _put(self, tool: str, wanted: Obj, current: Obj) -> Obj:
        """Replace ``current`` by ``wanted`` with optimistic concurrency: the PUT carries the
        ``resourceVersion`` read, and when the object changed meanwhile (409; controllers
        update a Deployment's status all the time) it is read again and the PUT repeated,
        at most :data:`_PUT_ATTEMPTS` times. A Service keeps what the apiserver allocated
        (its cluster IP)."""
        plural = PLURAL[wanted["kind"]]
        name = meta(wanted).get("name", "")
        for attempt in range(1, _PUT_ATTEMPTS + 1):
            spec = dict(wanted["spec"])
            if wanted["kind"] == "Service":
                for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                    if key in (current.get("spec") or {}):
                        spec[key] = current["spec"][key]
            metadata = {
                **wanted["metadata"],
                "resourceVersion": meta(current).get("resourceVersion"),
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
                for plural in ("jobs", "cronjobs", "deployments", "services", "httproutes")
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
                cronjob_uid=meta(primary).get("uid", ""),
                suffix=secrets.token_hex(3),
            )
            created = await self._storage.create(tool, manual)
            return f"Job '{name}' started now (as Job {meta(created).get('name')})"
        raise BadRequestError(
            f"Job '{name}' is a one-off job and cannot be restarted; delete it and run it again"
        )

    # ----- logs -------------------------------------------------------------------------

    async def open_logs(
        self, tool: str, name: str, *, follow: bool, lines: int | None
    ) -> AsyncIterator[bytes]:
        """The job's log as NDJSON lines, as an async iterator to stream
        (:class:`~toolforge_jobs.logstream.PodLogs`). Checks happen before this returns, so
        they can still be answered as errors:

        Raises:
            NotFoundError: no such job; the job writes its output to files (filelog); it has
                no pods.
            UnavailableError: too many log streams are open.
        """
        primary = await self._require(tool, name)
        return await self._logs.open(tool, primary, follow=follow, lines=lines)


async def _none() -> None:
    return None


def _with_log_files(spec: JobSpec, context: ToolContext) -> JobSpec:
    """``spec`` with its filelog files as the absolute paths they resolve to, so that
    ``out.log``, ``/data/project/<tool>/out.log`` and, for the defaults, no path at all compare
    equal (a client that sends back what ``show`` answered changes nothing)."""
    paths = resolve_filelog_paths(spec, context)
    if paths is None:
        return spec
    return spec.model_copy(update={"filelog_stdout": paths[0], "filelog_stderr": paths[1]})
