"""The mail of one tool: which jobs, what happened, when, and the last lines of output, in
plain text with a short HTML alternative (issue 19).

:func:`compose` builds an :class:`~toolforge_emailer.state.OutgoingMail` from a tool's pending
events; :func:`to_message` makes the RFC 5322 message (``email.message.EmailMessage``:
``multipart/alternative``, UTF-8, a ``Message-ID`` that stays the same across retries).
Everything a tool controls (job and pod names, exit messages, output) is escaped in the HTML
and never reaches a header.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

from toolforge_emailer.config import EmailConfig
from toolforge_emailer.events import JobEvent
from toolforge_emailer.state import OutgoingMail, PendingTool

__all__ = ["compose", "describe", "to_message"]

_SIGNAL_NAMES = {137: "SIGKILL", 143: "SIGTERM", 139: "SIGSEGV", 134: "SIGABRT"}


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def describe(event: JobEvent) -> str:
    """One line for ``event``: ``failed: exit code 3``, ``finished (exit code 0)``..."""
    if event.kind in ("finished", "failed"):
        text = "finished" if event.kind == "finished" else "failed"
        details = [f"exit code {event.exit_code}"]
        if event.exit_code in _SIGNAL_NAMES:
            details[0] += f" ({_SIGNAL_NAMES[event.exit_code]})"
        if event.reason == "OOMKilled":
            details.append("out of memory (OOMKilled)")
        elif event.reason and event.reason not in ("Completed", "Error"):
            details.append(event.reason)
        if event.deleting:
            details.append("while the pod was being deleted")
        return f"{text}: {', '.join(details)}"
    if event.kind == "started":
        return "started"
    if event.kind == "restarted":
        return "restarted"
    if event.kind == "start_failed":
        return f"could not start: {event.reason}"
    return f"pod failed: {event.reason or 'Failed'}"


def _subject(tool: str, events: Sequence[JobEvent], total: int) -> str:
    jobs = sorted({e.job for e in events})
    failed = sum(e.kind in ("failed", "pod_failed", "start_failed") for e in events)
    if total == 1:
        return f'[Toolforge] tool "{tool}": job {jobs[0]} {describe(events[0])}'
    what = f"{total} events of {len(jobs)} job{'s' if len(jobs) > 1 else ''}"
    if failed:
        what += f", {failed} failure{'s' if failed > 1 else ''}"
    return f'[Toolforge] tool "{tool}": {what}'


def _mail_id(tool: str, events: Sequence[JobEvent]) -> str:
    digest = hashlib.sha256(tool.encode())
    for event in events:
        digest.update(b"\0" + event.pod_uid.encode() + b"\0" + event.key.encode())
    return digest.hexdigest()[:32]


def _text(tool: str, events: Sequence[JobEvent], extra: int, config: EmailConfig) -> str:
    lines = [
        f'Hello, maintainers of the Toolforge tool "{tool}"!',
        "",
        "This is what happened to your tool's jobs (they ask for these mails with their",
        '"emails" option):',
    ]
    for job in sorted({e.job for e in events}):
        of_job = [e for e in events if e.job == job]
        lines += ["", f"Job {job} ({of_job[0].job_type}):"]
        for event in of_job:
            lines.append(f"  {_when(event.at)}  {describe(event)}  (pod {event.pod})")
            if event.message:
                lines.append(f"    message: {event.message}")
            if event.output:
                lines.append(f"    last {len(event.output)} lines of output:")
                lines += [f"    | {line}" for line in event.output]
            elif event.output_note:
                lines.append(f"    ({event.output_note})")
    if extra:
        lines += ["", f"... and {extra} more events not listed here."]
    lines += [
        "",
        "--",
        "Toolforge jobs emailer. To change which mails a job sends, run it with",
        "`toolforge jobs run ... --emails none|onfailure|onfinish|all`.",
        f"This mail went to {config.recipient(tool)}.",
    ]
    return "\n".join(lines) + "\n"


def _html(tool: str, events: Sequence[JobEvent], extra: int) -> str:
    e = html.escape
    items = []
    for event in events:
        item = f"<li><b>{e(event.job)}</b> {e(describe(event))} at {e(_when(event.at))}"
        if event.output:
            item += "<pre>" + e("\n".join(event.output)) + "</pre>"
        items.append(item + "</li>")
    more = f"<p>... and {extra} more events.</p>" if extra else ""
    return (
        f"<p>Jobs of the Toolforge tool <b>{e(tool)}</b>:</p><ul>{''.join(items)}</ul>{more}"
        "<p>The plain-text part has the details.</p>"
    )


def compose(tool: str, pending: PendingTool, config: EmailConfig, now: datetime) -> OutgoingMail:
    """The mail about ``pending``'s events (at most ``max_events_per_mail`` listed, the rest
    and the dropped ones counted), addressed as ``config`` says."""
    listed = pending.events[: config.max_events_per_mail]
    extra = len(pending.events) - len(listed) + pending.dropped
    return OutgoingMail(
        id=_mail_id(tool, pending.events),
        tool=tool,
        sender=config.email_from_addr,
        to=config.recipient(tool),
        subject=_subject(tool, pending.events, len(pending.events) + pending.dropped),
        text=_text(tool, listed, extra, config),
        html=_html(tool, listed, extra),
        events=len(pending.events) + pending.dropped,
        created_at=now,
        next_attempt_at=now,
    )


def to_message(mail: OutgoingMail) -> EmailMessage:
    """The RFC 5322 message of ``mail``.

    Raises:
        ValueError: a header value with a line break (cannot come from :func:`compose`).
    """
    message = EmailMessage()
    message["From"] = mail.sender
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(mail.created_at.astimezone(UTC))
    domain = mail.sender.rpartition("@")[2]
    message["Message-ID"] = f"<jobs-emailer.{mail.id}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies
    message.set_content(mail.text)
    message.add_alternative(mail.html, subtype="html")
    return message
