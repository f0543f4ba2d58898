"""Settings of the backend side of the auth library (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["AuthSettings"]


class AuthSettings(BaseSettings):
    """What a backend needs to recognise the gateway. Environment prefix ``TOOLFORGE_AUTH_``.

    Build it in ``create_app()`` (not at import time) and hand it to
    :func:`toolforge_auth.dependencies.install_auth`.
    """

    model_config = SettingsConfigDict(env_prefix="TOOLFORGE_AUTH_", extra="forbid")

    #: PEM file of the backend CA: the only CA whose client certificates identify the gateway
    #: (cert-manager ClusterIssuer ``api-gateway-backend-ca`` in production).
    backend_ca_file: Path
    #: CNs of the backend-CA client certificates allowed to forward identities.
    gateway_peer_cns: list[str] = Field(default_factory=lambda: ["toolforge-api-gateway"])
