"""The emailer's durable state, kept in one ConfigMap so that a restart neither re-sends old
events nor loses queued ones.

- ``seen``: pod uid -> keys of the events already taken (queued, mailed or not wanted), for the
  pods that still exist. A re-list after a restart or a ``410 Gone`` gives the same keys
  (:mod:`toolforge_emailer.events`), which are skipped. Uids of pods that are gone are
  forgotten (a pod's uid never comes back).
- ``pending``: tool -> the events waiting for that tool's next mail, with the time of the
  oldest (``since``): the tool's mail is composed ``task_compose_emails_loop_sleep`` seconds
  after it, so a batch window survives a restart.
- ``outbox``: composed mails not yet accepted by the SMTP server, with their attempts and
  back-off.
- ``initialised``: ``False`` only before the first list of pods: that list is taken as the
  baseline (its events are marked seen, not mailed), so a first start does not mail the past.

Encoded as gzip-compressed JSON (:func:`encode`), stored in the ConfigMap's ``binaryData``
(the apiserver keeps objects up to 1 MiB; the limits of
:class:`~toolforge_emailer.config.EmailConfig` keep the state far below that for thousands
of tools).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, Field

from toolforge_emailer.events import JobEvent

__all__ = ["MAX_ENCODED", "EmailerState", "OutgoingMail", "PendingTool", "decode", "encode"]

#: Largest encoded state kept with output lines: base64 makes it 4/3 larger, and the apiserver
#: refuses objects over 1 MiB (etcd's request limit is 1.5 MiB).
MAX_ENCODED = 700 * 1024


class PendingTool(BaseModel):
    """Events of one tool waiting for its next mail."""

    since: datetime
    events: list[JobEvent] = Field(default_factory=list)
    #: Events beyond ``max_pending_events_per_tool``, counted only.
    dropped: int = 0


class OutgoingMail(BaseModel):
    """A composed mail on its way to the SMTP server."""

    id: str
    tool: str
    sender: str
    to: str
    subject: str
    text: str
    html: str
    events: int
    created_at: datetime
    attempts: int = 0
    next_attempt_at: datetime
    last_error: str | None = None


class EmailerState(BaseModel):
    """See the module documentation."""

    version: int = 1
    initialised: bool = False
    seen: dict[str, list[str]] = Field(default_factory=dict)
    pending: dict[str, PendingTool] = Field(default_factory=dict)
    outbox: list[OutgoingMail] = Field(default_factory=list)

    def is_seen(self, uid: str, key: str) -> bool:
        """Whether the event ``key`` of pod ``uid`` was taken already."""
        return key in self.seen.get(uid, ())

    def mark_seen(self, uid: str, key: str) -> None:
        """Remember ``key`` of pod ``uid``."""
        keys = self.seen.setdefault(uid, [])
        if key not in keys:
            keys.append(key)

    def forget_pods(self, uids: Iterable[str]) -> int:
        """Forget the keys of pods ``uids`` (gone); returns how many were known."""
        return sum(self.seen.pop(uid, None) is not None for uid in uids)

    def keep_only_pods(self, alive: set[str]) -> int:
        """Forget every pod not in ``alive`` (after a full list); returns how many."""
        return self.forget_pods([uid for uid in self.seen if uid not in alive])

    def queue(self, event: JobEvent, now: datetime, max_per_tool: int) -> bool:
        """Add ``event`` to its tool's pending mail; ``False`` when the tool already has
        ``max_per_tool`` events pending (then it is only counted)."""
        pending = self.pending.get(event.tool)
        if pending is None:
            pending = self.pending[event.tool] = PendingTool(since=now)
        if len(pending.events) >= max_per_tool:
            pending.dropped += 1
            return False
        pending.events.append(event)
        return True

    def due_tools(self, now: datetime, interval_seconds: float) -> list[str]:
        """Tools whose oldest pending event is at least ``interval_seconds`` old, oldest
        first."""
        due = [
            (p.since, tool)
            for tool, p in self.pending.items()
            if (now - p.since).total_seconds() >= interval_seconds
        ]
        return [tool for _since, tool in sorted(due)]

    def due_mails(self, now: datetime, limit: int) -> list[OutgoingMail]:
        """At most ``limit`` outbox mails whose next attempt is due, oldest first."""
        due = sorted(
            (m for m in self.outbox if m.next_attempt_at <= now), key=lambda m: m.created_at
        )
        return due[:limit]

    def remove_mail(self, mail_id: str) -> None:
        """Drop a mail from the outbox (accepted, refused or given up)."""
        self.outbox = [m for m in self.outbox if m.id != mail_id]

    def drop_outputs(self) -> int:
        """Leave the output lines out of every pending event (when the state would not fit
        its ConfigMap); returns how many events lost them."""
        dropped = 0
        for pending in self.pending.values():
            for event in pending.events:
                if event.output:
                    event.output = None
                    event.output_note = "output left out: too many pending events"
                    dropped += 1
        return dropped

    @property
    def pending_events(self) -> int:
        """Events waiting for a mail, all tools."""
        return sum(len(p.events) for p in self.pending.values())


def encode(state: EmailerState) -> bytes:
    """The state as gzip-compressed JSON (deterministic: mtime 0)."""
    return gzip.compress(state.model_dump_json().encode(), mtime=0)


def decode(data: bytes) -> EmailerState:
    """The state from :func:`encode`'s bytes.

    Raises:
        ValueError: not gzip, not JSON or not a state (pydantic's ValidationError is one).
    """
    try:
        raw = gzip.decompress(data)
    except (OSError, EOFError) as exc:
        raise ValueError(f"the state is not gzip data: {exc}") from exc
    return EmailerState.model_validate_json(raw)
