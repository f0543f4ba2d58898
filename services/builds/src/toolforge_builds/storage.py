"""Storage: the builds API's only door to kube-apiserver.

One :class:`KubeStorage` per process holds ONE kubernetes_asyncio ``ApiClient`` authenticated as
the API's own identity (user ``toolforge-builds-api``; RBAC: the Role in
``devtools/manifests/30-builds.yaml``), working only in the builds namespace
(``settings.namespace``, ``image-build``):

- ``tekton.dev/v1`` PipelineRuns (create, get, list, merge-patch, delete);
- Pods and ``pods/log`` of the TaskRuns (get, list);
- ConfigMaps ``builds-quota-<tool>`` (create, get, update with ``resourceVersion``:
  optimistic concurrency, see :mod:`toolforge_builds.quota`);
- the registry Secret (get; its values are scrubbed from logs).

Objects are plain JSON dicts (camelCase): responses are read with ``_preload_content=False``.

Errors (never the response body for the user; details in the log):

=====================================  ===============================================
Kubernetes answer                      error (HTTP status)
=====================================  ===============================================
403                                    :class:`ForbiddenError` (403)
404                                    :class:`NotFoundError` (404), or ``None``/``False``
409 AlreadyExists / Conflict, 410      :class:`ConflictError` (409)
422 Invalid                            :class:`InvalidObjectError` (422)
400                                    :class:`BadRequestError` (400)
429, 502-504, no answer, timeout       :class:`UnavailableError` (503, ``Retry-After``)
anything else                          :class:`ClusterError` (502)
=====================================  ===============================================
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config

from toolforge_builds.errors import (
    BadRequestError,
    BuildsAPIError,
    ClusterError,
    ConflictError,
    ForbiddenError,
    InvalidObjectError,
    NotFoundError,
    UnavailableError,
)
from toolforge_builds.settings import BuildsSettings

__all__ = ["KubeStorage", "Obj"]

Obj = dict[str, Any]

_PIPELINERUNS = "/apis/tekton.dev/v1/namespaces/{ns}/pipelineruns"
_PODS = "/api/v1/namespaces/{ns}/pods"
_CONFIGMAPS = "/api/v1/namespaces/{ns}/configmaps"
_SECRETS = "/api/v1/namespaces/{ns}/secrets"
MERGE_PATCH = "application/merge-patch+json"
# Object names: DNS-1123 subdomains (Kubernetes API conventions, "Names").
_NAME_RE = re.compile(
    r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
)
_log = logging.getLogger(__name__)


def _checked(name: str) -> str:
    """``name`` if it is a Kubernetes object name, else :class:`NotFoundError` (so ``..``,
    ``/`` or ``?`` never reach a path)."""
    if not _NAME_RE.fullmatch(name):
        raise NotFoundError(f"Build '{name}' does not exist.")
    return name


def _status_message(body: bytes) -> tuple[str, str]:
    try:
        status = json.loads(body)
    except ValueError:
        return "", ""
    if not isinstance(status, dict):
        return "", ""
    return str(status.get("reason") or ""), str(status.get("message") or "")


class KubeStorage:
    """kube-apiserver access for the builds API; see the module documentation.

    Build it with :meth:`connect` inside the running event loop; :meth:`close` it at shutdown.
    """

    def __init__(
        self, api: k8s.ApiClient, *, namespace: str, timeout: float, retry_after: int
    ) -> None:
        self._api = api
        self.namespace = namespace
        self._timeout = timeout
        self._retry_after = retry_after

    @classmethod
    async def connect(cls, settings: BuildsSettings) -> KubeStorage:
        """Load the API's credentials (``settings.kubeconfig``, else in-cluster) and open the
        shared client. No request is made yet.

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
        api.user_agent = "toolforge-builds-api"
        return cls(
            api,
            namespace=settings.namespace,
            timeout=settings.kube_timeout_seconds,
            retry_after=settings.retry_after_seconds,
        )

    async def close(self) -> None:
        """Close the connection pool."""
        await self._api.close()

    # ----- the one request path -----------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> aiohttp.ClientResponse:
        headers = {"Accept": "application/json"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        try:
            response: aiohttp.ClientResponse = await self._api.call_api(
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
            raise self._unreachable(method, path, exc) from exc
        if response.status < 400:
            return response
        try:
            raw = await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError):
            raw = b""
        finally:
            response.release()
        raise self._map_error(method, path, response.status, raw, response.headers)

    async def _json(self, method: str, path: str, **kwargs: Any) -> Obj:
        response = await self._send(method, path, **kwargs)
        try:
            raw = await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise self._unreachable(method, path, exc) from exc
        finally:
            response.release()
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ClusterError("the Kubernetes API answered something unexpected") from exc
        if not isinstance(data, dict):
            raise ClusterError("the Kubernetes API answered something unexpected")
        return data

    def _unreachable(self, method: str, path: str, exc: BaseException) -> UnavailableError:
        _log.warning("%s %s: kube-apiserver unreachable: %r", method, path, exc)
        return UnavailableError(
            "the Kubernetes API cannot be reached; try again later",
            retry_after=self._retry_after,
        )

    def _map_error(
        self, method: str, path: str, status: int, body: bytes, headers: Any
    ) -> BuildsAPIError:
        reason, message = _status_message(body)
        _log.log(
            logging.DEBUG if status in (404, 409) else logging.INFO,
            "%s %s: %d %s: %s",
            method,
            path,
            status,
            reason,
            message,
        )
        message = message or reason or f"HTTP {status}"
        if status == 403:
            return ForbiddenError("the builds API is not allowed to do this in the cluster")
        if status == 404:
            return NotFoundError(message)
        if status in (409, 410):
            return ConflictError(message)
        if status == 422:
            return InvalidObjectError(message)
        if status == 400:
            return BadRequestError(message)
        if status in (429, 502, 503, 504):
            retry = headers.get("Retry-After", "")
            return UnavailableError(
                "the Kubernetes API is overloaded or unavailable; try again later",
                retry_after=int(retry) if retry.isdigit() else self._retry_after,
            )
        _log.error("%s %s: unexpected %d %s: %s", method, path, status, reason, message)
        return ClusterError(f"the Kubernetes API failed the request ({status} {reason})")

    def _path(self, template: str, name: str | None = None) -> str:
        base = template.format(ns=self.namespace)
        return base if name is None else f"{base}/{_checked(name)}"

    # ----- PipelineRuns -------------------------------------------------------------------

    async def list_pipelineruns(self, label_selector: str) -> list[Obj]:
        """PipelineRuns matching ``label_selector`` (e.g. ``user=<tool>``)."""
        data = await self._json(
            "GET", self._path(_PIPELINERUNS), query=[("labelSelector", label_selector)]
        )
        return [item for item in data.get("items") or () if isinstance(item, dict)]

    async def get_pipelinerun(self, name: str) -> Obj | None:
        """The PipelineRun ``name``, ``None`` when absent."""
        try:
            return await self._json("GET", self._path(_PIPELINERUNS, name))
        except NotFoundError:
            return None

    async def create_pipelinerun(self, body: Obj) -> Obj:
        """Create a PipelineRun; returns it as stored (with its name)."""
        return await self._json("POST", self._path(_PIPELINERUNS), body=body)

    async def patch_pipelinerun(self, name: str, patch: Obj, *, resource_version: str) -> Obj:
        """JSON merge patch (RFC 7386) of a PipelineRun, only if it still has
        ``resource_version`` (409 :class:`ConflictError` otherwise)."""
        body = {**patch, "metadata": {"resourceVersion": resource_version}}
        return await self._json(
            "PATCH", self._path(_PIPELINERUNS, name), body=body, content_type=MERGE_PATCH
        )

    async def delete_pipelinerun(self, name: str, *, uid: str | None = None) -> bool:
        """Delete a PipelineRun (its TaskRuns and pods go with it: owner references,
        foreground). With ``uid`` only that very object. ``False`` when it was absent."""
        options: Obj = {"propagationPolicy": "Background"}
        if uid is not None:
            options["preconditions"] = {"uid": uid}
        try:
            await self._json("DELETE", self._path(_PIPELINERUNS, name), body=options)
        except NotFoundError:
            return False
        return True

    # ----- pods and logs --------------------------------------------------------------------

    async def list_pods(self, label_selector: str) -> list[Obj]:
        """Pods matching ``label_selector`` (``tekton.dev/pipelineRun=<name>``)."""
        data = await self._json("GET", self._path(_PODS), query=[("labelSelector", label_selector)])
        return [item for item in data.get("items") or () if isinstance(item, dict)]

    @asynccontextmanager
    async def pod_log(
        self, pod: str, *, container: str, follow: bool
    ) -> AsyncIterator[aiohttp.StreamReader]:
        """One container's log with RFC 3339 timestamps (``timestamps=true``) as a byte
        stream. With ``follow`` it stays open until the container ends.

        Raises:
            BadRequestError: the container has not started (Kubernetes answers 400).
            NotFoundError: no such pod; UnavailableError: apiserver unreachable.
        """
        query = [("container", container), ("timestamps", "true")]
        if follow:
            query.append(("follow", "true"))
        response = await self._send(
            "GET",
            self._path(_PODS, pod) + "/log",
            query=query,
            timeout=aiohttp.ClientTimeout(
                sock_connect=self._timeout, sock_read=None if follow else self._timeout
            ),
        )
        try:
            yield response.content
        finally:
            response.close()

    # ----- quota ConfigMaps -------------------------------------------------------------------

    async def get_configmap(self, name: str) -> Obj | None:
        """The ConfigMap ``name`` (with its ``resourceVersion``), ``None`` when absent."""
        try:
            return await self._json("GET", self._path(_CONFIGMAPS, name))
        except NotFoundError:
            return None

    async def create_configmap(self, body: Obj) -> Obj:
        """Create a ConfigMap; :class:`ConflictError` when it exists already."""
        return await self._json("POST", self._path(_CONFIGMAPS), body=body)

    async def replace_configmap(self, body: Obj) -> Obj:
        """Replace a ConfigMap; with ``metadata.resourceVersion`` set this is a compare-and-
        swap: :class:`ConflictError` (409) when someone changed it meanwhile."""
        name = str(body["metadata"]["name"])
        return await self._json("PUT", self._path(_CONFIGMAPS, name), body=body)

    # ----- registry credentials ------------------------------------------------------------

    async def basic_auth(self, secret: str) -> tuple[str, str] | None:
        """``(username, password)`` of a ``kubernetes.io/basic-auth`` Secret, ``None`` when it
        is absent or has no password."""
        try:
            data = (await self._json("GET", self._path(_SECRETS, secret))).get("data") or {}
        except NotFoundError:
            return None
        try:
            username = base64.b64decode(data.get("username") or "").decode()
            password = base64.b64decode(data.get("password") or "").decode()
        except (binascii.Error, UnicodeDecodeError):
            _log.error("Secret %s has undecodable credentials", secret)
            return None
        return (username, password) if password else None
