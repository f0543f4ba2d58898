"""Storage: the jobs API's only door to kube-apiserver.

One :class:`KubeStorage` per process holds ONE kubernetes_asyncio ``ApiClient`` (one aiohttp
connection pool of ``kube_max_connections``) authenticated as the API's own identity (user
``toolforge-jobs-api``; RBAC in ``devtools/manifests/20-platform-apis.yaml``).

- Every read and write of a tool's objects is sent with ``Impersonate-User: <tool>`` and
  ``Impersonate-Group: toolforge`` (Kubernetes "User impersonation"), so the tool's own RBAC
  applies and confines the request to namespace ``tool-<tool>``. The service never reads a
  tool's key or home.
- Only two reads use the service's own identity: the tool's namespace (annotations
  ``toolforge.org/uid`` and ``toolforge.org/home``, which tools cannot read) and the image list
  (ConfigMap ``tf-public/image-config``).

Objects are plain JSON dicts (camelCase, as the API serves them): responses are read with
``_preload_content=False`` and parsed with orjson, skipping the generated model classes.
Listed items get their ``kind`` and ``apiVersion`` filled in.

Watches (:meth:`KubeStorage.watch`, used by :mod:`toolforge_jobs.cache`) are long requests;
they use a second connection pool (``cache_max_tools`` x 5 connections) so that they cannot
take the connections of ordinary requests. After every successful write as a tool, the
``write_listener`` (the cache) is told the tool, the resource and the answer, so that reads
from the cache can wait until they include the write.

Errors: every failure becomes a :class:`~toolforge_jobs.errors.JobsAPIError`, with Kubernetes'
human message (never the response body) for the user, and the details in the log:

=====================================  ===============================================
Kubernetes answer                      error (HTTP status)
=====================================  ===============================================
403 ``exceeded quota``                 :class:`QuotaExceededError` (403)
403 other                              :class:`ForbiddenError` (403)
404                                    :class:`NotFoundError` (404), or ``None``/``False``
                                       from :meth:`get`/:meth:`delete`
409 AlreadyExists / Conflict           :class:`ConflictError` (409)
410 Gone (expired resourceVersion)     :class:`GoneError` (a ConflictError, 409)
422 Invalid                            :class:`InvalidObjectError` (422)
400                                    :class:`BadRequestError` (400)
429, 502-504, no answer, timeout       :class:`UnavailableError` (503, ``Retry-After``)
401, 500, anything else                :class:`ClusterError` (502)
=====================================  ===============================================
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config

from toolforge_jobs.errors import (
    BadRequestError,
    ClusterError,
    ConflictError,
    ForbiddenError,
    GoneError,
    InvalidObjectError,
    JobsAPIError,
    NotFoundError,
    QuotaExceededError,
    UnavailableError,
)
from toolforge_jobs.logs import LineSplitter
from toolforge_jobs.metrics import JobsMetrics
from toolforge_jobs.settings import JobsSettings

__all__ = [
    "RESOURCES",
    "TOOL_GROUP",
    "WATCHED",
    "KubeStorage",
    "Obj",
    "Resource",
    "WriteListener",
    "gather_all",
    "namespace_of",
]

Obj = dict[str, Any]
#: Called after each successful write as a tool: ``(tool, resource plural, the answer)``; the
#: answer is the object written (create, replace, patch, delete) or the list of deleted
#: objects (delete_collection).
WriteListener = Callable[[str, str, Obj], None]
_Items = list[Obj]
#: Longest watch event line read (a whole object; etcd stores objects up to 1.5 MiB).
_MAX_WATCH_LINE = 16 * 1024 * 1024

#: The group every impersonated request carries (the tools' group; REFERENCE.md).
TOOL_GROUP = "toolforge"
# Tool names are DNS-1123 labels (toolforge_auth.identity): never 'system:...' users.
_TOOL_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
# Object names: DNS-1123 subdomains (Kubernetes API conventions, "Names").
_OBJECT_NAME_RE = re.compile(
    r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
)
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resource:
    """A namespaced resource: ``base`` API path, ``plural`` name, its ``kind`` and
    ``api_version``."""

    base: str
    plural: str
    kind: str
    api_version: str

    def collection(self, namespace: str) -> str:
        """``<base>/namespaces/<ns>/<plural>``."""
        return f"{self.base}/namespaces/{namespace}/{self.plural}"

    def item(self, namespace: str, name: str) -> str:
        """``<base>/namespaces/<ns>/<plural>/<name>``.

        Raises:
            ValueError: ``name`` is not an object name (a DNS-1123 subdomain), so that no
                ``..``, ``/`` or ``?`` can change the path.
        """
        if not _OBJECT_NAME_RE.fullmatch(name):
            raise ValueError(f"{name!r} is not a Kubernetes object name")
        return f"{self.collection(namespace)}/{name}"


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
)
_BY_KIND = {r.kind: r for r in RESOURCES.values()}
#: The resources the object cache watches per tool (:mod:`toolforge_jobs.cache`).
WATCHED = ("jobs", "cronjobs", "deployments", "pods", "events")

MERGE_PATCH = "application/merge-patch+json"


def namespace_of(tool: str) -> str:
    """``tool-<tool>`` (REFERENCE.md, "Identity and the gateway")."""
    return f"tool-{tool}"


def _status_message(body: bytes) -> tuple[str, str]:
    """``(reason, message)`` of a Kubernetes ``Status`` body ('' when it is not one)."""
    try:
        status = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "", ""
    if not isinstance(status, dict):
        return "", ""
    return str(status.get("reason") or ""), str(status.get("message") or "")


class KubeStorage:
    """kube-apiserver access for the jobs API; see the module documentation.

    Build it with :meth:`connect` inside the running event loop and :meth:`close` it at
    shutdown. ``tool`` arguments are tool names (not namespaces); they are checked to be
    DNS-1123 labels before being impersonated (:class:`ValueError` otherwise).
    """

    def __init__(
        self,
        api: k8s.ApiClient,
        metrics: JobsMetrics,
        *,
        timeout: float,
        retry_after: int,
        max_log_streams: int,
        watch_api: k8s.ApiClient | None = None,
    ) -> None:
        self._api = api
        self._watch_api = watch_api or api
        self.write_listener: WriteListener | None = None
        self._metrics = metrics
        self._timeout = timeout
        self._retry_after = retry_after
        self._max_log_streams = max_log_streams
        self._open_logs = 0

    @classmethod
    async def connect(cls, settings: JobsSettings, metrics: JobsMetrics) -> KubeStorage:
        """Load the API's credentials (``settings.kubeconfig``, else the in-cluster
        ServiceAccount) and open the shared client. No request is made yet.

        Raises:
            kubernetes_asyncio.config.ConfigException, OSError: unusable credentials.
        """
        conf = k8s.Configuration()
        if settings.kubeconfig is not None:
            await k8s_config.load_kube_config(
                config_file=str(settings.kubeconfig), client_configuration=conf
            )
        else:
            k8s_config.load_incluster_config(client_configuration=conf)  # type: ignore[no-untyped-call]
        conf.connection_pool_maxsize = settings.kube_max_connections
        api = k8s.ApiClient(conf)
        api.user_agent = "toolforge-jobs-api"
        watch_conf = copy.copy(conf)
        watch_conf.connection_pool_maxsize = settings.cache_max_tools * len(WATCHED) + 1
        watch_api = k8s.ApiClient(watch_conf)
        watch_api.user_agent = "toolforge-jobs-api"
        return cls(
            api,
            metrics,
            timeout=settings.kube_timeout_seconds,
            retry_after=settings.retry_after_seconds,
            max_log_streams=settings.logs_max_streams,
            watch_api=watch_api,
        )

    async def close(self) -> None:
        """Close the connection pools."""
        await self._api.close()
        if self._watch_api is not self._api:
            await self._watch_api.close()

    # ----- the one request path -----------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        *,
        label: str,
        tool: str | None,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
        api: k8s.ApiClient | None = None,
    ) -> aiohttp.ClientResponse:
        """Send one request; returns the (unread) 2xx response or raises a mapped error."""
        headers = {"Accept": "application/json"}
        if tool is not None:
            if not _TOOL_RE.fullmatch(tool):
                raise ValueError(f"refusing to impersonate {tool!r}: not a tool name")
            headers["Impersonate-User"] = tool
            headers["Impersonate-Group"] = TOOL_GROUP
        if content_type is not None:
            headers["Content-Type"] = content_type
        started = time.perf_counter()
        try:
            response: aiohttp.ClientResponse = await (api or self._api).call_api(
                path,
                method,
                query_params=query or [],
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=timeout or aiohttp.ClientTimeout(total=self._timeout),
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._metrics.observe_kube(method, label, None, time.perf_counter() - started)
            raise self._unreachable(method, path, exc) from exc
        self._metrics.observe_kube(method, label, response.status, time.perf_counter() - started)
        if response.status < 400:
            return response
        try:
            raw = await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError):
            raw = b""
        finally:
            response.release()
        raise self._map_error(method, path, tool, response.status, raw, response.headers)

    async def _json(self, method: str, path: str, **kwargs: Any) -> Obj:
        response = await self._send(method, path, **kwargs)
        try:
            raw = await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise self._unreachable(method, path, exc) from exc
        finally:
            response.release()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            _log.error("%s %s: response is not JSON: %s", method, path, exc)
            raise ClusterError("the Kubernetes API answered something unexpected") from exc
        if not isinstance(data, dict):
            raise ClusterError("the Kubernetes API answered something unexpected")
        tool = kwargs.get("tool")
        if method != "GET" and tool is not None and self.write_listener is not None:
            self.write_listener(tool, kwargs["label"], data)
        return data

    def _unreachable(self, method: str, path: str, exc: BaseException) -> UnavailableError:
        self._metrics.kube_errors.labels("unavailable").inc()
        _log.warning("%s %s: kube-apiserver unreachable: %r", method, path, exc)
        return UnavailableError(
            "the Kubernetes API cannot be reached; try again later",
            retry_after=self._retry_after,
        )

    def _map_error(
        self,
        method: str,
        path: str,
        tool: str | None,
        status: int,
        body: bytes,
        headers: Any,
    ) -> JobsAPIError:
        reason, message = _status_message(body)
        _log.log(
            logging.DEBUG if status == 404 else logging.INFO,
            "%s %s as %s: %d %s: %s",
            method,
            path,
            tool or "service",
            status,
            reason,
            message,
        )
        message = message or reason or f"HTTP {status}"
        error: JobsAPIError
        kind: str
        if status == 403 and "exceeded quota" in message:
            error, kind = QuotaExceededError(message), "quota"
        elif status == 403:
            error, kind = ForbiddenError(message), "forbidden"
        elif status == 404:
            error, kind = NotFoundError(message), "not_found"
        elif status == 409:
            error, kind = ConflictError(message), "conflict"
        elif status == 410:
            error, kind = GoneError(message), "conflict"
        elif status == 422:
            error, kind = InvalidObjectError(message), "invalid"
        elif status == 400:
            error, kind = BadRequestError(message), "bad_request"
        elif status in (429, 502, 503, 504):
            retry = headers.get("Retry-After", "")
            error = UnavailableError(
                "the Kubernetes API is overloaded or unavailable; try again later",
                retry_after=int(retry) if retry.isdigit() else self._retry_after,
            )
            kind = "unavailable"
        else:
            _log.error("%s %s: unexpected %d %s: %s", method, path, status, reason, message)
            error = ClusterError(f"the Kubernetes API failed the request ({status} {reason})")
            kind = "cluster"
        self._metrics.kube_errors.labels(kind).inc()
        return error

    # ----- acting as the tool (impersonation) -------------------------------------------

    async def list(
        self,
        tool: str,
        resource: str,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Obj]:
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
        res = RESOURCES[resource]
        data = await self._json(
            "GET",
            res.collection(namespace_of(tool)),
            label=resource,
            tool=tool,
            query=_selectors(label_selector, field_selector),
        )
        items: _Items = data.get("items") or []
        for item in items:
            item.setdefault("kind", res.kind)
            item.setdefault("apiVersion", res.api_version)
        return items, str((data.get("metadata") or {}).get("resourceVersion") or "")

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
        """Watch ``resource`` in the tool's namespace from ``resource_version`` on, with
        bookmarks (Kubernetes API concepts, "Efficient detection of changes", "Watch
        bookmarks"). Yields an iterator of the watch events ``{"type": ADDED | MODIFIED |
        DELETED | BOOKMARK | ERROR, "object": {...}}`` in the order of the apiserver; it ends
        when the apiserver closes the watch after ``timeout_seconds``. The connection comes
        from the watch pool and is closed when the block exits.

        Raises:
            GoneError: ``resource_version`` is too old (410 at the start; a 410 later comes as
                an ``ERROR`` event whose object is a ``Status`` with ``code`` 410).
            UnavailableError: the apiserver is unreachable, or the stream broke or stayed
                silent beyond ``timeout_seconds`` plus ``kube_timeout_seconds``.
            ClusterError: an event line is not JSON.
            JobsAPIError: the other mapped errors, as :meth:`list`.
        """
        res = RESOURCES[resource]
        path = res.collection(namespace_of(tool))
        query = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", resource_version),
            ("timeoutSeconds", str(timeout_seconds)),
            *_selectors(label_selector, field_selector),
        ]
        response = await self._send(
            "GET",
            path,
            label=f"{resource}/watch",
            tool=tool,
            query=query,
            timeout=aiohttp.ClientTimeout(
                sock_connect=self._timeout, total=timeout_seconds + self._timeout
            ),
            api=self._watch_api,
        )

        async def events() -> AsyncIterator[Obj]:
            splitter = LineSplitter(_MAX_WATCH_LINE)
            try:
                async for chunk in response.content.iter_any():
                    for line in splitter.feed(chunk):
                        if line.strip():
                            yield _watch_event(line, res)
                for line in splitter.flush():
                    if line.strip():
                        yield _watch_event(line, res)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise self._unreachable("WATCH", path, exc) from exc

        try:
            yield events()
        finally:
            response.close()

    async def get(self, tool: str, resource: str, name: str) -> Obj | None:
        """One object of the tool's namespace, ``None`` when it does not exist."""
        res = RESOURCES[resource]
        try:
            obj = await self._json(
                "GET", res.item(namespace_of(tool), name), label=resource, tool=tool
            )
        except NotFoundError:
            return None
        obj.setdefault("kind", res.kind)
        obj.setdefault("apiVersion", res.api_version)
        return obj

    async def create(self, tool: str, obj: Obj) -> Obj:
        """Create ``obj`` (a dict with ``kind``) in the tool's namespace; returns it as stored."""
        res = _BY_KIND[obj["kind"]]
        return await self._json(
            "POST",
            res.collection(namespace_of(tool)),
            label=res.plural,
            tool=tool,
            body=obj,
            query=[("fieldManager", "toolforge-jobs-api")],
        )

    async def replace(self, tool: str, obj: Obj) -> Obj:
        """Replace (PUT) ``obj``; its ``metadata.resourceVersion`` guards against lost updates
        (409 when the object changed meanwhile)."""
        res = _BY_KIND[obj["kind"]]
        return await self._json(
            "PUT",
            res.item(namespace_of(tool), obj["metadata"]["name"]),
            label=res.plural,
            tool=tool,
            body=obj,
            query=[("fieldManager", "toolforge-jobs-api")],
        )

    async def patch(self, tool: str, resource: str, name: str, patch: Obj) -> Obj:
        """Apply a JSON merge patch (RFC 7386) to one object."""
        res = RESOURCES[resource]
        return await self._json(
            "PATCH",
            res.item(namespace_of(tool), name),
            label=resource,
            tool=tool,
            body=patch,
            content_type=MERGE_PATCH,
            query=[("fieldManager", "toolforge-jobs-api")],
        )

    async def delete(self, tool: str, resource: str, name: str) -> bool:
        """Delete one object with background propagation (the object goes at once, its
        dependents - pods, ReplicaSets, a CronJob's Jobs - are then garbage-collected);
        ``False`` when it did not exist."""
        res = RESOURCES[resource]
        try:
            await self._json(
                "DELETE",
                res.item(namespace_of(tool), name),
                label=resource,
                tool=tool,
                query=[("propagationPolicy", "Background")],
            )
        except NotFoundError:
            return False
        return True

    async def delete_collection(self, tool: str, resource: str, label_selector: str) -> None:
        """Delete every object of ``resource`` matching ``label_selector`` (background
        propagation)."""
        res = RESOURCES[resource]
        await self._json(
            "DELETE",
            res.collection(namespace_of(tool)),
            label=resource,
            tool=tool,
            query=[("labelSelector", label_selector), ("propagationPolicy", "Background")],
        )

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
        """The log of one container, with RFC 3339 timestamps (``timestamps=true``), as a
        byte stream of lines. With ``follow`` it stays open until the container ends (no read
        timeout); the connection is closed when the block exits.

        Raises:
            UnavailableError: ``logs_max_streams`` connections are open already, or the
                apiserver is unreachable.
            BadRequestError: the container has not started (Kubernetes answers 400).
        """
        if self._open_logs >= self._max_log_streams:
            self._metrics.kube_errors.labels("unavailable").inc()
            raise UnavailableError(
                "too many log streams are open; try again later", retry_after=self._retry_after
            )
        query = [("container", container), ("timestamps", "true")]
        if follow:
            query.append(("follow", "true"))
        if tail_lines is not None:
            query.append(("tailLines", str(tail_lines)))
        path = RESOURCES["pods"].item(namespace_of(tool), pod) + "/log"
        self._open_logs += 1
        self._metrics.log_upstreams.inc()
        try:
            response = await self._send(
                "GET",
                path,
                label="pods/log",
                tool=tool,
                query=query,
                # connect bounded; reading: idle time bounded, a follow may stay quiet
                timeout=aiohttp.ClientTimeout(
                    sock_connect=self._timeout, sock_read=None if follow else self._timeout
                ),
            )
            try:
                yield response.content
            finally:
                response.close()
        finally:
            self._open_logs -= 1
            self._metrics.log_upstreams.dec()

    # ----- the service's own identity ---------------------------------------------------

    async def tool_namespace(self, tool: str) -> Obj | None:
        """The tool's Namespace (read as the service: tools cannot read it), ``None`` when
        the tool has none."""
        if not _TOOL_RE.fullmatch(tool):
            raise ValueError(f"{tool!r} is not a tool name")
        try:
            return await self._json(
                "GET", f"/api/v1/namespaces/{namespace_of(tool)}", label="namespaces", tool=None
            )
        except NotFoundError:
            return None

    async def config_map(self, namespace: str, name: str) -> Obj:
        """A ConfigMap read as the service (the image list).

        Raises:
            NotFoundError: it does not exist.
        """
        res = RESOURCES["configmaps"]
        return await self._json("GET", res.item(namespace, name), label="configmaps", tool=None)


def _selectors(label_selector: str | None, field_selector: str | None) -> list[tuple[str, str]]:
    query = []
    if label_selector:
        query.append(("labelSelector", label_selector))
    if field_selector:
        query.append(("fieldSelector", field_selector))
    return query


def _watch_event(line: bytes, res: Resource) -> Obj:
    """One watch event line, its object with ``kind`` and ``apiVersion`` set.

    Raises:
        ClusterError: not a JSON object with ``type`` and ``object``.
    """
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        _log.error("watch of %s: event is not JSON: %s", res.plural, exc)
        raise ClusterError("the Kubernetes API answered something unexpected") from exc
    if not (isinstance(event, dict) and isinstance(event.get("object"), dict)):
        raise ClusterError("the Kubernetes API answered something unexpected")
    if event.get("type") != "ERROR":
        event["object"].setdefault("kind", res.kind)
        event["object"].setdefault("apiVersion", res.api_version)
    return event


async def gather_all(*coros: Any) -> list[Any]:
    """``asyncio.gather`` that cancels the siblings when one fails (a TaskGroup), returning
    the results in order; the first error is raised as itself, not as an ExceptionGroup."""
    tasks: list[asyncio.Task[Any]] = []
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c) for c in coros]
    except BaseExceptionGroup as group_error:
        first = group_error.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    return [t.result() for t in tasks]
