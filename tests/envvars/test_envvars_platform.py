"""Variables end to end on the local platform: the gateway routes ``/envvars`` to the envvars
API, and kube-apiserver really calls the admission webhook for every pod of a tool, whoever
creates it (the jobs API or the tool's own kubeconfig)."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from kube import body_text, tool_pod, wait_pod_phase
from platform_cli import toolforge
from toolforge_dev.cluster import NODE_IP
from toolforge_dev.pytest_plugin import Tool, new_tool_api
from toolforge_dev.services import ENVVARS_WEBHOOK_PORT, PlatformServices

pytestmark = pytest.mark.cluster

VALUE = "s3cret-for-the-bot-7Hq"


@pytest.fixture
def gateway(platform: PlatformServices, tool: Tool) -> Iterator[httpx.Client]:
    """The gateway with ``tool``'s certificate, based at ``/envvars/v1/tool/<tool>``."""
    context = ssl.create_default_context(cafile=platform.cluster.pki_dir / "cluster-ca.crt")
    context.load_cert_chain(
        tool.home / ".toolskube/client.crt", tool.home / ".toolskube/client.key"
    )
    with httpx.Client(
        base_url=f"{platform.gateway_url}/envvars/v1/tool/{tool.name}", verify=context, timeout=60
    ) as client:
        yield client


@pytest.fixture
async def tool_core(tool: Tool) -> AsyncIterator[k8s.CoreV1Api]:
    api = await new_tool_api(tool.kubeconfig)
    async with api:
        yield k8s.CoreV1Api(api)


def _logs_until(tool: Tool, job: str, text: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        logs = toolforge(tool, "jobs", "logs", job)
        out = logs.stdout
        if text in out:
            return out
        time.sleep(1)
    raise AssertionError(f"{text!r} not in the logs of {job} after {timeout} s: {out!r}")


def test_a_job_gets_the_variable_but_show_and_dump_do_not(
    platform: PlatformServices, tool: Tool, gateway: httpx.Client
) -> None:
    created = gateway.post("/envvars", json={"name": "API_TOKEN", "value": VALUE})
    assert created.status_code == 200, created.text
    run = toolforge(
        tool, "jobs", "run", "printer", "--image", "python3.11", "--no-filelog",
        "--command", "python3 -c 'import os; print(\"token=\" + os.environ[\"API_TOKEN\"])'",
        "--wait", "120",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert f"token={VALUE}" in _logs_until(tool, "printer", f"token={VALUE}")
    for args in (("jobs", "show", "printer", "--output", "json"), ("jobs", "dump")):
        shown = toolforge(tool, *args)
        assert shown.returncode == 0, shown.stderr
        assert VALUE not in shown.stdout + shown.stderr


def test_a_continuous_job_gets_a_new_variable_after_restart(
    platform: PlatformServices, tool: Tool, gateway: httpx.Client
) -> None:
    script = (
        "import os, time; print('late=' + os.environ.get('LATE_VAR', 'unset'), flush=True);"
        " time.sleep(3600)"
    )
    run = toolforge(
        tool, "jobs", "run", "daemon", "--image", "python3.11", "--continuous", "--no-filelog",
        "--command", f"python3 -c \"{script}\"", "--wait", "120",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    _logs_until(tool, "daemon", "late=unset")
    assert gateway.post("/envvars", json={"name": "LATE_VAR", "value": VALUE}).status_code == 200
    restarted = toolforge(tool, "jobs", "restart", "daemon")
    assert restarted.returncode == 0, restarted.stderr
    _logs_until(tool, "daemon", f"late={VALUE}")


async def test_the_apiserver_calls_the_webhook_for_a_pod_made_directly(
    platform: PlatformServices, tool: Tool, gateway: httpx.Client, tool_core: k8s.CoreV1Api
) -> None:
    body = {"name": "DIRECT_VAR", "value": VALUE}
    assert (await asyncio.to_thread(gateway.post, "/envvars", json=body)).status_code == 200
    script = "import os; print(os.environ['DIRECT_VAR'], os.environ['OWN_VAR'])"
    pod = tool_pod("direct", script, tool.uid)
    pod["spec"]["containers"][0]["env"] = [{"name": "OWN_VAR", "value": "mine"}]
    pod["spec"]["initContainers"] = [
        {
            **pod["spec"]["containers"][0],
            "name": "init",
            "command": ["python3", "-c", "import os; assert os.environ['DIRECT_VAR']"],
            "args": [],
            "env": [{"name": "DIRECT_VAR", "value": "the pod's own wins"}],
        }
    ]
    created = await tool_core.create_namespaced_pod(tool.namespace, pod)
    main_env = {e.name: e for e in created.spec.containers[0].env}
    ref = main_env["DIRECT_VAR"].value_from.secret_key_ref
    assert (ref.name, ref.key, ref.optional) == ("toolforge-envvars", "DIRECT_VAR", True)
    assert main_env["OWN_VAR"].value == "mine"
    init_env = [e for e in created.spec.init_containers[0].env if e.name == "DIRECT_VAR"]
    assert [e.value for e in init_env] == ["the pod's own wins"]  # not overridden
    phase = await wait_pod_phase(tool_core, tool.namespace, "direct", {"Succeeded", "Failed"})
    assert phase == "Succeeded"
    log = await tool_core.read_namespaced_pod_log("direct", tool.namespace, container="main")
    assert log.split() == [VALUE, "mine"]


async def test_a_webhook_that_is_down_refuses_tool_pods_until_it_is_back(
    platform: PlatformServices, tool: Tool, tool_core: k8s.CoreV1Api
) -> None:
    """failurePolicy Fail: no tool pod starts without its variables."""
    platform.stop_service("envvars-webhook")
    try:
        with pytest.raises(ApiException) as refused:
            await tool_core.create_namespaced_pod(
                tool.namespace, tool_pod("while-down", "print(1)", tool.uid)
            )
        assert refused.value.status == 500
        assert "envvars.toolforge.org" in body_text(refused.value)
    finally:
        platform.start()
    created = await tool_core.create_namespaced_pod(
        tool.namespace, tool_pod("after", "print(1)", tool.uid)
    )
    assert created.metadata.name == "after"


def test_upstream_shaped_answers_through_the_gateway(
    platform: PlatformServices, gateway: httpx.Client
) -> None:
    assert gateway.get("/envvars").json() == {
        "envvars": [],
        "messages": {"info": [], "warning": [], "error": []},
    }
    missing = gateway.get("/envvars/NOPE_NOPE")
    assert (missing.status_code, missing.json()) == (
        404,
        {"error": ["Envvar 'NOPE_NOPE' does not exist"]},
    )
    quota = gateway.get("/quotas").json()["quota"]
    assert quota == {"quota": 100, "used": 0}


def test_only_kube_apiserver_may_call_the_webhook(platform: PlatformServices) -> None:
    """/mutate needs kube-apiserver's webhook client certificate (CN kube-apiserver); health
    needs none (kubelet probes)."""
    pki = platform.cluster.pki_dir
    url = f"https://{NODE_IP}:{ENVVARS_WEBHOOK_PORT}"
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "u", "namespace": "tool-x", "operation": "CREATE", "object": {}},
    }
    anonymous = ssl.create_default_context(cafile=pki / "cluster-ca.crt")
    admin = ssl.create_default_context(cafile=pki / "cluster-ca.crt")
    admin.load_cert_chain(pki / "admin-client.crt", pki / "admin-client.key")
    apiserver = ssl.create_default_context(cafile=pki / "cluster-ca.crt")
    apiserver.load_cert_chain(
        pki / "apiserver-webhook-client.crt", pki / "apiserver-webhook-client.key"
    )
    for context in (anonymous, admin):
        with httpx.Client(base_url=url, verify=context) as client:
            assert client.post("/mutate", json=review).status_code == 403
            assert client.get("/healthz").status_code == 200
    with httpx.Client(base_url=url, verify=apiserver) as client:
        answer = client.post("/mutate", json=review)
        assert answer.status_code == 200
        assert answer.json()["response"] == {"uid": "u", "allowed": True}
