"""The Kubernetes transport of the platform APIs: one door to kube-apiserver.

A :class:`KubeClient` holds one kubernetes_asyncio ``ApiClient`` (one aiohttp connection pool)
authenticated as the backend's own identity (a kubeconfig, or the in-cluster ServiceAccount).
Requests go out as that identity, or, with ``as_tool=<tool>``, as the tool through Kubernetes
user impersonation (``Impersonate-User: <tool>``, ``Impersonate-Group: toolforge``; Kubernetes
"User impersonation"), so that the tool's own RBAC confines the request to its namespace.
Storage modules of the backends build on it and name which of the two security models they
use.

Objects are plain JSON dicts (camelCase, as the apiserver serves them): responses are read with
``_preload_content=False`` and parsed with orjson, skipping the generated model classes. Listed
and watched items get their ``kind`` and ``apiVersion`` filled in.

Every failure becomes a :class:`~toolforge_kit.errors.APIError` with Kubernetes' human message
(never the response body) for the user, and the details in the log; the mapping table is in
:mod:`toolforge_kit.errors`. A backend that acts as itself may hide Kubernetes' 403 message
(which names its own identity) behind ``forbidden_message``.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config

from toolforge_auth.tools import TOOL_GROUP, is_tool_name
from toolforge_kit.errors import (
    APIError,
    BadRequestError,
    ClusterError,
    ConflictError,
    ForbiddenError,
    GoneError,
    InvalidObjectError,
    NotFoundError,
    ResourceQuotaExceededError,
    UnavailableError,
)
from toolforge_kit.metrics import ServiceMetrics
from toolforge_kit.settings import BackendSettings
from toolforge_kit.streaming import LineSplitter

__all__ = [
    "MERGE_PATCH",
    "KubeClient",
    "Obj",
    "Resource",
    "gather_all",
    "is_object_name",
]

Obj = dict[str, Any]
#: Content type of a JSON merge patch (RFC 7386).
MERGE_PATCH = "application/merge-patch+json"
#: Longest watch event line read (a whole object; etcd stores objects up to 1.5 MiB).
_MAX_WATCH_LINE = 16 * 1024 * 1024
# Object names: DNS-1123 subdomains (Kubernetes API conventions, "Names").
_OBJECT_NAME_RE = re.compile(
    r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
)
_log = logging.getLogger(__name__)


def is_object_name(name: str) -> bool:
    """Whether ``name`` is a Kubernetes object name (a DNS-1123 subdomain), so that it can go
    into an API path: no ``..``, ``/`` or ``?`` can change the path."""
    return _OBJECT_NAME_RE.fullmatch(name) is not None


@dataclass(frozen=True)
class Resource:
    """A resource type: ``base`` API path (``/api/v1``, ``/apis/batch/v1``), ``plural`` name,
    its ``kind`` and ``api_version``."""

    base: str
    plural: str
    kind: str
    api_version: str

    def collection(self, namespace: str | None) -> str:
        """``<base>/namespaces/<ns>/<plural>``; with ``namespace`` ``None`` the collection
        across all namespaces (``<base>/<plural>``)."""
        if namespace is None:
            return f"{self.base}/{self.plural}"
        return f"{self.base}/namespaces/{namespace}/{self.plural}"

    def item(self, namespace: str | None, name: str) -> str:
        """``<base>/namespaces/<ns>/<plural>/<name>`` (``<base>/<plural>/<name>`` for a
        cluster-scoped resource: ``namespace`` ``None``).

        Raises:
            ValueError: ``name`` is not an object name (:func:`is_object_name`).
        """
        if not is_object_name(name):
            raise ValueError(f"{name!r} is not a Kubernetes object name")
        return f"{self.collection(namespace)}/{name}"


def _status_message(body: bytes) -> tuple[str, str]:
    """``(reason, message)`` of a Kubernetes ``Status`` body ('' when it is not one)."""
    try:
        status = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "", ""
    if not isinstance(status, dict):
        return "", ""
    return str(status.get("reason") or ""), str(status.get("message") or "")


def _selectors(label_selector: str | None, field_selector: str | None) -> list[tuple[str, str]]:
    query = []
    if label_selector:
        query.append(("labelSelector", label_selector))
    if field_selector:
        query.append(("fieldSelector", field_selector))
    return query


def _field_manager(name: str | None) -> list[tuple[str, str]] | None:
    return [("fieldManager", name)] if name else None


class KubeClient:
    """kube-apiserver access for one backend; see the module documentation.

    Build it with :meth:`connect` inside the running event loop and :meth:`close` it at
    shutdown. ``as_tool`` arguments are tool names (not namespaces), checked with
    :func:`toolforge_auth.tools.is_tool_name` before being impersonated (:class:`ValueError`
    otherwise: never a ``system:`` user).
    """

    def __init__(
        self,
        api: k8s.ApiClient,
        *,
        metrics: ServiceMetrics | None,
        timeout: float,
        retry_after: int,
        forbidden_message: str | None = None,
    ) -> None:
        self._api = api
        self._metrics = metrics
        self.timeout = timeout
        self.retry_after = retry_after
        self._forbidden_message = forbidden_message

    @classmethod
    async def connect(
        cls,
        *,
        kubeconfig: Path | None,
        user_agent: str,
        max_connections: int,
        timeout: float,
        retry_after: int,
        metrics: ServiceMetrics | None = None,
        forbidden_message: str | None = None,
    ) -> KubeClient:
        """Load the backend's credentials (``kubeconfig``, else the in-cluster ServiceAccount)
        and open a pool of ``max_connections``. No request is made yet.

        Raises:
            kubernetes_asyncio.config.ConfigException, OSError: unusable credentials.
        """
        conf = k8s.Configuration()
        if kubeconfig is not None:
            await k8s_config.load_kube_config(
                config_file=str(kubeconfig), client_configuration=conf
            )
        else:
            k8s_config.load_incluster_config(client_configuration=conf)  # type: ignore[no-untyped-call]
        conf.connection_pool_maxsize = max_connections
        api = k8s.ApiClient(conf)
        api.user_agent = user_agent
        return cls(
            api,
            metrics=metrics,
            timeout=timeout,
            retry_after=retry_after,
            forbidden_message=forbidden_message,
        )

    @classmethod
    async def for_backend(
        cls,
        settings: BackendSettings,
        *,
        user_agent: str,
        metrics: ServiceMetrics | None = None,
        forbidden_message: str | None = None,
    ) -> KubeClient:
        """:meth:`connect` with a backend's own settings: its ``kubeconfig`` (else the
        in-cluster ServiceAccount), ``kube_max_connections``, ``kube_timeout_seconds`` and
        ``retry_after_seconds``.

        Raises:
            kubernetes_asyncio.config.ConfigException, OSError: unusable credentials.
        """
        return await cls.connect(
            kubeconfig=settings.kubeconfig,
            user_agent=user_agent,
            max_connections=settings.kube_max_connections,
            timeout=settings.kube_timeout_seconds,
            retry_after=settings.retry_after_seconds,
            metrics=metrics,
            forbidden_message=forbidden_message,
        )

    def second_pool(self, max_connections: int) -> KubeClient:
        """A client with the same credentials and a pool of its own (e.g. for watches, so
        that long requests cannot take the connections of ordinary ones). Close it too."""
        conf = copy.copy(self._api.configuration)
        conf.connection_pool_maxsize = max_connections
        api = k8s.ApiClient(conf)
        api.user_agent = str(self._api.user_agent)
        return KubeClient(
            api,
            metrics=self._metrics,
            timeout=self.timeout,
            retry_after=self.retry_after,
            forbidden_message=self._forbidden_message,
        )

    async def close(self) -> None:
        """Close the connection pool."""
        await self._api.close()

    # ----- the one request path -----------------------------------------------------------

    async def send(
        self,
        method: str,
        path: str,
        *,
        label: str,
        as_tool: str | None = None,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
        accept: str = "application/json",
    ) -> aiohttp.ClientResponse:
        """Send one request (``label`` names the resource in metrics); returns the unread 2xx
        response, which the caller releases. ``accept`` may ask for another representation,
        e.g. metadata only (``application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1``;
        Kubernetes API concepts, "Receiving resources as Tables" and metadata-only fetches).

        Raises:
            ValueError: ``as_tool`` is not a tool name.
            APIError: the mapped error of a non-2xx answer or of no answer.
        """
        headers = {"Accept": accept}
        if as_tool is not None:
            if not is_tool_name(as_tool):
                raise ValueError(f"refusing to impersonate {as_tool!r}: not a tool name")
            headers["Impersonate-User"] = as_tool
            headers["Impersonate-Group"] = TOOL_GROUP
        if content_type is not None:
            headers["Content-Type"] = content_type
        started = time.perf_counter()
        try:
            response: aiohttp.ClientResponse = await self._api.call_api(
                path,
                method,
                query_params=query or [],
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=timeout or aiohttp.ClientTimeout(total=self.timeout),
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._observe(method, label, None, started)
            raise self.unreachable(method, path, exc) from exc
        self._observe(method, label, response.status, started)
        if response.status < 400:
            return response
        try:
            raw = await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError):
            raw = b""
        finally:
            response.release()
        raise self._map_error(method, path, as_tool, response.status, raw, response.headers)

    async def request(self, method: str, path: str, **kwargs: Any) -> Obj:
        """:meth:`send`, then the answer's JSON object.

        Raises:
            ClusterError: the answer is not a JSON object.
            APIError: as :meth:`send`.
        """
        response = await self.send(method, path, **kwargs)
        try:
            raw = await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise self.unreachable(method, path, exc) from exc
        finally:
            response.release()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            _log.error("%s %s: response is not JSON: %s", method, path, exc)
            raise ClusterError("the Kubernetes API answered something unexpected") from exc
        if not isinstance(data, dict):
            raise ClusterError("the Kubernetes API answered something unexpected")
        return data

    def _observe(self, method: str, label: str, code: int | None, started: float) -> None:
        if self._metrics is not None:
            self._metrics.observe_kube(method, label, code, time.perf_counter() - started)

    def _count_error(self, kind: str) -> None:
        if self._metrics is not None:
            self._metrics.kube_error(kind)

    def unreachable(self, method: str, path: str, exc: BaseException) -> UnavailableError:
        """The 503 for a request that got no (complete) answer; logged and counted."""
        self._count_error("unavailable")
        _log.warning("%s %s: kube-apiserver unreachable: %r", method, path, exc)
        return UnavailableError(
            "the Kubernetes API cannot be reached; try again later", retry_after=self.retry_after
        )

    def too_busy(self, what: str) -> UnavailableError:
        """A 503 for a limit of our own (``what`` says which), counted as ``unavailable``."""
        self._count_error("unavailable")
        return UnavailableError(f"{what}; try again later", retry_after=self.retry_after)

    def _map_error(
        self,
        method: str,
        path: str,
        as_tool: str | None,
        status: int,
        body: bytes,
        headers: Any,
    ) -> APIError:
        reason, message = _status_message(body)
        _log.log(
            logging.DEBUG if status in (404, 409) else logging.INFO,
            "%s %s as %s: %d %s: %s",
            method,
            path,
            as_tool or "service",
            status,
            reason,
            message,
        )
        message = message or reason or f"HTTP {status}"
        error: APIError
        kind: str
        if status == 403 and "exceeded quota" in message:
            error, kind = ResourceQuotaExceededError(message), "quota"
        elif status == 403:
            error, kind = ForbiddenError(self._forbidden_message or message), "forbidden"
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
                retry_after=int(retry) if retry.isdigit() else self.retry_after,
            )
            kind = "unavailable"
        else:
            _log.error("%s %s: unexpected %d %s: %s", method, path, status, reason, message)
            error = ClusterError(f"the Kubernetes API failed the request ({status} {reason})")
            kind = "cluster"
        self._count_error(kind)
        return error

    # ----- resources ------------------------------------------------------------------------

    async def list(
        self,
        res: Resource,
        namespace: str | None,
        *,
        as_tool: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[Obj], str]:
        """The objects of ``res`` in ``namespace`` (``None``: all namespaces) with ``kind``
        and ``apiVersion`` set, and the list's ``metadata.resourceVersion`` (where a watch of
        the same collection starts; '' when the apiserver gave none)."""
        data = await self.request(
            "GET",
            res.collection(namespace),
            label=res.plural,
            as_tool=as_tool,
            query=_selectors(label_selector, field_selector),
        )
        items: list[Obj] = [i for i in data.get("items") or () if isinstance(i, dict)]
        for item in items:
            item.setdefault("kind", res.kind)
            item.setdefault("apiVersion", res.api_version)
        return items, str((data.get("metadata") or {}).get("resourceVersion") or "")

    async def get(
        self, res: Resource, namespace: str | None, name: str, *, as_tool: str | None = None
    ) -> Obj | None:
        """One object, ``None`` when it does not exist."""
        try:
            obj = await self.request(
                "GET", res.item(namespace, name), label=res.plural, as_tool=as_tool
            )
        except NotFoundError:
            return None
        obj.setdefault("kind", res.kind)
        obj.setdefault("apiVersion", res.api_version)
        return obj

    async def create(
        self,
        res: Resource,
        namespace: str | None,
        obj: Obj,
        *,
        as_tool: str | None = None,
        field_manager: str | None = None,
    ) -> Obj:
        """Create ``obj``; returns it as stored. :class:`ConflictError` when it exists."""
        return await self.request(
            "POST",
            res.collection(namespace),
            label=res.plural,
            as_tool=as_tool,
            body=obj,
            query=_field_manager(field_manager),
        )

    async def replace(
        self,
        res: Resource,
        namespace: str | None,
        obj: Obj,
        *,
        as_tool: str | None = None,
        field_manager: str | None = None,
    ) -> Obj:
        """Replace (PUT) ``obj``; with ``metadata.resourceVersion`` set this is a
        compare-and-swap: :class:`ConflictError` (409) when it changed meanwhile."""
        return await self.request(
            "PUT",
            res.item(namespace, str(obj["metadata"]["name"])),
            label=res.plural,
            as_tool=as_tool,
            body=obj,
            query=_field_manager(field_manager),
        )

    async def patch(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        patch: Obj,
        *,
        as_tool: str | None = None,
        field_manager: str | None = None,
    ) -> Obj:
        """Apply a JSON merge patch (RFC 7386) to one object; returns it as stored."""
        return await self.request(
            "PATCH",
            res.item(namespace, name),
            label=res.plural,
            as_tool=as_tool,
            body=patch,
            content_type=MERGE_PATCH,
            query=_field_manager(field_manager),
        )

    async def delete(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        *,
        as_tool: str | None = None,
        uid: str | None = None,
    ) -> Obj | None:
        """Delete one object with background propagation (it goes at once, its dependents are
        then garbage-collected); with ``uid`` only that very object (a precondition). Returns
        the apiserver's answer, ``None`` when the object did not exist."""
        options: Obj = {"propagationPolicy": "Background"}
        if uid is not None:
            options["preconditions"] = {"uid": uid}
        try:
            return await self.request(
                "DELETE", res.item(namespace, name), label=res.plural, as_tool=as_tool, body=options
            )
        except NotFoundError:
            return None

    async def delete_collection(
        self, res: Resource, namespace: str, label_selector: str, *, as_tool: str | None = None
    ) -> Obj:
        """Delete every object of ``res`` matching ``label_selector`` (background
        propagation); returns the list of deleted objects."""
        return await self.request(
            "DELETE",
            res.collection(namespace),
            label=res.plural,
            as_tool=as_tool,
            query=[("labelSelector", label_selector), ("propagationPolicy", "Background")],
        )

    @asynccontextmanager
    async def watch(
        self,
        res: Resource,
        namespace: str | None,
        *,
        resource_version: str,
        timeout_seconds: int,
        as_tool: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> AsyncIterator[AsyncIterator[Obj]]:
        """Watch ``res`` from ``resource_version`` on, with bookmarks (Kubernetes API
        concepts, "Efficient detection of changes", "Watch bookmarks"). Yields an iterator of
        the watch events ``{"type": ADDED | MODIFIED | DELETED | BOOKMARK | ERROR, "object":
        {...}}`` in the apiserver's order; it ends when the apiserver closes the watch after
        ``timeout_seconds``. The connection is closed when the block exits.

        Raises:
            GoneError: ``resource_version`` is too old (410 at the start; a 410 later comes as
                an ``ERROR`` event whose object is a ``Status`` with ``code`` 410).
            UnavailableError: the apiserver is unreachable, or the stream broke or stayed
                silent beyond ``timeout_seconds`` plus the client's timeout.
            ClusterError: an event line is not JSON.
            APIError: the other mapped errors.
        """
        path = res.collection(namespace)
        query = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", resource_version),
            ("timeoutSeconds", str(timeout_seconds)),
            *_selectors(label_selector, field_selector),
        ]
        response = await self.send(
            "GET",
            path,
            label=f"{res.plural}/watch",
            as_tool=as_tool,
            query=query,
            timeout=aiohttp.ClientTimeout(
                sock_connect=self.timeout, total=timeout_seconds + self.timeout
            ),
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
                raise self.unreachable("WATCH", path, exc) from exc

        try:
            yield events()
        finally:
            response.close()

    @asynccontextmanager
    async def pod_log(
        self,
        namespace: str,
        pod: str,
        *,
        container: str,
        follow: bool,
        tail_lines: int | None = None,
        as_tool: str | None = None,
        previous: bool = False,
    ) -> AsyncIterator[aiohttp.StreamReader]:
        """The log of one container with RFC 3339 timestamps (``timestamps=true``) as a byte
        stream of lines. With ``follow`` it stays open until the container ends (no read
        timeout); with ``previous`` it is the log of the container's run before its last
        restart. The connection is closed when the block exits.

        Raises:
            BadRequestError: the container has not started (Kubernetes answers 400).
            NotFoundError: no such pod. UnavailableError: the apiserver is unreachable.
        """
        query = [("container", container), ("timestamps", "true")]
        if follow:
            query.append(("follow", "true"))
        if tail_lines is not None:
            query.append(("tailLines", str(tail_lines)))
        if previous:
            query.append(("previous", "true"))
        response = await self.send(
            "GET",
            _PODS.item(namespace, pod) + "/log",
            label="pods/log",
            as_tool=as_tool,
            query=query,
            # connect bounded; reading: idle time bounded, a follow may stay quiet
            timeout=aiohttp.ClientTimeout(
                sock_connect=self.timeout, sock_read=None if follow else self.timeout
            ),
        )
        try:
            yield response.content
        finally:
            response.close()


_PODS = Resource("/api/v1", "pods", "Pod", "v1")


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
