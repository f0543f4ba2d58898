"""The platform's log store: VictoriaLogs (``victoria-logs``, Apache-2.0) as a host process.

Flags (VictoriaLogs docs, ``victoria-logs -help``), as :meth:`LogStore.argv` writes them:

- ``-storageDataPath=<directory>/data``: the data, in the run directory (wiped with the cluster);
- ``-retentionPeriod=<retention>``: lines older than that are deleted, and refused at
  ingestion (default :data:`DEFAULT_RETENTION`, ``$TOOLFORGE_DEV_LOGS_RETENTION`` overrides;
  the store's minimum is ``1d``);
- ``-httpListenAddr=<host>:<port>`` with ``-tls``, a server certificate for ``<host>``,
  ``127.0.0.1`` and ``localhost`` issued by the given CA (the platform uses the cluster CA, which
  every pod's service-account ``ca.crt`` already holds, so the in-cluster collector verifies the
  store with it). The platform listens on the node address ``10.244.0.1:9428``
  (:data:`LOGSTORE_PORT`, the store's default port): pods reach it over the bridge, host
  processes reach it too, and the address exists only on this machine;
- ``-httpAuth.username`` / ``-httpAuth.password=file://<directory>/auth/password``: HTTP Basic
  auth on every endpoint but ``/health``. Pods of every tool can reach the node address, and a
  tool must not read other tools' logs or write into them, so the store takes no anonymous
  request. The store has one user: the collector and the readers (the logs API) share it. The
  password is random, made once per run directory (0600), so a restart of the platform keeps
  it and the collector, which re-reads its copy every second, keeps working;
- ``-search.maxQueryDuration=30s``, ``-loggerFormat=json``.

``port=0`` (tests, benchmarks) binds a free port; the store logs
``started server at http(s)://<host>:<port>/``, which :meth:`LogStore.start` reads back.
The platform (:mod:`toolforge_dev.services`) runs the process itself with the fixed port;
tests and benchmarks use :meth:`LogStore.standalone` with :meth:`LogStore.start`/``stop``.
"""

from __future__ import annotations

import os
import re
import secrets
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx

from toolforge_admin.pki import CertificateAuthority, subject
from toolforge_dev import binaries as go_binaries
from toolforge_dev.cluster import NODE_IP, Cluster
from toolforge_dev.hostprocess import OwnProcess
from toolforge_logstore import LogStoreConfig

__all__ = [
    "DEFAULT_RETENTION",
    "LOGSTORE_PORT",
    "LOGSTORE_USER",
    "RETENTION_ENV",
    "LogStore",
    "LogStoreError",
    "StoreCredentials",
    "platform_store",
    "retention_setting",
]

#: The store's port (VictoriaLogs' default ``-httpListenAddr`` port).
LOGSTORE_PORT: Final = 9428
#: The one HTTP Basic user of the store.
LOGSTORE_USER: Final = "toolforge-logs"
DEFAULT_RETENTION: Final = "7d"
RETENTION_ENV: Final = "TOOLFORGE_DEV_LOGS_RETENTION"
_RETENTION = re.compile(r"^[1-9][0-9]*[hdwMy]$")
_STARTED = re.compile(r"started server at https?://[^/\s]*:(\d+)/")


class LogStoreError(Exception):
    """The store could not be prepared or started; the message holds the log tail."""


@dataclass(frozen=True)
class StoreCredentials:
    """HTTP Basic credentials of the store (the password is not shown by ``repr``)."""

    username: str
    password: str = field(repr=False)


def retention_setting(value: str | None = None) -> str:
    """The retention period: ``value``, else ``$TOOLFORGE_DEV_LOGS_RETENTION``, else
    :data:`DEFAULT_RETENTION`. A number with a unit ``h``, ``d``, ``w``, ``M`` or ``y``, at least
    one day (the store's minimum). Raises :class:`ValueError` otherwise."""
    text = value or os.environ.get(RETENTION_ENV) or DEFAULT_RETENTION
    if not _RETENTION.match(text):
        raise ValueError(f"retention {text!r}: want <number><h|d|w|M|y>, e.g. 7d")
    if text.endswith("h") and int(text[:-1]) < 24:
        raise ValueError(f"retention {text!r}: the store's minimum is 1d")
    return text


class LogStore(OwnProcess):
    """One store instance: its files in ``directory``, serving on ``https://host:port``.

    Layout of ``directory``: ``data/`` (the store), ``auth/password`` (0600),
    ``logstore-server.{crt,key}`` (issued by ``ca``), ``logstore.log`` (:meth:`start` only).
    """

    @classmethod
    def standalone(cls, directory: Path, *, retention: str = "30d") -> LogStore:
        """An instance of its own in ``directory``, on a free loopback port, with a CA of its
        own (``logstore-ca.crt``); for tests and benchmarks. The binary must be built."""
        directory.mkdir(parents=True, exist_ok=True)
        ca = CertificateAuthority.load_or_create(directory, "logstore-ca", "test-logstore-ca")
        return cls(
            directory,
            binary=go_binaries.victorialogs().path("victoria-logs"),
            ca=ca,
            ca_file=directory / "logstore-ca.crt",
            host="127.0.0.1",
            port=0,
            retention=retention,
        )

    process_name = "victoria-logs"
    error = LogStoreError

    def __init__(
        self,
        directory: Path,
        *,
        binary: Path,
        ca: CertificateAuthority | None,
        ca_file: Path,
        host: str,
        port: int = LOGSTORE_PORT,
        retention: str | None = None,
    ) -> None:
        self.directory = directory
        self.binary = binary
        #: Issues the server certificate when it is missing (``None``: it must exist).
        self.ca = ca
        #: PEM file that clients verify the store with.
        self.ca_file = ca_file
        self.host = host
        self.port = port
        self.retention = retention_setting(retention)
        self.log_path = directory / "logstore.log"
        self._proc = None

    # ----- files ------------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        """``-storageDataPath``."""
        return self.directory / "data"

    @property
    def password_file(self) -> Path:
        """The password (0600), read by the store through ``file://``."""
        return self.directory / "auth" / "password"

    @property
    def url(self) -> str:
        """``https://<host>:<port>`` (the port is known after :meth:`start` when it was 0)."""
        return f"https://{self.host}:{self.port}"

    @property
    def credentials(self) -> StoreCredentials:
        """The user and the password (after :meth:`prepare`)."""
        return StoreCredentials(LOGSTORE_USER, self.password_file.read_text().strip())

    def client_config(self) -> LogStoreConfig:
        """A :class:`toolforge_logstore.LogStoreConfig` for this store (URL, CA, credentials;
        after :meth:`prepare`)."""
        creds = self.credentials
        return LogStoreConfig(
            url=self.url, username=creds.username, password=creds.password, ca_file=self.ca_file
        )

    def prepare(self) -> None:
        """Create the server certificate and the password unless present (key and password
        0600), and the data directory."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not (self.directory / "logstore-server.crt").exists():
            if self.ca is None:
                raise LogStoreError(f"{self.directory}: no server certificate, no CA to issue one")
            self.ca.issue_pair(
                self.directory,
                "logstore-server",
                subject("toolforge-logstore"),
                server=True,
                dns_names=["localhost"],
                ip_addresses=sorted({self.host, "127.0.0.1"}),
            )
        if not self.password_file.exists():
            self.password_file.parent.mkdir(mode=0o700, exist_ok=True)
            fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(32))

    def argv(self) -> list[str]:
        """The command line (it names files in ``directory``, never the password itself)."""
        return [
            str(self.binary),
            f"-storageDataPath={self.data_dir}",
            f"-retentionPeriod={self.retention}",
            f"-httpListenAddr={self.host}:{self.port}",
            "-tls",
            f"-tlsCertFile={self.directory / 'logstore-server.crt'}",
            f"-tlsKeyFile={self.directory / 'logstore-server.key'}",
            "-tlsMinVersion=TLS12",
            f"-httpAuth.username={LOGSTORE_USER}",
            f"-httpAuth.password=file://{self.password_file}",
            "-search.maxQueryDuration=30s",
            "-loggerFormat=json",
        ]

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts ``ca_file`` only."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def is_ready(self) -> bool:
        """``GET /health`` answers 200 over TLS."""
        try:
            with httpx.Client(verify=self.ssl_context(), timeout=2) as client:
                return client.get(f"{self.url}/health").status_code == 200
        except (httpx.HTTPError, OSError, ssl.SSLError):
            return False

    def flush(self) -> None:
        """Make everything ingested so far searchable now (``/internal/force_flush``);
        otherwise the store does it within about a second. Raises :class:`LogStoreError`."""
        creds = self.credentials
        with httpx.Client(verify=self.ssl_context(), timeout=30) as client:
            reply = client.get(
                f"{self.url}/internal/force_flush", auth=(creds.username, creds.password)
            )
        if reply.status_code != 200:
            raise LogStoreError(f"force_flush answered {reply.status_code}: {reply.text}")

    # ----- own process (tests, benchmarks) ----------------------------------------------------

    def _started(self, log_offset: int) -> bool:
        if self.port == 0:
            self.port = self._logged_port(log_offset) or 0
        return bool(self.port) and self.is_ready()

    def _logged_port(self, offset: int) -> int | None:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            match = _STARTED.search(log.read().decode(errors="replace"))
        return int(match.group(1)) if match else None


def platform_store(cluster: Cluster, *, issue_certificate: bool = False) -> LogStore:
    """The platform's store: files in ``<run dir>/logstore``, on ``https://10.244.0.1:9428``.
    ``issue_certificate`` loads the cluster CA so that :meth:`LogStore.prepare` can issue the
    server certificate."""
    pki = cluster.pki_dir
    return LogStore(
        cluster.directory / "logstore",
        binary=go_binaries.victorialogs().path("victoria-logs"),
        ca=CertificateAuthority.load(pki, "cluster-ca") if issue_certificate else None,
        ca_file=pki / "cluster-ca.crt",
        host=NODE_IP,
        port=LOGSTORE_PORT,
    )
