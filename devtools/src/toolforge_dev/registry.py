"""The platform's image registry: the CNCF distribution registry (``registry serve``) as a
host process on loopback, where tool images (``<registry>/tool-<tool>/<name>:latest``) live.

What it runs with (``config.yml`` written by :meth:`LocalRegistry.prepare`, keys of the
distribution configuration reference, https://distribution.github.io/distribution/about/configuration/):

- **TLS** on ``127.0.0.1``, with a server certificate (``localhost``, ``127.0.0.1``) issued by a
  CA of the caller's choice: the platform uses the cluster CA of
  :class:`toolforge_admin.pki.PlatformPKI`, which the nodes and every tool's kubeconfig already
  trust. Plain http would be simpler, but the registry's htpasswd access controller sends and
  receives HTTP Basic credentials, which are clear text on the wire (RFC 7617 section 4), and
  distribution documents that it "MUST be used under TLS"
  (``registry/auth/htpasswd/access.go``). TLS also keeps the builds API's client honest: it
  verifies the registry against a CA file like it would in production.
- **htpasswd auth** with one bcrypt entry: the username and password of the
  ``buildpacks-registry-auth`` basic-auth Secret that ``devtools/manifests/30-builds.yaml``
  creates in ``image-build`` (:func:`builds_registry_credentials` reads them from there, the one
  source of truth), so the build pods' push credentials are the registry's.
- **filesystem storage** under ``<directory>/storage`` and ``storage.delete.enabled: true``, so
  ``DELETE /v2/<name>/manifests/<digest>`` works (``toolforge build clean``). Deleting manifests
  frees no disk space by itself: blobs go only with the registry's offline
  ``registry garbage-collect <config>`` (with the registry stopped or read-only).
- JSON logs; tracing off (``OTEL_TRACES_EXPORTER=none``: no collector runs here).

``port=0`` picks a free port: the registry binds it itself and logs
``listening on 127.0.0.1:<port>``, which :meth:`LocalRegistry.start` reads back (no race
between choosing a port and binding it). The platform (:mod:`toolforge_dev.services`) uses a
fixed port instead and its own process bookkeeping; tests use :meth:`LocalRegistry.start` /
:meth:`LocalRegistry.stop` (or the ``registry`` fixture of :mod:`toolforge_dev.pytest_plugin`).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import yaml

from toolforge_admin.pki import CertificateAuthority, subject
from toolforge_dev import binaries as go_binaries
from toolforge_dev.hostprocess import OwnProcess
from toolforge_dev.paths import REPO_ROOT

__all__ = [
    "BUILDS_MANIFEST",
    "REGISTRY_SECRET",
    "LocalRegistry",
    "RegistryCredentials",
    "RegistryError",
    "builds_registry_credentials",
    "htpasswd_entry",
]

#: The manifest that creates the registry push Secret of the build pods.
BUILDS_MANIFEST = REPO_ROOT / "devtools" / "manifests" / "30-builds.yaml"
#: ``(namespace, name)`` of that Secret (REFERENCE.md "Builds API": basic-auth Secret).
REGISTRY_SECRET = ("image-build", "buildpacks-registry-auth")
#: bcrypt cost of the htpasswd entry. The registry checks the hash on every request (no
#: session), so the cost is paid per API call: 2^8 rounds take ~20 ms here, 2^12 ~250 ms. The
#: password is a development value committed in the manifest, so a higher cost would protect
#: nothing and only slow every registry call down.
BCRYPT_ROUNDS = 8
_LISTENING = "listening on "


class RegistryError(Exception):
    """The registry could not be prepared or started; the message names the log file."""


@dataclass(frozen=True)
class RegistryCredentials:
    """HTTP Basic credentials of the registry (``username`` must not contain ``:``)."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"RegistryCredentials(username={self.username!r}, password='***')"


def builds_registry_credentials(manifest: Path = BUILDS_MANIFEST) -> RegistryCredentials:
    """The username and password of the ``buildpacks-registry-auth`` Secret in ``manifest``
    (its ``stringData``, or base64 ``data``).

    Raises :class:`RegistryError` when the manifest holds no such Secret with both keys.
    """
    namespace, name = REGISTRY_SECRET
    for doc in yaml.safe_load_all(manifest.read_text()):
        if not isinstance(doc, dict) or doc.get("kind") != "Secret":
            continue
        metadata = doc.get("metadata") or {}
        if (metadata.get("namespace"), metadata.get("name")) != (namespace, name):
            continue
        values = {k: str(v) for k, v in (doc.get("stringData") or {}).items()}
        for key, encoded in (doc.get("data") or {}).items():
            values.setdefault(key, base64.b64decode(encoded).decode())
        if values.get("username") and values.get("password"):
            return RegistryCredentials(values["username"], values["password"])
    raise RegistryError(f"{manifest}: no Secret {namespace}/{name} with username and password")


def htpasswd_entry(credentials: RegistryCredentials, rounds: int = BCRYPT_ROUNDS) -> str:
    """One htpasswd line ``user:$2b$...`` (bcrypt: the only hash distribution accepts)."""
    if ":" in credentials.username or "\n" in credentials.username:
        raise ValueError("an htpasswd username may not contain ':' or a newline")
    digest = bcrypt.hashpw(credentials.password.encode(), bcrypt.gensalt(rounds)).decode()
    return f"{credentials.username}:{digest}\n"


class LocalRegistry(OwnProcess):
    """One registry instance: its files in ``directory``, serving on ``host:port``; tests run
    it with :meth:`start`/:meth:`stop` (:class:`toolforge_dev.hostprocess.OwnProcess`).

    Layout of ``directory``: ``config.yml``, ``htpasswd``, ``registry-server.{crt,key}`` (issued
    by ``ca``), ``storage/`` (the image data), ``registry.log`` (:meth:`start` only).
    """

    @classmethod
    def standalone(
        cls, directory: Path, credentials: RegistryCredentials | None = None
    ) -> LocalRegistry:
        """An instance of its own in ``directory``, on a free port, with a CA of its own
        (``registry-ca.crt``) and by default the build pods' credentials; for tests. The
        binary must be built (``toolforge_dev.binaries.registry()``)."""
        directory.mkdir(parents=True, exist_ok=True)
        ca = CertificateAuthority.load_or_create(directory, "registry-ca", "test-registry-ca")
        return cls(
            directory,
            binary=go_binaries.registry().path("registry"),
            ca=ca,
            ca_file=directory / "registry-ca.crt",
            credentials=credentials or builds_registry_credentials(),
        )

    process_name = "the registry"
    error = RegistryError

    def __init__(
        self,
        directory: Path,
        *,
        binary: Path,
        ca: CertificateAuthority | None,
        ca_file: Path,
        credentials: RegistryCredentials,
        host: str = "127.0.0.1",
        port: int = 0,
        config_path: Path | None = None,
    ) -> None:
        self.directory = directory
        self.binary = binary
        #: Issues the server certificate when it is missing (``None``: it must exist).
        self.ca = ca
        #: PEM file of ``ca``: what clients verify the registry with.
        self.ca_file = ca_file
        self.credentials = credentials
        self.host = host
        self.port = port
        self.config_path = config_path or directory / "config.yml"
        self.log_path = directory / "registry.log"
        self._proc = None

    # ----- files ------------------------------------------------------------------------------

    @property
    def storage_dir(self) -> Path:
        """Root of the filesystem storage driver."""
        return self.directory / "storage"

    @property
    def url(self) -> str:
        """``https://<host>:<port>``; the port is known after :meth:`start` when it was 0."""
        return f"https://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        """``<host>:<port>``, the registry part of an image reference."""
        return f"{self.host}:{self.port}"

    def config(self) -> dict[str, Any]:
        """The registry's configuration (distribution configuration reference keys)."""
        return {
            "version": 0.1,
            "log": {"level": "info", "formatter": "json", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage_dir)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {
                "addr": f"{self.host}:{self.port}",
                # Signs upload state; random per start is fine for a single instance.
                "secret": secrets.token_urlsafe(32),
                "tls": {
                    "certificate": str(self.directory / "registry-server.crt"),
                    "key": str(self.directory / "registry-server.key"),
                    "minimumtls": "tls1.2",
                },
                "headers": {"X-Content-Type-Options": ["nosniff"]},
                "draintimeout": "5s",
            },
            "auth": {"htpasswd": {"realm": "toolforge-registry", "path": str(self.htpasswd)}},
        }

    @property
    def htpasswd(self) -> Path:
        return self.directory / "htpasswd"

    def prepare(self) -> Path:
        """Write the server certificate (when missing), the htpasswd file and the config;
        returns the config path. Key, htpasswd and config (it holds ``http.secret``) are 0600."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.storage_dir.mkdir(exist_ok=True)
        if not (self.directory / "registry-server.crt").exists():
            if self.ca is None:
                raise RegistryError(f"{self.directory}: no server certificate, no CA to issue one")
            self.ca.issue_pair(
                self.directory,
                "registry-server",
                subject("toolforge-registry"),
                server=True,
                dns_names=["localhost"],
                ip_addresses=[self.host],
            )
        _write_private(self.htpasswd, htpasswd_entry(self.credentials))
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        _write_private(self.config_path, yaml.safe_dump(self.config(), sort_keys=False))
        return self.config_path

    def argv(self) -> list[str]:
        """The command line (names the config file, so it names ``directory``)."""
        return [str(self.binary), "serve", str(self.config_path)]

    def env(self) -> dict[str, str]:
        """Extra environment of the process (tracing off)."""
        return {"OTEL_TRACES_EXPORTER": "none"}

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts ``ca_file`` only."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def is_ready(self) -> bool:
        """``GET /v2/`` with the credentials answers 200 (API version check, Docker Registry
        HTTP API V2)."""
        try:
            with httpx.Client(verify=self.ssl_context(), timeout=2) as client:
                reply = client.get(
                    f"{self.url}/v2/", auth=(self.credentials.username, self.credentials.password)
                )
                return reply.status_code == 200
        except (httpx.HTTPError, OSError, ssl.SSLError):
            return False

    # ----- own process (tests) ------------------------------------------------------------------

    def _started(self, log_offset: int) -> bool:
        if self.port == 0:
            self.port = self._logged_port(log_offset) or 0
        return bool(self.port) and self.is_ready()

    def _logged_port(self, offset: int) -> int | None:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            for raw in log:
                with contextlib.suppress(ValueError):
                    message = str(json.loads(raw).get("msg", ""))
                    if message.startswith(_LISTENING):
                        address = message[len(_LISTENING) :].split(",")[0]
                        return int(address.rsplit(":", 1)[1])
        return None


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    path.chmod(0o600)
