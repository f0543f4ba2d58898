"""Mailpit as the platform runs it: SMTP with STARTTLS on the node address, reachable from a
tool pod and from the host; the mailbox API on loopback only; no release check."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import time
import uuid
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from kubernetes_asyncio import client as k8s

from kube import python_pod, scratch_namespace, wait_pod_phase
from toolforge_dev.cli import _usage
from toolforge_dev.cluster import NODE_IP, Cluster
from toolforge_dev.mailpit import Mailpit, platform_mailpit
from toolforge_dev.services import PlatformServices

pytestmark = pytest.mark.cluster


@pytest.fixture
def mailpit(platform: PlatformServices, cluster: Cluster) -> Mailpit:
    return platform_mailpit(cluster)


def _find(mailpit: Mailpit, subject: str, timeout: float = 30) -> dict[str, Any]:
    """The one message with ``subject``, read through the API (waits for it)."""
    deadline = time.monotonic() + timeout
    while True:
        found = httpx.get(
            f"{mailpit.url}/api/v1/search", params={"query": f'subject:"{subject}"'}, timeout=5
        ).json()
        if found["messages"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(found["messages"]) == 1, found
    message: dict[str, Any] = httpx.get(
        f"{mailpit.url}/api/v1/message/{found['messages'][0]['ID']}", timeout=5
    ).json()
    return message


def test_a_mail_sent_with_starttls_is_read_back_through_the_api(mailpit: Mailpit) -> None:
    subject = f"job failed {uuid.uuid4().hex}"
    mail = EmailMessage()
    mail["From"] = "noreply@toolforge.org"
    mail["To"] = "tools.demo@toolforge.org"
    mail["Subject"] = subject
    mail.set_content("Job hello exited with code 3.")
    mail.add_alternative("<p>Job <b>hello</b> exited with code 3.</p>", subtype="html")
    context = ssl.create_default_context(cafile=str(mailpit.ca_file))
    with smtplib.SMTP(*mailpit.smtp_address, timeout=10) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        smtp.starttls(context=context)
        smtp.ehlo()
        refused = smtp.send_message(mail)
    assert refused == {}
    message = _find(mailpit, subject)
    assert [to["Address"] for to in message["To"]] == ["tools.demo@toolforge.org"]
    assert message["From"]["Address"] == "noreply@toolforge.org"
    assert message["Text"].strip() == "Job hello exited with code 3."
    assert "<b>hello</b>" in message["HTML"]


def test_smtp_refuses_a_mail_before_starttls(mailpit: Mailpit) -> None:
    with (
        smtplib.SMTP(*mailpit.smtp_address, timeout=10) as smtp,
        pytest.raises(smtplib.SMTPSenderRefused) as refused,
    ):
        smtp.sendmail("a@toolforge.org", ["tools.demo@toolforge.org"], "Subject: x\n\nplain")
    assert refused.value.smtp_code == 530


def test_no_release_check_and_the_mailbox_only_on_loopback(mailpit: Mailpit) -> None:
    info = httpx.get(f"{mailpit.url}/api/v1/info", timeout=5).json()
    assert info["LatestVersion"] == "disabled"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{NODE_IP}:{mailpit.ui_port}/readyz", timeout=5)
    rebound = httpx.get(f"{mailpit.url}/api/v1/info", headers={"Host": "evil.example"}, timeout=5)
    assert rebound.status_code == 403


def test_make_run_prints_the_mailbox_url(mailpit: Mailpit, cluster: Cluster) -> None:
    usage = _usage(cluster)
    assert f"Mailbox[/] {mailpit.url} " in usage
    assert f"{NODE_IP}:1025" in usage


async def test_a_pod_sends_mail_over_the_node_address(
    mailpit: Mailpit, admin_api: k8s.ApiClient
) -> None:
    """A pod outside tool namespaces (where the emailer runs; tool pods may not reach the node
    address) sends with STARTTLS, verifying the server with the cluster CA."""
    core = k8s.CoreV1Api(admin_api)
    subject = f"from a pod {uuid.uuid4().hex}"
    script = f"""
import smtplib, ssl
from email.message import EmailMessage
mail = EmailMessage()
mail["From"], mail["To"] = "pod@toolforge.org", "tools.x@toolforge.org"
mail["Subject"] = {subject!r}
mail.set_content("sent from a pod")
with smtplib.SMTP("{NODE_IP}", {mailpit.smtp_port}, timeout=10) as smtp:
    smtp.starttls(context=ssl.create_default_context(cafile="/etc/cluster-ca/ca.crt"))
    print(smtp.send_message(mail))
"""
    pod = python_pod(
        "mailer", script, volumes=[{"name": "ca", "configMap": {"name": "kube-root-ca.crt"}}]
    )
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "ca", "mountPath": "/etc/cluster-ca"}]
    namespace = await scratch_namespace(core)
    try:
        await core.create_namespaced_pod(namespace, pod)
        phase = await wait_pod_phase(core, namespace, "mailer", {"Succeeded", "Failed"})
        log = await core.read_namespaced_pod_log("mailer", namespace)
    finally:
        await core.delete_namespace(namespace)
    assert (phase, log.strip()) == ("Succeeded", "{}")
    message = await asyncio.to_thread(_find, mailpit, subject)
    assert message["Text"].strip() == "sent from a pod"
