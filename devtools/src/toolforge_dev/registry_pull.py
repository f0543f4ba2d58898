"""The registry's read-only pull endpoint: where the kubelet pulls tool images from.

The platform registry (:mod:`toolforge_dev.registry`, ``https://<node>:8446``) authenticates
with htpasswd, and distribution's htpasswd access controller has no authorisation: every
account may push and delete everything. So the credentials of a tool's pods must not be an
account there. Instead a second ``registry serve`` process reads the **same storage** in
distribution's read-only mode (``storage.maintenance.readonly.enabled: true``: every write is
refused by the registry itself) on ``https://<node>:8450`` (:data:`PULL_PORT`), with one
account of its own, :data:`PULL_CREDENTIALS`, that exists nowhere else. Pods name images
``<node>:8450/tool-<tool>/<name>:<tag>`` and carry the dockerconfigjson Secret of
:func:`pull_secret` as ``imagePullSecrets``; containerd trusts the cluster CA for both registry
addresses (``certs.d/<address>/hosts.toml``, :func:`toolforge_dev.tekton.write_registry_hosts`).

Limits (phase 1): the pull account is shared by all tools, so any holder can pull any tool's
image (upstream Toolforge's registry projects are publicly readable too); the Secret is made by
whoever runs the pod (tests today; onboarding or the jobs API later).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from toolforge_dev.registry import LocalRegistry, RegistryCredentials

__all__ = ["PULL_CREDENTIALS", "PULL_PORT", "PULL_SECRET", "ReadOnlyRegistry", "pull_secret"]

PULL_PORT = 8450
#: The pull account (local development values; it can only read).
PULL_CREDENTIALS = RegistryCredentials("toolforge-puller", "local-dev-registry-pull-password")
#: Name of the image pull Secret in a tool's namespace.
PULL_SECRET = "toolforge-registry-pull"  # noqa: S105 - a Secret name


class ReadOnlyRegistry(LocalRegistry):
    """A :class:`LocalRegistry` that serves ``storage_dir`` (another instance's storage) in
    read-only mode. Its own files (config, htpasswd, certificate, log) are in ``directory``."""

    def __init__(self, directory: Path, *, storage_dir: Path, **kwargs: Any) -> None:
        super().__init__(directory, **kwargs)
        self._shared_storage = storage_dir

    @property
    def storage_dir(self) -> Path:
        """The writable instance's storage, read here."""
        return self._shared_storage

    def config(self) -> dict[str, Any]:
        """:meth:`LocalRegistry.config` plus ``storage.maintenance.readonly.enabled``."""
        config = super().config()
        config["storage"]["maintenance"]["readonly"] = {"enabled": True}
        return config


def pull_secret(namespace: str, address: str) -> dict[str, Any]:
    """The ``kubernetes.io/dockerconfigjson`` Secret :data:`PULL_SECRET` for ``namespace``,
    holding :data:`PULL_CREDENTIALS` for registry ``address`` (``host:port``)."""
    user, password = PULL_CREDENTIALS.username, PULL_CREDENTIALS.password
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    config = {"auths": {address: {"username": user, "password": password, "auth": token}}}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": PULL_SECRET, "namespace": namespace},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()},
    }
