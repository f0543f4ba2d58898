"""The emailer daemon: configuration, leader election, the pod watch, batching and sending.

:meth:`Emailer.run` runs for the life of the process:

- the **configuration loop** re-reads the ConfigMap every ``task_read_configmap_sleep``
  seconds; a changed, valid configuration is applied at once, an invalid one is logged with
  every problem and the last good one stays (:mod:`toolforge_emailer.config`);
- the **leader election** (:mod:`toolforge_emailer.leader`): only the Lease holder does the
  rest; it loads the state ConfigMap first (:mod:`toolforge_emailer.state`):
- the **pod watch**: a list of the pods of jobs that asked for mails, then a watch from its
  resourceVersion, re-opened every ``task_watch_pods_timeout`` seconds from the last
  resourceVersion seen (bookmarks keep it fresh); ``410 Gone`` lists again; an unreachable
  apiserver is retried with back-off (1 s doubling to 30 s). Each pod's new events
  (:mod:`toolforge_emailer.events`) are taken once: the ones its option asks for are queued for
  its tool, with the last lines of output for an ended run (:mod:`toolforge_emailer.logsource`);
- the **compose loop** (every second) makes one mail of each tool whose oldest pending event is
  ``task_compose_emails_loop_sleep`` seconds old (:mod:`toolforge_emailer.mails`);
- the **send loop** (every ``task_send_emails_loop_sleep`` seconds) sends at most
  ``task_send_emails_max`` due mails over one SMTP connection (:mod:`toolforge_emailer.smtp`),
  or logs them when ``send_emails_for_real`` is off;
- the **state writer** stores the state at most ``state_save_delay_seconds`` after a change,
  and at once after each mail the server accepted or refused.

Restarts: new events, pending batches and the outbox are in the state ConfigMap within
``state_save_delay_seconds``; a restarted (or newly elected) emailer lists the pods again and
skips every event it has taken before. The one window for a duplicate mail is a crash between
the SMTP server's acceptance and the state write that follows it (milliseconds); the mail's
``Message-ID`` is the same on the second copy.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from toolforge_emailer.config import EmailConfig, config_errors, parse_config
from toolforge_emailer.events import WANTED, JobEvent, pod_events, pod_ref
from toolforge_emailer.leader import LeaseElector
from toolforge_emailer.logsource import LogSource, fill_output
from toolforge_emailer.mails import compose, to_message
from toolforge_emailer.metrics import EmailerMetrics
from toolforge_emailer.settings import EmailerSettings
from toolforge_emailer.smtp import Outcome, SmtpSender
from toolforge_emailer.state import MAX_ENCODED, EmailerState, OutgoingMail, decode, encode
from toolforge_emailer.storage import EmailerStorage
from toolforge_kit import Obj
from toolforge_kit.errors import APIError, ClusterError, ConflictError, GoneError

__all__ = ["Emailer", "LeadershipLostError"]

_log = logging.getLogger(__name__)
_WATCH_BACKOFF_MAX = 30.0


class LeadershipLostError(Exception):
    """Another emailer wrote the state: this one must stop working."""


def _now() -> datetime:
    return datetime.now(UTC)


class Emailer:
    """The daemon (see the module documentation)."""

    def __init__(
        self,
        storage: EmailerStorage,
        logs: LogSource,
        smtp: SmtpSender,
        metrics: EmailerMetrics,
        settings: EmailerSettings,
    ) -> None:
        self.storage = storage
        self.logs = logs
        self.smtp = smtp
        self.metrics = metrics
        self.settings = settings
        self.config = EmailConfig()
        self._config_rv: str | None = None
        self.identity = settings.identity or f"{socket.gethostname()}-{os.getpid()}"
        self.elector = LeaseElector(
            storage,
            self.identity,
            lease_duration=settings.lease_duration_seconds,
            renew_deadline=settings.lease_renew_deadline_seconds,
            retry=settings.lease_retry_seconds,
            on_change=lambda leading: self.metrics.leader.set(1 if leading else 0),
        )
        self.state: EmailerState | None = None
        self._state_rv = ""
        self._dirty = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # ----- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start :meth:`run` in a task."""
        self._task = asyncio.create_task(self.run(), name="emailer")

    async def stop(self) -> None:
        """Stop working: cancel the loops (the state is written on the way out) and release
        the Lease."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.elector.release()

    def health(self) -> dict[str, Any]:
        """``ok`` (the daemon task runs), ``leader``, and the queue lengths when leading."""
        ok = self._task is not None and not self._task.done()
        state = self.state
        return {
            "ok": ok,
            "leader": self.elector.leading,
            "queue_events": state.pending_events if state and self.elector.leading else None,
            "queue_mails": len(state.outbox) if state and self.elector.leading else None,
        }

    async def run(self) -> None:
        """The configuration loop and the election, forever (see the module docs)."""
        await self.reload_config()
        async with asyncio.TaskGroup() as group:
            group.create_task(self._config_loop())
            group.create_task(self.elector.run(self._work))

    # ----- configuration --------------------------------------------------------------------

    async def _config_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.task_read_configmap_sleep)
            await self.reload_config()

    async def reload_config(self) -> None:
        """Read the ConfigMap once and apply it when it changed and is valid."""
        try:
            found = await self.storage.read_config()
        except APIError as exc:
            _log.warning("configuration ConfigMap unreadable, keeping the last: %s", exc.message)
            return
        if found is None:
            if self._config_rv != "":
                _log.warning(
                    "configuration ConfigMap %s/%s missing; keeping the configuration in force",
                    self.settings.namespace,
                    self.settings.config_map,
                )
                self.metrics.config_reloads.labels("missing").inc()
                self._config_rv = ""
            return
        data, rv = found
        if rv == self._config_rv:
            return
        self._config_rv = rv
        try:
            config = parse_config(data)
        except ValidationError as exc:
            self.metrics.config_reloads.labels("invalid").inc()
            _log.error(
                "configuration ConfigMap version %s refused, keeping the last good one: %s",
                rv,
                "; ".join(config_errors(exc)),
            )
            return
        changed = {k: v for k, v in config.model_dump().items() if getattr(self.config, k) != v}
        self.config = config
        self.metrics.config_reloads.labels("applied").inc()
        self.metrics.config_version.set(int(rv) if rv.isdigit() else 0)
        _log.info("configuration version %s applied; changed: %s", rv, changed or "nothing")

    # ----- leader work ----------------------------------------------------------------------

    async def _work(self) -> None:
        await self._load_state()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._watch_loop())
                group.create_task(self._compose_loop())
                group.create_task(self._send_loop())
                group.create_task(self._writer_loop())
        except BaseExceptionGroup as group_error:
            lost = group_error.subgroup(LeadershipLostError)
            if lost is not None:
                raise lost.exceptions[0] from None
            raise
        finally:
            # On a graceful stop, the last changes are written; after a lost Lease they are not
            # (the successor may have loaded the state already; it lists the pods again).
            if self._stopping and self._dirty.is_set():
                try:
                    await self._write_state()
                except (APIError, LeadershipLostError) as exc:
                    _log.warning("state not written at the end: %s", exc)

    async def _load_state(self) -> None:
        stored = await self.storage.read_state()
        state = EmailerState()
        if stored.data:
            try:
                state = decode(stored.data)
            except ValueError as exc:
                _log.error("state ConfigMap unreadable, starting afresh: %s", exc)
        self.state, self._state_rv = state, stored.resource_version
        self._dirty.clear()
        self._gauges()
        _log.info(
            "state loaded: %d pods known, %d events pending, %d mails in the outbox",
            len(state.seen),
            state.pending_events,
            len(state.outbox),
        )

    def _gauges(self) -> None:
        if self.state is not None:
            self.metrics.queue_events.set(self.state.pending_events)
            self.metrics.queue_mails.set(len(self.state.outbox))

    def _changed(self) -> None:
        self._gauges()
        self._dirty.set()

    async def _writer_loop(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self.settings.state_save_delay_seconds)
            try:
                await self._write_state()
            except APIError as exc:
                _log.warning("state not written, retrying: %s", exc.message)
                await asyncio.sleep(self.settings.retry_after_seconds)

    async def _write_state(self) -> None:
        """Write the state now (compare-and-swap).

        Raises:
            LeadershipLostError: someone else wrote it. APIError: the write failed.
        """
        assert self.state is not None  # noqa: S101 - only called while working
        async with self._write_lock:
            self._dirty.clear()
            data = encode(self.state)
            if len(data) > MAX_ENCODED:
                dropped = self.state.drop_outputs()
                data = encode(self.state)
                _log.warning(
                    "state too large: output lines of %d pending events left out (%d bytes now)",
                    dropped,
                    len(data),
                )
            try:
                self._state_rv = await self.storage.write_state(data, self._state_rv)
            except ConflictError as exc:
                self.metrics.state_writes.labels("conflict").inc()
                raise LeadershipLostError("the state was written by someone else") from exc
            except APIError:
                self.metrics.state_writes.labels("error").inc()
                self._dirty.set()
                raise
            self.metrics.state_writes.labels("ok").inc()

    # ----- the pod watch --------------------------------------------------------------------

    async def _watch_loop(self) -> None:
        rv = ""
        backoff = 1.0
        while True:
            try:
                if not rv:
                    rv = await self._list()
                rv = await self._watch(rv)
                backoff = 1.0
            except GoneError:
                self.metrics.watch_restarts.labels("expired").inc()
                _log.info("pod watch expired (410 Gone); listing again")
                rv = ""
            except APIError as exc:
                self.metrics.watch_restarts.labels("error").inc()
                _log.warning("pod watch failed (%s); again in %.0f s", exc.message, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _WATCH_BACKOFF_MAX)

    async def _list(self) -> str:
        assert self.state is not None  # noqa: S101
        pods, rv = await self.storage.list_pods()
        baseline = not self.state.initialised
        for pod in pods:
            await self.on_pod(pod, baseline=baseline)
        alive = {str(p["metadata"].get("uid")) for p in pods}
        self.state.keep_only_pods(alive)
        if baseline:
            _log.info("first start: %d pods taken as the baseline (not mailed)", len(pods))
            self.state.initialised = True
        self._changed()
        return rv

    async def _watch(self, rv: str) -> str:
        """One watch request; returns the resourceVersion to go on from.

        Raises:
            GoneError: 410, at the start or as an ERROR event.
        """
        timeout = self.config.task_watch_pods_timeout
        async with self.storage.watch_pods(rv, timeout) as events:
            async for event in events:
                kind, obj = event.get("type"), event["object"]
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise GoneError(str(obj.get("message") or "410 Gone"))
                    raise ClusterError(f"pod watch error: {obj.get('message')}")
                new_rv = (obj.get("metadata") or {}).get("resourceVersion")
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    await self.on_pod(obj, deleted=kind == "DELETED")
                if new_rv:
                    rv = str(new_rv)
        return rv

    async def on_pod(self, pod: Obj, *, deleted: bool = False, baseline: bool = False) -> None:
        """Take the new events of one pod (queue the wanted ones); a deleted pod's keys are
        then forgotten."""
        assert self.state is not None  # noqa: S101
        ref = pod_ref(pod)
        if ref is None:
            return
        self.metrics.pod_updates.inc()
        now = _now()
        changed = False
        for event in pod_events(pod, now):
            if self.state.is_seen(ref.uid, event.key):
                continue
            changed = True
            if baseline:
                taken = "baseline"
            elif event.kind in WANTED[ref.option]:
                taken = await self._queue(event, ref.namespace, filelog=ref.filelog)
            else:
                taken = "no"
            self.state.mark_seen(ref.uid, event.key)
            self.metrics.events.labels(event.kind, taken).inc()
        if deleted:
            changed = self.state.forget_pods([ref.uid]) > 0 or changed
        if changed:
            self._changed()

    async def _queue(self, event: JobEvent, namespace: str, *, filelog: bool) -> str:
        assert self.state is not None  # noqa: S101
        config = self.config
        await fill_output(self.logs, event, namespace, config.output_lines, filelog=filelog)
        if self.state.queue(event, _now(), config.max_pending_events_per_tool):
            _log.info("event queued for tool %s: job %s %s", event.tool, event.job, event.kind)
            return "yes"
        return "dropped"

    # ----- composing and sending -------------------------------------------------------------

    async def _compose_loop(self) -> None:
        while True:
            self.compose_due()
            await asyncio.sleep(min(1.0, self.config.task_compose_emails_loop_sleep))

    def compose_due(self) -> int:
        """Compose the mails of every tool whose batch window has passed; how many."""
        assert self.state is not None  # noqa: S101
        now = _now()
        tools = self.state.due_tools(now, self.config.task_compose_emails_loop_sleep)
        for tool in tools:
            pending = self.state.pending.pop(tool)
            mail = compose(tool, pending, self.config, now)
            self.state.outbox.append(mail)
            self.metrics.mails_composed.inc()
            _log.info("mail %s composed for %s: %d events", mail.id, mail.to, mail.events)
        if tools:
            self._changed()
        return len(tools)

    async def _send_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.task_send_emails_loop_sleep)
            await self.send_due()

    async def send_due(self) -> None:
        """One send loop (see the module documentation)."""
        assert self.state is not None  # noqa: S101
        config, now = self.config, _now()
        for mail in list(self.state.outbox):
            if (now - mail.created_at).total_seconds() > config.smtp_give_up_seconds:
                self._give_up(mail, "expired", mail.last_error or "never accepted")
        due = self.state.due_mails(now, config.task_send_emails_max)
        if not due:
            return
        if not config.send_emails_for_real:
            for mail in due:
                _log.info(
                    "send_emails_for_real is off; not sending mail %s\nTo: %s\nSubject: %s\n\n%s",
                    mail.id, mail.to, mail.subject, mail.text,
                )  # fmt: skip
                self.state.remove_mail(mail.id)
                self.metrics.mails_sent.labels("logged").inc()
            self._changed()
            await self._write_state()
            return
        session = await self.smtp.connect(
            config.smtp_server_fqdn, config.smtp_server_port, config.smtp_timeout_seconds
        )
        if isinstance(session, Outcome):
            for mail in due:
                self.metrics.smtp_attempts.labels("unreachable").inc()
                self._retry_later(mail, session, now)
            self._changed()
            return
        try:
            for mail in due:
                outcome = await session.send(to_message(mail))
                self.metrics.smtp_attempts.labels(
                    "ok" if outcome.result == "sent" else outcome.result
                ).inc()
                if outcome.result == "sent":
                    self.state.remove_mail(mail.id)
                    self.metrics.mails_sent.labels("smtp").inc()
                    _log.info("mail %s sent to %s", mail.id, mail.to)
                elif outcome.result == "rejected":
                    self._give_up(mail, "rejected", outcome.detail)
                else:
                    self._retry_later(mail, outcome, now)
                self._changed()
                if outcome.result in ("sent", "rejected"):
                    await self._write_state()
        finally:
            await session.close()

    def _retry_later(self, mail: OutgoingMail, outcome: Outcome, now: datetime) -> None:
        config = self.config
        mail.attempts += 1
        delay = min(
            config.smtp_retry_min_seconds * 2 ** (mail.attempts - 1),
            config.smtp_retry_max_seconds,
        )
        mail.next_attempt_at = now + timedelta(seconds=delay)
        mail.last_error = outcome.detail
        _log.warning(
            "mail %s to %s not sent (attempt %d: %s); next attempt in %.0f s",
            mail.id, mail.to, mail.attempts, outcome.detail, delay,
        )  # fmt: skip

    def _give_up(self, mail: OutgoingMail, reason: str, detail: str) -> None:
        assert self.state is not None  # noqa: S101
        self.state.remove_mail(mail.id)
        self.metrics.mails_failed.labels(reason).inc()
        _log.error(
            "mail %s to %s given up (%s): %s; subject %r, %d events",
            mail.id, mail.to, reason, detail, mail.subject, mail.events,
        )  # fmt: skip
        self._changed()
