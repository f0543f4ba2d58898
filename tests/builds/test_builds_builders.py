"""PipelineRun builder: golden files, the Tekton v1 CRD schema, and the way back to a Build.

``UPDATE_GOLDEN=1 pytest tests/builds`` rewrites the golden files.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no types-jsonschema in the dev group
import pytest
import yaml

from golden import assert_golden
from toolforge_builds.builders import (
    belongs_to_tool,
    build_from_pipelinerun,
    build_pipelinerun,
    cancel_patch,
    envvar_values,
    generate_name_for,
    new_build_from_pipelinerun,
    tool_label_selector,
)
from toolforge_builds.models import BuildRequest, BuildStatus
from toolforge_builds.settings import BuildsSettings
from toolforge_dev.paths import REPO_ROOT

GOLDEN = Path(__file__).parent / "golden"
# The copy vendored in the repository (from ../shared/crds; v1 only, see its README), so the
# check runs wherever the repository is cloned.
CRD = REPO_ROOT / "devtools/crds/tekton-v1.15.0/300-pipelinerun.yaml"
COMMIT = "3f786850e387550fdab836ed7e6dc881de23001b"
SETTINGS = BuildsSettings(
    namespace="image-build",
    registry="registry.local:5000",
    builder_image="registry.local/toolforge/builder:v1",
    builder_image_latest="registry.local/toolforge/builder:v2",
    run_image="registry.local/toolforge/run:v1",
    pipeline_name="buildpacks",
    service_account="buildpacks-service-account",
)
MINIMAL = BuildRequest(source_url="https://gitlab.wikimedia.org/toolforge-repos/sample")
FULL = BuildRequest(
    source_url="https://github.com/example/app.git",
    ref="v1.2.3",
    envvars={"ZETA_TOKEN": "a=b=c", "API_URL": "https://api.example.org", "MULTI": "l1\nl2"},
    image_name="web-frontend",
    use_latest_versions=True,
)


def _check_golden(name: str, obj: dict[str, Any]) -> None:
    assert_golden(GOLDEN / name, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def test_minimal_request_golden() -> None:
    obj = build_pipelinerun(MINIMAL, tool="mytool", resolved_commit=COMMIT, settings=SETTINGS)
    _check_golden("pipelinerun-minimal.json", obj)


def test_full_request_golden() -> None:
    obj = build_pipelinerun(FULL, tool="mytool", resolved_commit=COMMIT, settings=SETTINGS)
    _check_golden("pipelinerun-full.json", obj)


def _params(obj: dict[str, Any]) -> dict[str, Any]:
    return {param["name"]: param["value"] for param in obj["spec"]["params"]}


def test_reference_fields() -> None:
    obj = build_pipelinerun(FULL, tool="mytool", resolved_commit=COMMIT, settings=SETTINGS)
    assert obj["apiVersion"] == "tekton.dev/v1"
    assert obj["kind"] == "PipelineRun"
    assert obj["metadata"]["generateName"] == "mytool-buildpacks-pipelinerun-"
    assert obj["metadata"]["namespace"] == "image-build"
    assert obj["metadata"]["labels"]["user"] == "mytool"
    assert obj["metadata"]["annotations"]["builds.toolforge.org/resolved-commit"] == COMMIT
    assert obj["spec"]["pipelineRef"] == {"name": "buildpacks"}
    assert obj["spec"]["taskRunTemplate"] == {"serviceAccountName": "buildpacks-service-account"}
    assert _params(obj) == {
        "BUILDER_IMAGE": "registry.local/toolforge/builder:v2",
        "RUN_IMAGE": "registry.local/toolforge/run:v1",
        "APP_IMAGE": "registry.local:5000/tool-mytool/web-frontend:latest",
        "SOURCE_URL": "https://github.com/example/app.git",
        "SOURCE_REFERENCE": COMMIT,
        "UNRESOLVED_SOURCE_REFERENCE": "v1.2.3",
        "ENV_VARS": ["API_URL=https://api.example.org", "MULTI=l1\nl2", "ZETA_TOKEN=a=b=c"],
    }


def test_defaults_image_name_ref_and_builder() -> None:
    params = _params(
        build_pipelinerun(MINIMAL, tool="mytool", resolved_commit=COMMIT, settings=SETTINGS)
    )
    assert params["APP_IMAGE"] == "registry.local:5000/tool-mytool/tool-mytool:latest"
    assert params["UNRESOLVED_SOURCE_REFERENCE"] == "HEAD"
    assert params["BUILDER_IMAGE"] == "registry.local/toolforge/builder:v1"
    assert params["ENV_VARS"] == []


def test_latest_versions_without_a_latest_builder_uses_the_default() -> None:
    settings = SETTINGS.model_copy(update={"builder_image_latest": None})
    obj = build_pipelinerun(FULL, tool="mytool", resolved_commit=COMMIT, settings=settings)
    assert _params(obj)["BUILDER_IMAGE"] == "registry.local/toolforge/builder:v1"


@pytest.mark.parametrize("commit", ["main", "3f78685", "A" * 40, COMMIT + "0", ""])
def test_resolved_commit_must_be_a_full_commit_id(commit: str) -> None:
    with pytest.raises(ValueError, match="full commit id"):
        build_pipelinerun(MINIMAL, tool="mytool", resolved_commit=commit, settings=SETTINGS)


@pytest.mark.parametrize("tool", ["", "My-Tool", "tool_x", "-tool", "a" * 59])
def test_invalid_tool_names_are_refused(tool: str) -> None:
    rules = r"tool name (.*must not be empty|.*characters long|.*DNS-1123 label)"
    with pytest.raises(ValueError, match=rules):
        build_pipelinerun(MINIMAL, tool=tool, resolved_commit=COMMIT, settings=SETTINGS)


@pytest.mark.parametrize("length", [1, 33, 34, 35, 57, 58])
def test_generated_names_fit_tektons_63_character_limit(length: int) -> None:
    tool = "t" * (length - 1) + "x"
    prefix = generate_name_for(tool)
    assert len(prefix) + 5 <= 63
    if length <= 34:
        assert prefix == f"{tool}-buildpacks-pipelinerun-"
    else:
        assert tool.startswith(prefix[:-1])
        assert prefix.endswith("-")


# ------------------------------------------------------------------------ CRD schema check


def _close_objects(schema: Any) -> Any:
    """The CRD schema with unknown fields forbidden where the apiserver would prune them."""
    if isinstance(schema, dict):
        out = {key: _close_objects(value) for key, value in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_close_objects(item) for item in schema]
    return schema


@cache
def _v1_schema() -> dict[str, Any]:
    assert CRD.exists(), f"Tekton CRD not found at {CRD}"
    crd = yaml.safe_load(CRD.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    assert version["served"]
    assert version["storage"]
    schema: dict[str, Any] = _close_objects(version["schema"]["openAPIV3Schema"])
    return schema


_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_OBJECT_META = {"name", "generateName", "namespace", "labels", "annotations"}


def _check_qualified_name(key: str) -> None:
    prefix, _, name = key.rpartition("/")
    assert _LABEL_NAME.match(name), key
    assert not prefix or _DNS_SUBDOMAIN.match(prefix), key


def _check_against_crd(obj: dict[str, Any]) -> None:
    jsonschema.Draft7Validator(_v1_schema()).validate(obj)
    metadata = obj["metadata"]  # the CRD leaves metadata to ObjectMeta validation
    assert set(metadata) <= _OBJECT_META
    for key, value in metadata.get("labels", {}).items():
        _check_qualified_name(key)
        assert len(value) <= 63, (key, value)
        assert _LABEL_VALUE.match(value), (key, value)
    for key, value in metadata.get("annotations", {}).items():
        _check_qualified_name(key)
        assert isinstance(value, str)


@pytest.mark.parametrize("request_", [MINIMAL, FULL], ids=["minimal", "full"])
def test_pipelinerun_matches_the_tekton_v1_crd_schema(request_: BuildRequest) -> None:
    obj = build_pipelinerun(request_, tool="mytool", resolved_commit=COMMIT, settings=SETTINGS)
    _check_against_crd(obj)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda o: o["spec"]["taskRunTemplate"].update(serviceAccount="x"),  # v1beta1 spelling
        lambda o: o["spec"].update(serviceAccountName="x"),  # moved in v1
        lambda o: o["spec"]["params"].append({"name": "X"}),  # no value
        lambda o: o["spec"].update(pipelineRef="buildpacks"),  # not an object
        lambda o: o["metadata"]["labels"].update(user="x" * 64),
        lambda o: o["metadata"].update(finalizers=[]),
    ],
)
def test_schema_check_catches_mistakes(mutate: Any) -> None:
    obj = copy.deepcopy(
        build_pipelinerun(MINIMAL, tool="mytool", resolved_commit=COMMIT, settings=SETTINGS)
    )
    mutate(obj)
    with pytest.raises((jsonschema.ValidationError, AssertionError)):
        _check_against_crd(obj)


# --------------------------------------------------------------------------- and back again


def _as_created(obj: dict[str, Any], name: str) -> dict[str, Any]:
    created = copy.deepcopy(obj)
    created["metadata"]["name"] = name
    created["metadata"]["creationTimestamp"] = "2024-05-01T12:00:00Z"
    created["status"] = {
        "startTime": "2024-05-01T12:00:01Z",
        "completionTime": "2024-05-01T12:03:00Z",
        "conditions": [
            {"type": "Succeeded", "status": "True", "reason": "Succeeded", "message": "done"}
        ],
    }
    return created


def test_build_from_pipelinerun_reads_the_params_back() -> None:
    obj = build_pipelinerun(FULL, tool="mytool", resolved_commit=COMMIT, settings=SETTINGS)
    build = build_from_pipelinerun(_as_created(obj, "mytool-buildpacks-pipelinerun-x7k2p"))
    assert build.build_id == "mytool-buildpacks-pipelinerun-x7k2p"
    assert build.status is BuildStatus.SUCCESS
    assert build.message == "done"
    assert build.start_time == "2024-05-01T12:00:01Z"
    assert build.end_time == "2024-05-01T12:03:00Z"
    assert build.resolved_ref == COMMIT
    assert build.destination_image == "registry.local:5000/tool-mytool/web-frontend:latest"
    params = build.parameters
    assert params.source_url == FULL.source_url
    assert params.ref == "v1.2.3"
    assert params.image_name == "web-frontend"
    assert params.use_latest_versions is True
    assert params.use_deprecated_versions is False
    # an object as upstream, the values hidden
    assert params.envvars == {"API_URL": "***", "MULTI": "***", "ZETA_TOKEN": "***"}


def test_unset_times_are_empty_strings_and_times_are_rfc3339_utc() -> None:
    obj = build_pipelinerun(MINIMAL, tool="mytool", resolved_commit=COMMIT, settings=SETTINGS)
    pending = build_from_pipelinerun(obj)
    assert (pending.start_time, pending.end_time) == ("", "")
    running = copy.deepcopy(obj)
    running["status"] = {
        "startTime": "2024-05-01T14:00:01+02:00",
        "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Running"}],
    }
    build = build_from_pipelinerun(running)
    assert (build.start_time, build.end_time) == ("2024-05-01T12:00:01Z", "")
    assert build.status == "BUILD_RUNNING"


def test_destination_image_gets_the_pushed_digest() -> None:
    obj = build_pipelinerun(FULL, tool="mytool", resolved_commit=COMMIT, settings=SETTINGS)
    created = _as_created(obj, "n")
    digest = "sha256:" + "ab" * 32
    created["status"]["results"] = [
        {
            "name": "APP_IMAGE_URL",
            "value": "registry.local:5000/tool-mytool/web-frontend@" + digest,
        },
        {"name": "APP_IMAGE_DIGEST", "value": digest},
    ]
    assert build_from_pipelinerun(created).destination_image == (
        f"registry.local:5000/tool-mytool/web-frontend:latest@{digest}"
    )
    # anything but a sha256 digest is ignored
    for bad in ("sha256:abc", "md5:" + "ab" * 16, 42, "sha256:" + "AB" * 32):
        created["status"]["results"] = [{"name": "APP_IMAGE_DIGEST", "value": bad}]
        image = build_from_pipelinerun(created).destination_image
        assert image == "registry.local:5000/tool-mytool/web-frontend:latest"


def test_build_responses_never_contain_env_values() -> None:
    obj = build_pipelinerun(FULL, tool="mytool", resolved_commit=COMMIT, settings=SETTINGS)
    created = _as_created(obj, "n")
    text = build_from_pipelinerun(created).model_dump_json()
    text += new_build_from_pipelinerun(created).model_dump_json()
    for value in FULL.envvars.values():
        assert json.dumps(value)[1:-1] not in text


def test_new_build_from_created_pipelinerun() -> None:
    obj = build_pipelinerun(MINIMAL, tool="mytool", resolved_commit=COMMIT, settings=SETTINGS)
    new = new_build_from_pipelinerun(_as_created(obj, "mytool-buildpacks-pipelinerun-abcde"))
    assert new.model_dump() == {
        "name": "mytool-buildpacks-pipelinerun-abcde",
        "resolved_ref": COMMIT,
        "parameters": {
            "source_url": MINIMAL.source_url,
            "ref": "HEAD",
            "envvars": {},
            "image_name": "tool-mytool",
            "use_latest_versions": False,
            "use_deprecated_versions": False,
        },
    }


def test_foreign_or_broken_pipelineruns_do_not_crash_the_reader() -> None:
    build = build_from_pipelinerun({"metadata": {"name": "odd"}, "spec": {"params": [{}]}})
    assert build.status is BuildStatus.PENDING
    assert build.parameters.source_url == ""
    assert build.parameters.ref == "HEAD"
    assert build.resolved_ref == ""


def test_cancel_patch() -> None:
    assert cancel_patch() == {"spec": {"status": "Cancelled"}}
    patched = build_pipelinerun(MINIMAL, tool="mytool", resolved_commit=COMMIT, settings=SETTINGS)
    patched["spec"].update(cancel_patch()["spec"])
    _check_against_crd(patched)


def test_ownership_is_by_label_and_namespace() -> None:
    obj = build_pipelinerun(MINIMAL, tool="mytool", resolved_commit=COMMIT, settings=SETTINGS)
    assert belongs_to_tool(obj, "mytool", namespace="image-build")
    assert not belongs_to_tool(obj, "other", namespace="image-build")
    assert not belongs_to_tool(obj, "mytool", namespace="tool-mytool")
    # a run named like the tool's but labelled for another tool is not the tool's
    other = build_pipelinerun(MINIMAL, tool="other", resolved_commit=COMMIT, settings=SETTINGS)
    other["metadata"]["name"] = "mytool-buildpacks-pipelinerun-abcde"
    assert not belongs_to_tool(other, "mytool", namespace="image-build")
    assert tool_label_selector("mytool") == "user=mytool"
    with pytest.raises(ValueError, match="not a DNS-1123 label"):
        tool_label_selector("a,user!=b")


def test_envvar_values_for_the_redactor() -> None:
    obj = build_pipelinerun(FULL, tool="mytool", resolved_commit=COMMIT, settings=SETTINGS)
    assert sorted(envvar_values(obj)) == sorted(FULL.envvars.values())
    assert envvar_values({"spec": {"params": [{"name": "ENV_VARS", "value": "X=1"}]}}) == []
