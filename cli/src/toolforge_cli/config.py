"""Where the gateway is and who we are: settings, credentials, CA and the tool name.

Sources, highest priority first (:func:`load_settings`):

1. the global options ``toolforge --api-url URL --cert FILE --key FILE --ca FILE``;
2. environment variables ``TOOLFORGE_API_URL``, ``TOOLFORGE_CERT``, ``TOOLFORGE_KEY``,
   ``TOOLFORGE_CA``, ``TOOLFORGE_KUBECONFIG``, ``TOOLFORGE_TIMEOUT``;
3. for the API URL only: where upstream's clients find it (:mod:`toolforge_cli.upstreamconfig`:
   ``TOOL_TOOLFORGE_API_URL``, then ``api_gateway.url`` in ``$XDG_CONFIG_HOME/toolforge.yaml``,
   ``~/.config/toolforge.yaml``, ``~/.toolforge.yaml``, ``/etc/toolforge/common.yaml``), so a
   tool's home configured for them works as it is;
4. defaults: API URL :data:`DEFAULT_API_URL` (the gateway of the local platform, ``make run``);
   client certificate and key ``~/.toolskube/client.crt`` and ``client.key`` (where onboarding
   puts them, REFERENCE.md "Identity and the gateway"); the CA from the kubeconfig
   (``$KUBECONFIG``'s first file, else ``~/.kube/config``): the current context's cluster's
   ``certificate-authority-data`` or ``certificate-authority`` (a path relative to the
   kubeconfig's directory). The gateway's server certificate is issued by the cluster CA, the
   CA every tool already has in its kubeconfig.

``~`` is ``$HOME`` when the command runs, so ``HOME=/path/to/tool/home toolforge jobs list``
acts as that tool. The tool name is the client certificate's subject CN; the certificate must
be a tool certificate, ``CN=<tool>,O=toolforge``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID
from pydantic import Field, PrivateAttr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from toolforge_cli.errors import UserError
from toolforge_cli.toolname import is_tool_name
from toolforge_cli.upstreamconfig import upstream_api_url

__all__ = [
    "DEFAULT_API_URL",
    "ConfigError",
    "Connection",
    "Settings",
    "ca_from_kubeconfig",
    "default_kubeconfig",
    "https_url",
    "load_settings",
    "resolve_connection",
    "tool_from_certificate",
]

#: The gateway of the local platform started by ``make run`` (see README.md).
DEFAULT_API_URL = "https://127.0.0.1:8443"


class ConfigError(UserError):
    """A setting, the credentials or the CA are missing or unusable (exit code 1)."""


class Settings(BaseSettings):
    """Connection settings; ``None`` means "the default described in the module docstring".

    Raises ``pydantic.ValidationError`` on bad values (see :func:`load_settings`).
    """

    model_config = SettingsConfigDict(env_prefix="TOOLFORGE_", extra="ignore")

    api_url: str = Field(
        default=DEFAULT_API_URL, description="Base URL of the API gateway (https only)."
    )
    cert: Path | None = Field(default=None, description="Client certificate (PEM).")
    key: Path | None = Field(default=None, description="Client private key (PEM).")
    ca: Path | None = Field(default=None, description="CA bundle for the gateway (PEM).")
    kubeconfig: Path | None = Field(default=None, description="Kubeconfig to take the CA from.")
    timeout: float = Field(default=30.0, gt=0, description="HTTP time-out, seconds.")

    _api_url_source: str = PrivateAttr(default="the default")

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        return https_url(value)

    @property
    def api_url_source(self) -> str:
        """Where :attr:`api_url` came from, for messages: ``--api-url``,
        ``TOOLFORGE_API_URL``, ``TOOL_TOOLFORGE_API_URL``, a file, or ``the default``."""
        return self._api_url_source


def https_url(value: str) -> str:
    """``value`` without trailing ``/``. Raises ``ValueError`` unless it is ``https://``."""
    if not value.startswith("https://"):
        raise ValueError(f"must start with https:// (got {value!r})")
    return value.rstrip("/")


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment with ``overrides`` (``None`` values are ignored) on top;
    without ``api_url`` in either, the API URL comes from upstream's configuration
    (:func:`~toolforge_cli.upstreamconfig.upstream_api_url`), else :data:`DEFAULT_API_URL`.

    Raises :class:`ConfigError` with one detail per invalid setting, naming the setting and
    its environment variable: ``api_url (TOOLFORGE_API_URL): must start with https://``, or
    the file an upstream URL came from;
    :class:`~toolforge_cli.upstreamconfig.UpstreamConfigError` for an unreadable file.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "settings"
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{name} (TOOLFORGE_{name.upper()}): {message}")
        raise ConfigError("invalid settings", details=problems) from None
    if "api_url" in given:
        settings._api_url_source = "--api-url"
    elif "api_url" in settings.model_fields_set:
        settings._api_url_source = "TOOLFORGE_API_URL"
    else:
        found = upstream_api_url()
        if found is not None:
            url, source = found
            try:
                checked = https_url(url)
            except ValueError as exc:
                raise ConfigError(
                    "invalid settings", details=[f"api_url ({source}): {exc}"]
                ) from None
            settings = settings.model_copy(update={"api_url": checked})
            settings._api_url_source = source
    return settings


@dataclass(frozen=True)
class Connection:
    """Everything needed to talk to the gateway as one tool.

    ``ca_pem`` is the PEM text of the CA(s) trusted for the gateway's server certificate;
    ``ca_source`` says where it came from (for messages); ``timeout`` is in seconds.
    """

    api_url: str
    tool: str
    cert: Path
    key: Path
    ca_pem: str
    ca_source: str
    timeout: float
    api_url_source: str = "the default"

    def ssl_context(self) -> ssl.SSLContext:
        """A TLS 1.2+ client context that trusts only ``ca_pem``, checks the host name and
        presents the client certificate. Raises :class:`ConfigError` when the CA is not PEM or
        the key does not belong to the certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_verify_locations(cadata=self.ca_pem)
        except (ssl.SSLError, ValueError) as exc:
            raise ConfigError(
                f"the CA from {self.ca_source} is not a PEM certificate: {exc}"
            ) from None
        try:
            context.load_cert_chain(self.cert, self.key)
        except OSError as exc:  # ssl.SSLError is an OSError
            raise ConfigError(
                f"cannot use client certificate {self.cert} with key {self.key}: "
                f"{getattr(exc, 'reason', None) or exc}",
                hint="the key must be the private key of the certificate",
            ) from None
        return context


def default_kubeconfig() -> Path:
    """``$KUBECONFIG``'s first entry, else ``~/.kube/config``."""
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), None)
    return Path(first) if first else Path.home() / ".kube" / "config"


def ca_from_kubeconfig(path: Path) -> str:
    """PEM text of the CA of the current context's cluster in the kubeconfig ``path``.

    ``certificate-authority-data`` is base64 PEM; ``certificate-authority`` is a file path,
    relative paths being relative to the kubeconfig's directory (as client-go resolves them).
    Raises :class:`ConfigError` when the file, the context, the cluster or the CA is missing
    or unreadable.
    """
    hint = "pass --ca FILE (or set TOOLFORGE_CA) with the cluster CA certificate"
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(
            f"cannot read kubeconfig {path} to find the CA: {exc.strerror or exc}", hint=hint
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"kubeconfig {path} is not valid YAML: {exc}", hint=hint) from None
    if not isinstance(doc, dict):
        raise ConfigError(f"kubeconfig {path} is not a mapping", hint=hint)
    current = doc.get("current-context")
    contexts = {c.get("name"): c.get("context") or {} for c in _entries(doc, "contexts")}
    if current not in contexts:
        raise ConfigError(
            f"kubeconfig {path}: current-context {current!r} is not among its contexts",
            hint=hint,
        )
    cluster_name = contexts[current].get("cluster")
    clusters = {c.get("name"): c.get("cluster") or {} for c in _entries(doc, "clusters")}
    if cluster_name not in clusters:
        raise ConfigError(
            f"kubeconfig {path}: cluster {cluster_name!r} of context {current!r} is missing",
            hint=hint,
        )
    cluster = clusters[cluster_name]
    if "certificate-authority-data" in cluster:
        try:
            return base64.b64decode(cluster["certificate-authority-data"], validate=True).decode()
        except (binascii.Error, TypeError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"kubeconfig {path}: certificate-authority-data of cluster {cluster_name!r} "
                f"is not base64 PEM: {exc}",
                hint=hint,
            ) from None
    if "certificate-authority" in cluster:
        ca_path = path.parent / str(cluster["certificate-authority"])
        try:
            return ca_path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"cannot read CA file {ca_path} (certificate-authority of cluster "
                f"{cluster_name!r} in {path}): {getattr(exc, 'strerror', None) or exc}",
                hint=hint,
            ) from None
    raise ConfigError(
        f"kubeconfig {path}: cluster {cluster_name!r} has no certificate-authority(-data)",
        hint=hint,
    )


def _entries(doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = doc.get(key) or []
    return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []


def tool_from_certificate(cert: x509.Certificate, source: str = "the client certificate") -> str:
    """The tool name of a tool certificate: subject ``CN=<tool>,O=toolforge`` (REFERENCE.md).

    Rules: exactly one CN, which is a tool name (:mod:`toolforge_cli.toolname`: a DNS-1123
    label of at most 58 characters), and the only O is ``toolforge``. Raises
    :class:`ConfigError` naming the subject otherwise (e.g. for an admin's
    ``O=system:masters`` certificate or a service's ``CN=service:<name>``).
    """
    subject = cert.subject.rfc4514_string()
    cns = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    valid = orgs == ["toolforge"] and len(cns) == 1 and is_tool_name(cns[0])
    if not valid:
        raise ConfigError(
            f"{source} is not a Toolforge tool certificate: subject {subject!r}, expected "
            "'CN=<tool>,O=toolforge' with a tool name (a DNS-1123 label) as CN",
            hint="use the tool's own certificate (~/.toolskube/client.crt in the tool's home)",
        )
    return cns[0]


def _read_certificate(path: Path) -> x509.Certificate:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read client certificate {path}: {exc.strerror or exc}",
            hint="pass --cert/--key (or set TOOLFORGE_CERT/TOOLFORGE_KEY), or run as the "
            "tool (become <tool>) so that ~/.toolskube/client.crt exists",
        ) from None
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise ConfigError(f"client certificate {path} is not a PEM certificate: {exc}") from None


def resolve_connection(settings: Settings, *, now: dt.datetime | None = None) -> Connection:
    """Resolve ``settings`` into a :class:`Connection`: read the client certificate (tool name
    from its CN), check that the key is readable and that the certificate has not expired,
    and find the CA. Raises :class:`ConfigError` with the file and the reason."""
    home = Path.home()
    cert_path = settings.cert or home / ".toolskube" / "client.crt"
    key_path = settings.key or home / ".toolskube" / "client.key"
    cert = _read_certificate(cert_path)
    tool = tool_from_certificate(cert, f"client certificate {cert_path}")
    if not os.access(key_path, os.R_OK):
        reason = "does not exist" if not key_path.exists() else "is not readable"
        raise ConfigError(f"client key {key_path} {reason}")
    now = now or dt.datetime.now(dt.UTC)
    if cert.not_valid_after_utc <= now:
        raise ConfigError(
            f"client certificate {cert_path} of tool {tool!r} expired on "
            f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
            hint="ask a Toolforge admin to renew it (toolforge-admin tool renew)",
        )
    if settings.ca is not None:
        try:
            ca_pem = settings.ca.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"cannot read CA file {settings.ca}: {getattr(exc, 'strerror', None) or exc}"
            ) from None
        ca_source = str(settings.ca)
    else:
        kubeconfig = settings.kubeconfig or default_kubeconfig()
        ca_pem = ca_from_kubeconfig(kubeconfig)
        ca_source = f"kubeconfig {kubeconfig}"
    return Connection(
        api_url=settings.api_url,
        tool=tool,
        cert=cert_path,
        key=key_path,
        ca_pem=ca_pem,
        ca_source=ca_source,
        timeout=settings.timeout,
        api_url_source=settings.api_url_source,
    )
