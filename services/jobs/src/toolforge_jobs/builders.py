"""Pure builders: a validated :class:`~toolforge_jobs.models.JobSpec` -> Kubernetes objects.

Objects are plain JSON dicts in the API's camelCase, ready for kubernetes_asyncio (or
``kubectl apply``). The mapping is REFERENCE.md, "Kubernetes mapping":

- one-off -> ``batch/v1`` Job (``backoffLimit`` = retry, ``ttlSecondsAfterFinished`` 30);
- scheduled -> ``batch/v1`` CronJob (``concurrencyPolicy: Forbid``,
  ``startingDeadlineSeconds`` 30, history limits 1, ``activeDeadlineSeconds`` = timeout);
- continuous -> ``apps/v1`` Deployment (``Recreate`` with 1 replica, else ``RollingUpdate``)
  plus a ClusterIP Service named after the job when it has a port; a published job's pods
  get a ``preStop`` sleep (its ``HTTPRoute`` is built by :mod:`toolforge_jobs.routes`).

Every object, Job template and pod carries the labels of :func:`job_labels`. The primary
object (Job, CronJob or Deployment) also carries annotation :data:`SPEC_ANNOTATION`: the
fields of the spec the user set, as JSON (:meth:`JobSpec.stored`). :func:`job_from_objects`
reads it back (validating it, which applies the defaults again), so list/show/dump return
exactly what the user gave, ``include_unset=false`` can leave out the rest, and PATCH can
compare specs. The user's schedule text is in that
spec; the CronJob's ``spec.schedule`` holds the actual line.

Pods run as the tool's uid (runAsUser/runAsGroup/fsGroup, runAsNonRoot), with all
capabilities dropped, no privilege escalation and seccomp ``RuntimeDefault``; the single
container is called ``job``. With ``mount: all`` the tool's home is a hostPath volume mounted at
``/data/project/<tool>``, which is also the working directory.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import posixpath
import re
import shlex
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from toolforge_auth.tools import JOBS_MANAGER, namespace_for, validate_tool_name
from toolforge_jobs.builtimages import LAUNCHER, NO_HOME_ENV
from toolforge_jobs.errors import JobSpecError
from toolforge_jobs.models import (
    HttpHealthCheck,
    JobSpec,
    JobType,
    ScriptHealthCheck,
    is_buildservice_image,
    pod_home,
)
from toolforge_jobs.schedule import resolve_schedule

__all__ = [
    "CONTAINER_NAME",
    "HOME_VOLUME",
    "INSTANTIATE_ANNOTATION",
    "LIVENESS_PROBE",
    "MANAGED_BY",
    "PRESTOP_SLEEP_SECONDS",
    "RESTARTED_AT_ANNOTATION",
    "SPEC_ANNOTATION",
    "STARTUP_PROBE",
    "Component",
    "ToolContext",
    "UnreadableJobError",
    "build_objects",
    "component_for",
    "container_command",
    "container_env",
    "deployment_restart_patch",
    "image_of",
    "job_from_objects",
    "job_labels",
    "manual_job_from_cronjob",
    "pod_template_of",
    "resolve_filelog_paths",
    "schedule_actual_of",
    "selector_labels",
]

Component = Literal["jobs", "cronjobs", "deployments"]

#: ``app.kubernetes.io/managed-by`` of the jobs framework's objects (the tool contract).
MANAGED_BY = JOBS_MANAGER
#: Annotation of the primary object holding the normalised spec as JSON.
SPEC_ANNOTATION = "jobs.toolforge.org/spec"
#: Pod template annotation whose change makes a Deployment roll out (as ``kubectl rollout
#: restart`` does).
RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
#: Annotation of a Job started by hand from a CronJob (as ``kubectl create job --from``).
INSTANTIATE_ANNOTATION = "cronjob.kubernetes.io/instantiate"
CONTAINER_NAME = "job"
HOME_VOLUME = "home"
LABEL_VERSION = "2"
TERMINATION_GRACE_SECONDS = 15
#: Seconds a pod of a published job keeps serving after it is told to stop (``preStop``
#: sleep, within :data:`TERMINATION_GRACE_SECONDS`): the Gateway (Traefik, which applies
#: EndpointSlice changes at most every 2 s) stops sending it requests meanwhile, so a rolling
#: restart drops none (docs/web-traffic.md).
PRESTOP_SLEEP_SECONDS = 5
JOB_TTL_SECONDS = 30
STARTING_DEADLINE_SECONDS = 30
#: Probe timing: up to 5 minutes (60 x 5 s) to start, then 3 failures 10 s apart restart it.
STARTUP_PROBE: dict[str, int] = {"periodSeconds": 5, "failureThreshold": 60, "timeoutSeconds": 5}
LIVENESS_PROBE: dict[str, int] = {"periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 5}
# Job names carry a label with the Job's name, and label values have at most 63 characters.
_MAX_JOB_NAME = 63
_SUFFIX_RE = re.compile(r"^[a-z0-9]{1,10}$")
_PRIMARY_KINDS = ("Job", "CronJob", "Deployment")
_COMPONENTS: dict[JobType, Component] = {
    "one-off": "jobs",
    "scheduled": "cronjobs",
    "continuous": "deployments",
}


class UnreadableJobError(ValueError):
    """The objects carry no readable job spec (not made by this API, or edited by hand)."""


@dataclass(frozen=True)
class ToolContext:
    """The tool a job belongs to.

    ``name``: the tool (namespace ``tool-<name>``); ``uid``: its numeric uid (namespace
    annotation ``toolforge.org/uid``), which pods run as; ``home_host_path``: the host
    directory of its home (namespace annotation ``toolforge.org/home``, the one hostPath the
    tool pod policy allows), mounted at ``/data/project/<name>`` with ``mount: all``.

    Raises (on construction):
        ValueError: ``name`` is not a tool name
            (:func:`toolforge_auth.tools.validate_tool_name`), or ``uid`` is not a positive integer
            (pods must not run as root).
    """

    name: str
    uid: int
    home_host_path: str

    def __post_init__(self) -> None:
        validate_tool_name(self.name)
        if self.uid < 1:
            raise ValueError(f"tool uid must be positive (got {self.uid})")
        if not posixpath.isabs(self.home_host_path):
            raise ValueError(f"home_host_path must be absolute (got {self.home_host_path!r})")

    @property
    def namespace(self) -> str:
        """``tool-<name>``."""
        return namespace_for(self.name)

    @property
    def home(self) -> str:
        """The home as the pods see it: ``/data/project/<name>``."""
        return pod_home(self.name)


def component_for(job_type: JobType) -> Component:
    """The ``app.kubernetes.io/component`` value of a job type."""
    return _COMPONENTS[job_type]


def selector_labels(job_name: str, tool: ToolContext, component: Component) -> dict[str, str]:
    """The labels that never change for a job: Deployment and Service selectors use them."""
    return {
        "toolforge": "tool",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/created-by": tool.name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/name": job_name,
    }


def job_labels(spec: JobSpec, tool: ToolContext) -> dict[str, str]:
    """All labels of a job's objects and pods (REFERENCE.md, "labels")."""
    labels = {
        **selector_labels(spec.name, tool, component_for(spec.kind)),
        "app.kubernetes.io/version": LABEL_VERSION,
        "jobs.toolforge.org/emails": spec.emails,
        "toolforge.org/mount-storage": spec.mount or "all",
    }
    if spec.filelog:
        labels["jobs.toolforge.org/filelog"] = "yes"
    return labels


def _log_path(value: str | None, default: str, field: str, tool: ToolContext) -> str:
    if value is None:
        return f"{tool.home}/{default}"
    path = posixpath.normpath(posixpath.join(tool.home, value))
    if not path.startswith(tool.home + "/"):
        raise JobSpecError(
            field, f"must be a file inside the tool's home {tool.home} (got {value!r})"
        )
    return path


def resolve_filelog_paths(spec: JobSpec, tool: ToolContext) -> tuple[str, str] | None:
    """The absolute ``(stdout, stderr)`` files of a job with ``filelog``, else ``None``.

    Defaults are ``<home>/<job>.out`` and ``<home>/<job>.err``; relative paths are taken
    from the home.

    Raises:
        JobSpecError: (field ``filelog_stdout`` / ``filelog_stderr``) the path leaves the
            home (``../x``, ``/tmp/x``) or is the home itself.
    """
    if not spec.filelog:
        return None
    return (
        _log_path(spec.filelog_stdout, f"{spec.name}.out", "filelog_stdout", tool),
        _log_path(spec.filelog_stderr, f"{spec.name}.err", "filelog_stderr", tool),
    )


def container_command(spec: JobSpec, tool: ToolContext) -> list[str]:
    """The container's ``command`` (REFERENCE.md, "Kubernetes mapping" and "The wire as
    production serves it").

    A standard image always runs the command under ``/bin/sh -c --``, so ``a && b``, pipes and
    ``for`` loops work as users write them; with filelog the shell text is
    ``exec 1>>OUT;exec 2>>ERR;<cmd>`` (paths shell-quoted). Only an image built by the build
    service without filelog gets ``cmd`` split shell-style (:func:`shlex.split`) and run
    directly. Every command of a build service image runs behind the buildpacks
    ``launcher`` (``launcher <argv>``, or ``launcher /bin/sh -c -- <text>`` with filelog),
    which sets up the app's environment and finds Procfile process names on ``PATH``.

    Raises:
        JobSpecError: as :func:`resolve_filelog_paths`.
    """
    paths = resolve_filelog_paths(spec, tool)
    built = is_buildservice_image(spec.imagename)
    if paths is None:
        if built:
            return [LAUNCHER, *shlex.split(spec.cmd)]
        return ["/bin/sh", "-c", "--", spec.cmd]
    out, err = (shlex.quote(p) for p in paths)
    shell = ["/bin/sh", "-c", "--", f"exec 1>>{out};exec 2>>{err};{spec.cmd}"]
    return [LAUNCHER, *shell] if built else shell


def container_env(spec: JobSpec, tool: ToolContext) -> list[dict[str, str]]:
    """The container's environment: ``HOME`` and ``TOOL_DATA_DIR`` (the home,
    ``/data/project/<tool>``) when the home is mounted, as upstream's volume admission sets
    them; ``NO_HOME=1`` for a build service image (REFERENCE.md); ``PORT`` when the job has
    a port."""
    env = []
    if spec.mount == "all":
        env += [
            {"name": "HOME", "value": tool.home},
            {"name": "TOOL_DATA_DIR", "value": tool.home},
        ]
    if is_buildservice_image(spec.imagename):
        env.append(dict(NO_HOME_ENV))
    if spec.port is not None:
        env.append({"name": "PORT", "value": str(spec.port)})
    return env


def _probe_handler(spec: JobSpec) -> dict[str, Any] | None:
    check = spec.health_check
    if isinstance(check, ScriptHealthCheck):
        script = ["/bin/sh", "-c", check.script]
        if is_buildservice_image(spec.imagename):
            script.insert(0, LAUNCHER)
        return {"exec": {"command": script}}
    if isinstance(check, HttpHealthCheck):
        return {"httpGet": {"path": check.path, "port": spec.port}}
    if spec.port is not None and spec.port_protocol == "tcp":
        return {"tcpSocket": {"port": spec.port}}
    return None


def _pull_policy(spec: JobSpec, image: str) -> str:
    """``Always`` for a build service image named by tag (a new build moves the tag; the
    kubelet then pulls only the layers it lacks), else ``IfNotPresent``."""
    if is_buildservice_image(spec.imagename) and "@" not in image:
        return "Always"
    return "IfNotPresent"


def _container(spec: JobSpec, tool: ToolContext, image: str) -> dict[str, Any]:
    resources = {"cpu": spec.cpu, "memory": spec.memory}
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": _pull_policy(spec, image),
        "command": container_command(spec, tool),
    }
    if spec.mount == "all":
        container["workingDir"] = tool.home
    env = container_env(spec, tool)
    if env:
        container["env"] = env
    if spec.port is not None:
        container["ports"] = [
            {"containerPort": spec.port, "protocol": (spec.port_protocol or "tcp").upper()}
        ]
    container["resources"] = {"requests": dict(resources), "limits": dict(resources)}
    container["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    if spec.mount == "all":
        container["volumeMounts"] = [{"name": HOME_VOLUME, "mountPath": tool.home}]
    handler = _probe_handler(spec)
    if handler is not None:
        container["startupProbe"] = {**copy.deepcopy(handler), **STARTUP_PROBE}
        container["livenessProbe"] = {**handler, **LIVENESS_PROBE}
    if spec.publish is not None:
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": PRESTOP_SLEEP_SECONDS}}}
    return container


def _pod_template(
    spec: JobSpec, tool: ToolContext, image: str, pull_secret: str | None
) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "restartPolicy": "Always" if spec.kind == "continuous" else "Never",
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "securityContext": {
            "runAsUser": tool.uid,
            "runAsGroup": tool.uid,
            "fsGroup": tool.uid,
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(spec, tool, image)],
    }
    if pull_secret is not None:
        pod["imagePullSecrets"] = [{"name": pull_secret}]
    if spec.mount == "all":
        pod["volumes"] = [
            {"name": HOME_VOLUME, "hostPath": {"path": tool.home_host_path, "type": "Directory"}}
        ]
    return {"metadata": {"labels": job_labels(spec, tool)}, "spec": pod}


def _metadata(spec: JobSpec, tool: ToolContext, *, annotate: bool) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": spec.name,
        "namespace": tool.namespace,
        "labels": job_labels(spec, tool),
    }
    if annotate:
        stored = json.dumps(spec.stored(), sort_keys=True, separators=(",", ":"))
        metadata["annotations"] = {SPEC_ANNOTATION: stored}
    return metadata


def build_objects(
    spec: JobSpec, tool: ToolContext, image: str, *, pull_secret: str | None = None
) -> list[dict[str, Any]]:
    """The Kubernetes objects of a job: the primary object (Job, CronJob or Deployment)
    first, then the Service of a continuous job with a port.

    ``image`` is the resolved image reference (``ImageList.resolve(spec.imagename).image``,
    or for a build service image its reference at the registry's pull endpoint);
    ``pull_secret`` names the image pull Secret of the tool's namespace the pods use.

    Raises:
        JobSpecError: a filelog path leaves the home (see :func:`resolve_filelog_paths`).
    """
    template = _pod_template(spec, tool, image, pull_secret)
    metadata = _metadata(spec, tool, annotate=True)
    if spec.kind == "one-off":
        return [
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": metadata,
                "spec": {
                    "backoffLimit": spec.retry,
                    "ttlSecondsAfterFinished": JOB_TTL_SECONDS,
                    "template": template,
                },
            }
        ]
    if spec.kind == "scheduled":
        schedule = resolve_schedule(spec.schedule or "", tool=tool.name, job=spec.name)
        job_spec: dict[str, Any] = {"backoffLimit": spec.retry}
        if spec.timeout is not None:
            job_spec["activeDeadlineSeconds"] = spec.timeout
        job_spec["template"] = template
        return [
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": metadata,
                "spec": {
                    "schedule": schedule.actual,
                    "concurrencyPolicy": "Forbid",
                    "startingDeadlineSeconds": STARTING_DEADLINE_SECONDS,
                    "successfulJobsHistoryLimit": 1,
                    "failedJobsHistoryLimit": 1,
                    "jobTemplate": {
                        "metadata": {"labels": job_labels(spec, tool)},
                        "spec": job_spec,
                    },
                },
            }
        ]
    replicas = spec.replicas or 1
    selector = selector_labels(spec.name, tool, "deployments")
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata,
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": selector},
                "strategy": {"type": "Recreate" if replicas == 1 else "RollingUpdate"},
                "template": template,
            },
        }
    ]
    if spec.port is not None:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": _metadata(spec, tool, annotate=False),
                "spec": {
                    "type": "ClusterIP",
                    "selector": dict(selector),
                    "ports": [
                        {
                            "port": spec.port,
                            "targetPort": spec.port,
                            "protocol": (spec.port_protocol or "tcp").upper(),
                        }
                    ],
                },
            }
        )
    return objects


def _primary(objects: list[dict[str, Any]]) -> dict[str, Any]:
    for obj in objects:
        annotations = obj.get("metadata", {}).get("annotations") or {}
        if obj.get("kind") in _PRIMARY_KINDS and SPEC_ANNOTATION in annotations:
            return obj
    raise UnreadableJobError(f"none of the objects has annotation {SPEC_ANNOTATION}")


@functools.lru_cache(maxsize=4096)
def _parse_spec(raw: str) -> JobSpec:
    """The annotation's spec, validated (a tool can edit its objects); parsed once per text,
    since every list reads every job's annotation. Callers get copies."""
    return JobSpec.model_validate(json.loads(raw))


def job_from_objects(objects: list[dict[str, Any]]) -> JobSpec:
    """The spec a job was built from: the inverse of :func:`build_objects`.

    ``objects`` may hold anything read for the job (its Service, child Jobs, pods); the
    first Job, CronJob or Deployment with :data:`SPEC_ANNOTATION` is used.

    Raises:
        UnreadableJobError: no such object, or its annotation is not a valid spec.
    """
    primary = _primary(objects)
    raw = primary["metadata"]["annotations"][SPEC_ANNOTATION]
    name = primary["metadata"].get("name")
    try:
        spec = _parse_spec(raw).model_copy()
    except (ValueError, ValidationError) as exc:
        raise UnreadableJobError(
            f"{primary.get('kind')} {name}: bad {SPEC_ANNOTATION}: {exc}"
        ) from None
    if spec.name != name:
        raise UnreadableJobError(f"{primary.get('kind')} {name}: spec is for job {spec.name}")
    return spec


def pod_template_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The pod template of a Job, CronJob or Deployment dict."""
    if obj.get("kind") == "CronJob":
        template: dict[str, Any] = obj["spec"]["jobTemplate"]["spec"]["template"]
    else:
        template = obj["spec"]["template"]
    return template


def image_of(obj: dict[str, Any]) -> str:
    """The image of the ``job`` container of a Job, CronJob or Deployment dict."""
    containers = pod_template_of(obj)["spec"]["containers"]
    container = next((c for c in containers if c.get("name") == CONTAINER_NAME), containers[0])
    image: str = container["image"]
    return image


def schedule_actual_of(obj: dict[str, Any]) -> str | None:
    """The cron line of a CronJob dict; ``None`` for other kinds."""
    if obj.get("kind") != "CronJob":
        return None
    schedule: str = obj["spec"]["schedule"]
    return schedule


def deployment_restart_patch(now: dt.datetime) -> dict[str, Any]:
    """A merge patch that makes a Deployment replace its pods (``kubectl rollout restart``):
    it sets pod template annotation :data:`RESTARTED_AT_ANNOTATION` to ``now`` (RFC 3339,
    UTC).

    Raises:
        ValueError: ``now`` is naive.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    stamp = now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: stamp}}}}}


def manual_job_from_cronjob(
    cronjob: dict[str, Any], *, cronjob_name: str, cronjob_uid: str, suffix: str
) -> dict[str, Any]:
    """A Job that runs a CronJob now (``kubectl create job --from=cronjob/NAME``).

    The Job is ``<cronjob>-manual-<suffix>`` (the CronJob name shortened when the result would
    pass 63 characters), in the CronJob's namespace, with its ``jobTemplate`` labels,
    annotations and spec, annotation ``cronjob.kubernetes.io/instantiate: manual`` and a
    controller ownerReference to the CronJob (so the CronJob's history limit and
    ``concurrencyPolicy`` apply, and deleting the CronJob deletes it).

    Raises:
        ValueError: ``suffix`` is not 1-10 lower case letters or digits.
    """
    if not _SUFFIX_RE.fullmatch(suffix):
        raise ValueError(f"suffix must be 1-10 lower case letters or digits (got {suffix!r})")
    tail = f"-manual-{suffix}"
    name = cronjob_name[: _MAX_JOB_NAME - len(tail)].rstrip("-.") + tail
    template = cronjob["spec"]["jobTemplate"]
    template_meta = template.get("metadata") or {}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": cronjob["metadata"]["namespace"],
            "labels": dict(template_meta.get("labels") or {}),
            "annotations": {
                **(template_meta.get("annotations") or {}),
                INSTANTIATE_ANNOTATION: "manual",
            },
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": cronjob_name,
                    "uid": cronjob_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": copy.deepcopy(template["spec"]),
    }
