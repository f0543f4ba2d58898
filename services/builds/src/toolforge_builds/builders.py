"""Pure builders: a validated start request -> the Tekton PipelineRun dict, and back.

The PipelineRun follows REFERENCE.md "Builds API (v1)"::

    apiVersion: tekton.dev/v1
    kind: PipelineRun
    metadata:
      generateName: <tool>-buildpacks-pipelinerun-
      namespace: image-build                        # settings.namespace
      labels: {user: <tool>, app.kubernetes.io/managed-by: toolforge-builds-api}
      annotations:
        builds.toolforge.org/resolved-commit: <commit>
        builds.toolforge.org/use-latest-versions: "true" | "false"
        builds.toolforge.org/use-deprecated-versions: "true" | "false"
    spec:
      pipelineRef: {name: buildpacks}               # settings.pipeline_name
      taskRunTemplate: {serviceAccountName: ...}    # settings.service_account (push creds)
      params: BUILDER_IMAGE, RUN_IMAGE, APP_IMAGE, SOURCE_URL, SOURCE_REFERENCE (the resolved
              commit), UNRESOLVED_SOURCE_REFERENCE (the ref asked for, HEAD by default),
              ENV_VARS (array of K=V, sorted by name)

``APP_IMAGE`` is ``<registry>/tool-<tool>/<image_name or tool-<tool>>:latest``. Once the
build has pushed, the PipelineRun's result ``APP_IMAGE_DIGEST`` (``sha256:<hex>``, written by
the buildpacks Pipeline's export step) makes the build's ``destination_image``
``<APP_IMAGE>@sha256:<hex>``.

Tekton rejects PipelineRun names longer than 63 characters (``validate.ObjectMetadata``);
``generateName`` adds 5 characters, so for tool names longer than 34 characters the prefix
is shortened to ``<tool>-`` (cut to fit). Ownership is decided by the ``user`` label
(:func:`belongs_to_tool`), never by the name prefix.

Nothing here talks to the cluster; the storage layer sends these dicts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from toolforge_auth.tools import namespace_for, validate_tool_name
from toolforge_builds.models import (
    COMMIT_RE,
    HIDDEN_VALUE,
    Build,
    BuildParameters,
    BuildRequest,
    NewBuild,
)
from toolforge_builds.settings import BuildsSettings
from toolforge_builds.status import build_state

__all__ = [
    "API_VERSION",
    "COMMIT_ANNOTATION",
    "DEPRECATED_VERSIONS_ANNOTATION",
    "DIGEST_RESULT",
    "KIND",
    "LATEST_VERSIONS_ANNOTATION",
    "MANAGED_BY",
    "TOOL_LABEL",
    "app_image",
    "belongs_to_tool",
    "build_from_pipelinerun",
    "build_pipelinerun",
    "builder_image_for",
    "builder_warnings",
    "cancel_patch",
    "destination_image",
    "envvar_values",
    "generate_name_for",
    "new_build_from_pipelinerun",
    "parameters_from_pipelinerun",
    "tool_label_selector",
    "wire_time",
]

API_VERSION = "tekton.dev/v1"
#: REFERENCE.md: a build's PipelineRun carries the label ``user: <tool>``.
TOOL_LABEL = "user"
KIND = "PipelineRun"
COMMIT_ANNOTATION = "builds.toolforge.org/resolved-commit"
LATEST_VERSIONS_ANNOTATION = "builds.toolforge.org/use-latest-versions"
DEPRECATED_VERSIONS_ANNOTATION = "builds.toolforge.org/use-deprecated-versions"
#: PipelineRun result with the digest of the pushed image (devtools buildpacks Pipeline).
DIGEST_RESULT = "APP_IMAGE_DIGEST"
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
MANAGED_BY = {"app.kubernetes.io/managed-by": "toolforge-builds-api"}
DEFAULT_REF = "HEAD"
_NAME_SUFFIX = "-buildpacks-pipelinerun-"
_MAX_NAME = 63  # Tekton validate.ObjectMetadata
_GENERATED_SUFFIX_LENGTH = 5  # apiserver SimpleNameGenerator


def _check_tool(tool: str) -> str:
    """``tool`` if it is a tool name (:func:`toolforge_auth.tools.validate_tool_name`; a
    ``ValueError`` otherwise)."""
    return validate_tool_name(tool)


def generate_name_for(tool: str) -> str:
    """``metadata.generateName`` for ``tool``'s runs: ``<tool>-buildpacks-pipelinerun-``, or
    ``<tool>-`` (cut to fit) when the generated name would exceed 63 characters."""
    _check_tool(tool)
    prefix = tool + _NAME_SUFFIX
    if len(prefix) + _GENERATED_SUFFIX_LENGTH <= _MAX_NAME:
        return prefix
    return tool[: _MAX_NAME - _GENERATED_SUFFIX_LENGTH - 1].rstrip("-") + "-"


def app_image(tool: str, image_name: str | None, registry: str) -> str:
    """``<registry>/tool-<tool>/<image_name or tool-<tool>>:latest`` (REFERENCE.md)."""
    _check_tool(tool)
    namespace = namespace_for(tool)
    return f"{registry}/{namespace}/{image_name or namespace}:latest"


def builder_image_for(request: BuildRequest, settings: BuildsSettings) -> str:
    """The builder image: ``builder_image_latest`` / ``builder_image_deprecated`` when asked
    for and configured, else ``builder_image``."""
    if request.use_latest_versions and settings.builder_image_latest:
        return settings.builder_image_latest
    if request.use_deprecated_versions and settings.builder_image_deprecated:
        return settings.builder_image_deprecated
    return settings.builder_image


def builder_warnings(request: BuildRequest, settings: BuildsSettings) -> list[str]:
    """Warnings for the start answer: a version flag was set but this platform has no such
    builder configured, so the default one builds."""
    asked = (
        ("use_latest_versions", request.use_latest_versions, settings.builder_image_latest),
        (
            "use_deprecated_versions",
            request.use_deprecated_versions,
            settings.builder_image_deprecated,
        ),
    )
    return [
        f"{flag}: this platform has no other builder configured; the default builder "
        "(current buildpack versions) was used"
        for flag, wanted, image in asked
        if wanted and not image
    ]


def build_pipelinerun(
    request: BuildRequest, *, tool: str, resolved_commit: str, settings: BuildsSettings
) -> dict[str, Any]:
    """The PipelineRun dict (camelCase, ``tekton.dev/v1``) that builds ``request`` for ``tool``.

    ``resolved_commit`` is the full commit id ``request.ref`` resolved to (see
    :mod:`toolforge_builds.gitref`). Raises ``ValueError`` for an invalid tool name or a
    ``resolved_commit`` that is not 40 or 64 lower-case hex digits.
    """
    _check_tool(tool)
    if not COMMIT_RE.fullmatch(resolved_commit):
        raise ValueError(f"resolved_commit {resolved_commit!r} is not a full commit id")
    env_vars = [f"{name}={request.envvars[name]}" for name in sorted(request.envvars)]
    params: list[dict[str, Any]] = [
        {"name": "BUILDER_IMAGE", "value": builder_image_for(request, settings)},
        {"name": "RUN_IMAGE", "value": settings.run_image},
        {"name": "APP_IMAGE", "value": app_image(tool, request.image_name, settings.registry)},
        {"name": "SOURCE_URL", "value": request.source_url},
        {"name": "SOURCE_REFERENCE", "value": resolved_commit},
        {"name": "UNRESOLVED_SOURCE_REFERENCE", "value": request.ref or DEFAULT_REF},
        {"name": "ENV_VARS", "value": env_vars},
    ]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "generateName": generate_name_for(tool),
            "namespace": settings.namespace,
            "labels": {TOOL_LABEL: tool, **MANAGED_BY},
            "annotations": {
                COMMIT_ANNOTATION: resolved_commit,
                LATEST_VERSIONS_ANNOTATION: "true" if request.use_latest_versions else "false",
                DEPRECATED_VERSIONS_ANNOTATION: (
                    "true" if request.use_deprecated_versions else "false"
                ),
            },
        },
        "spec": {
            "pipelineRef": {"name": settings.pipeline_name},
            "params": params,
            "taskRunTemplate": {"serviceAccountName": settings.service_account},
        },
    }


def cancel_patch() -> dict[str, Any]:
    """JSON merge patch (RFC 7386) that cancels a PipelineRun: ``spec.status: Cancelled``
    (Tekton "Cancelling a PipelineRun")."""
    return {"spec": {"status": "Cancelled"}}


def tool_label_selector(tool: str) -> str:
    """Label selector of ``tool``'s PipelineRuns: ``user=<tool>``."""
    return f"{TOOL_LABEL}={_check_tool(tool)}"


def belongs_to_tool(pipelinerun: Mapping[str, Any], tool: str, *, namespace: str) -> bool:
    """Whether the PipelineRun is ``tool``'s: its ``user`` label is ``tool`` and it lives in
    ``namespace``. Use before showing, cancelling or deleting a run by id."""
    metadata = pipelinerun.get("metadata") or {}
    return (
        metadata.get("namespace") == namespace
        and (metadata.get("labels") or {}).get(TOOL_LABEL) == tool
    )


def _params(pipelinerun: Mapping[str, Any]) -> dict[str, Any]:
    spec = pipelinerun.get("spec") or {}
    return {
        param["name"]: param.get("value")
        for param in spec.get("params") or ()
        if isinstance(param, Mapping) and isinstance(param.get("name"), str)
    }


def _string(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name)
    return value if isinstance(value, str) else ""


def _image_name_of(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    return last.split("@", 1)[0].rsplit(":", 1)[0]


def parameters_from_pipelinerun(pipelinerun: Mapping[str, Any]) -> BuildParameters:
    """The build parameters recorded in a PipelineRun (inverse of :func:`build_pipelinerun`).

    Environment variables are reported by name, each value :data:`HIDDEN_VALUE`. Missing
    params read as ``""``.
    """
    params = _params(pipelinerun)
    raw_env = params.get("ENV_VARS")
    names = {
        item.split("=", 1)[0]: HIDDEN_VALUE
        for item in (raw_env if isinstance(raw_env, list) else [])
        if isinstance(item, str) and "=" in item
    }
    annotations = (pipelinerun.get("metadata") or {}).get("annotations") or {}
    return BuildParameters(
        source_url=_string(params, "SOURCE_URL"),
        ref=_string(params, "UNRESOLVED_SOURCE_REFERENCE") or DEFAULT_REF,
        envvars=names,
        image_name=_image_name_of(_string(params, "APP_IMAGE")),
        use_latest_versions=annotations.get(LATEST_VERSIONS_ANNOTATION) == "true",
        use_deprecated_versions=annotations.get(DEPRECATED_VERSIONS_ANNOTATION) == "true",
    )


def envvar_values(pipelinerun: Mapping[str, Any]) -> list[str]:
    """The values of the build's environment variables (``ENV_VARS`` param, ``K=V``).

    For the log redactor only: values are never returned to users.
    """
    raw_env = _params(pipelinerun).get("ENV_VARS")
    return [
        item.split("=", 1)[1]
        for item in (raw_env if isinstance(raw_env, list) else [])
        if isinstance(item, str) and "=" in item
    ]


def _resolved_ref(pipelinerun: Mapping[str, Any]) -> str:
    annotations = (pipelinerun.get("metadata") or {}).get("annotations") or {}
    return str(
        annotations.get(COMMIT_ANNOTATION) or _string(_params(pipelinerun), "SOURCE_REFERENCE")
    )


def wire_time(value: datetime | None) -> str:
    """A time as the wire gives it: RFC 3339 UTC to the second (``2024-05-01T12:00:00Z``), or
    ``""`` when unset (upstream)."""
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def destination_image(pipelinerun: Mapping[str, Any]) -> str:
    """``APP_IMAGE``, with ``@<digest>`` appended once the run reports the pushed image's
    digest (result :data:`DIGEST_RESULT`; anything but ``sha256:<64 hex>`` is ignored)."""
    image = _string(_params(pipelinerun), "APP_IMAGE")
    results = (pipelinerun.get("status") or {}).get("results") or ()
    for result in results:
        if isinstance(result, Mapping) and result.get("name") == DIGEST_RESULT:
            digest = result.get("value")
            if image and isinstance(digest, str) and _DIGEST_RE.fullmatch(digest):
                return f"{image}@{digest}"
    return image


def build_from_pipelinerun(pipelinerun: Mapping[str, Any]) -> Build:
    """The :class:`Build` response for a PipelineRun dict (as read from the cluster)."""
    state = build_state(pipelinerun)
    return Build(
        build_id=str((pipelinerun.get("metadata") or {}).get("name") or ""),
        start_time=wire_time(state.start_time),
        end_time=wire_time(state.end_time),
        status=state.status,
        message=state.message,
        parameters=parameters_from_pipelinerun(pipelinerun),
        resolved_ref=_resolved_ref(pipelinerun),
        destination_image=destination_image(pipelinerun),
    )


def new_build_from_pipelinerun(pipelinerun: Mapping[str, Any]) -> NewBuild:
    """The ``new_build`` of the start response, from the PipelineRun the apiserver returned
    (it carries the generated name)."""
    return NewBuild(
        name=str((pipelinerun.get("metadata") or {}).get("name") or ""),
        resolved_ref=_resolved_ref(pipelinerun),
        parameters=parameters_from_pipelinerun(pipelinerun),
    )
