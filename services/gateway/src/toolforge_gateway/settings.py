"""Gateway settings (pydantic-settings): environment, YAML file, command-line overrides.

Sources, highest priority first: keyword overrides (the CLI's ``--host``/``--port``),
environment variables ``TOOLFORGE_GATEWAY_<KEY>`` (nested keys joined by ``__``, e.g.
``TOOLFORGE_GATEWAY_LIMITS__MAX_BODY_BYTES=2048``), the YAML file given to :func:`load_settings`,
then the defaults below. Nothing is read at import time: :func:`load_settings` (or
``GatewaySettings(...)``) is called from ``main()`` or a test.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import SettingsConfigDict

from toolforge_auth.serving import FileSettings, load_file_settings

__all__ = [
    "DEFAULT_UNAUTHENTICATED_SUFFIXES",
    "GatewaySettings",
    "Limits",
    "RouteSettings",
    "load_settings",
]

#: Per-API paths that any client may call, without a client certificate (REFERENCE.md,
#: "Identity and the gateway"): ``/<api>/openapi.json``, ``/<api>/v1/healthz``,
#: ``/<api>/v1/metrics``.
DEFAULT_UNAUTHENTICATED_SUFFIXES = ("/openapi.json", "/v1/healthz", "/v1/metrics")

# A route name is the first path segment: lower-case letters, digits and '-', so that it is also
# a valid prefix for OpenAPI component names (OpenAPI 3.1 section 4.8.7: ^[a-zA-Z0-9.\-_]+$).
_ROUTE_NAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
# Service identity names follow the DNS-1123 label rule of toolforge_auth.identity.
_SERVICE_NAME_RE = _ROUTE_NAME_RE
# Gateway-local paths; a route may not shadow them.
_RESERVED_ROUTES = frozenset({"healthz", "metrics", "openapi.json"})


class RouteSettings(BaseModel):
    """One backend API behind the gateway, reached at ``/<route name>/...``.

    Timeouts are in seconds. ``connect_timeout`` covers TCP connect plus the TLS handshake (and
    waiting for a free pooled connection); ``read_timeout`` is the longest silence while
    sending the request or reading the response, also between chunks of a streamed response
    (``null`` for none); ``total_timeout`` bounds the time from receiving the request until
    the backend's response headers arrive. A timeout before the response starts gives 504; a
    read timeout in the middle of a streamed response ends the (truncated) response.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Base URL of the backend, ``https://host:port`` optionally with a base path.
    url: str
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float | None = Field(default=300.0, gt=0)
    total_timeout: float = Field(default=60.0, gt=0)
    #: Most connections open to this backend at once (more requests wait, up to
    #: ``connect_timeout``, then 503), and most kept open while idle.
    max_connections: int = Field(default=256, ge=1)
    max_keepalive_connections: int = Field(default=256, ge=0)
    #: Seconds an idle pooled connection is kept for reuse. Keep it below the backend's own
    #: keep-alive timeout (uvicorn's default is 5 s), or a request may race the backend closing
    #: the connection and fail with 502.
    keepalive_expiry: float = Field(default=4.0, ge=0)

    @field_validator("url")
    @classmethod
    def _https_url(cls, value: str) -> str:
        if not re.fullmatch(r"https://[^/?#\s]+(/[^?#\s]*)?", value):
            raise ValueError(
                "url must be https://host[:port][/base/path] (the backends are only reached "
                "over mTLS), without query or fragment"
            )
        return value.rstrip("/")


class Limits(BaseModel):
    """What one client may take: sizes in bytes (the defaults are nginx's
    ``client_max_body_size`` and ``large_client_header_buffers``), times in seconds, and
    connections. Enforced by the app (sizes) and by the HTTP protocol
    (:class:`toolforge_auth.uvicorn.ConnectionLimits`: a request head that is far too large or
    never ends, slow clients, idle connections)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Largest request body; larger gives 413, also for chunked bodies without Content-Length.
    max_body_bytes: int = Field(default=1024 * 1024, ge=0)
    #: Largest sum over request headers of ``len(name) + len(value) + 4``; larger gives 431.
    max_header_bytes: int = Field(default=32 * 1024, ge=1)
    #: Longest request target (path plus ``?query``); longer gives 414.
    max_url_bytes: int = Field(default=8 * 1024, ge=1)
    #: Time from a request's first byte (or the connection's start) to the end of its headers;
    #: then 408 and the connection is closed.
    header_timeout: float = Field(default=10.0, gt=0)
    #: Time from the end of the headers to the end of the body (not counting time in which
    #: the gateway itself does not read, waiting for the backend); then 408 and close.
    body_timeout: float = Field(default=60.0, gt=0)
    #: Idle time of a keep-alive connection between requests; then it is closed.
    keepalive_timeout: float = Field(default=5.0, gt=0)
    #: Client connections served at once (per worker process); above, requests get 503 and
    #: their connection is closed.
    max_connections: int = Field(default=1024, ge=1)

    @property
    def max_head_bytes(self) -> int:
        """The protocol's bound on a request head: the headers, the request target and 1 KiB
        for the rest of the request line and the CRLFs. Below it the app answers 431/414 with
        its own message; above, the protocol answers 431 before the head is complete."""
        return self.max_header_bytes + self.max_url_bytes + 1024


def _default_routes() -> dict[str, RouteSettings]:
    # Service names as in PlatformPKI's backend server certificates (jobs-api, builds-api).
    return {
        "jobs": RouteSettings(url="https://jobs-api:8443"),
        "builds": RouteSettings(url="https://builds-api:8443"),
    }


class GatewaySettings(FileSettings):
    """Everything the gateway reads at start-up. See ``services/gateway/README.md``."""

    model_config = SettingsConfigDict(
        env_prefix="TOOLFORGE_GATEWAY_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    host: str = "0.0.0.0"  # noqa: S104 - a gateway listens on all interfaces by design
    #: Production port (a NodePort behind HAProxy; REFERENCE.md).
    port: int = Field(default=30003, ge=0, le=65535)
    #: Gateway processes serving the port (``workers.py``): nginx's ``worker_processes``; one
    #: per CPU core the gateway may use is the usual choice.
    workers: int = Field(default=1, ge=1, le=64)
    #: Plain-HTTP port that answers only ``GET /healthz``, for kubelet probes (which present no
    #: client certificate); ``None`` (the default) opens no such port. See ``health.py``.
    health_port: int | None = Field(default=None, ge=0, le=65535)

    #: The gateway's TLS server certificate and key (PlatformPKI ``gateway-server``).
    tls_cert_file: Path = Path("gateway-server.crt")
    tls_key_file: Path = Path("gateway-server.key")
    #: CAs whose client certificates are accepted: the cluster CA (tools) first, then any
    #: extra CAs (e.g. one for service identities).
    client_ca_files: list[Path] = Field(default_factory=lambda: [Path("cluster-ca.crt")])

    #: The gateway's client certificate towards backends (PlatformPKI
    #: ``gateway-backend-client``, ``CN=toolforge-api-gateway,O=toolforge``) and the backend CA.
    backend_client_cert_file: Path = Path("gateway-backend-client.crt")
    backend_client_key_file: Path = Path("gateway-backend-client.key")
    backend_ca_file: Path = Path("backend-ca.crt")

    #: Route name (first path segment) -> backend.
    routes: dict[str, RouteSettings] = Field(default_factory=_default_routes)
    #: Service name (CN ``service:<name>``) -> regexes; a service may call a gateway path only
    #: when one of them matches the whole (percent-decoded) path, e.g. ``/jobs/v1/tool/[^/]+/jobs``.
    service_identities: dict[str, list[re.Pattern[str]]] = Field(default_factory=dict)
    #: Per-route path suffixes (after the route prefix) that need no client certificate (the
    #: TLS layer asks for one but does not require it; every other path answers 401 without).
    unauthenticated_suffixes: list[str] = Field(
        default_factory=lambda: list(DEFAULT_UNAUTHENTICATED_SUFFIXES)
    )
    limits: Limits = Field(default_factory=Limits)

    #: Seconds the aggregated ``/openapi.json`` is reused before backends are asked again.
    openapi_cache_seconds: float = Field(default=30.0, ge=0)
    #: ``servers[0].url`` of the aggregated spec (e.g. ``https://api.example:30003``).
    public_url: str = "/"
    #: ``Retry-After`` seconds sent with 503 when a backend cannot be reached.
    retry_after_seconds: int = Field(default=5, ge=0)
    #: Seconds in-flight requests get to finish after SIGTERM/SIGINT (uvicorn
    #: ``timeout_graceful_shutdown``); then they are cancelled.
    graceful_shutdown_seconds: float = Field(default=30.0, ge=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    @field_validator("routes")
    @classmethod
    def _route_names(cls, value: dict[str, RouteSettings]) -> dict[str, RouteSettings]:
        for name in value:
            if name in _RESERVED_ROUTES or not _ROUTE_NAME_RE.fullmatch(name):
                raise ValueError(
                    f"route name {name!r} must be a DNS-1123 label (lower-case letters, digits, "
                    f"'-') other than {', '.join(sorted(_RESERVED_ROUTES))}"
                )
        return value

    @field_validator("service_identities")
    @classmethod
    def _service_names(
        cls, value: dict[str, list[re.Pattern[str]]]
    ) -> dict[str, list[re.Pattern[str]]]:
        for name in value:
            if not _SERVICE_NAME_RE.fullmatch(name):
                raise ValueError(
                    f"service identity name {name!r} must be a DNS-1123 label "
                    "(the part after 'service:' in the certificate CN)"
                )
        return value

    @field_validator("unauthenticated_suffixes")
    @classmethod
    def _suffixes(cls, value: list[str]) -> list[str]:
        for suffix in value:
            if not suffix.startswith("/"):
                raise ValueError(f"unauthenticated suffix {suffix!r} must start with '/'")
        return value


def load_settings(config_file: Path | None = None, **overrides: Any) -> GatewaySettings:
    """Settings from ``overrides``, the environment and ``config_file`` (YAML mapping of the
    keys of :class:`GatewaySettings`), in that priority.

    Raises :class:`pydantic.ValidationError` for invalid values and :class:`OSError` when
    ``config_file`` cannot be read.
    """
    return load_file_settings(GatewaySettings, config_file, **overrides)
