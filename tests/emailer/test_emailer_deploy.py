"""The in-cluster emailer of ``make deploy`` (charts/emailer, values-local): its two pods share
the Lease, state and live configuration of the host-process emailer, stand by while the host
process leads, and one of them takes over (and sends) when the host process stops."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from emailer.support import Platform, recipient, run_job, sh, wait_for

from toolforge_dev.cluster import Cluster
from toolforge_dev.deploy import NAMESPACE, DeployReport, deploy
from toolforge_dev.pytest_plugin import Tool
from toolforge_dev.services import PlatformServices

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def deployment(cluster: Cluster) -> DeployReport:
    return deploy(cluster, progress=print)


@pytest.fixture
async def view(
    deployment: DeployReport, platform: PlatformServices, cluster: Cluster
) -> AsyncIterator[Platform]:
    view = Platform(cluster)
    view.kubectl("-n", NAMESPACE, "scale", "deployment/emailer", "--replicas=2")
    view.kubectl("-n", NAMESPACE, "rollout", "status", "deployment/emailer", "--timeout=120s")
    original = view.config_data()
    yield view
    # give the Lease back to the host process: the pods stop (releasing it), then stand by
    view.kubectl("-n", NAMESPACE, "scale", "deployment/emailer", "--replicas=0")
    await asyncio.to_thread(platform.start)
    await wait_for("the host emailer to lead", lambda: _host_leads(view), timeout=90)
    await view.replace_config(original)
    view.kubectl("-n", NAMESPACE, "scale", "deployment/emailer", "--replicas=2")


def holder(view: Platform) -> str:
    lease = json.loads(
        view.kubectl("-n", "jobs-emailer", "get", "lease", "jobs-emailer", "-o", "json")
    )
    return str(lease["spec"].get("holderIdentity") or "")


async def _host_leads(view: Platform) -> bool:
    return await view.metric("toolforge_emailer_leader") == 1.0


async def test_a_pod_takes_over_when_the_host_emailer_stops(
    view: Platform, platform: PlatformServices, cluster: Cluster, tool: Tool
) -> None:
    pods = json.loads(
        view.kubectl(
            "-n", NAMESPACE, "get", "pods", "-l", "app.kubernetes.io/name=emailer", "-o", "json"
        )
    )["items"]
    names = {p["metadata"]["name"] for p in pods if p["status"]["phase"] == "Running"}
    assert len(names) == 2
    assert not any(holder(view).startswith(name) for name in names)  # the host process leads
    await view.set_config(task_compose_emails_loop_sleep="1", task_send_emails_loop_sleep="1")
    await asyncio.to_thread(platform.stop_service, "emailer")

    async def pod_leads() -> str | None:
        now = await asyncio.to_thread(holder, view)
        return now if any(now.startswith(f"{name}-") for name in names) else None

    leader = await wait_for("a pod to take the Lease", pod_leads, timeout=60)
    await run_job(cluster, tool, "incluster", sh("echo from a pod; exit 31"), "onfailure")
    (mail,) = await view.wait_mails(recipient(tool), 1)
    assert "failed: exit code 31" in mail["Text"]
    assert "| from a pod" in mail["Text"]
    pod = leader.rsplit("-", 1)[0]
    log = view.kubectl("-n", NAMESPACE, "logs", pod)
    assert f"sent to {recipient(tool)}" in log
