"""Settings of fourohfour, from ``TOOLFORGE_FOUROHFOUR_*`` environment variables.

Nothing is read at import time: :class:`FourOhFourSettings` is built in ``main()`` or a test.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_DOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$")


class FourOhFourSettings(BaseSettings):
    """``domain`` is the platform's public domain (tools are served at ``<tool>.<domain>``,
    e.g. ``toolforge.local`` locally); required, so that a pod never guesses it. ``host`` and
    ``port`` are where uvicorn listens."""

    model_config = SettingsConfigDict(env_prefix="TOOLFORGE_FOUROHFOUR_", extra="forbid")

    domain: str
    host: str = "0.0.0.0"  # noqa: S104 - a pod's server listens on the pod's address
    port: int = Field(default=8000, ge=1, le=65535)
    access_log: bool = False
    log_level: str = "info"

    @field_validator("domain")
    @classmethod
    def _lower_dns_name(cls, value: str) -> str:
        value = value.strip().lower().rstrip(".")
        if not _DOMAIN_RE.match(value):
            raise ValueError(f"not a DNS name with at least two labels: {value!r}")
        return value
