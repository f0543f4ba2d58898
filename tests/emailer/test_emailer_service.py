"""The daemon's rules in-process, without a cluster: pods given to ``Emailer.on_pod`` as the
watch would, the batch window, and the send loop against a real Mailpit process (STARTTLS,
chaos 4xx/5xx). Two test doubles stand in for the cluster: :class:`StateStoreDouble` (the
state ConfigMap's compare-and-swap) and :class:`LogSourceDouble` (the pod log API); the
cluster tests (test_emailer_cluster.py) run the same code against the real ones."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import pytest
from emailer.pods import job_pod, running, terminated
from emailer.test_emailer_smtp import chaos, mailpit  # noqa: F401 - the module's Mailpit fixture

from toolforge_dev import binaries
from toolforge_dev.mailpit import Mailpit
from toolforge_emailer.config import EmailConfig
from toolforge_emailer.events import JobEvent
from toolforge_emailer.metrics import EmailerMetrics
from toolforge_emailer.service import Emailer, LeadershipLostError
from toolforge_emailer.settings import EmailerSettings
from toolforge_emailer.smtp import SmtpSender
from toolforge_emailer.state import EmailerState, decode
from toolforge_emailer.storage import EmailerStorage
from toolforge_kit.errors import ConflictError, GoneError

pytestmark = pytest.mark.skipif(
    not binaries.mailpit().is_built(), reason="Mailpit is not built (make binaries)"
)


class StateStoreDouble:
    """TEST DOUBLE of :class:`EmailerStorage`'s state writes: a compare-and-swap on a counter;
    ``steal()`` makes the next write conflict as if another emailer had written."""

    def __init__(self) -> None:
        self.rv = 1
        self.writes: list[bytes] = []

    async def write_state(self, data: bytes, resource_version: str) -> str:
        if resource_version != str(self.rv):
            raise ConflictError("the object has been modified")
        self.rv += 1
        self.writes.append(data)
        return str(self.rv)

    def steal(self) -> None:
        self.rv += 1


class LogSourceDouble:
    """TEST DOUBLE of the pod log API: fixed lines per pod."""

    async def last_lines(self, event: JobEvent, namespace: str, lines: int) -> list[str] | None:
        return [f"output of {event.pod}"]


@pytest.fixture
async def emailer(mailpit: Mailpit) -> Emailer:  # noqa: F811
    store = StateStoreDouble()
    daemon = Emailer(
        cast(EmailerStorage, store),
        LogSourceDouble(),
        SmtpSender(ca_file=mailpit.ca_file, require_starttls=True),
        EmailerMetrics(),
        EmailerSettings(),
    )
    host, port = mailpit.smtp_address
    daemon.config = EmailConfig(
        smtp_server_fqdn=host,
        smtp_server_port=port,
        task_compose_emails_loop_sleep=60,
        smtp_timeout_seconds=5,
        smtp_retry_min_seconds=1,
    )
    daemon.state = EmailerState(initialised=True)
    daemon._state_rv = "1"
    return daemon


@pytest.fixture(autouse=True)
def _calm(mailpit: Mailpit) -> Iterator[None]:  # noqa: F811
    yield
    chaos(mailpit, 451, probability=0)


def sample(daemon: Emailer, name: str, **labels: str) -> float:
    value = daemon.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


def compose_now(daemon: Emailer) -> int:
    """Compose as if the window had passed (every pending batch is older than it)."""
    assert daemon.state is not None
    for pending in daemon.state.pending.values():
        pending.since -= timedelta(seconds=3600)
    return daemon.compose_due()


async def inbox(mailpit: Mailpit, to: str) -> list[dict[str, Any]]:  # noqa: F811
    async with httpx.AsyncClient(timeout=5) as client:
        found = (
            await client.get(f"{mailpit.url}/api/v1/search", params={"query": f'to:"{to}"'})
        ).json()
        return [
            (await client.get(f"{mailpit.url}/api/v1/message/{m['ID']}")).json()
            for m in found["messages"]
        ]


async def test_each_event_is_queued_once_and_only_what_the_option_asks(emailer: Emailer) -> None:
    pod = job_pod(tool="svc1", uid="u1", statuses=[terminated(3)])
    for _ in range(3):  # ADDED, MODIFIED, a re-list: the same events
        await emailer.on_pod(pod)
    assert emailer.state is not None
    (event,) = emailer.state.pending["svc1"].events
    assert (event.kind, event.exit_code, event.output) == ("failed", 3, ["output of boom-x7k2p"])
    assert sample(emailer, "toolforge_emailer_events_total", kind="started", queued="no") == 1
    await emailer.on_pod(job_pod(tool="svc1", uid="u2", job="ok", statuses=[terminated(0)]))
    assert len(emailer.state.pending["svc1"].events) == 1
    # a deleted pod's keys are forgotten; its uid never comes back
    await emailer.on_pod(pod, deleted=True)
    assert "u1" not in emailer.state.seen


async def test_the_first_list_is_a_baseline(emailer: Emailer) -> None:
    await emailer.on_pod(job_pod(tool="svc2", statuses=[terminated(3)]), baseline=True)
    assert emailer.state is not None
    assert emailer.state.pending == {}
    assert sample(emailer, "toolforge_emailer_events_total", kind="failed", queued="baseline") == 1


async def test_the_window_batches_a_tool_and_the_mail_goes_out(
    emailer: Emailer,
    mailpit: Mailpit,  # noqa: F811
) -> None:
    for i in range(3):
        await emailer.on_pod(
            job_pod(tool="svc3", job=f"j{i}", uid=f"u3-{i}", statuses=[terminated(i + 1)])
        )
    assert emailer.compose_due() == 0  # the window (60 s) has not passed
    assert compose_now(emailer) == 1
    await emailer.send_due()
    (mail,) = await inbox(mailpit, "tools.svc3@toolforge.org")
    assert mail["Subject"] == '[Toolforge] tool "svc3": 3 events of 3 jobs, 3 failures'
    assert emailer.state is not None
    assert emailer.state.outbox == []
    assert sample(emailer, "toolforge_emailer_mails_sent_total", how="smtp") == 1


async def test_4xx_backs_off_and_5xx_is_given_up_and_logged(
    emailer: Emailer,
    mailpit: Mailpit,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    await emailer.on_pod(job_pod(tool="svc4", statuses=[terminated(1)]))
    compose_now(emailer)
    assert emailer.state is not None
    chaos(mailpit, 451)
    await emailer.send_due()
    (mail,) = emailer.state.outbox
    assert (mail.attempts, mail.last_error) == (1, "451 Chaos recipient error")
    assert mail.next_attempt_at > datetime.now(UTC)
    await emailer.send_due()  # not due yet: no second attempt
    assert sample(emailer, "toolforge_emailer_smtp_attempts_total", result="temporary") == 1
    chaos(mailpit, 550)
    mail.next_attempt_at = datetime.now(UTC)
    with caplog.at_level(logging.ERROR, logger="toolforge_emailer.service"):
        await emailer.send_due()
    assert emailer.state.outbox == []
    assert sample(emailer, "toolforge_emailer_mails_failed_total", reason="rejected") == 1
    assert "to tools.svc4@toolforge.org given up (rejected): 550 Chaos recipient error" in (
        caplog.text
    )
    assert await inbox(mailpit, "tools.svc4@toolforge.org") == []


async def test_an_unreachable_server_keeps_the_mail_and_an_old_one_expires(
    emailer: Emailer, caplog: pytest.LogCaptureFixture
) -> None:
    emailer.config = emailer.config.model_copy(update={"smtp_server_port": 1})
    await emailer.on_pod(job_pod(tool="svc5", statuses=[terminated(1)]))
    compose_now(emailer)
    await emailer.send_due()
    assert emailer.state is not None
    (mail,) = emailer.state.outbox
    assert "ConnectionRefusedError" in (mail.last_error or "")
    mail.created_at -= timedelta(days=3)
    with caplog.at_level(logging.ERROR, logger="toolforge_emailer.service"):
        await emailer.send_due()
    assert emailer.state.outbox == []
    assert sample(emailer, "toolforge_emailer_mails_failed_total", reason="expired") == 1
    assert "given up (expired)" in caplog.text


async def test_not_for_real_logs_the_mail(
    emailer: Emailer,
    mailpit: Mailpit,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    emailer.config = emailer.config.model_copy(update={"send_emails_for_real": False})
    await emailer.on_pod(job_pod(tool="svc6", statuses=[terminated(7)]))
    compose_now(emailer)
    with caplog.at_level(logging.INFO, logger="toolforge_emailer.service"):
        await emailer.send_due()
    assert "not sending mail" in caplog.text
    assert "failed: exit code 7" in caplog.text
    assert await inbox(mailpit, "tools.svc6@toolforge.org") == []
    assert sample(emailer, "toolforge_emailer_mails_sent_total", how="logged") == 1


async def test_a_state_written_by_someone_else_stops_the_work(emailer: Emailer) -> None:
    storage = cast(StateStoreDouble, emailer.storage)
    await emailer._write_state()
    storage.steal()
    with pytest.raises(LeadershipLostError):
        await emailer._write_state()


async def test_a_restart_reloads_the_state_and_takes_nothing_twice(emailer: Emailer) -> None:
    pods = [
        job_pod(tool="svc7", uid="u7", statuses=[terminated(3)]),
        job_pod(
            tool="svc7",
            uid="u8",
            job="web",
            component="deployments",
            emails="all",
            statuses=[
                running(
                    cid="containerd://w2",
                    restarts=1,
                    last=terminated(1, cid="containerd://w1")["state"]["terminated"],
                )
            ],
        ),
    ]
    for pod in pods:
        await emailer.on_pod(pod)
    await emailer._write_state()
    storage = cast(StateStoreDouble, emailer.storage)

    restarted = Emailer(
        emailer.storage, LogSourceDouble(), emailer.smtp, EmailerMetrics(), EmailerSettings()
    )
    restarted.state, restarted._state_rv = decode(storage.writes[-1]), str(storage.rv)
    for pod in pods:
        await restarted.on_pod(pod)
    assert restarted.state.pending == emailer.state.pending  # type: ignore[union-attr]
    kinds = [e.kind for e in restarted.state.pending["svc7"].events]
    assert sorted(kinds) == ["failed", "failed", "restarted", "started"]


class WatchDouble(StateStoreDouble):
    """TEST DOUBLE of the pod list and watch: the list always shows one failed pod; the first
    watch is refused with 410 (a too-old resourceVersion at the start), the second sends an
    ERROR event with code 410 (expiry during the watch), later ones stay open and silent."""

    def __init__(self, pod: dict[str, Any]) -> None:
        super().__init__()
        self.pod = pod
        self.lists = 0
        self.watches = 0
        self.third_watch = asyncio.Event()

    async def list_pods(self) -> tuple[list[dict[str, Any]], str]:
        self.lists += 1
        return [copy.deepcopy(self.pod)], str(100 + self.lists)

    @contextlib.asynccontextmanager
    async def watch_pods(
        self, resource_version: str, timeout_seconds: int
    ) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        self.watches += 1
        if self.watches == 3:
            self.third_watch.set()
        if self.watches == 1:
            raise GoneError("too old resource version")

        async def events() -> AsyncIterator[dict[str, Any]]:
            if self.watches == 2:
                yield {"type": "ERROR", "object": {"kind": "Status", "code": 410}}
            await asyncio.Event().wait()
            yield {}  # never reached

        yield events()


async def test_410_at_the_start_or_during_the_watch_lists_again_and_takes_nothing_twice(
    emailer: Emailer,
) -> None:
    double = WatchDouble(job_pod(tool="svc8", uid="u9", statuses=[terminated(3)]))
    emailer.storage = cast(EmailerStorage, double)
    loop = asyncio.create_task(emailer._watch_loop())
    try:
        await asyncio.wait_for(double.third_watch.wait(), timeout=10)
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
    assert double.lists == 3  # the first list, then one after each 410
    assert sample(emailer, "toolforge_emailer_watch_restarts_total", reason="expired") == 2
    assert emailer.state is not None
    assert [e.kind for e in emailer.state.pending["svc8"].events] == ["failed"]
