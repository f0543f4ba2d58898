"""Emailer process settings (pydantic-settings): what it needs at start-up. The mail settings
proper live in a ConfigMap that is re-read while running (:mod:`toolforge_emailer.config`).

Sources, highest priority first: keyword overrides (the CLI's ``--host``/``--port``),
environment ``TOOLFORGE_EMAILER_<KEY>``, the YAML file given with ``--config``, the defaults.
The kit's common settings (:class:`toolforge_kit.BackendSettings`) serve ``/healthz`` and
``/metrics`` over TLS (no route needs an identity) and give the cluster identity.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from toolforge_kit.settings import BackendSettings

__all__ = ["EmailerSettings"]


class EmailerSettings(BackendSettings):
    """Everything the emailer reads at start-up. Durations are in seconds."""

    model_config = SettingsConfigDict(
        env_prefix="TOOLFORGE_EMAILER_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    tls_cert_file: Path = Field(
        default=Path("emailer-server.crt"),
        description="TLS server certificate of /healthz and /metrics (from the backend CA).",
    )
    tls_key_file: Path = Field(default=Path("emailer-server.key"), description="Its key.")
    namespace: str = Field(
        default="jobs-emailer",
        description="Namespace of the emailer's own objects: the configuration and state "
        "ConfigMaps and the leader Lease.",
    )
    config_map: str = Field(
        default="jobs-emailer-config",
        description="ConfigMap with the live configuration (upstream's keys), re-read every "
        "task_read_configmap_sleep seconds.",
    )
    state_config_map: str = Field(
        default="jobs-emailer-state",
        description="ConfigMap that keeps the state (events seen, pending, outbox); it must "
        "exist (the chart or the local manifest creates it), so the emailer needs no create "
        "right.",
    )
    lease: str = Field(
        default="jobs-emailer",
        description="Lease of the leader election: only its holder watches and sends; it must "
        "exist (created with the state ConfigMap).",
    )
    lease_duration_seconds: float = Field(
        default=15, gt=0, description="A leader not renewing for this long is replaced."
    )
    lease_renew_deadline_seconds: float = Field(
        default=10,
        gt=0,
        description="A leader that could not renew for this long stops working (before "
        "anyone may take over).",
    )
    lease_retry_seconds: float = Field(
        default=2, gt=0, description="How often the lease is renewed or tried."
    )
    identity: str | None = Field(
        default=None,
        description="This process in the Lease (holderIdentity); unset: <hostname>-<pid>.",
    )
    smtp_ca_file: Path | None = Field(
        default=None,
        description="CA bundle that the SMTP server's STARTTLS certificate must chain to; "
        "unset: the system's trust store.",
    )
    smtp_require_starttls: bool = Field(
        default=False,
        description="Refuse to send (a temporary failure) when the server offers no STARTTLS; "
        "otherwise STARTTLS is used whenever it is offered.",
    )
    state_save_delay_seconds: float = Field(
        default=0.5,
        ge=0,
        description="New events are written to the state ConfigMap at most this long after "
        "they were seen (writes are coalesced).",
    )
    kube_max_connections: int = Field(
        default=8, ge=2, description="Size of the connection pool to kube-apiserver."
    )
