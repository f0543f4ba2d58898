"""Delivery against a real SMTP server: a Mailpit process of this test module (STARTTLS
required, a certificate from a test CA), its chaos API for 4xx and 5xx answers. No cluster."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from toolforge_admin.pki import CertificateAuthority
from toolforge_dev import binaries
from toolforge_dev.mailpit import Mailpit
from toolforge_emailer.smtp import Outcome, SmtpSender, SmtpSession

pytestmark = pytest.mark.skipif(
    not binaries.mailpit().is_built(), reason="Mailpit is not built (make binaries)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def mailpit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mailpit]:
    directory = tmp_path_factory.mktemp("mailpit")
    ca = CertificateAuthority.load_or_create(directory, "test-ca", "emailer-test-ca")
    server = Mailpit(
        directory,
        ca=ca,
        ca_file=directory / "test-ca.crt",
        smtp_host="127.0.0.1",
        smtp_port=free_port(),
        ui_port=free_port(),
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def no_chaos(mailpit: Mailpit) -> Iterator[None]:
    yield
    httpx.put(f"{mailpit.url}/api/v1/chaos", json={"Recipient": {"Probability": 0}}, timeout=5)


def chaos(mailpit: Mailpit, code: int, probability: int = 100) -> None:
    """Make Mailpit answer RCPT TO with ``code`` (``probability`` percent of the time)."""
    reply = httpx.put(
        f"{mailpit.url}/api/v1/chaos",
        json={"Recipient": {"ErrorCode": code, "Probability": probability}},
        timeout=5,
    )
    assert reply.status_code == 200, reply.text


def message(subject: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = (
        "noreply@toolforge.org",
        "tools.t@toolforge.org",
        subject,
    )
    mail.set_content("plain")
    return mail


async def session(mailpit: Mailpit, ca_file: Path | None = None) -> SmtpSession:
    sender = SmtpSender(ca_file=ca_file or mailpit.ca_file, require_starttls=True)
    opened = await sender.connect(*mailpit.smtp_address, timeout=5)
    assert isinstance(opened, SmtpSession), opened
    return opened


async def test_starttls_then_delivery(mailpit: Mailpit) -> None:
    subject = f"hello {datetime.now(UTC).timestamp()}"
    smtp = await session(mailpit)
    try:
        assert await smtp.send(message(subject)) == Outcome("sent", 250)
    finally:
        await smtp.close()
    async with httpx.AsyncClient() as client:
        reply = await client.get(
            f"{mailpit.url}/api/v1/search", params={"query": f'subject:"{subject}"'}
        )
    assert reply.json()["messages_count"] == 1


async def test_4xx_is_temporary_and_5xx_is_rejected_then_the_session_goes_on(
    mailpit: Mailpit,
) -> None:
    smtp = await session(mailpit)
    try:
        chaos(mailpit, 451)
        temporary = await smtp.send(message("a"))
        chaos(mailpit, 550)
        rejected = await smtp.send(message("b"))
        chaos(mailpit, 451, probability=0)
        sent = await smtp.send(message("c"))
    finally:
        await smtp.close()
    assert (temporary.result, temporary.code) == ("temporary", 451)
    assert "Chaos recipient error" in temporary.detail
    assert (rejected.result, rejected.code) == ("rejected", 550)
    assert sent.result == "sent"


async def test_a_certificate_from_another_ca_is_refused(mailpit: Mailpit, tmp_path: Path) -> None:
    CertificateAuthority.load_or_create(tmp_path, "other", "someone-else")
    sender = SmtpSender(ca_file=tmp_path / "other.crt", require_starttls=True)
    outcome = await sender.connect(*mailpit.smtp_address, timeout=5)
    assert isinstance(outcome, Outcome)
    assert outcome.result == "unreachable"
    assert "CERTIFICATE_VERIFY_FAILED" in outcome.detail


async def test_no_server_is_unreachable() -> None:
    sender = SmtpSender(ca_file=None, require_starttls=False)
    outcome = await sender.connect("127.0.0.1", free_port(), timeout=5)
    assert isinstance(outcome, Outcome)
    assert outcome.result == "unreachable"
    assert "ConnectionRefusedError" in outcome.detail
