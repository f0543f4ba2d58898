"""Settings of the admin tooling, from ``TOOLFORGE_ADMIN_*`` environment variables."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: An image reference prefix: registry host[:port] and path components, ending in ``/``
#: (so ``registry.local/toolforge/`` cannot also match ``registry.local/toolforge-x/``).
IMAGE_PREFIX_RE = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9._-]+)*/$")
#: A registry host[:port], as in an image reference.
REGISTRY_RE = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$")


def _default_quota() -> dict[str, str]:
    # Kubernetes quantities in canonical form, so a re-run compares equal to what the
    # apiserver returns.
    return {
        "requests.cpu": "2",
        "requests.memory": "6Gi",
        "limits.cpu": "2",
        "limits.memory": "8Gi",
        "pods": "10",
        "services": "5",
        "services.nodeports": "0",
        "configmaps": "10",
        "secrets": "10",
        "persistentvolumeclaims": "0",
        "count/jobs.batch": "15",
        "count/cronjobs.batch": "50",
        "count/deployments.apps": "16",
    }


def _default_limit_range() -> dict[str, dict[str, str]]:
    return {
        "default": {"cpu": "500m", "memory": "512Mi"},
        "defaultRequest": {"cpu": "150m", "memory": "256Mi"},
        "max": {"cpu": "1", "memory": "4Gi"},
        "min": {"cpu": "50m", "memory": "100Mi"},
    }


class EgressEndpoint(BaseModel):
    """A TCP endpoint inside :attr:`AdminSettings.tool_egress_denied_cidrs` that tool pods may
    still reach (kube-apiserver), e.g. ``{"cidr": "10.244.0.1/32", "port": 6443}``."""

    model_config = ConfigDict(extra="forbid")

    cidr: str
    port: int = Field(ge=1, le=65535)

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        return str(ipaddress.IPv4Network(value))


class RegistryPull(BaseModel):
    """The pull-only registry account that tool pods pull build service images with: the
    image pull Secret ``secret_name`` (``kubernetes.io/dockerconfigjson``) that onboarding
    puts into every tool namespace, for registry ``address`` (``host[:port]``, the
    endpoint pods pull from). Never the build service's push account."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str
    username: str
    password: SecretStr
    secret_name: str = "toolforge-registry-pull"  # noqa: S105 - a Secret's name

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if not REGISTRY_RE.match(value):
            raise ValueError(f"registry {value!r} must be host[:port] (lower case)")
        return value


class AdminSettings(BaseSettings):
    """Where tools live and what they get.

    ``homes_dir`` is the directory holding one home per tool (Toolforge: the NFS mount
    ``/data/project``; locally the cluster's run directory). Quota values are Kubernetes
    quantities.
    """

    model_config = SettingsConfigDict(env_prefix="TOOLFORGE_ADMIN_", extra="forbid")

    kubeconfig: Path | None = Field(
        default=None, description="Admin kubeconfig; default: $KUBECONFIG or ~/.kube/config."
    )
    homes_dir: Path = Path("/data/project")
    uid_min: int = Field(default=50000, ge=1000)
    uid_max: int = Field(default=59999, ge=1000)
    cert_days: int = Field(default=365, ge=1, description="Tool certificate lifetime, days.")
    renew_before_days: int = Field(
        default=30, ge=0, description="Renew certificates expiring within this many days."
    )
    quota: dict[str, str] = Field(default_factory=_default_quota)
    limit_range: dict[str, dict[str, str]] = Field(default_factory=_default_limit_range)
    csr_timeout_seconds: float = 30.0
    kube_timeout_seconds: float = Field(
        default=60.0, gt=0, description="Longest time for one kube-apiserver call."
    )
    image_prefixes: list[str] = Field(
        default_factory=lambda: ["registry.local/toolforge/"],
        description="Image reference prefixes of the platform's images (the image-config "
        "list) that every tool pod may run; each ends in '/'. Policy "
        "toolforge-tool-images (toolforge_admin.policies).",
    )
    tool_image_registries: list[str] = Field(
        default_factory=lambda: ["registry.local"],
        description="Registries (host[:port]) of the images the build service makes: a tool "
        "may also run <registry>/tool-<tool>/..., its own images only.",
    )
    registry_pull: RegistryPull | None = Field(
        default=None,
        description="The image pull Secret of every tool namespace (build service images); "
        "none when unset.",
    )
    tool_egress_denied_cidrs: list[str] = Field(
        default_factory=lambda: ["169.254.169.254/32"],
        description="IPv4 CIDRs that tool pods may not open connections to (besides DNS, port "
        "53, and tool_egress_allowed): the platform's own hosts, such as the node addresses "
        "(kubelet, registry push) and the cloud metadata service. Pods are not affected: "
        "their NetworkPolicies decide.",
    )
    tool_egress_allowed: list[EgressEndpoint] = Field(
        default_factory=list,
        description="TCP endpoints inside tool_egress_denied_cidrs that tool pods may reach "
        "(kube-apiserver, after kube-proxy's DNAT).",
    )

    @field_validator("image_prefixes")
    @classmethod
    def _image_prefixes(cls, value: list[str]) -> list[str]:
        for prefix in value:
            if not IMAGE_PREFIX_RE.match(prefix):
                raise ValueError(
                    f"image prefix {prefix!r} must be registry[:port]/path/ (lower case, "
                    "ending in '/')"
                )
        return value

    @field_validator("tool_image_registries")
    @classmethod
    def _registries(cls, value: list[str]) -> list[str]:
        for registry in value:
            if not REGISTRY_RE.match(registry):
                raise ValueError(f"registry {registry!r} must be host[:port] (lower case)")
        return value

    @field_validator("tool_egress_denied_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        return [str(ipaddress.IPv4Network(cidr)) for cidr in value]
