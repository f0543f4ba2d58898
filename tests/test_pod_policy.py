"""The tool pod policy (ValidatingAdmissionPolicy) on the real cluster: a tool's certificate
may create pods in its namespace, but only unprivileged ones, as its own uid, with no hostPath
but its home."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from kube import body_text, tool_pod, wait_pod_phase
from toolforge_dev.pytest_plugin import Tool, new_tool_api

pytestmark = pytest.mark.cluster


@pytest.fixture
async def tool_core(tool: Tool) -> AsyncIterator[k8s.CoreV1Api]:
    api = await new_tool_api(tool.kubeconfig)
    async with api:
        yield k8s.CoreV1Api(api)


def _home_volume(path: str) -> dict[str, Any]:
    return {"name": "home", "hostPath": {"path": path, "type": "Directory"}}


async def test_home_mount_as_the_tool_uid_is_allowed(tool: Tool, tool_core: k8s.CoreV1Api) -> None:
    script = (
        "import os; open('/data/project/me/hello.txt', 'w').write('hi');"
        " print(os.getuid(), os.getgid())"
    )
    pod = tool_pod("home", script, tool.uid, volumes=[_home_volume(str(tool.home))])
    pod["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "home", "mountPath": "/data/project/me"}
    ]
    await tool_core.create_namespaced_pod(tool.namespace, pod)
    phase = await wait_pod_phase(tool_core, tool.namespace, "home", {"Succeeded", "Failed"})
    assert phase == "Succeeded"
    log = await tool_core.read_namespaced_pod_log("home", tool.namespace)
    assert log.split() == [str(tool.uid), str(tool.uid)]
    written = tool.home / "hello.txt"
    assert written.read_text() == "hi"
    assert written.stat().st_uid == tool.uid


def _container(pod: Any) -> Any:
    return pod["spec"]["containers"][0]


Mutation = Callable[[Any, Tool], None]

CASES: list[tuple[str, Mutation, str]] = [
    (
        "privileged",
        lambda p, t: _container(p)["securityContext"].update(
            privileged=True, allowPrivilegeEscalation=True
        ),
        "privileged containers",
    ),
    (
        "added capability",
        lambda p, t: _container(p)["securityContext"].update(capabilities={"add": ["NET_ADMIN"]}),
        "added capabilities",
    ),
    (
        "privilege escalation unset",
        lambda p, t: _container(p)["securityContext"].pop("allowPrivilegeEscalation"),
        "allowPrivilegeEscalation",
    ),
    (
        "root",
        lambda p, t: p["spec"]["securityContext"].update(runAsUser=0, runAsNonRoot=False),
        "must run as the tool uid",
    ),
    (
        "another uid in the container",
        lambda p, t: _container(p)["securityContext"].update(runAsUser=t.uid + 1),
        "must run as the tool uid",
    ),
    (
        "no uid at all",
        lambda p, t: p["spec"]["securityContext"].pop("runAsUser"),
        "must run as the tool uid",
    ),
    (
        "root group",
        lambda p, t: p["spec"]["securityContext"].update(runAsGroup=0),
        "tool gid",
    ),
    (
        "supplementary root group",
        lambda p, t: p["spec"]["securityContext"].update(supplementalGroups=[0]),
        "supplementalGroups",
    ),
    (
        "host root",
        lambda p, t: p["spec"].update(volumes=[_home_volume("/")]),
        "the only hostPath volume allowed is the tool home",
    ),
    (
        "another home",
        lambda p, t: p["spec"].update(volumes=[_home_volume(str(t.home.parent / "other"))]),
        "the only hostPath volume allowed is the tool home",
    ),
    (
        "home with a trailing slash",
        lambda p, t: p["spec"].update(volumes=[_home_volume(f"{t.home}/")]),
        "the only hostPath volume allowed is the tool home",
    ),
    ("host network", lambda p, t: p["spec"].update(hostNetwork=True), "host namespaces"),
    ("host PID", lambda p, t: p["spec"].update(hostPID=True), "host namespaces"),
    (
        "host port",
        lambda p, t: _container(p).update(ports=[{"containerPort": 80, "hostPort": 8080}]),
        "hostPort",
    ),
]


@pytest.mark.parametrize(("case", "mutate", "message"), CASES, ids=[c[0] for c in CASES])
async def test_unsafe_pods_are_refused(
    tool: Tool, tool_core: k8s.CoreV1Api, case: str, mutate: Mutation, message: str
) -> None:
    pod = tool_pod("unsafe", "print(1)", tool.uid)
    mutate(pod, tool)
    with pytest.raises(ApiException) as exc:
        await tool_core.create_namespaced_pod(tool.namespace, pod)
    assert exc.value.status in (403, 422), case
    assert message in body_text(exc.value), case
    pods = await tool_core.list_namespaced_pod(tool.namespace)
    assert [p.metadata.name for p in pods.items] == []
