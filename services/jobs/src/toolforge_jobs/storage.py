"""Storage: the jobs API's only door to kube-apiserver. It IMPERSONATES THE TOOL.

:class:`ToolImpersonatingStorage` sends every read and write of a tool's objects through the
kit's :class:`toolforge_kit.KubeClient` as the tool (``Impersonate-User: <tool>``,
``Impersonate-Group: toolforge``; Kubernetes "User impersonation"), so the tool's own RBAC
applies and confines the request to namespace ``tool-<tool>``. The service never reads a tool's
key or home. The API's own identity (user ``toolforge-jobs-api``; RBAC in
``devtools/manifests/20-platform-apis.yaml``) may only impersonate tools and read two things as
itself: the tool's namespace (annotations ``toolforge.org/uid`` and ``toolforge.org/home``,
which tools cannot read) and the image list (ConfigMap ``tf-public/image-config``).

Objects are plain JSON dicts (camelCase, as the API serves them). Watches (:meth:`watch`, used
by :mod:`toolforge_jobs.cache`) are long requests; they use a second connection pool
(``cache_max_tools`` x 5 connections) so that they cannot take the connections of ordinary
requests. After every successful write as a tool, the ``write_listener`` (the cache) is told
the tool, the resource and the answer, so that reads from the cache can wait until they
include the write.

Errors: every failure becomes a :class:`toolforge_kit.APIError` (mapping in
:mod:`toolforge_kit.errors`): Kubernetes' human message for the user, details in the log.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp

from toolforge_auth.tools import namespace_for
from toolforge_jobs.metrics import JobsMetrics
from toolforge_jobs.settings import JobsSettings
from toolforge_kit.errors import NotFoundError
from toolforge_kit.kube import KubeClient, Obj, Resource, gather_all

__all__ = [
    "RESOURCES",
    "WATCHED",
    "Obj",
    "Resource",
    "ToolImpersonatingStorage",
    "WriteListener",
    "gather_all",
]

#: Called after each successful write as a tool: ``(tool, resource plural, the answer)``; the
#: answer is the object written (create, replace, patch, delete) or the list of deleted
#: objects (delete_collection).
WriteListener = Callable[[str, str, Obj], None]
_FIELD_MANAGER = "toolforge-jobs-api"
_Items = list[Obj]


def _resources(*items: Resource) -> dict[str, Resource]:
    return {r.plural: r for r in items}


#: The resources the jobs API touches, by plural name.
RESOURCES: dict[str, Resource] = _resources(
    Resource("/apis/batch/v1", "jobs", "Job", "batch/v1"),
    Resource("/apis/batch/v1", "cronjobs", "CronJob", "batch/v1"),
    Resource("/apis/apps/v1", "deployments", "Deployment", "apps/v1"),
    Resource("/apis/apps/v1", "replicasets", "ReplicaSet", "apps/v1"),
    Resource("/api/v1", "services", "Service", "v1"),
    Resource("/api/v1", "pods", "Pod", "v1"),
    Resource("/api/v1", "events", "Event", "v1"),
    Resource("/api/v1", "resourcequotas", "ResourceQuota", "v1"),
    Resource("/api/v1", "limitranges", "LimitRange", "v1"),
    Resource("/api/v1", "configmaps", "ConfigMap", "v1"),
    Resource(
        "/apis/gateway.networking.k8s.io/v1",
        "httproutes",
        "HTTPRoute",
        "gateway.networking.k8s.io/v1",
    ),
)
_BY_KIND = {r.kind: r for r in RESOURCES.values()}
_NAMESPACES = Resource("/api/v1", "namespaces", "Namespace", "v1")
#: The resources the object cache watches per tool (:mod:`toolforge_jobs.cache`).
WATCHED = ("jobs", "cronjobs", "deployments", "pods", "events")


class ToolImpersonatingStorage:
    """The jobs API's kube-apiserver access, acting as the tool; see the module documentation.

    Build it with :meth:`connect` inside the running event loop and :meth:`close` it at
    shutdown. ``tool`` arguments are tool names (not namespaces), checked before being
    impersonated (:class:`ValueError` otherwise).
    """

    def __init__(
        self,
        kube: KubeClient,
        *,
        max_log_streams: int,
        watch_kube: KubeClient | None = None,
        metrics: JobsMetrics | None = None,
    ) -> None:
        self._kube = kube
        self._watch_kube = watch_kube or kube
        self._metrics = metrics
        self.write_listener: WriteListener | None = None
        self._max_log_streams = max_log_streams
        self._open_logs = 0

    @classmethod
    async def connect(
        cls, settings: JobsSettings, metrics: JobsMetrics
    ) -> ToolImpersonatingStorage:
        """Load the API's credentials (``settings.kubeconfig``, else the in-cluster
        ServiceAccount) and open the two connection pools. No request is made yet.

        Raises:
            kubernetes_asyncio.config.ConfigException, OSError: unusable credentials.
        """
        kube = await KubeClient.for_backend(
            settings,
            user_agent="toolforge-jobs-api",
            metrics=metrics,
        )
        watch_kube = kube.second_pool(settings.cache_max_tools * len(WATCHED) + 1)
        return cls(
            kube,
            max_log_streams=settings.logs_max_streams,
            watch_kube=watch_kube,
            metrics=metrics,
        )

    async def close(self) -> None:
        """Close the connection pools."""
        await self._kube.close()
        if self._watch_kube is not self._kube:
            await self._watch_kube.close()

    def _written(self, tool: str, resource: str, answer: Obj | None) -> None:
        if answer is not None and self.write_listener is not None:
            self.write_listener(tool, resource, answer)

    # ----- acting as the tool (impersonation) -------------------------------------------

    async def list(
        self,
        tool: str,
        resource: str,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> _Items:
        """Objects of ``resource`` (plural, a key of :data:`RESOURCES`) in the tool's namespace,
        with ``kind`` and ``apiVersion`` set."""
        items, _ = await self.list_versioned(
            tool, resource, label_selector=label_selector, field_selector=field_selector
        )
        return items

    async def list_versioned(
        self,
        tool: str,
        resource: str,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[_Items, str]:
        """:meth:`list`, and the list's ``metadata.resourceVersion`` (where a watch of the
        same collection starts; '' when the apiserver gave none)."""
        return await self._kube.list(
            RESOURCES[resource],
            namespace_for(tool),
            as_tool=tool,
            label_selector=label_selector,
            field_selector=field_selector,
        )

    @asynccontextmanager
    async def watch(
        self,
        tool: str,
        resource: str,
        *,
        resource_version: str,
        timeout_seconds: int,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> AsyncIterator[AsyncIterator[Obj]]:
        """Watch ``resource`` in the tool's namespace, as the tool, on the watch pool; see
        :meth:`toolforge_kit.KubeClient.watch` for the events and errors."""
        async with self._watch_kube.watch(
            RESOURCES[resource],
            namespace_for(tool),
            resource_version=resource_version,
            timeout_seconds=timeout_seconds,
            as_tool=tool,
            label_selector=label_selector,
            field_selector=field_selector,
        ) as events:
            yield events

    async def probe(self, tool: str) -> None:
        """One small live read as the tool (its namespace's LimitRanges, at most one item): it
        proves that kube-apiserver answers and that the tool may still read its namespace.
        Counted in the kube metrics as resource ``probe``.

        Raises:
            UnavailableError: kube-apiserver cannot be reached.
            ForbiddenError: the tool may no longer read its namespace.
        """
        await self._kube.request(
            "GET",
            RESOURCES["limitranges"].collection(namespace_for(tool)),
            label="probe",
            as_tool=tool,
            query=[("limit", "1")],
        )

    async def get(self, tool: str, resource: str, name: str) -> Obj | None:
        """One object of the tool's namespace, ``None`` when it does not exist."""
        return await self._kube.get(RESOURCES[resource], namespace_for(tool), name, as_tool=tool)

    async def create(self, tool: str, obj: Obj) -> Obj:
        """Create ``obj`` (a dict with ``kind``) in the tool's namespace; returns it as stored."""
        res = _BY_KIND[obj["kind"]]
        created = await self._kube.create(
            res, namespace_for(tool), obj, as_tool=tool, field_manager=_FIELD_MANAGER
        )
        self._written(tool, res.plural, created)
        return created

    async def replace(self, tool: str, obj: Obj) -> Obj:
        """Replace (PUT) ``obj``; its ``metadata.resourceVersion`` guards against lost updates
        (409 when the object changed meanwhile)."""
        res = _BY_KIND[obj["kind"]]
        replaced = await self._kube.replace(
            res, namespace_for(tool), obj, as_tool=tool, field_manager=_FIELD_MANAGER
        )
        self._written(tool, res.plural, replaced)
        return replaced

    async def patch(self, tool: str, resource: str, name: str, patch: Obj) -> Obj:
        """Apply a JSON merge patch (RFC 7386) to one object."""
        patched = await self._kube.patch(
            RESOURCES[resource],
            namespace_for(tool),
            name,
            patch,
            as_tool=tool,
            field_manager=_FIELD_MANAGER,
        )
        self._written(tool, resource, patched)
        return patched

    async def delete(self, tool: str, resource: str, name: str) -> bool:
        """Delete one object with background propagation (the object goes at once, its
        dependents - pods, ReplicaSets, a CronJob's Jobs - are then garbage-collected);
        ``False`` when it did not exist."""
        answer = await self._kube.delete(
            RESOURCES[resource], namespace_for(tool), name, as_tool=tool
        )
        self._written(tool, resource, answer)
        return answer is not None

    async def delete_collection(self, tool: str, resource: str, label_selector: str) -> None:
        """Delete every object of ``resource`` matching ``label_selector`` (background
        propagation)."""
        answer = await self._kube.delete_collection(
            RESOURCES[resource], namespace_for(tool), label_selector, as_tool=tool
        )
        self._written(tool, resource, answer)

    @property
    def open_log_streams(self) -> int:
        """Pod log connections open now."""
        return self._open_logs

    @asynccontextmanager
    async def pod_log(
        self,
        tool: str,
        pod: str,
        *,
        container: str,
        follow: bool,
        tail_lines: int | None = None,
    ) -> AsyncIterator[aiohttp.StreamReader]:
        """The log of one container, as the tool; see
        :meth:`toolforge_kit.KubeClient.pod_log`.

        Raises:
            UnavailableError: ``logs_max_streams`` connections are open already, or the
                apiserver is unreachable.
            BadRequestError: the container has not started (Kubernetes answers 400).
        """
        if self._open_logs >= self._max_log_streams:
            raise self._kube.too_busy("too many log streams are open")
        self._open_logs += 1
        if self._metrics is not None:
            self._metrics.log_upstreams.inc()
        try:
            async with self._kube.pod_log(
                namespace_for(tool),
                pod,
                container=container,
                follow=follow,
                tail_lines=tail_lines,
                as_tool=tool,
            ) as stream:
                yield stream
        finally:
            self._open_logs -= 1
            if self._metrics is not None:
                self._metrics.log_upstreams.dec()

    # ----- the service's own identity ---------------------------------------------------

    async def tool_namespace(self, tool: str) -> Obj | None:
        """The tool's Namespace (read as the service: tools cannot read it), ``None`` when
        the tool has none.

        Raises:
            ValueError: ``tool`` is not a tool name.
        """
        try:
            return await self._kube.request(
                "GET", f"{_NAMESPACES.collection(None)}/{namespace_for(tool)}", label="namespaces"
            )
        except NotFoundError:
            return None

    async def config_map(self, namespace: str, name: str) -> Obj:
        """A ConfigMap read as the service (the image list).

        Raises:
            NotFoundError: it does not exist.
        """
        res = RESOURCES["configmaps"]
        return await self._kube.request("GET", res.item(namespace, name), label="configmaps")
