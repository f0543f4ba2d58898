"""Business rules of the builds API (REFERENCE.md "Builds API (v1)").

- **start**: the request is validated by :class:`~toolforge_builds.models.BuildRequest`; the ref
  is resolved with ``git ls-remote`` (:func:`toolforge_builds.gitref.resolve_ref`; an
  unreachable repository or unknown ref is a 400 and nothing is created); a quota slot is
  reserved (:mod:`toolforge_builds.quota`, 409 over quota); the PipelineRun is created under the
  reserved name; then finished runs beyond the retention policy are pruned
  (:func:`toolforge_builds.retention.runs_to_prune`, never an unfinished run).
- **ownership**: a build is the tool's when its ``user`` label says so
  (:func:`~toolforge_builds.builders.belongs_to_tool`); anything else is the same 404 as a
  build that does not exist.
- **cancel** merge-patches ``spec.status: Cancelled`` guarded by the ``resourceVersion`` it
  checked; 409 when the build has finished. **delete** removes the run and frees its slot.
- **logs**: see :meth:`BuildsService.logs` and :mod:`toolforge_builds.logs`.
- **registry** (:mod:`toolforge_builds.registry`): a tool's images are the repositories
  ``tool-<tool>/...`` (REFERENCE.md ``APP_IMAGE``), nothing else. **quotas** adds the storage
  they use: the distinct blobs (config + layers, index children included, deduplicated by
  digest) of every *tagged* manifest, against ``registry_storage_limit``. **clean** deletes
  every manifest reachable from the tags of those repositories (an index before its
  children). The space of deleted blobs comes back only with the registry's offline
  garbage collection, which is also why untagged data does not count as used.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from toolforge_builds import gitref
from toolforge_builds.builders import (
    belongs_to_tool,
    build_from_pipelinerun,
    build_pipelinerun,
    builder_warnings,
    cancel_patch,
    envvar_values,
    new_build_from_pipelinerun,
    tool_label_selector,
)
from toolforge_builds.logs import (
    ContainerLogStream,
    LogSource,
    Redactor,
    build_log_redactor,
    hidden_line,
    ndjson,
    pipeline_task_order,
    plan_log_sources,
)
from toolforge_builds.models import (
    Build,
    BuildRequest,
    NewBuild,
    Quota,
    QuotaCategory,
    QuotaItem,
    StorageBytes,
)
from toolforge_builds.quota import QuotaKeeper, random_suffix
from toolforge_builds.registry import (
    ImageManifest,
    RegistryClient,
    format_bytes,
    storage_used,
    tool_repository_prefix,
)
from toolforge_builds.retention import newest_first, runs_to_prune
from toolforge_builds.settings import BuildsSettings
from toolforge_builds.status import build_state, is_finished
from toolforge_builds.storage import LabelScopedServiceStorage, Obj
from toolforge_kit.errors import APIError, BadRequestError, ConflictError, NotFoundError

__all__ = [
    "PIPELINERUN_POD_LABEL",
    "BuildsService",
    "CleanResult",
    "ToolRepository",
    "capacity",
]

#: Tekton labels every TaskRun pod with its PipelineRun (REFERENCE.md "Tekton facts").
PIPELINERUN_POD_LABEL = "tekton.dev/pipelineRun"
_log = logging.getLogger(__name__)


def capacity(used: int, limit: int) -> str:
    """The share of ``limit`` that ``used`` takes, as upstream shows it: ``"NN%"``, rounded
    down (``"100%"`` only when full; above 100 when over the limit; ``"100%"`` for a zero
    limit)."""
    if limit <= 0:
        return "100%"
    return f"{used * 100 // limit}%"


def _not_found(build_id: str) -> NotFoundError:
    return NotFoundError(f"Build '{build_id}' does not exist.")


@dataclass(frozen=True)
class ToolRepository:
    """One repository of a tool: its tags and the distinct manifests they reach (tagged
    manifests first, each before its children)."""

    name: str
    tags: tuple[str, ...]
    manifests: tuple[ImageManifest, ...]


@dataclass(frozen=True)
class CleanResult:
    """What ``clean`` deleted: image references (``<registry>/<repository>:<tag>``) and the
    number of manifests."""

    images: tuple[str, ...]
    manifests: int


class BuildsService:
    """The builds API's operations for one verified tool name per call."""

    def __init__(
        self, storage: LabelScopedServiceStorage, settings: BuildsSettings, registry: RegistryClient
    ) -> None:
        self._storage = storage
        self._settings = settings
        self._registry = registry
        self.quota = QuotaKeeper(
            storage,
            limit=settings.max_parallel_builds,
            grace_seconds=settings.quota_reservation_grace_seconds,
            attempts=settings.quota_update_attempts,
            retry_after=settings.retry_after_seconds,
        )

    # ----- start ------------------------------------------------------------------------------

    async def _resolve(self, request: BuildRequest) -> str:
        try:
            return await gitref.resolve_ref(
                request.source_url,
                request.ref,
                timeout=self._settings.ls_remote_timeout_seconds,
                ca_file=self._settings.git_ca_file,
            )
        except gitref.GitRefError as exc:
            raise BadRequestError(
                f"source_url: cannot resolve the ref: {exc}. Check that the repository is "
                "public and reachable over https and that the branch or tag exists."
            ) from exc

    async def start(self, tool: str, request: BuildRequest) -> tuple[NewBuild, list[str]]:
        """Start a build; returns it and warnings (a version flag this platform has no builder
        for, pruning that failed).

        Raises:
            BadRequestError: the ref cannot be resolved (nothing is created).
            BuildQuotaExceededError: ``max_parallel_builds`` unfinished builds exist (409).
            UnavailableError, InvalidObjectError, ...: from the cluster.
        """
        commit = await self._resolve(request)
        body = build_pipelinerun(
            request, tool=tool, resolved_commit=commit, settings=self._settings
        )
        metadata = body["metadata"]
        # The name is chosen here, as generateName would, so the slot names it before it exists.
        metadata["name"] = metadata.pop("generateName") + random_suffix()
        await self.quota.reserve(tool, metadata["name"])
        try:
            created = await self._storage.create_pipelinerun(body)
        except BaseException:
            await asyncio.shield(self.quota.release(tool, metadata["name"]))
            raise
        warnings = builder_warnings(request, self._settings) + await self._prune(tool)
        return new_build_from_pipelinerun(created), warnings

    async def _prune(self, tool: str) -> list[str]:
        try:
            runs = await self._storage.list_pipelineruns(tool_label_selector(tool))
            prune = runs_to_prune(
                runs,
                tool=tool,
                keep_successful=self._settings.keep_successful,
                keep_failed=self._settings.keep_failed,
            )
            for run in prune:
                metadata = run["metadata"]
                await self._storage.delete_pipelinerun(metadata["name"], uid=metadata.get("uid"))
        except APIError as exc:
            _log.warning("pruning the builds of %s failed: %s", tool, exc)
            return ["old builds could not be cleaned up this time"]
        return []

    # ----- reads --------------------------------------------------------------------------------

    async def _runs(self, tool: str) -> list[Obj]:
        runs = await self._storage.list_pipelineruns(tool_label_selector(tool))
        ns = self._settings.namespace
        return [
            dict(run)
            for run in newest_first(r for r in runs if belongs_to_tool(r, tool, namespace=ns))
        ]

    async def _run(self, tool: str, build_id: str) -> Obj:
        run = await self._storage.get_pipelinerun(build_id)
        if run is None or not belongs_to_tool(run, tool, namespace=self._settings.namespace):
            raise _not_found(build_id)
        return run

    async def list_builds(self, tool: str) -> list[Build]:
        """The tool's builds, newest first."""
        return [build_from_pipelinerun(run) for run in await self._runs(tool)]

    async def latest(self, tool: str) -> Build:
        """The newest build; :class:`NotFoundError` "No builds exist yet." when none."""
        runs = await self._runs(tool)
        if not runs:
            raise NotFoundError("No builds exist yet.")
        return build_from_pipelinerun(runs[0])

    async def show(self, tool: str, build_id: str) -> Build:
        """One build; :class:`NotFoundError` when absent or another tool's."""
        return build_from_pipelinerun(await self._run(tool, build_id))

    # ----- changes -------------------------------------------------------------------------------

    async def delete(self, tool: str, build_id: str) -> None:
        """Delete the build's PipelineRun (its TaskRuns and pods go with it) and free its slot."""
        run = await self._run(tool, build_id)
        if not await self._storage.delete_pipelinerun(build_id, uid=run["metadata"].get("uid")):
            raise _not_found(build_id)
        await self.quota.release(tool, build_id)

    async def cancel(self, tool: str, build_id: str) -> None:
        """Ask Tekton to cancel the run (``spec.status: Cancelled``).

        Raises:
            ConflictError: the build has finished (or finished while we patched it).
        """
        for _ in range(3):
            run = await self._run(tool, build_id)
            if is_finished(run):
                status = build_state(run).status.short
                raise ConflictError(
                    f"Build '{build_id}' has already finished ({status}); it cannot be cancelled."
                )
            try:
                await self._storage.patch_pipelinerun(
                    build_id, cancel_patch(), resource_version=run["metadata"]["resourceVersion"]
                )
            except ConflictError:
                continue  # changed meanwhile: check again whether it finished
            return
        raise ConflictError(f"Build '{build_id}' keeps changing; try again.")

    async def quotas(self, tool: str) -> Quota:
        """The registry storage (category ``Registry``, item ``Storage``, as upstream: bytes of
        the distinct blobs of the tool's tagged images; REFERENCE.md: 1 GiB per tool) and the
        parallel-build quota (category ``Builds``), each with its use, what is left and the
        share used (``capacity``), plus the storage in exact bytes.

        Raises:
            UnavailableError: kube-apiserver or the registry cannot be reached (503).
            RegistryError: the registry refused us or answered nonsense (502).
        """
        used = len(await self.quota.active(tool))
        limit = self._settings.max_parallel_builds
        builds = QuotaItem(
            name="Parallel builds",
            limit=str(limit),
            used=str(used),
            available=str(max(limit - used, 0)),
            capacity=capacity(used, limit),
        )
        repositories = await self.tool_repositories(tool)
        stored = storage_used(m for repo in repositories for m in repo.manifests)
        storage_limit = int(self._settings.registry_storage_limit)
        storage = QuotaItem(
            name="Storage",
            limit=format_bytes(storage_limit),
            used=format_bytes(stored),
            available=format_bytes(max(storage_limit - stored, 0)),
            capacity=capacity(stored, storage_limit),
        )
        return Quota(
            categories=[
                QuotaCategory(name="Registry", items=[storage]),
                QuotaCategory(name="Builds", items=[builds]),
            ],
            storage_bytes=StorageBytes(limit=storage_limit, used=stored),
        )

    # ----- registry -----------------------------------------------------------------------------

    async def tool_repositories(self, tool: str) -> list[ToolRepository]:
        """The tool's repositories (``tool-<tool>/...``), their tags and reachable manifests.
        Manifests deleted while this runs are skipped."""
        found = []
        for name in await self._registry.repositories(tool_repository_prefix(tool)):
            tags = await self._registry.tags(name)
            manifests: dict[str, ImageManifest] = {}
            for tag in tags:
                manifest = await self._registry.manifest(name, tag)
                if manifest is not None:
                    await self._reach(name, manifest, manifests)
            found.append(ToolRepository(name, tuple(tags), tuple(manifests.values())))
        return found

    async def _reach(
        self, repository: str, manifest: ImageManifest, into: dict[str, ImageManifest]
    ) -> None:
        """Add ``manifest`` and, depth first, the children of an index (each digest once)."""
        if manifest.digest in into:
            return
        into[manifest.digest] = manifest
        for child in manifest.children:
            if child not in into:
                reached = await self._registry.manifest(repository, child)
                if reached is not None:
                    await self._reach(repository, reached, into)

    async def clean(self, tool: str) -> CleanResult:
        """Delete every manifest reachable from the tags of the tool's repositories (their
        tags go with them); another tool's repositories are never listed, so never touched.

        Raises:
            UnavailableError: the registry cannot be reached (503); what was deleted stays
                deleted, a retry deletes the rest.
            RegistryError: the registry refused (e.g. deletes disabled) (502).
        """
        images: list[str] = []
        deleted = 0
        for repository in await self.tool_repositories(tool):
            for manifest in repository.manifests:
                if await self._registry.delete_manifest(repository.name, manifest.digest):
                    deleted += 1
            images += [f"{self._settings.registry}/{repository.name}:{t}" for t in repository.tags]
        if images:
            _log.info("deleted %d manifests of %s from the registry", deleted, tool)
        return CleanResult(images=tuple(images), manifests=deleted)

    # ----- logs ----------------------------------------------------------------------------------

    async def _redactor(self, run: Obj) -> Redactor:
        credentials = await self._storage.basic_auth(self._settings.registry_auth_secret)
        if credentials is None:
            _log.warning("registry Secret %s unreadable", self._settings.registry_auth_secret)
        return build_log_redactor(envvar_values(run), credentials)

    async def _sources(self, run: Obj) -> list[LogSource]:
        name = run["metadata"]["name"]
        pods = await self._storage.list_pods(f"{PIPELINERUN_POD_LABEL}={name}")
        return plan_log_sources(
            pods, deny=self._settings.log_deny_list, task_order=pipeline_task_order(run)
        )

    async def logs(self, tool: str, build_id: str, *, follow: bool) -> AsyncIterator[bytes]:
        """The build's log as NDJSON records ``{"line": "[container] <ts> text"}``.

        Containers come in step order (:func:`toolforge_builds.logs.plan_log_sources`); a
        container on ``log_deny_list`` gives one ``[container] output hidden`` line; every line
        is scrubbed of the registry credentials and the build's env values.

        Without ``follow``: what is there now. With ``follow``: waits up to
        ``log_follow_start_timeout_seconds`` for the first pod, streams every container as it
        runs, and ends when the run has finished and every container has been read (or after
        ``logs_follow_max_seconds``). Ownership and the first listing are checked before the
        first byte, so a missing build is a plain 404.
        """
        run = await self._run(tool, build_id)
        redactor = await self._redactor(run)
        sources = await self._sources(run)
        if not follow:
            if not sources:
                raise NotFoundError(f"Build '{build_id}' has no logs yet (it has not started).")
            return self._read(sources, redactor)
        return self._follow(build_id, sources, redactor)

    async def _read(self, sources: list[LogSource], redactor: Redactor) -> AsyncIterator[bytes]:
        for source in sources:
            async for record in self._container(source, redactor, follow=False):
                yield record

    async def _container(
        self, source: LogSource, redactor: Redactor, *, follow: bool
    ) -> AsyncIterator[bytes]:
        if source.hidden:
            yield ndjson(hidden_line(source.container))
            return
        stream = ContainerLogStream(source.container, redactor)
        try:
            async with self._storage.pod_log(
                source.pod, container=source.container, follow=follow
            ) as body:
                async for chunk in body.iter_any():
                    for line in stream.feed(chunk):
                        yield ndjson(line)
        except (BadRequestError, NotFoundError):
            return  # not started (or gone): nothing to show for it
        for line in stream.close():
            yield ndjson(line)

    async def _follow(
        self, build_id: str, sources: list[LogSource], redactor: Redactor
    ) -> AsyncIterator[bytes]:
        settings = self._settings
        started = time.monotonic()
        deadline = started + settings.logs_follow_max_seconds
        done: set[tuple[str, str]] = set()
        while time.monotonic() < deadline:
            for source in sources:
                key = (source.pod, source.container)
                if key in done:
                    continue
                done.add(key)
                if source.hidden or await self._wait_started(build_id, source):
                    async for record in self._container(source, redactor, follow=True):
                        yield record
            run = await self._storage.get_pipelinerun(build_id)
            if run is None:
                return
            sources = await self._sources(run)
            if any((s.pod, s.container) not in done for s in sources):
                continue
            if is_finished(run):
                return
            if (
                not sources
                and time.monotonic() - started > settings.log_follow_start_timeout_seconds
            ):
                yield ndjson("[builds-api] the build did not start in time; stopped waiting")
                return
            await asyncio.sleep(settings.logs_poll_seconds)

    async def _wait_started(self, build_id: str, source: LogSource) -> bool:
        """Wait until ``source``'s container runs or ran; ``False`` when the run or the pod
        finishes (or the pod goes away) first."""
        while True:
            pods = await self._storage.list_pods(f"{PIPELINERUN_POD_LABEL}={build_id}")
            pod = next((p for p in pods if p["metadata"]["name"] == source.pod), None)
            if pod is None:
                return False
            if _container_started(pod, source.container):
                return True
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                return False
            run = await self._storage.get_pipelinerun(build_id)
            if run is None or is_finished(run):
                return False
            await asyncio.sleep(self._settings.logs_poll_seconds)


def _container_started(pod: Obj, container: str) -> bool:
    status = pod.get("status") or {}
    for key in ("initContainerStatuses", "containerStatuses"):
        for item in status.get(key) or ():
            if item.get("name") == container:
                state: dict[str, Any] = item.get("state") or {}
                return "running" in state or "terminated" in state
    return False
