"""Settings of the logs API (``TOOLFORGE_LOGS_*``), on the kit's
:class:`toolforge_kit.BackendSettings`. Durations are in seconds.

Build them in ``main()``, the app factory or a test, never at import time.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from toolforge_kit.settings import BackendSettings

__all__ = ["LogsSettings"]


class LogsSettings(BackendSettings):
    """What the logs API reads at start-up: the kit's common settings, where the log store is,
    and the limits of a read and of a follow."""

    model_config = SettingsConfigDict(env_prefix="TOOLFORGE_LOGS_", extra="forbid", frozen=True)

    tls_cert_file: Path = Field(
        default=Path("logs-api-server.crt"),
        description="TLS server certificate (PlatformPKI logs-api-server, backend CA).",
    )
    tls_key_file: Path = Field(default=Path("logs-api-server.key"), description="Its key.")
    logstore_url: str = Field(
        default="https://victorialogs:9428",
        pattern=r"^https?://",
        description="The log store (VictoriaLogs) base URL.",
    )
    logstore_username: str = Field(
        default="toolforge-logs", description="HTTP Basic user of the store."
    )
    logstore_password: SecretStr | None = Field(
        default=None, description="Its password (or logstore_password_file)."
    )
    logstore_password_file: Path | None = Field(
        default=None, description="A file holding the password (read at start-up)."
    )
    logstore_ca_file: Path | None = Field(
        default=None, description="CA that verifies the store's certificate; unset: system CAs."
    )
    logstore_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Longest time of one store query (not of a follow)."
    )
    page_size: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="Lines in one page of an answer; `next.url` names the next page "
        "(upstream's page size is 500).",
    )
    max_lines: int = Field(
        default=100_000, ge=1, description="Largest `lines` a request may ask for."
    )
    default_since_seconds: int = Field(
        default=3600,
        ge=1,
        description="Start of the time range when `since` is not given (upstream: 1h).",
    )
    follow_delay_seconds: float = Field(
        default=12.0,
        ge=0,
        description="How far behind now a follow stays: above the collector's worst "
        "print-to-searchable delay (docs/logs.md), so no line is skipped.",
    )
    follow_refresh_seconds: float = Field(
        default=1.0, gt=0, description="How often the store looks for new lines of a follow."
    )
    max_follows: int = Field(
        default=200,
        ge=1,
        description="Follows (open store tails) at once per process; more answer 503.",
    )

    def logstore_password_value(self) -> str:
        """The store password from ``logstore_password`` or ``logstore_password_file``.

        Raises:
            OSError: the file cannot be read. ValueError: neither is set.
        """
        if self.logstore_password is not None:
            return self.logstore_password.get_secret_value()
        if self.logstore_password_file is not None:
            return self.logstore_password_file.read_text().strip()
        raise ValueError("set logstore_password or logstore_password_file")
