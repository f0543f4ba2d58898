"""Every cluster call of the emailer, as its own identity (:class:`toolforge_kit.KubeClient`;
no impersonation: the emailer reads across tools).

RBAC it needs, and why (``devtools/manifests/50-emailer.yaml``, ``charts/emailer``):

- ``pods``: ``list``, ``watch`` cluster-wide: the pods of jobs that asked for mails, in every
  tool namespace (a label selector; namespaces cannot be listed ahead of time);
- ``pods/log``: ``get`` cluster-wide: the last lines of an ended run for its mail (until the
  logs API exists, :mod:`toolforge_emailer.logsource`);
- in its own namespace only, by name: ``configmaps`` ``get`` on the configuration;
  ``configmaps`` ``get``, ``patch`` on the state; ``leases`` ``get``, ``patch`` on the
  leader Lease (merge patches carrying the read ``resourceVersion``: compare-and-swap).
  Both objects are created with the installation, so no ``create`` right is needed
  (``create`` cannot be limited to a name).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from toolforge_emailer.events import EMAILS_SELECTOR
from toolforge_emailer.metrics import EmailerMetrics
from toolforge_emailer.settings import EmailerSettings
from toolforge_kit import KubeClient, Obj, Resource
from toolforge_kit.errors import BadRequestError, NotFoundError

__all__ = ["PODS", "EmailerStorage", "StateObject", "WatchEvents"]

PODS = Resource("/api/v1", "pods", "Pod", "v1")
CONFIG_MAPS = Resource("/api/v1", "configmaps", "ConfigMap", "v1")
LEASES = Resource("/apis/coordination.k8s.io/v1", "leases", "Lease", "coordination.k8s.io/v1")
STATE_KEY = "state.json.gz"
_MANAGER = "toolforge-jobs-emailer"

WatchEvents = AsyncIterator[Obj]


class StateObject:
    """The state ConfigMap as read: its ``data`` bytes (``None``: never written) and its
    ``resourceVersion`` (for the compare-and-swap of :meth:`EmailerStorage.write_state`)."""

    def __init__(self, data: bytes | None, resource_version: str) -> None:
        self.data = data
        self.resource_version = resource_version


class EmailerStorage:
    """The emailer's cluster access; build with :meth:`connect`, :meth:`close` at shutdown.
    Errors are the kit's :class:`~toolforge_kit.APIError` subclasses."""

    def __init__(self, kube: KubeClient, watch_kube: KubeClient, settings: EmailerSettings):
        self.kube = kube
        self._watch_kube = watch_kube
        self.settings = settings

    @classmethod
    async def connect(cls, settings: EmailerSettings, metrics: EmailerMetrics) -> EmailerStorage:
        """Open the connection pools (one for ordinary calls, one for the pod watch)."""
        kube = await KubeClient.for_backend(
            settings,
            user_agent="toolforge-jobs-emailer",
            metrics=metrics,
        )
        return cls(kube, kube.second_pool(2), settings)

    async def close(self) -> None:
        """Close both pools."""
        await self._watch_kube.close()
        await self.kube.close()

    # ----- pods ---------------------------------------------------------------------------

    async def list_pods(self) -> tuple[list[Obj], str]:
        """Pods of jobs that asked for mails, all namespaces, and the list's resourceVersion."""
        return await self.kube.list(PODS, None, label_selector=EMAILS_SELECTOR)

    @asynccontextmanager
    async def watch_pods(
        self, resource_version: str, timeout_seconds: int
    ) -> AsyncIterator[WatchEvents]:
        """The kit's watch of those pods from ``resource_version`` (bookmarks on).

        Raises:
            GoneError: ``resource_version`` is too old (410).
            UnavailableError: the apiserver cannot be reached.
        """
        async with self._watch_kube.watch(
            PODS,
            None,
            resource_version=resource_version,
            timeout_seconds=timeout_seconds,
            label_selector=EMAILS_SELECTOR,
        ) as events:
            yield events

    async def log_tail(
        self, namespace: str, pod: str, container: str, lines: int, *, previous: bool
    ) -> list[str] | None:
        """The last ``lines`` lines of a container's log without their timestamps (the run
        before the last restart when ``previous``); ``None`` when the pod or its log is gone.

        Raises:
            UnavailableError: the apiserver cannot be reached.
        """
        try:
            async with self.kube.pod_log(
                namespace,
                pod,
                container=container,
                follow=False,
                tail_lines=lines,
                previous=previous,
            ) as stream:
                raw = await stream.read()
        except (NotFoundError, BadRequestError):
            return None
        out = []
        for line in raw.decode(errors="replace").splitlines():
            _stamp, _sep, text = line.partition(" ")
            out.append(text)
        return out[-lines:] if lines else []

    # ----- own objects --------------------------------------------------------------------

    async def read_config(self) -> tuple[dict[str, str], str] | None:
        """``(data, resourceVersion)`` of the configuration ConfigMap; ``None`` if absent."""
        s = self.settings
        obj = await self.kube.get(CONFIG_MAPS, s.namespace, s.config_map)
        if obj is None:
            return None
        data = {str(k): str(v) for k, v in (obj.get("data") or {}).items()}
        return data, str(obj["metadata"].get("resourceVersion") or "")

    async def read_state(self) -> StateObject:
        """The state ConfigMap.

        Raises:
            NotFoundError: it does not exist (it is created with the installation).
        """
        s = self.settings
        obj = await self.kube.get(CONFIG_MAPS, s.namespace, s.state_config_map)
        if obj is None:
            raise NotFoundError(f"ConfigMap {s.namespace}/{s.state_config_map} does not exist")
        encoded = (obj.get("binaryData") or {}).get(STATE_KEY)
        data = base64.b64decode(encoded) if encoded else None
        return StateObject(data, str(obj["metadata"]["resourceVersion"]))

    async def write_state(self, data: bytes, resource_version: str) -> str:
        """Store ``data`` if the state is still at ``resource_version`` (a JSON merge patch
        with ``metadata.resourceVersion``: a compare-and-swap that keeps the object's other
        metadata, e.g. Helm's); returns the new resourceVersion.

        Raises:
            ConflictError: someone else wrote it meanwhile (another emailer).
        """
        s = self.settings
        patch = {
            "metadata": {"resourceVersion": resource_version},
            "binaryData": {STATE_KEY: base64.b64encode(data).decode()},
        }
        stored = await self.kube.patch(
            CONFIG_MAPS, s.namespace, s.state_config_map, patch, field_manager=_MANAGER
        )
        return str(stored["metadata"]["resourceVersion"])

    async def read_lease(self) -> Obj:
        """The leader Lease.

        Raises:
            NotFoundError: it does not exist (it is created with the installation).
        """
        s = self.settings
        obj = await self.kube.get(LEASES, s.namespace, s.lease)
        if obj is None:
            raise NotFoundError(f"Lease {s.namespace}/{s.lease} does not exist")
        return obj

    async def write_lease(self, spec: Obj, resource_version: str) -> Obj:
        """Set the Lease's ``spec`` if it is still at ``resource_version`` (merge patch,
        compare-and-swap); returns the stored Lease.

        Raises:
            ConflictError: it changed since it was read.
        """
        patch = {"metadata": {"resourceVersion": resource_version}, "spec": spec}
        return await self.kube.patch(
            LEASES, self.settings.namespace, self.settings.lease, patch, field_manager=_MANAGER
        )
