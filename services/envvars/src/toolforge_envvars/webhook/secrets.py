"""The webhook's one read: the metadata of a tool's envvars Secret, as the webhook's own
identity (RBAC: ``get`` on that one Secret name). Only ``PartialObjectMetadata`` is asked for
(Kubernetes API concepts, metadata-only fetches), so no value ever reaches the webhook: the
variable names come from the Secret's names annotation (:mod:`toolforge_envvars.secret`).
"""

from __future__ import annotations

from toolforge_envvars.secret import names_of
from toolforge_envvars.settings import WebhookSettings
from toolforge_kit.errors import NotFoundError
from toolforge_kit.kube import KubeClient, Resource
from toolforge_kit.metrics import ServiceMetrics

__all__ = ["METADATA_ONLY", "SecretNamesReader"]

#: Accept header of a metadata-only read.
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
_SECRETS = Resource("/api/v1", "secrets", "Secret", "v1")


class SecretNamesReader:
    """Reads the variable names of a namespace's envvars Secret."""

    def __init__(self, kube: KubeClient, *, secret_name: str) -> None:
        self._kube = kube
        self.secret_name = secret_name

    @classmethod
    async def connect(cls, settings: WebhookSettings, metrics: ServiceMetrics) -> SecretNamesReader:
        """Open the client with the webhook's own credentials.

        Raises:
            kubernetes_asyncio.config.ConfigException, OSError: unusable credentials.
        """
        kube = await KubeClient.connect(
            kubeconfig=settings.kubeconfig,
            user_agent="toolforge-envvars-webhook",
            max_connections=16,
            timeout=settings.kube_timeout_seconds,
            retry_after=1,
            metrics=metrics,
        )
        return cls(kube, secret_name=settings.secret_name)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._kube.close()

    async def names(self, namespace: str) -> list[str]:
        """The variable names in ``namespace`` (``[]`` without a Secret).

        Raises:
            APIError: the metadata cannot be read (403, 503...).
        """
        try:
            meta = await self._kube.request(
                "GET",
                _SECRETS.item(namespace, self.secret_name),
                label="secrets/metadata",
                accept=METADATA_ONLY,
            )
        except NotFoundError:
            return []
        return names_of(meta.get("metadata") or {})
