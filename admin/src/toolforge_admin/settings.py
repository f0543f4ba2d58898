"""Settings of the admin tooling, from ``TOOLFORGE_ADMIN_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
