"""Builders: golden files per representative job, conformance with the Kubernetes API types,
the way back (objects -> spec), filelog paths, restart helpers.

``UPDATE_GOLDEN=1 pytest tests/jobs`` rewrites the golden files; otherwise they must match
exactly.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio.client import models as k8s_models

from golden import assert_golden
from toolforge_jobs.builders import (
    RESTARTED_AT_ANNOTATION,
    SPEC_ANNOTATION,
    ToolContext,
    UnreadableJobError,
    build_objects,
    container_command,
    container_env,
    deployment_restart_patch,
    image_of,
    job_from_objects,
    manual_job_from_cronjob,
    pod_template_of,
    resolve_filelog_paths,
    schedule_actual_of,
)
from toolforge_jobs.errors import JobSpecError
from toolforge_jobs.models import JobSpec, ScriptHealthCheck, specs_equal
from toolforge_jobs.schedule import resolve_schedule

GOLDEN = Path(__file__).parent / "golden"
IMAGE = "registry.local/toolforge/python3.11:stable"


@pytest.fixture
def tool() -> ToolContext:
    """The tool the tests build for: uid 50001, home on the host at /srv/homes/tf-test."""
    return ToolContext(name="tf-test", uid=50001, home_host_path="/srv/homes/tf-test")


@pytest.fixture
def image() -> str:
    """A resolved image reference."""
    return IMAGE


CASES: dict[str, dict[str, Any]] = {
    "oneoff-plain": {
        "name": "backup",
        "cmd": "./backup.sh --all 'two words'",
        "imagename": "bookworm",
    },
    "oneoff-filelog-retry": {
        "name": "import",
        "cmd": "python3 import.py && echo done",
        "imagename": "python3.11",
        "filelog": True,
        "filelog_stdout": "logs/import.out",
        "retry": 3,
        "emails": "onfailure",
        "memory": "1Gi",
        "cpu": "500m",
    },
    "scheduled-daily-timeout": {
        "name": "daily-report",
        "cmd": "python3 report.py",
        "imagename": "python3.11",
        "schedule": "@daily",
        "timeout": 3600,
        "emails": "onfinish",
    },
    "scheduled-cron": {
        "name": "poll",
        "cmd": "./poll",
        "imagename": "bookworm",
        "schedule": "*/15 * * * *",
        "retry": 1,
    },
    "continuous-1-replica": {
        "name": "bot",
        "cmd": "python3 bot.py",
        "imagename": "python3.11",
        "continuous": True,
    },
    "continuous-3-replicas-http": {
        "name": "web",
        "cmd": "gunicorn app:app",
        "imagename": "python3.11",
        "continuous": True,
        "replicas": 3,
        "port": 8000,
        "health_check": {"type": "http", "path": "/healthz"},
        "memory": "2Gi",
        "cpu": "1",
    },
    "continuous-tcp-port": {
        "name": "db-proxy",
        "cmd": "./proxy --listen 0.0.0.0:5432",
        "imagename": "bookworm",
        "job_type": "continuous",
        "port": 5432,
    },
    "continuous-script-health": {
        "name": "irc-bot",
        "cmd": "python3 irc.py",
        "imagename": "python3.11",
        "continuous": True,
        "health_check": {"type": "script", "script": "test -f /tmp/alive"},
    },
    "continuous-published": {
        "name": "web",
        "cmd": "python3 app.py",
        "imagename": "python3.11",
        "continuous": True,
        "replicas": 2,
        "port": 8000,
        "publish": "/",
    },
    "mount-none": {
        # mount: none is only for build service images (the service refuses it otherwise)
        "name": "sandbox",
        "cmd": "echo hello",
        "imagename": "tool-tf-test/sandbox:latest",
        "mount": "none",
    },
    "built-oneoff": {
        # a build service image: mount none by default, launcher, NO_HOME, the pull Secret
        "name": "hello",
        "cmd": "hello --loud 'big world'",
        "imagename": "tool-tf-test/sample:latest",
    },
    "built-continuous-pinned": {
        "name": "web",
        "cmd": "web",
        "imagename": "tool-tf-test/sample:v1@sha256:" + "0123456789abcdef" * 4,
        "continuous": True,
        "port": 8000,
        "health_check": {"type": "script", "script": "curl -sf localhost:8000/"},
    },
    "built-filelog-mounted": {
        "name": "nightly",
        "cmd": "report > summary.txt",
        "imagename": "tool-tf-test/sample:latest",
        "schedule": "@daily",
        "mount": "all",
        "filelog": True,
    },
}

#: Where the golden tests' build service images are pulled from (the pull endpoint).
BUILT_REGISTRY = "10.244.0.1:8450"
BUILT_REF = f"{BUILT_REGISTRY}/tool-tf-test/app:latest"
PULL_SECRET = "toolforge-registry-pull"  # noqa: S105 - a Secret's name


def _objects(case: str, tool: ToolContext, image: str) -> list[dict[str, Any]]:
    """The objects of ``CASES[case]``; a build service image is pulled from the pull endpoint
    with the pull Secret, as the service resolves it."""
    spec = JobSpec.model_validate(CASES[case])
    if "/" in spec.imagename:
        ref = f"{BUILT_REGISTRY}/{spec.imagename}"
        return build_objects(spec, tool, ref, pull_secret=PULL_SECRET)
    return build_objects(spec, tool, image)


def _golden(name: str, objects: list[dict[str, Any]]) -> None:
    assert_golden(GOLDEN / f"{name}.yaml", yaml.safe_dump_all(objects, sort_keys=False, width=100))


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, tool: ToolContext, image: str) -> None:
    _golden(case, _objects(case, tool, image))


# --- conformance with the Kubernetes API types (kubernetes_asyncio's generated models) ---

_KINDS = {
    "Job": "V1Job",
    "CronJob": "V1CronJob",
    "Deployment": "V1Deployment",
    "Service": "V1Service",
}
_LIST_RE = re.compile(r"list\[(.+)\]")
_DICT_RE = re.compile(r"dict\(str, (.+)\)")


def _conforms(value: Any, type_name: str, path: str) -> list[str]:
    """Unknown or mistyped fields of ``value`` against a kubernetes_asyncio type name."""
    if match := _LIST_RE.fullmatch(type_name):
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        return [e for i, v in enumerate(value) for e in _conforms(v, match[1], f"{path}[{i}]")]
    if match := _DICT_RE.fullmatch(type_name):
        if not isinstance(value, dict):
            return [f"{path}: expected a mapping"]
        return [e for k, v in value.items() for e in _conforms(v, match[1], f"{path}.{k}")]
    scalars: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "bool": (bool,)}
    if type_name in scalars:
        ok = isinstance(value, scalars[type_name]) and not (
            type_name == "int" and isinstance(value, bool)
        )
        return [] if ok else [f"{path}: expected {type_name}, got {value!r}"]
    if type_name == "object":  # IntOrString and free-form fields
        return []
    model = getattr(k8s_models, type_name)
    if not isinstance(value, dict):
        return [f"{path}: expected a {type_name} mapping"]
    by_json = {json_key: attr for attr, json_key in model.attribute_map.items()}
    errors = []
    for key, item in value.items():
        if key not in by_json:
            errors.append(f"{path}.{key}: not a field of {type_name}")
        else:
            errors.extend(_conforms(item, model.openapi_types[by_json[key]], f"{path}.{key}"))
    return errors


@pytest.mark.parametrize("case", CASES)
def test_objects_use_only_real_kubernetes_fields(case: str, tool: ToolContext, image: str) -> None:
    for obj in _objects(case, tool, image):
        assert _conforms(obj, _KINDS[obj["kind"]], obj["kind"]) == []


def test_conformance_check_catches_a_typo(tool: ToolContext, image: str) -> None:
    obj = build_objects(JobSpec.model_validate(CASES["oneoff-plain"]), tool, image)[0]
    obj["spec"]["ttlSecondsAfterFinish"] = 30
    obj["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = 1
    assert len(_conforms(obj, "V1Job", "Job")) == 2


# --- the mapping rules, checked directly on top of the golden files ---


def _pod(obj: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = pod_template_of(obj)["spec"]
    return pod


@pytest.mark.parametrize("case", CASES)
def test_every_pod_is_confined_to_the_tool(case: str, tool: ToolContext, image: str) -> None:
    spec = JobSpec.model_validate(CASES[case])
    primary = build_objects(spec, tool, image)[0]
    pod = _pod(primary)
    assert pod["securityContext"] == {
        "runAsUser": tool.uid,
        "runAsGroup": tool.uid,
        "fsGroup": tool.uid,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    (container,) = pod["containers"]
    assert container["name"] == "job"
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert pod["terminationGracePeriodSeconds"] == 15
    assert pod["restartPolicy"] == ("Always" if spec.kind == "continuous" else "Never")
    host_paths = [v["hostPath"]["path"] for v in pod.get("volumes", []) if "hostPath" in v]
    assert host_paths == ([tool.home_host_path] if spec.mount == "all" else [])
    assert container["resources"]["requests"] == {"cpu": spec.cpu, "memory": spec.memory}
    assert container["resources"]["limits"] == container["resources"]["requests"]


@pytest.mark.parametrize("case", CASES)
def test_labels_everywhere(case: str, tool: ToolContext, image: str) -> None:
    spec = JobSpec.model_validate(CASES[case])
    objects = build_objects(spec, tool, image)
    component = {"one-off": "jobs", "scheduled": "cronjobs", "continuous": "deployments"}
    expected = {
        "toolforge": "tool",
        "app.kubernetes.io/managed-by": "toolforge-jobs-framework",
        "app.kubernetes.io/created-by": tool.name,
        "app.kubernetes.io/component": component[spec.kind],
        "app.kubernetes.io/name": spec.name,
        "app.kubernetes.io/version": "2",
        "jobs.toolforge.org/emails": spec.emails,
        "toolforge.org/mount-storage": spec.mount,
    }
    if spec.filelog:
        expected["jobs.toolforge.org/filelog"] = "yes"
    for obj in objects:
        assert obj["metadata"]["labels"] == expected
        assert obj["metadata"]["namespace"] == "tool-tf-test"
    assert pod_template_of(objects[0])["metadata"]["labels"] == expected
    if spec.kind == "scheduled":
        assert objects[0]["spec"]["jobTemplate"]["metadata"]["labels"] == expected


def test_deployment_selector_and_service_match_the_pods(tool: ToolContext, image: str) -> None:
    deployment, service = build_objects(
        JobSpec.model_validate(CASES["continuous-3-replicas-http"]), tool, image
    )
    selector = deployment["spec"]["selector"]["matchLabels"]
    labels = pod_template_of(deployment)["metadata"]["labels"]
    assert selector.items() <= labels.items()
    assert service["spec"]["selector"] == selector
    # labels that can change with the spec are not part of the immutable selector
    assert "jobs.toolforge.org/emails" not in selector
    assert service["metadata"]["name"] == "web"
    assert service["spec"]["type"] == "ClusterIP"
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate"}


def test_udp_port_gets_a_service_but_no_probe(tool: ToolContext, image: str) -> None:
    spec = JobSpec(
        name="dns", cmd="./dns", imagename="bookworm", continuous=True, port=53, port_protocol="udp"
    )
    deployment, service = build_objects(spec, tool, image)
    (container,) = _pod(deployment)["containers"]
    assert "startupProbe" not in container
    assert "livenessProbe" not in container
    assert container["ports"] == [{"containerPort": 53, "protocol": "UDP"}]
    assert container["env"] == [
        {"name": "HOME", "value": "/data/project/tf-test"},
        {"name": "TOOL_DATA_DIR", "value": "/data/project/tf-test"},
        {"name": "PORT", "value": "53"},
    ]
    assert service["spec"]["ports"] == [{"port": 53, "targetPort": 53, "protocol": "UDP"}]


def test_scheduled_job_uses_the_resolved_line(tool: ToolContext, image: str) -> None:
    spec = JobSpec.model_validate(CASES["scheduled-daily-timeout"])
    (cronjob,) = build_objects(spec, tool, image)
    assert (
        cronjob["spec"]["schedule"]
        == resolve_schedule("@daily", tool=tool.name, job=spec.name).actual
    )
    assert schedule_actual_of(cronjob) == cronjob["spec"]["schedule"]
    assert cronjob["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] == 3600
    assert job_from_objects([cronjob]).schedule == "@daily"


# --- commands and filelog paths ---


@pytest.mark.parametrize(
    "cmd",
    [
        "echo one && echo two",
        "for i in 1 2 3; do echo $i; done",
        "seq 3 | tail -1",
        "./run.sh --name 'a b' \"c d\"",
    ],
)
def test_standard_image_runs_the_command_under_sh(tool: ToolContext, cmd: str) -> None:
    """REFERENCE.md: the command of a standard image always runs under ``/bin/sh -c``, so
    ``&&``, pipes and loops work as users write them (issue 13: ``for`` exited 128 when split)."""
    spec = JobSpec(name="x", cmd=cmd, imagename="bookworm", filelog=False)
    assert container_command(spec, tool) == ["/bin/sh", "-c", "--", cmd]


def test_build_service_image_without_filelog_is_split_and_run_directly(tool: ToolContext) -> None:
    spec = JobSpec(
        name="x", cmd="./run.sh --name 'a b' \"c d\"", imagename="tool-tf-test/app:latest"
    )
    assert spec.mount == "none"
    assert spec.filelog is False
    assert container_command(spec, tool) == ["launcher", "./run.sh", "--name", "a b", "c d"]


def test_build_service_image_with_filelog_runs_the_shell_behind_the_launcher(
    tool: ToolContext,
) -> None:
    spec = JobSpec(
        name="x",
        cmd="web && echo ok",
        imagename="tool-tf-test/app:latest",
        mount="all",
        filelog=True,
    )
    assert container_command(spec, tool) == [
        "launcher",
        "/bin/sh",
        "-c",
        "--",
        "exec 1>>/data/project/tf-test/x.out;exec 2>>/data/project/tf-test/x.err;web && echo ok",
    ]


def test_build_service_image_pods_pull_with_the_secret_and_run_the_launcher(
    tool: ToolContext,
) -> None:
    """REFERENCE.md: launcher prefix (script health checks too), NO_HOME, the pull Secret;
    a tag is pulled Always (a new build moves it), a digest IfNotPresent."""
    spec = JobSpec(
        name="web",
        cmd="web",
        imagename="tool-tf-test/app:latest",
        continuous=True,
        health_check=ScriptHealthCheck(type="script", script="test -f /tmp/ok"),
    )
    (deployment,) = build_objects(spec, tool, BUILT_REF, pull_secret="pull")  # noqa: S106 - a Secret's name
    pod = _pod(deployment)
    (container,) = pod["containers"]
    assert pod["imagePullSecrets"] == [{"name": "pull"}]
    assert container["command"] == ["launcher", "web"]
    assert container["startupProbe"]["exec"]["command"] == [
        "launcher",
        "/bin/sh",
        "-c",
        "test -f /tmp/ok",
    ]
    assert container["livenessProbe"]["exec"] == container["startupProbe"]["exec"]
    assert container["env"] == [{"name": "NO_HOME", "value": "1"}]
    assert container["imagePullPolicy"] == "Always"
    assert "volumes" not in pod
    assert "volumeMounts" not in container
    pinned = build_objects(spec, tool, BUILT_REF + "@sha256:" + "a" * 64)
    assert _pod(pinned[0])["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert "imagePullSecrets" not in _pod(pinned[0])


def test_standard_image_pods_have_no_pull_secret_and_no_launcher(
    tool: ToolContext, image: str
) -> None:
    spec = JobSpec(
        name="web",
        cmd="web",
        imagename="python3.11",
        continuous=True,
        health_check=ScriptHealthCheck(type="script", script="true"),
    )
    pod = _pod(build_objects(spec, tool, image)[0])
    assert "imagePullSecrets" not in pod
    assert pod["containers"][0]["startupProbe"]["exec"]["command"] == ["/bin/sh", "-c", "true"]
    assert all(e["name"] != "NO_HOME" for e in pod["containers"][0]["env"])


def test_command_with_filelog_appends_to_files_in_home(tool: ToolContext) -> None:
    spec = JobSpec(name="x", cmd="a && b", imagename="bookworm", filelog=True)
    assert container_command(spec, tool) == [
        "/bin/sh",
        "-c",
        "--",
        "exec 1>>/data/project/tf-test/x.out;exec 2>>/data/project/tf-test/x.err;a && b",
    ]


def test_filelog_is_on_by_default_for_a_standard_image(tool: ToolContext) -> None:
    spec = JobSpec(name="x", cmd="a", imagename="bookworm")
    assert (spec.mount, spec.filelog) == ("all", True)
    assert spec.user_set == {"name", "cmd", "imagename"}
    assert container_command(spec, tool)[-1].startswith("exec 1>>/data/project/tf-test/x.out;")


def test_pods_that_mount_the_home_get_home_and_tool_data_dir(tool: ToolContext) -> None:
    """As upstream's volume admission sets them (REFERENCE.md); not for ``mount: none``."""
    mounted = JobSpec(name="x", cmd="a", imagename="bookworm")
    assert container_env(mounted, tool) == [
        {"name": "HOME", "value": "/data/project/tf-test"},
        {"name": "TOOL_DATA_DIR", "value": "/data/project/tf-test"},
    ]
    unmounted = JobSpec(name="x", cmd="a", imagename="tool-tf-test/app:latest")
    assert container_env(unmounted, tool) == [{"name": "NO_HOME", "value": "1"}]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("out.log", "/data/project/tf-test/out.log"),
        ("logs/../out.log", "/data/project/tf-test/out.log"),
        ("/data/project/tf-test/logs/x.out", "/data/project/tf-test/logs/x.out"),
        ("my logs/x;rm -rf ~.out", "/data/project/tf-test/my logs/x;rm -rf ~.out"),
    ],
)
def test_filelog_paths_resolve_inside_home(tool: ToolContext, given: str, expected: str) -> None:
    spec = JobSpec(name="x", cmd="c", imagename="i", filelog=True, filelog_stdout=given)
    paths = resolve_filelog_paths(spec, tool)
    assert paths == (expected, "/data/project/tf-test/x.err")
    # a shell reads the path as one word, whatever it contains
    lexer = shlex.shlex(container_command(spec, tool)[3], posix=True, punctuation_chars=True)
    assert list(lexer)[:5] == ["exec", "1", ">>", expected, ";"]


@pytest.mark.parametrize(
    "given",
    ["../other/x.out", "/tmp/x.out", "/data/project/tf-test", ".", "/data/project/tf-testx/a"],
)
def test_filelog_paths_outside_home_are_refused(tool: ToolContext, image: str, given: str) -> None:
    spec = JobSpec(name="x", cmd="c", imagename="i", filelog=True, filelog_stderr=given)
    with pytest.raises(JobSpecError) as exc:
        build_objects(spec, tool, image)
    assert exc.value.field == "filelog_stderr"
    assert str(exc.value).startswith("filelog_stderr must be a file inside the tool's home")


def test_tool_context_refuses_root_and_bad_names() -> None:
    with pytest.raises(ValueError, match="uid"):
        ToolContext(name="a", uid=0, home_host_path="/h")
    with pytest.raises(ValueError, match="DNS-1123"):
        ToolContext(name="A_b", uid=5, home_host_path="/h")
    with pytest.raises(ValueError, match="absolute"):
        ToolContext(name="a", uid=5, home_host_path="h")


# --- the way back ---


@pytest.mark.parametrize("case", CASES)
def test_round_trip(case: str, tool: ToolContext, image: str) -> None:
    spec = JobSpec.model_validate(CASES[case])
    objects = build_objects(spec, tool, image)
    # as the API server returns them: JSON, with more objects around (pods, other jobs)
    returned = json.loads(json.dumps([{"kind": "Pod", "metadata": {}}, *objects]))
    back = job_from_objects(returned)
    assert back == spec
    assert back.model_dump() == spec.model_dump()
    assert image_of(returned[1]) == image


def test_round_trip_keeps_what_the_user_wrote(tool: ToolContext, image: str) -> None:
    spec = JobSpec(
        name="x",
        cmd="c",
        imagename="tf-python311",
        cpu="0.5",
        filelog=True,
        filelog_stdout="./logs/../x.log",
    )
    back = job_from_objects(build_objects(spec, tool, image))
    assert (back.imagename, back.cpu, back.filelog_stdout) == (
        "tf-python311",
        "0.5",
        "./logs/../x.log",
    )


def test_specs_equal_compares_values_not_spelling() -> None:
    a = JobSpec(name="x", cmd="c", imagename="i", cpu="0.5", memory="1Gi")
    assert specs_equal(a, JobSpec(name="x", cmd="c", imagename="i", cpu="500m", memory="1024Mi"))
    assert not specs_equal(a, JobSpec(name="x", cmd="c", imagename="i", cpu="0.5", memory="1G"))
    assert not specs_equal(a, JobSpec(name="x", cmd="c ", imagename="i", cpu="0.5", memory="1Gi"))


def test_objects_without_a_spec_are_unreadable(tool: ToolContext, image: str) -> None:
    (job,) = build_objects(JobSpec(name="x", cmd="c", imagename="i"), tool, image)
    job["metadata"]["annotations"][SPEC_ANNOTATION] = '{"name": "x"}'
    with pytest.raises(UnreadableJobError, match="bad"):
        job_from_objects([job])
    job["metadata"]["annotations"][SPEC_ANNOTATION] = json.dumps(
        JobSpec(name="y", cmd="c", imagename="i").model_dump(mode="json")
    )
    with pytest.raises(UnreadableJobError, match="for job y"):
        job_from_objects([job])
    del job["metadata"]["annotations"]
    with pytest.raises(UnreadableJobError):
        job_from_objects([job])


# --- restart ---


def test_deployment_restart_patch() -> None:
    now = dt.datetime(2024, 5, 1, 14, 30, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    patch = deployment_restart_patch(now)
    assert patch == {
        "spec": {
            "template": {
                "metadata": {"annotations": {RESTARTED_AT_ANNOTATION: "2024-05-01T12:30:05Z"}}
            }
        }
    }
    with pytest.raises(ValueError, match="aware"):
        deployment_restart_patch(dt.datetime(2024, 5, 1))


def test_manual_run_of_a_cronjob(tool: ToolContext, image: str) -> None:
    (cronjob,) = build_objects(JobSpec.model_validate(CASES["scheduled-cron"]), tool, image)
    job = manual_job_from_cronjob(cronjob, cronjob_name="poll", cronjob_uid="u-1", suffix="a1b2c")
    assert job["kind"] == "Job"
    assert job["metadata"]["name"] == "poll-manual-a1b2c"
    assert job["metadata"]["namespace"] == "tool-tf-test"
    assert job["metadata"]["labels"] == cronjob["spec"]["jobTemplate"]["metadata"]["labels"]
    assert job["metadata"]["annotations"] == {"cronjob.kubernetes.io/instantiate": "manual"}
    assert job["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "name": "poll",
            "uid": "u-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert job["spec"] == cronjob["spec"]["jobTemplate"]["spec"]
    assert job["spec"] is not cronjob["spec"]["jobTemplate"]["spec"]
    assert _conforms(job, "V1Job", "Job") == []


def test_manual_run_name_fits_a_label_value(tool: ToolContext, image: str) -> None:
    name = "a" * 49 + "-bc"  # 52 characters, the longest job name
    spec = JobSpec(name=name, cmd="c", imagename="i", schedule="@hourly")
    (cronjob,) = build_objects(spec, tool, image)
    job = manual_job_from_cronjob(cronjob, cronjob_name=name, cronjob_uid="u", suffix="abcde")
    # shortened to 63 characters, without leaving a dangling '-'
    assert job["metadata"]["name"] == "a" * 49 + "-manual-abcde"
    short = manual_job_from_cronjob(cronjob, cronjob_name=name, cronjob_uid="u", suffix="z")
    assert short["metadata"]["name"] == name + "-manual-z"
    with pytest.raises(ValueError, match="suffix"):
        manual_job_from_cronjob(cronjob, cronjob_name=name, cronjob_uid="u", suffix="Bad!")
