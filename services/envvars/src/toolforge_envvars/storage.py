"""Storage of the envvars API: the tool's Secret, read and written AS THE TOOL by
impersonation (:class:`toolforge_kit.KubeClient` with ``as_tool``), so that the tool's own RBAC
and its namespace's ResourceQuota confine every write, as for the jobs API. The service's own
identity may only impersonate tools.
"""

from __future__ import annotations

from toolforge_auth.tools import namespace_for
from toolforge_envvars.settings import EnvvarsSettings
from toolforge_kit.errors import NotFoundError
from toolforge_kit.kube import KubeClient, Obj, Resource
from toolforge_kit.metrics import ServiceMetrics

__all__ = ["ToolImpersonatingSecretStorage"]

_SECRETS = Resource("/api/v1", "secrets", "Secret", "v1")
_FIELD_MANAGER = "toolforge-envvars-api"


class ToolImpersonatingSecretStorage:
    """The one Secret of each tool's variables, as the tool. Build with :meth:`connect` in
    the running loop; :meth:`close` at shutdown.

    Raises (every method): the kit's errors (:mod:`toolforge_kit.errors`): 403 when RBAC or
    the ResourceQuota refuses, 409 when the Secret changed meanwhile, 503 when kube-apiserver
    cannot be reached.
    """

    def __init__(self, kube: KubeClient, *, secret_name: str) -> None:
        self._kube = kube
        self.secret_name = secret_name

    @classmethod
    async def connect(
        cls, settings: EnvvarsSettings, metrics: ServiceMetrics
    ) -> ToolImpersonatingSecretStorage:
        """Open the client with the API's own credentials (``kubeconfig`` or in-cluster).

        Raises:
            kubernetes_asyncio.config.ConfigException, OSError: unusable credentials.
        """
        kube = await KubeClient.for_backend(
            settings,
            user_agent="toolforge-envvars-api",
            metrics=metrics,
        )
        return cls(kube, secret_name=settings.secret_name)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._kube.close()

    async def get(self, tool: str) -> Obj | None:
        """The tool's Secret, ``None`` when it has none."""
        return await self._kube.get(_SECRETS, namespace_for(tool), self.secret_name, as_tool=tool)

    async def create(self, tool: str, secret: Obj) -> Obj:
        """Create the tool's Secret (409 when it exists already)."""
        return await self._kube.create(
            _SECRETS, namespace_for(tool), secret, as_tool=tool, field_manager=_FIELD_MANAGER
        )

    async def replace(self, tool: str, secret: Obj) -> Obj:
        """Replace the Secret; its ``metadata.resourceVersion`` makes this a compare-and-swap
        (409 when it changed meanwhile)."""
        return await self._kube.replace(
            _SECRETS, namespace_for(tool), secret, as_tool=tool, field_manager=_FIELD_MANAGER
        )

    async def delete(self, tool: str, *, resource_version: str) -> bool:
        """Delete the Secret if it still is at ``resource_version`` (409 otherwise); ``False``
        when it was gone."""
        try:
            await self._kube.request(
                "DELETE",
                _SECRETS.item(namespace_for(tool), self.secret_name),
                label="secrets",
                as_tool=tool,
                body={"preconditions": {"resourceVersion": resource_version}},
            )
        except NotFoundError:
            return False
        return True
