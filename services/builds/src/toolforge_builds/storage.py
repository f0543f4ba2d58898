"""Storage: the builds API's only door to kube-apiserver. It ACTS AS THE SERVICE and scopes
tools BY LABEL.

:class:`LabelScopedServiceStorage` sends every request through the kit's
:class:`toolforge_kit.KubeClient` as the API's own identity (user ``toolforge-builds-api``;
RBAC: the Role in ``devtools/manifests/30-builds.yaml``), working only in the shared builds
namespace (``settings.namespace``, ``image-build``), where tools have no rights at all. Tools
are kept apart by the ``user=<tool>`` label of their PipelineRuns, which the service layer
(:mod:`toolforge_builds.service`) always selects by and checks: another tool's build answers
404 as if it did not exist. The API touches:

- ``tekton.dev/v1`` PipelineRuns (create, get, list, merge-patch, delete);
- Pods and ``pods/log`` of the TaskRuns (get, list);
- ConfigMaps ``builds-quota-<tool>`` (create, get, update with ``resourceVersion``:
  optimistic concurrency, see :mod:`toolforge_builds.quota`);
- the registry Secret (get; its values are scrubbed from logs).

Errors: every failure becomes a :class:`toolforge_kit.APIError` (mapping in
:mod:`toolforge_kit.errors`); a 403 says only that the builds API is not allowed (Kubernetes'
message would name the service's own identity).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

from toolforge_builds.settings import BuildsSettings
from toolforge_kit.errors import NotFoundError
from toolforge_kit.kube import KubeClient, Obj, Resource, is_object_name
from toolforge_kit.metrics import ServiceMetrics

__all__ = ["LabelScopedServiceStorage", "Obj"]

_PIPELINERUNS = Resource("/apis/tekton.dev/v1", "pipelineruns", "PipelineRun", "tekton.dev/v1")
_CONFIGMAPS = Resource("/api/v1", "configmaps", "ConfigMap", "v1")
_SECRETS = Resource("/api/v1", "secrets", "Secret", "v1")
_PODS = Resource("/api/v1", "pods", "Pod", "v1")
_log = logging.getLogger(__name__)


def _checked(name: str) -> str:
    """``name`` if it is a Kubernetes object name, else :class:`NotFoundError` (so ``..``,
    ``/`` or ``?`` never reach a path)."""
    if not is_object_name(name):
        raise NotFoundError(f"Build '{name}' does not exist.")
    return name


class LabelScopedServiceStorage:
    """The builds API's kube-apiserver access, as the service, in the builds namespace; see
    the module documentation.

    Build it with :meth:`connect` inside the running event loop; :meth:`close` it at shutdown.
    """

    def __init__(self, kube: KubeClient, *, namespace: str) -> None:
        self._kube = kube
        self.namespace = namespace

    @classmethod
    async def connect(
        cls, settings: BuildsSettings, metrics: ServiceMetrics | None = None
    ) -> LabelScopedServiceStorage:
        """Load the API's credentials (``settings.kubeconfig``, else in-cluster) and open the
        shared client. No request is made yet.

        Raises:
            kubernetes_asyncio.config.ConfigException, OSError: unusable credentials.
        """
        kube = await KubeClient.for_backend(
            settings,
            user_agent="toolforge-builds-api",
            metrics=metrics,
            forbidden_message="the builds API is not allowed to do this in the cluster",
        )
        return cls(kube, namespace=settings.namespace)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._kube.close()

    # ----- PipelineRuns -------------------------------------------------------------------

    async def list_pipelineruns(self, label_selector: str) -> list[Obj]:
        """PipelineRuns matching ``label_selector`` (e.g. ``user=<tool>``)."""
        items, _ = await self._kube.list(
            _PIPELINERUNS, self.namespace, label_selector=label_selector
        )
        return items

    async def get_pipelinerun(self, name: str) -> Obj | None:
        """The PipelineRun ``name``, ``None`` when absent."""
        return await self._kube.get(_PIPELINERUNS, self.namespace, _checked(name))

    async def create_pipelinerun(self, body: Obj) -> Obj:
        """Create a PipelineRun; returns it as stored (with its name)."""
        return await self._kube.create(_PIPELINERUNS, self.namespace, body)

    async def patch_pipelinerun(self, name: str, patch: Obj, *, resource_version: str) -> Obj:
        """JSON merge patch (RFC 7386) of a PipelineRun, only if it still has
        ``resource_version`` (409 :class:`ConflictError` otherwise)."""
        body = {**patch, "metadata": {"resourceVersion": resource_version}}
        return await self._kube.patch(_PIPELINERUNS, self.namespace, _checked(name), body)

    async def delete_pipelinerun(self, name: str, *, uid: str | None = None) -> bool:
        """Delete a PipelineRun (its TaskRuns and pods go with it: owner references,
        foreground). With ``uid`` only that very object. ``False`` when it was absent."""
        answer = await self._kube.delete(_PIPELINERUNS, self.namespace, _checked(name), uid=uid)
        return answer is not None

    # ----- pods and logs --------------------------------------------------------------------

    async def list_pods(self, label_selector: str) -> list[Obj]:
        """Pods matching ``label_selector`` (``tekton.dev/pipelineRun=<name>``)."""
        items, _ = await self._kube.list(_PODS, self.namespace, label_selector=label_selector)
        return items

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
        async with self._kube.pod_log(
            self.namespace, _checked(pod), container=container, follow=follow
        ) as stream:
            yield stream

    # ----- quota ConfigMaps -------------------------------------------------------------------

    async def get_configmap(self, name: str) -> Obj | None:
        """The ConfigMap ``name`` (with its ``resourceVersion``), ``None`` when absent."""
        return await self._kube.get(_CONFIGMAPS, self.namespace, name)

    async def create_configmap(self, body: Obj) -> Obj:
        """Create a ConfigMap; :class:`ConflictError` when it exists already."""
        return await self._kube.create(_CONFIGMAPS, self.namespace, body)

    async def replace_configmap(self, body: Obj) -> Obj:
        """Replace a ConfigMap; with ``metadata.resourceVersion`` set this is a compare-and-
        swap: :class:`ConflictError` (409) when someone changed it meanwhile."""
        return await self._kube.replace(_CONFIGMAPS, self.namespace, body)

    # ----- registry credentials ------------------------------------------------------------

    async def basic_auth(self, secret: str) -> tuple[str, str] | None:
        """``(username, password)`` of a ``kubernetes.io/basic-auth`` Secret, ``None`` when it
        is absent or has no password."""
        found = await self._kube.get(_SECRETS, self.namespace, secret)
        if found is None:
            return None
        data = found.get("data") or {}
        try:
            username = base64.b64decode(data.get("username") or "").decode()
            password = base64.b64decode(data.get("password") or "").decode()
        except (binascii.Error, UnicodeDecodeError):
            _log.error("Secret %s has undecodable credentials", secret)
            return None
        return (username, password) if password else None
