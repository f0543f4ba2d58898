"""The jobs emailer of the local platform, end to end: jobs created through the gateway as a
tool run on the real cluster; the emailer (a host process with its own identity) watches their
pods and sends through the real Mailpit (STARTTLS); the mails are read through Mailpit's API.

Determinism: each test first makes the batch window long (600 s, through the live ConfigMap),
waits until the emailer's stored state holds the events it expects, then makes the window 1 s
so that the mails go out; "no mail" is asserted once the emailer has provably taken the events
(they are in its state's seen keys and nothing is pending or queued for the tool)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

import pytest
from emailer.support import Platform, job_done, recipient, run_job, sh, wait_for

from platform_cli import toolforge
from toolforge_dev import binaries
from toolforge_dev.cluster import Cluster
from toolforge_dev.deploy import NAMESPACE as DEPLOY_NAMESPACE
from toolforge_dev.pytest_plugin import Tool
from toolforge_dev.services import PlatformServices

pytestmark = pytest.mark.cluster

LONG = "600"
FAIL_3 = sh("echo about to fail; exit 3")


@pytest.fixture
async def emailer(platform: PlatformServices, cluster: Cluster) -> AsyncIterator[Platform]:
    """The platform's emailer as the one leader, with a long batch window and a 1 s send loop;
    the original configuration and Mailpit's chaos settings are restored afterwards."""
    view = Platform(cluster)
    # An in-cluster emailer (make deploy) shares the Lease; the host process must lead here.
    deployed = view.kubectl(
        "-n", DEPLOY_NAMESPACE, "get", "deployments", "-o", "jsonpath={.items[*].metadata.name}"
    ).split()
    if "emailer" in deployed:
        view.kubectl("-n", DEPLOY_NAMESPACE, "scale", "deployment/emailer", "--replicas=0")
    original = view.config_data()
    try:
        await wait_for(
            "the host emailer to lead",
            lambda: _is_leader(view),
            timeout=60,
        )
        await view.set_config(task_compose_emails_loop_sleep=LONG, task_send_emails_loop_sleep="1")
        yield view
    finally:
        view.chaos(451, 0)
        await view.replace_config(original)
        if "emailer" in deployed:
            view.kubectl("-n", DEPLOY_NAMESPACE, "scale", "deployment/emailer", "--replicas=2")


async def _is_leader(view: Platform) -> bool:
    return await view.metric("toolforge_emailer_leader") == 1.0


async def flush(view: Platform) -> None:
    """Compose and send every pending batch now (window 1 s)."""
    await view.set_config(task_compose_emails_loop_sleep="1")


async def pending_are(view: Platform, tool: Tool, expected: set[str]) -> None:
    async def check() -> bool:
        return set(await view.pending(tool.name)) == expected

    await wait_for(f"pending events {sorted(expected)} of {tool.name}", check, timeout=240)


async def nothing_pending(view: Platform, tool: Tool) -> None:
    """Wait until nothing is pending or queued for ``tool`` in the stored state."""

    async def check() -> bool:
        state = await asyncio.to_thread(view.state)
        return tool.name not in state.pending and not any(m.tool == tool.name for m in state.outbox)

    await wait_for(f"nothing pending for {tool.name}", check)


async def taken(view: Platform, kind: str, queued: str, before: float) -> None:
    """Wait until the emailer has taken a new ``kind`` event (``queued``: yes/no)."""

    async def check() -> bool:
        now = await view.metric("toolforge_emailer_events_total", kind=kind, queued=queued)
        return now > before

    await wait_for(f"a new {kind} event (queued={queued})", check)


def texts(mails: list[dict[str, object]]) -> list[str]:
    return [str(m["Text"]) for m in mails]


# ----- onfailure, onfinish, all, none ------------------------------------------------------------


async def test_onfailure_exit_3_sends_exactly_one_mail_and_success_none(
    emailer: Platform, cluster: Cluster, tool: Tool
) -> None:
    run = toolforge(
        tool, "jobs", "run", "boom", "--image", "python3.11", "--command", FAIL_3,
        "--emails", "onfailure", "--no-filelog", "--wait", "120",
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    await pending_are(emailer, tool, {"boom:failed"})
    await flush(emailer)
    (mail,) = await emailer.wait_mails(recipient(tool), 1)
    assert [to["Address"] for to in mail["To"]] == [recipient(tool)]
    assert mail["From"]["Address"] == "noreply@toolforge.org"
    assert mail["Subject"] == f'[Toolforge] tool "{tool.name}": job boom failed: exit code 3'
    assert "Job boom (one-off):" in mail["Text"]
    assert "failed: exit code 3" in mail["Text"]
    assert "| about to fail" in mail["Text"]
    assert "<b>boom</b> failed: exit code 3" in mail["HTML"]
    # the same job succeeding sends nothing
    finished = await emailer.metric("toolforge_emailer_events_total", kind="finished", queued="no")
    ok = toolforge(
        tool, "jobs", "run", "boom", "--image", "python3.11", "--command", "echo fine",
        "--emails", "onfailure", "--no-filelog", "--wait", "120",
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    await taken(emailer, "finished", "no", finished)
    await nothing_pending(emailer, tool)
    assert len(await emailer.mails_to(recipient(tool))) == 1


async def test_onfinish_and_all_send_what_they_promise_and_none_nothing(
    emailer: Platform, cluster: Cluster, tool: Tool
) -> None:
    await run_job(cluster, tool, "finisher", "echo done", "onfinish")
    await run_job(cluster, tool, "chatty", "echo hello", "all")
    await run_job(cluster, tool, "silent", sh("exit 1"), "none")
    await run_job(cluster, tool, "failer", sh("exit 4"), "onfinish")
    await pending_are(
        emailer,
        tool,
        {"finisher:finished", "chatty:started", "chatty:finished", "failer:failed"},
    )
    await wait_for("the silent job to end", lambda: job_done(cluster, tool, "silent"))
    await flush(emailer)
    (mail,) = await emailer.wait_mails(recipient(tool), 1)
    text = mail["Text"]
    assert "Job finisher (one-off):" in text
    assert "finished: exit code 0" in text
    assert "Job chatty (one-off):" in text
    assert "started" in text.split("Job chatty (one-off):")[1].split("Job ")[0]
    assert "failed: exit code 4" in text
    assert "silent" not in text
    assert mail["Subject"] == f'[Toolforge] tool "{tool.name}": 4 events of 3 jobs, 1 failure'


# ----- batching -------------------------------------------------------------------------------


async def test_ten_failures_one_mail_and_two_tools_two_mails(
    emailer: Platform, cluster: Cluster, tool: Tool, other_tool: Tool
) -> None:
    ours = [f"alpha-{i}" for i in range(10)]
    theirs = ["beta-0", "beta-1"]
    for name in ours:
        await run_job(cluster, tool, name, sh(f"echo {name} out; exit 5"), "onfailure")
    for name in theirs:
        await run_job(cluster, other_tool, name, sh(f"echo {name} out; exit 6"), "onfailure")
    await pending_are(emailer, tool, {f"{n}:failed" for n in ours})
    await pending_are(emailer, other_tool, {f"{n}:failed" for n in theirs})
    await flush(emailer)
    (mail,) = await emailer.wait_mails(recipient(tool), 1)
    (other,) = await emailer.wait_mails(recipient(other_tool), 1)
    for name in ours:
        assert f"Job {name} (one-off):" in mail["Text"]
        assert f"| {name} out" in mail["Text"]
        assert name not in other["Text"]
    for name in theirs:
        assert f"Job {name} (one-off):" in other["Text"]
        assert name not in mail["Text"]
    assert other_tool.name not in mail["Text"] + mail["HTML"] + mail["Subject"]
    assert tool.name not in other["Text"] + other["HTML"] + other["Subject"]
    assert mail["Subject"] == f'[Toolforge] tool "{tool.name}": 10 events of 10 jobs, 10 failures'


# ----- restarts -------------------------------------------------------------------------------


def _kill_emailer(platform: PlatformServices, cluster: Cluster) -> None:
    """SIGKILL the emailer host process: no state write, no Lease release."""
    pid = int((cluster.directory / "pids" / "emailer.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    platform.stop_service("emailer")  # reaps the pid file


async def test_restarting_the_emailer_mid_interval_neither_loses_nor_duplicates(
    emailer: Platform, platform: PlatformServices, cluster: Cluster, tool: Tool
) -> None:
    await run_job(cluster, tool, "first", sh("exit 11"), "onfailure")
    await pending_are(emailer, tool, {"first:failed"})
    # a graceful restart, and a job that fails while no emailer runs
    await asyncio.to_thread(platform.stop_service, "emailer")
    await run_job(cluster, tool, "second", sh("exit 12"), "onfailure")
    await wait_for("the second job to end", lambda: job_done(cluster, tool, "second"))
    await asyncio.to_thread(platform.start)
    await pending_are(emailer, tool, {"first:failed", "second:failed"})
    # a crash (SIGKILL): the next process waits for the Lease to expire, then goes on
    await asyncio.to_thread(_kill_emailer, platform, cluster)
    await asyncio.to_thread(platform.start)
    await wait_for("the new emailer to lead", lambda: _is_leader(emailer), timeout=90)
    await flush(emailer)
    (mail,) = await emailer.wait_mails(recipient(tool), 1)
    assert "failed: exit code 11" in mail["Text"]
    assert "failed: exit code 12" in mail["Text"]
    await nothing_pending(emailer, tool)
    # one more restart, then a new failure: its mail comes alone, nothing is sent twice
    await asyncio.to_thread(platform.stop_service, "emailer")
    await asyncio.to_thread(platform.start)
    await wait_for("the emailer to lead again", lambda: _is_leader(emailer), timeout=60)
    await run_job(cluster, tool, "third", sh("exit 13"), "onfailure")
    await emailer.wait_mails(recipient(tool), 2)
    await nothing_pending(emailer, tool)
    mails = await emailer.mails_to(recipient(tool))
    assert len(mails) == 2
    assert "exit code 13" in mails[1]["Text"]
    assert "exit code 11" not in mails[1]["Text"]
    assert "exit code 12" not in mails[1]["Text"]


async def test_the_watch_survives_an_apiserver_restart(
    emailer: Platform, cluster: Cluster, tool: Tool
) -> None:
    restarts = await emailer.metric("toolforge_emailer_watch_restarts_total", reason="error")
    await asyncio.to_thread(cluster.stop_apiserver)
    await asyncio.to_thread(cluster.start_apiserver, binaries.Binaries.from_cache())
    await run_job(cluster, tool, "after", sh("exit 9"), "onfailure")
    await pending_are(emailer, tool, {"after:failed"})
    assert await emailer.metric("toolforge_emailer_watch_restarts_total", reason="error") > restarts
    await flush(emailer)
    (mail,) = await emailer.wait_mails(recipient(tool), 1)
    assert "failed: exit code 9" in mail["Text"]


# ----- live configuration ---------------------------------------------------------------------


async def test_a_configmap_change_takes_effect_without_a_restart(
    emailer: Platform, platform: PlatformServices, cluster: Cluster, tool: Tool
) -> None:
    pid = (cluster.directory / "pids" / "emailer.pid").read_text()
    logged = await emailer.metric("toolforge_emailer_mails_sent_total", how="logged")
    await emailer.set_config(send_emails_for_real="no")
    await run_job(cluster, tool, "quiet", sh("exit 2"), "onfailure")
    await pending_are(emailer, tool, {"quiet:failed"})
    await flush(emailer)

    async def logged_one() -> bool:
        return await emailer.metric("toolforge_emailer_mails_sent_total", how="logged") > logged

    await wait_for("the mail to be logged instead of sent", logged_one)
    assert "not sending mail" in emailer.emailer_log()
    assert await emailer.mails_to(recipient(tool)) == []
    # a bad value is refused and the last good configuration stays in force
    good = await emailer.metric("toolforge_emailer_config_resource_version")
    invalid = await emailer.metric("toolforge_emailer_config_reloads_total", result="invalid")
    await emailer.set_config(wait=False, task_compose_emails_loop_sleep="soon")

    async def refused() -> bool:
        now = await emailer.metric("toolforge_emailer_config_reloads_total", result="invalid")
        return now > invalid

    await wait_for("the bad configuration to be refused", refused, timeout=60)
    assert await emailer.metric("toolforge_emailer_config_resource_version") == good
    assert "task_compose_emails_loop_sleep: Input should be a valid number" in emailer.emailer_log()
    assert (cluster.directory / "pids" / "emailer.pid").read_text() == pid


# ----- SMTP failures --------------------------------------------------------------------------


async def test_smtp_down_then_back_and_4xx_retried_and_5xx_counted(
    emailer: Platform, platform: PlatformServices, cluster: Cluster, tool: Tool, other_tool: Tool
) -> None:
    unreachable = await emailer.metric(
        "toolforge_emailer_smtp_attempts_total", result="unreachable"
    )
    await asyncio.to_thread(platform.stop_service, "mailpit")
    try:
        await run_job(cluster, tool, "down", sh("exit 21"), "onfailure")
        await pending_are(emailer, tool, {"down:failed"})
        await flush(emailer)

        async def tried() -> bool:
            now = await emailer.metric(
                "toolforge_emailer_smtp_attempts_total", result="unreachable"
            )
            return now > unreachable

        await wait_for("a failed attempt while SMTP is down", tried)

        async def waiting() -> bool:
            state = await asyncio.to_thread(emailer.state)
            return any(m.tool == tool.name and m.attempts > 0 for m in state.outbox)

        await wait_for("the mail to wait in the stored outbox", waiting)
    finally:
        await asyncio.to_thread(platform.start)
    (mail,) = await emailer.wait_mails(recipient(tool), 1, timeout=120)
    assert "failed: exit code 21" in mail["Text"]

    # 5xx: refused at once, counted and logged, not retried
    await emailer.set_config(task_compose_emails_loop_sleep=LONG)
    rejected = await emailer.metric("toolforge_emailer_mails_failed_total", reason="rejected")
    temporary = await emailer.metric("toolforge_emailer_smtp_attempts_total", result="temporary")
    emailer.chaos(550, 100)
    await run_job(cluster, other_tool, "refused", sh("exit 22"), "onfailure")
    await pending_are(emailer, other_tool, {"refused:failed"})
    await flush(emailer)

    async def counted() -> bool:
        return (
            await emailer.metric("toolforge_emailer_mails_failed_total", reason="rejected")
            > rejected
        )

    await wait_for("the 5xx to be counted", counted)
    log = emailer.emailer_log()
    assert f"to {recipient(other_tool)} given up (rejected): 550 Chaos recipient error" in log
    assert not any(m.tool == other_tool.name for m in emailer.state().outbox)
    # 4xx: retried with back-off until accepted
    emailer.chaos(451, 100)
    await emailer.set_config(task_compose_emails_loop_sleep=LONG)
    await run_job(cluster, other_tool, "later", sh("exit 23"), "onfailure")
    await pending_are(emailer, other_tool, {"later:failed"})
    await flush(emailer)

    async def deferred() -> bool:
        now = await emailer.metric("toolforge_emailer_smtp_attempts_total", result="temporary")
        return now > temporary

    await wait_for("a 4xx answer", deferred)
    emailer.chaos(451, 0)
    (mail,) = await emailer.wait_mails(recipient(other_tool), 1)
    assert "failed: exit code 23" in mail["Text"]
    assert "exit code 22" not in mail["Text"]
