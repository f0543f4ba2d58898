"""The emailer's identity has the least rights it needs (negative checks against the real
RBAC), and a second list of the pods (what the watch does after 410 Gone) takes no event twice
(an in-process emailer with the platform emailer's identity, its state in memory only). The
410 itself cannot be produced on demand here (a resourceVersion of 1 is still served while etcd
has not compacted), so the watch loop's reaction to it is tested with a double in
test_emailer_service.py."""

from __future__ import annotations

import pytest
from emailer.support import job_pods_ended, run_job, sh, wait_for

from toolforge_dev import binaries
from toolforge_dev.cluster import Cluster, ClusterError
from toolforge_dev.pytest_plugin import Tool
from toolforge_dev.services import PlatformServices
from toolforge_emailer.logsource import PodLogSource
from toolforge_emailer.metrics import EmailerMetrics
from toolforge_emailer.service import Emailer
from toolforge_emailer.settings import EmailerSettings
from toolforge_emailer.smtp import SmtpSender
from toolforge_emailer.state import EmailerState
from toolforge_emailer.storage import EmailerStorage

pytestmark = pytest.mark.cluster

USER = "toolforge-emailer"


def _allowed(cluster: Cluster, *args: str) -> bool:
    try:
        cluster.kubectl(binaries.Binaries.from_cache(), "auth", "can-i", *args, "--as", USER)
    except ClusterError:  # kubectl auth can-i exits 1 for "no"
        return False
    return True


@pytest.mark.parametrize(
    ("args", "allowed"),
    [
        (("list", "pods", "--all-namespaces"), True),
        (("watch", "pods", "--all-namespaces"), True),
        (("get", "pods", "--subresource=log", "-n", "tool-anything"), True),
        (("get", "pods", "-n", "tool-anything"), False),
        (("patch", "pods", "-n", "tool-anything"), False),
        (("delete", "pods", "-n", "tool-anything"), False),
        (("list", "secrets", "--all-namespaces"), False),
        (("get", "configmaps/jobs-emailer-config", "-n", "jobs-emailer"), True),
        (("patch", "configmaps/jobs-emailer-config", "-n", "jobs-emailer"), False),
        (("patch", "configmaps/jobs-emailer-state", "-n", "jobs-emailer"), True),
        (("get", "configmaps/other", "-n", "jobs-emailer"), False),
        (("create", "configmaps", "-n", "jobs-emailer"), False),
        (("list", "configmaps", "-n", "jobs-emailer"), False),
        (("patch", "leases/jobs-emailer", "-n", "jobs-emailer"), True),
        (("patch", "leases/kube-scheduler", "-n", "kube-system"), False),
        (("get", "configmaps", "-n", "tool-anything"), False),
        (("create", "pods", "--subresource=exec", "-n", "tool-anything"), False),
    ],
)
def test_least_rbac(cluster: Cluster, args: tuple[str, ...], allowed: bool) -> None:
    assert _allowed(cluster, *args) is allowed


async def test_listing_again_takes_no_event_twice(
    platform: PlatformServices, cluster: Cluster, tool: Tool
) -> None:
    settings = EmailerSettings(kubeconfig=cluster.service_kubeconfig("emailer"))
    metrics = EmailerMetrics()
    storage = await EmailerStorage.connect(settings, metrics)
    try:
        emailer = Emailer(
            storage, PodLogSource(storage), SmtpSender(ca_file=None, require_starttls=False),
            metrics, settings,
        )  # fmt: skip
        emailer.state = EmailerState(initialised=True)
        await run_job(cluster, tool, "gone", sh("echo last words; exit 8"), "onfailure")
        await wait_for("the pod to end", lambda: job_pods_ended(cluster, tool, 1))
        rv = await emailer._list()
        pending = emailer.state.pending[tool.name].events
        assert [(e.job, e.kind, e.exit_code) for e in pending] == [("gone", "failed", 8)]
        assert pending[0].output == ["last words"]
        queued = metrics.registry.get_sample_value(
            "toolforge_emailer_events_total", {"kind": "failed", "queued": "yes"}
        )
        assert int(rv) > 1
        await emailer._list()  # what the watch loop does after a 410
        assert len(emailer.state.pending[tool.name].events) == 1
        assert queued is not None
        assert queued >= 1
        assert (
            metrics.registry.get_sample_value(
                "toolforge_emailer_events_total", {"kind": "failed", "queued": "yes"}
            )
            == queued
        )
    finally:
        await storage.close()
