"""The platform's SMTP server: Mailpit (``github.com/axllent/mailpit``) as a host process.

Mailpit accepts every mail over SMTP and keeps it, for a person to read in its web UI and for
tests to read through its API (https://mailpit.axllent.org/docs/api-v1/). Flags
(``mailpit --help``), as :meth:`Mailpit.argv` writes them:

- ``--smtp <smtp_host>:<smtp_port>``: the platform uses the node address ``10.244.0.1:1025``
  (:data:`SMTP_PORT`, Mailpit's default port), which pods reach over the bridge and which exists
  only on this machine;
- ``--smtp-tls-cert/--smtp-tls-key`` and ``--smtp-require-starttls``: STARTTLS is offered, with
  a certificate for the SMTP address from the given CA (the platform's cluster CA, which pods
  hold as their service-account ``ca.crt``), and a client must use it before ``MAIL FROM``;
  no SMTP AUTH (any local sender may send, as to a site's relay);
- ``--listen 127.0.0.1:8025`` (:data:`UI_PORT`) and ``--allowed-hosts localhost,127.0.0.1``:
  the web UI and API on loopback only, refusing other ``Host`` headers (DNS rebinding);
- ``--disable-version-check``: Mailpit otherwise asks api.github.com for its latest release
  whenever ``/api/v1/info`` is read (the web UI does); ``--smtp-disable-rdns``: no reverse DNS
  lookup of each SMTP client. Nothing leaves the machine;
- ``--enable-chaos``: the API's ``/api/v1/chaos`` can make SMTP answer errors on purpose
  (sender, recipient, authentication triggers with an error code and a probability), for the
  emailer's tests of 4xx/5xx answers;
- ``--database <directory>/mailpit.db`` (SQLite), ``--max 5000`` messages kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import httpx

from toolforge_admin.pki import CertificateAuthority, subject
from toolforge_dev import binaries as go_binaries
from toolforge_dev.cluster import NODE_IP, Cluster
from toolforge_dev.hostprocess import OwnProcess

__all__ = ["SMTP_PORT", "UI_PORT", "Mailpit", "MailpitError", "platform_mailpit"]

SMTP_PORT: Final = 1025
UI_PORT: Final = 8025
MAX_MESSAGES: Final = 5000


class MailpitError(Exception):
    """Mailpit could not be prepared or started; the message holds the log tail."""


class Mailpit(OwnProcess):
    """One Mailpit instance: files in ``directory``, SMTP on ``smtp_host:smtp_port``, web UI
    and API on ``http://127.0.0.1:<ui_port>``.

    Layout of ``directory``: ``mailpit.db``, ``mailpit-smtp.{crt,key}`` (issued by ``ca``),
    ``mailpit.log`` (:meth:`start` only).
    """

    process_name = "mailpit"
    error = MailpitError

    def __init__(
        self,
        directory: Path,
        *,
        ca: CertificateAuthority | None,
        ca_file: Path,
        smtp_host: str,
        smtp_port: int = SMTP_PORT,
        ui_port: int = UI_PORT,
        binary: Path | None = None,
    ) -> None:
        self.directory = directory
        self.binary = binary or go_binaries.mailpit().path("mailpit")
        #: Issues the SMTP certificate when it is missing (``None``: it must exist).
        self.ca = ca
        #: PEM file that SMTP clients verify the server with.
        self.ca_file = ca_file
        self.smtp_host = smtp_host
        self.smtp_port = smtp_port
        self.ui_port = ui_port
        self.log_path = directory / "mailpit.log"
        self._proc = None

    @property
    def url(self) -> str:
        """The web UI (the mailbox) and the API base: ``http://127.0.0.1:<ui_port>``."""
        return f"http://127.0.0.1:{self.ui_port}"

    @property
    def smtp_address(self) -> tuple[str, int]:
        """``(host, port)`` of the SMTP server."""
        return self.smtp_host, self.smtp_port

    def prepare(self) -> None:
        """Create the directory and the SMTP certificate (``smtp_host``, ``localhost``,
        ``127.0.0.1``; key 0600) unless present."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if (self.directory / "mailpit-smtp.crt").exists():
            return
        if self.ca is None:
            raise MailpitError(f"{self.directory}: no SMTP certificate, no CA to issue one")
        self.ca.issue_pair(
            self.directory,
            "mailpit-smtp",
            subject("toolforge-mailpit"),
            server=True,
            dns_names=["localhost"],
            ip_addresses=sorted({self.smtp_host, "127.0.0.1"}),
        )

    def argv(self) -> list[str]:
        """The command line (it names ``directory``)."""
        return [
            str(self.binary),
            "--database",
            str(self.directory / "mailpit.db"),
            "--smtp",
            f"{self.smtp_host}:{self.smtp_port}",
            "--smtp-tls-cert",
            str(self.directory / "mailpit-smtp.crt"),
            "--smtp-tls-key",
            str(self.directory / "mailpit-smtp.key"),
            "--smtp-require-starttls",
            "--smtp-disable-rdns",
            "--listen",
            f"127.0.0.1:{self.ui_port}",
            "--allowed-hosts",
            "localhost,127.0.0.1",
            "--disable-version-check",
            "--enable-chaos",
            "--max",
            str(MAX_MESSAGES),
            "--label",
            "toolforge-dev",
        ]

    def is_ready(self) -> bool:
        """``GET /readyz`` answers 200."""
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    # ----- own process (tests) ------------------------------------------------------------


def platform_mailpit(cluster: Cluster, *, issue_certificate: bool = False) -> Mailpit:
    """The platform's Mailpit: files in ``<run dir>/mailpit``, SMTP on ``10.244.0.1:1025``,
    the mailbox on ``http://127.0.0.1:8025``. ``issue_certificate`` loads the cluster CA so
    that :meth:`Mailpit.prepare` can issue the SMTP certificate."""
    pki = cluster.pki_dir
    return Mailpit(
        cluster.directory / "mailpit",
        ca=CertificateAuthority.load(pki, "cluster-ca") if issue_certificate else None,
        ca_file=pki / "cluster-ca.crt",
        smtp_host=NODE_IP,
    )
