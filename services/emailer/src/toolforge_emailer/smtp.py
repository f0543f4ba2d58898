"""Delivery over SMTP with Python's ``smtplib`` (run in a worker thread).

One connection per send loop carries its batch (:meth:`SmtpSender.connect`): ``EHLO``;
``STARTTLS`` whenever the server offers it (certificate verified against ``smtp_ca_file`` or
the system store, host name checked), then ``EHLO`` again; then each message. Every connect,
command and answer has the configuration's ``smtp_timeout_seconds``. Each message gets an
:class:`Outcome`:

- ``sent``: accepted (2xx);
- ``temporary``: a 4xx answer (RFC 5321 4.2.1: "transient negative completion"): retried later
  with back-off;
- ``rejected``: a 5xx answer ("permanent negative completion"): not retried;
- ``unreachable``: no connection, a timeout, a dropped connection or a TLS failure: the server
  did not judge the message, so it is retried like a 4xx (the rest of the batch waits too).
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Literal

__all__ = ["Outcome", "SmtpSender", "SmtpSession", "classify_code"]

Result = Literal["sent", "temporary", "rejected", "unreachable"]


@dataclass(frozen=True)
class Outcome:
    """What became of one message: ``result`` and the server's ``code`` and answer (or the
    error) in ``detail``."""

    result: Result
    code: int | None = None
    detail: str = ""


def classify_code(code: int) -> Result:
    """``temporary`` for 4xx, ``rejected`` for 5xx (and anything else that is not 2xx)."""
    if 200 <= code < 300:
        return "sent"
    return "temporary" if 400 <= code < 500 else "rejected"


def _answer(code: int, message: bytes | str) -> str:
    text = message.decode(errors="replace") if isinstance(message, bytes) else str(message)
    return f"{code} {text}".strip()


class SmtpSession:
    """One open SMTP connection (after ``EHLO`` and, when offered, ``STARTTLS``); every call
    runs in a worker thread. Close it with :meth:`close`."""

    def __init__(self, smtp: smtplib.SMTP) -> None:
        self._smtp = smtp
        self.broken = False

    async def send(self, message: EmailMessage) -> Outcome:
        """Send one message; its :class:`Outcome`. After an ``unreachable`` outcome the
        session is :attr:`broken` and sends nothing more."""
        if self.broken:
            return Outcome("unreachable", None, "connection lost")
        try:
            outcome = await asyncio.to_thread(_send_one, self._smtp, message)
        except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
            outcome = Outcome("unreachable", None, f"{type(exc).__name__}: {exc}")
        if outcome.result == "unreachable":
            self.broken = True
        return outcome

    async def close(self) -> None:
        """``QUIT`` (errors ignored: every message has its outcome already)."""
        await asyncio.to_thread(_quit, self._smtp)


def _quit(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError, ssl.SSLError):
        smtp.close()


def _send_one(smtp: smtplib.SMTP, message: EmailMessage) -> Outcome:
    try:
        refused = smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        code, answer = next(iter(exc.recipients.values()))
        return Outcome(classify_code(code), code, _answer(code, answer))
    except smtplib.SMTPServerDisconnected as exc:
        return Outcome("unreachable", None, f"disconnected: {exc}")
    except smtplib.SMTPResponseException as exc:  # sender refused, data refused
        if exc.smtp_code == -1:
            return Outcome("unreachable", None, str(exc.smtp_error))
        return Outcome(
            classify_code(exc.smtp_code), exc.smtp_code, _answer(exc.smtp_code, exc.smtp_error)
        )
    if refused:  # one recipient per mail: refused means it was refused
        code, answer = next(iter(refused.values()))
        return Outcome(classify_code(code), code, _answer(code, answer))
    return Outcome("sent", 250)


class SmtpSender:
    """Opens :class:`SmtpSession` s to an SMTP server (see the module documentation)."""

    def __init__(self, *, ca_file: Path | None, require_starttls: bool) -> None:
        self._context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self.require_starttls = require_starttls

    async def connect(self, host: str, port: int, timeout: float) -> SmtpSession | Outcome:
        """A session, or the ``unreachable`` :class:`Outcome` that every message would get
        (no connection, a 4xx/5xx greeting, a TLS failure, no STARTTLS when required)."""
        try:
            smtp = await asyncio.to_thread(self._open, host, port, timeout)
        except smtplib.SMTPConnectError as exc:
            return Outcome(
                "unreachable", exc.smtp_code, f"connect: {_answer(exc.smtp_code, exc.smtp_error)}"
            )
        except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
            return Outcome("unreachable", None, f"{type(exc).__name__}: {exc}")
        return SmtpSession(smtp)

    def _open(self, host: str, port: int, timeout: float) -> smtplib.SMTP:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
        try:
            smtp.ehlo()
            if smtp.has_extn("starttls"):
                smtp.starttls(context=self._context)
                smtp.ehlo()
            elif self.require_starttls:
                raise smtplib.SMTPNotSupportedError("the server offers no STARTTLS")
        except BaseException:
            smtp.close()
            raise
        return smtp
