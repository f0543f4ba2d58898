"""Per-tool object cache: list+watch of a tool's objects, so that ``list`` reads memory.

``GET /v1/tool/{t}/jobs`` needs every Job, CronJob, Deployment and pod labelled
``app.kubernetes.io/managed-by=toolforge-jobs-framework`` and the ``FailedCreate`` events of
the tool's namespace. Read from the apiserver on every request that is 5 MB of JSON at 1000
jobs (services/jobs/README.md, "Performance notes"). :class:`ObjectCache` instead keeps them
per tool, filled by the Kubernetes list+watch protocol (Kubernetes API concepts, "Efficient
detection of changes"):

- The first list of a tool starts its :data:`~toolforge_jobs.storage.WATCHED` watches: for each
  resource one list, then a watch from the list's ``resourceVersion`` with bookmarks
  (``allowWatchBookmarks``), re-opened from the last version seen when the apiserver ends it
  (``cache_watch_seconds``). A 410 Gone (version too old) lists again; any other error marks
  the resource not synced and lists again after a back-off (0.5 s doubling to 30 s).
- Everything is read AS THE TOOL, through :class:`~toolforge_jobs.storage.ToolImpersonatingStorage`
  (impersonation): the service gains no read access to tool namespaces, and a tool's cache
  only ever holds what that tool may list. Caches are keyed by the verified tool name.
- A list is served from the cache when all 5 resources are synced (else it waits up to
  ``cache_wait_seconds`` for the first fill); when one of them is failing, or the wait ends,
  :meth:`ObjectCache.read` returns ``None`` and the caller reads the apiserver directly, which
  answers the same errors as without a cache (503 when kube-apiserver is unreachable).
- A cache answer is only given together with a live answer of kube-apiserver for the same
  tool: every read sends, alongside the cache lookup, one small list as the tool
  (:meth:`~toolforge_jobs.storage.ToolImpersonatingStorage.probe`, at most one LimitRange).
  So the cache is never served while kube-apiserver is down, even before a watch has noticed
  the outage (503 at once, as without a cache), nor after the tool lost its rights (403 at
  once). The cache saves kube-apiserver the large lists, not the round trip.
- Read-your-writes: every write this process makes as a tool (create, replace, patch, delete,
  delete collection; see :data:`~toolforge_jobs.storage.WriteListener`) is recorded, and a
  later read of the tool waits until the watches show it. An answer that is the object
  written (create, replace, patch; a delete that only set ``deletionTimestamp``) gives its
  ``resourceVersion``: the read waits until that resource's watch has reached it. A delete
  answered with a ``Status`` (its ``details`` name the object and its uid) or a delete
  collection answered with the list of deleted objects (at their old versions) gives
  ``(name, uid)`` pairs: the read waits until none of them is in the cache, other than as
  terminating (``deletionTimestamp`` set, as a direct list would show it). When that takes
  longer than ``cache_wait_seconds`` (the write left the selection, so no event for it comes),
  the read goes to the apiserver and the resource is listed again. Versions are
  compared as integers: Kubernetes made resourceVersions of one resource comparable that way
  (KEP-5504, "Comparable Resource Version", GA in 1.35; etcd revisions before). A version
  that is not an integer is an error (the resource is then never synced, and lists read the
  apiserver).
- A tool's watches stop once it has not listed for ``cache_idle_seconds``, and when a new
  tool would make more than ``cache_max_tools``, the least recently listing one is dropped.
  :meth:`ObjectCache.close` (app shutdown) stops every watch.

Objects are kept without ``metadata.managedFields`` (the list never uses them); they are
replaced, never changed in place, so a read's lists stay consistent while events arrive.

Metrics (:class:`~toolforge_jobs.metrics.JobsMetrics`): ``toolforge_jobs_cache_reads_total
{result=hit|miss}``, ``toolforge_jobs_cache_watch_restarts_total{resource,reason=expired|error}``,
``toolforge_jobs_cache_evictions_total{reason=idle|capacity}``, ``toolforge_jobs_cache_tools``
and ``toolforge_jobs_cache_watches_open``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from typing import Any

from toolforge_jobs.metrics import JobsMetrics
from toolforge_jobs.objects import MANAGED_SELECTOR
from toolforge_jobs.settings import JobsSettings
from toolforge_jobs.storage import WATCHED, Obj, ToolImpersonatingStorage, gather_all
from toolforge_kit.errors import APIError, ClusterError, GoneError

__all__ = ["MANAGED_SELECTOR", "SELECTIONS", "ObjectCache", "Selection", "resource_version"]

#: ``(label selector, field selector)`` of each watched resource: what ``list`` reads.
Selection = tuple[str | None, str | None]
SELECTIONS: dict[str, Selection] = {
    "jobs": (MANAGED_SELECTOR, None),
    "cronjobs": (MANAGED_SELECTOR, None),
    "deployments": (MANAGED_SELECTOR, None),
    "pods": (MANAGED_SELECTOR, None),
    "events": (None, "reason=FailedCreate"),
}
_BACKOFF_FIRST = 0.5
_BACKOFF_MAX = 30.0
_log = logging.getLogger(__name__)


def resource_version(value: Any) -> int:
    """A ``resourceVersion`` as an integer (KEP-5504: positive, no leading zeros).

    Raises:
        ClusterError: anything else.
    """
    text = str(value or "")
    if not text.isdigit() or text.startswith("0"):
        raise ClusterError(f"resourceVersion {text!r} is not comparable")
    return int(text)


def _slim(obj: Obj) -> Obj:
    """``obj`` without ``metadata.managedFields`` (changed in place: it is freshly parsed)."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    return obj


class _Informer:
    """The objects of one resource of one tool, kept by list+watch (see the module)."""

    def __init__(self, owner: _ToolCache, resource: str) -> None:
        self._owner = owner
        self.resource = resource
        self.objects: dict[str, Obj] = {}
        #: The highest resourceVersion seen (list, events, bookmarks); 0 before the list.
        self.version = 0
        self.synced = False
        #: The error of the last attempt while not synced.
        self.error: APIError | None = None

    async def run(self) -> None:
        """List and watch until cancelled."""
        owner = self._owner
        backoff = _BACKOFF_FIRST
        while True:
            try:
                await self._list()
                backoff = _BACKOFF_FIRST
                while True:
                    await self._watch()
            except GoneError:
                owner.metrics.cache_watch_restarts.labels(self.resource, "expired").inc()
                _log.info("tool %s: watch of %s expired; listing again", owner.tool, self.resource)
                self._unsync(None)
            except Exception as exc:  # any failure: not synced, list again
                owner.metrics.cache_watch_restarts.labels(self.resource, "error").inc()
                _log.warning("tool %s: watch of %s failed: %r", owner.tool, self.resource, exc)
                if not isinstance(exc, APIError):
                    exc = ClusterError(f"the watch of {self.resource} failed")
                self._unsync(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)

    def _unsync(self, error: APIError | None) -> None:
        self.synced = False
        self.error = error
        self._owner.changed()

    async def _list(self) -> None:
        owner = self._owner
        label, field = SELECTIONS[self.resource]
        items, version = await owner.storage.list_versioned(
            owner.tool, self.resource, label_selector=label, field_selector=field
        )
        self.objects = {obj["metadata"]["name"]: _slim(obj) for obj in items}
        self.version = max(self.version, resource_version(version))
        self.synced, self.error = True, None
        owner.changed()

    async def _watch(self) -> None:
        """One watch request, until the apiserver ends it."""
        owner = self._owner
        label, field = SELECTIONS[self.resource]
        async with owner.storage.watch(
            owner.tool,
            self.resource,
            resource_version=str(self.version),
            timeout_seconds=owner.watch_seconds,
            label_selector=label,
            field_selector=field,
        ) as events:
            owner.metrics.cache_watches.inc()
            try:
                async for event in events:
                    self._apply(event)
            finally:
                owner.metrics.cache_watches.dec()

    def _apply(self, event: Obj) -> None:
        kind, obj = event.get("type"), event["object"]
        if kind == "ERROR":
            code, message = obj.get("code"), str(obj.get("message") or "")
            if code == 410:
                raise GoneError(message)
            _log.error("watch of %s: error event %s: %s", self.resource, code, message)
            raise ClusterError(f"the watch of {self.resource} failed ({code})")
        meta = obj.get("metadata") or {}
        version = resource_version(meta.get("resourceVersion"))
        if kind in ("ADDED", "MODIFIED"):
            self.objects[meta["name"]] = _slim(obj)
        elif kind == "DELETED":
            self.objects.pop(meta.get("name", ""), None)
        self.version = max(self.version, version)
        self._owner.changed()


class _ToolCache:
    """The 5 informers of one tool, and the versions its writes wait for."""

    def __init__(
        self,
        tool: str,
        storage: ToolImpersonatingStorage,
        metrics: JobsMetrics,
        *,
        watch_seconds: int,
    ) -> None:
        self.tool = tool
        self.storage = storage
        self.metrics = metrics
        self.watch_seconds = watch_seconds
        self.informers = {resource: _Informer(self, resource) for resource in WATCHED}
        #: resource -> the highest resourceVersion written through this process, not yet seen.
        self.pending: dict[str, int] = {}
        #: resource -> ``(name, uid)`` deleted through this process, still in the cache.
        self.pending_gone: dict[str, set[tuple[str, str]]] = {}
        self.last_used = time.monotonic()
        self.closed = False
        self._wake = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopped: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        for resource in self.informers:
            self._run(resource)

    def _run(self, resource: str) -> None:
        old = self._tasks.get(resource)
        if old is not None:
            old.cancel()
            self._stopped.add(old)
            old.add_done_callback(self._stopped.discard)
        self._tasks[resource] = asyncio.create_task(
            self.informers[resource].run(), name=f"watch {self.tool} {resource}"
        )

    async def stop(self) -> None:
        """Cancel the watches and wait until they have ended (connections closed)."""
        self.closed = True
        tasks = [*self._tasks.values(), *self._stopped]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.changed()

    def changed(self) -> None:
        """Wake the reads waiting for this tool."""
        self._wake.set()
        self._wake = asyncio.Event()

    def note_write(self, resource: str, version: int) -> None:
        if resource in self.informers:
            self.pending[resource] = max(self.pending.get(resource, 0), version)

    def note_delete(self, resource: str, name: str, uid: str) -> None:
        if resource in self.informers:
            self.pending_gone.setdefault(resource, set()).add((name, uid))

    def _shows_gone(self, resource: str, name: str, uid: str) -> bool:
        obj = self.informers[resource].objects.get(name)
        if obj is None:
            return True
        meta = obj.get("metadata") or {}
        return meta.get("uid") != uid or bool(meta.get("deletionTimestamp"))

    def _state(self) -> bool | None:
        """``True``: readable; ``False``: wait; ``None``: give up (closed or failing)."""
        if self.closed:
            return None
        informers = self.informers.values()
        if any(not i.synced and i.error is not None for i in informers):
            return None
        if not all(i.synced for i in informers):
            return False
        for resource, version in list(self.pending.items()):
            if self.informers[resource].version < version:
                return False
            del self.pending[resource]
        for resource, deleted in list(self.pending_gone.items()):
            if not all(self._shows_gone(resource, name, uid) for name, uid in deleted):
                return False
            del self.pending_gone[resource]
        return True

    async def read(self, wait: float) -> dict[str, list[Obj]] | None:
        self.last_used = time.monotonic()
        deadline = self.last_used + wait
        while True:
            state = self._state()
            if state:
                return {r: list(i.objects.values()) for r, i in self.informers.items()}
            remaining = deadline - time.monotonic()
            if state is None:
                return None
            if remaining <= 0:
                # a write whose version the watch does not bring (an object outside the
                # selection): list that resource again, which returns a current version
                for resource in [*self.pending, *self.pending_gone]:
                    if self.informers[resource].synced:
                        self._run(resource)
                return None
            wake = self._wake
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await wake.wait()


class ObjectCache:
    """The object caches of the tools that list; see the module documentation.

    Build it inside the running event loop; it registers itself as ``storage``'s write
    listener. :meth:`close` it before closing ``storage``.
    """

    def __init__(
        self, storage: ToolImpersonatingStorage, metrics: JobsMetrics, settings: JobsSettings
    ) -> None:
        self._storage = storage
        self._metrics = metrics
        self._idle = settings.cache_idle_seconds
        self._max_tools = settings.cache_max_tools
        self._wait = settings.cache_wait_seconds
        self._watch_seconds = settings.cache_watch_seconds
        self._tools: OrderedDict[str, _ToolCache] = OrderedDict()
        self._reaper = asyncio.create_task(self._reap(), name="object cache reaper")
        storage.write_listener = self.note_write

    @property
    def tools(self) -> list[str]:
        """The cached tools, least recently read first."""
        return list(self._tools)

    async def read(self, tool: str) -> dict[str, list[Obj]] | None:
        """The tool's objects by resource (each key of :data:`SELECTIONS`, with the objects
        its selection matches), as of a moment after every write this process made for the
        tool; ``None`` when the cache cannot answer within ``cache_wait_seconds`` (first fill,
        a watch failing): then read the apiserver. Starts the tool's watches when needed,
        dropping the least recently read tool beyond ``cache_max_tools``.
        """
        cache = self._tools.get(tool)
        if cache is None:
            cache = _ToolCache(
                tool, self._storage, self._metrics, watch_seconds=self._watch_seconds
            )
            cache.start()
            self._tools[tool] = cache
            while len(self._tools) > self._max_tools:
                _, oldest = self._tools.popitem(last=False)
                self._metrics.cache_evictions.labels("capacity").inc()
                await oldest.stop()
            self._metrics.cache_tools.set(len(self._tools))
        else:
            self._tools.move_to_end(tool)
        found, _ = await gather_all(cache.read(self._wait), self._storage.probe(tool))
        objects: dict[str, list[Obj]] | None = found
        self._metrics.cache_reads.labels("miss" if objects is None else "hit").inc()
        return objects

    def note_write(self, tool: str, resource: str, answer: Obj) -> None:
        """Record a write made as ``tool`` (a :data:`~toolforge_jobs.storage.WriteListener`):
        ``answer`` is the object written (its ``resourceVersion`` is waited for), a delete's
        ``Status`` (its ``details.name`` and ``details.uid`` must leave the cache) or a delete
        collection's list (each item must leave the cache)."""
        cache = self._tools.get(tool)
        if cache is None:
            return  # its first read lists everything anew
        if answer.get("kind") == "Status":
            details = answer.get("details") or {}
            if details.get("name") and details.get("uid"):
                cache.note_delete(resource, str(details["name"]), str(details["uid"]))
            return
        if "items" in answer:
            for item in answer.get("items") or []:
                meta = item.get("metadata") or {}
                if meta.get("name") and meta.get("uid"):
                    cache.note_delete(resource, str(meta["name"]), str(meta["uid"]))
            return
        with contextlib.suppress(ClusterError):
            version = resource_version((answer.get("metadata") or {}).get("resourceVersion"))
            cache.note_write(resource, version)

    async def evict(self, tool: str, reason: str = "idle") -> None:
        """Stop the tool's watches and forget its objects (nothing when it is not cached)."""
        cache = self._tools.pop(tool, None)
        if cache is not None:
            self._metrics.cache_evictions.labels(reason).inc()
            self._metrics.cache_tools.set(len(self._tools))
            await cache.stop()

    async def _reap(self) -> None:
        """Every ``min(cache_idle_seconds / 4, 30)`` seconds, drop tools idle too long."""
        while True:
            await asyncio.sleep(min(self._idle / 4, 30.0))
            limit = time.monotonic() - self._idle
            for tool in [t for t, c in self._tools.items() if c.last_used < limit]:
                await self.evict(tool, "idle")

    async def close(self) -> None:
        """Stop every watch (app shutdown)."""
        self._reaper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reaper
        tools, self._tools = list(self._tools.values()), OrderedDict()
        await asyncio.gather(*(cache.stop() for cache in tools))
        self._metrics.cache_tools.set(0)
        if self._storage.write_listener == self.note_write:
            self._storage.write_listener = None
