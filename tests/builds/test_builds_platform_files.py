"""The build platform's files, checked without a cluster: the Tekton installation manifests,
the ``buildpacks`` Pipeline and Task against the builds API's PipelineRuns and log deny list,
the buildpacks' own programs, the layer writer and the sample app's wheel."""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import subprocess
import tarfile
import tomllib
import zipfile
from base64 import urlsafe_b64encode
from pathlib import Path
from typing import Any

import pytest
import yaml

from toolforge_builds.builders import build_pipelinerun
from toolforge_builds.models import BuildRequest
from toolforge_builds.settings import DEFAULT_LOG_DENY_LIST, BuildsSettings
from toolforge_dev import buildpacks, tekton
from toolforge_dev.image_layers import Entry, write_layer
from toolforge_dev.paths import REPO_ROOT
from toolforge_dev.sample_app import greeting_wheel

BUILDPACKS = REPO_ROOT / "devtools" / "buildpacks"


def _docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def _by_kind(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


# ----- Tekton installation -------------------------------------------------------------------


def test_tekton_manifests_use_local_images_and_our_feature_flags() -> None:
    docs = _docs(tekton.render_manifests())
    assert "@" not in json.dumps([d.get("spec") for d in docs])
    controller = _by_kind(docs, "Deployment", "tekton-pipelines-controller")
    args = controller["spec"]["template"]["spec"]["containers"][0]["args"]
    flags = dict(zip(args[::2], args[1::2], strict=True))
    for helper in ("entrypoint", "nop", "sidecarlogresults", "workingdirinit"):
        assert flags[f"-{helper}-image"] == tekton.image_ref(helper)
        assert flags[f"-{helper}-image"].endswith(":v1.15.0")
    assert flags["-shell-image"] == "registry.local/toolforge/bookworm:stable"
    for name in ("tekton-pipelines-controller", "tekton-pipelines-webhook"):
        (container,) = _by_kind(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"]
        assert container["imagePullPolicy"] == "IfNotPresent"
        assert container["securityContext"]["runAsNonRoot"] is True
    flags_cm = _by_kind(docs, "ConfigMap", "feature-flags")["data"]
    assert flags_cm["disable-creds-init"] == "true"  # credentials only where mounted
    assert flags_cm["keep-pod-on-cancel"] == "false"  # cancel removes the pods
    assert _by_kind(docs, "ConfigMap", "pipelines-info")["data"]["version"] == "v1.15.0"


def test_vendored_crds_keep_the_conversion_webhook() -> None:
    for path in sorted((REPO_ROOT / "devtools/crds/tekton-v1.15.0").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        if len(crd["spec"]["versions"]) == 1:
            assert "conversion" not in crd["spec"], path.name  # nothing to convert
            continue
        assert crd["metadata"]["name"] in tekton.CONVERTED_CRDS  # what readiness waits for
        service = crd["spec"]["conversion"]["webhook"]["clientConfig"]["service"]
        assert crd["spec"]["conversion"]["strategy"] == "Webhook", path.name
        assert service == {"name": "tekton-pipelines-webhook", "namespace": "tekton-pipelines"}


# ----- the Pipeline against the builds API ---------------------------------------------------


def _task_and_pipeline() -> tuple[dict[str, Any], dict[str, Any]]:
    docs = _docs(buildpacks.render_pipeline())
    return _by_kind(docs, "Task", "buildpacks"), _by_kind(docs, "Pipeline", "buildpacks")


def test_pipeline_takes_every_param_the_builds_api_sends() -> None:
    _, pipeline = _task_and_pipeline()
    settings = BuildsSettings(registry="10.244.0.1:8446")
    request = BuildRequest(
        source_url="https://git.example.org/app.git", envvars={"FOO_BAR": "1"}, image_name="x"
    )
    run = build_pipelinerun(request, tool="mytool", resolved_commit="a" * 40, settings=settings)
    declared = {p["name"]: p["type"] for p in pipeline["spec"]["params"]}
    sent = {
        p["name"]: ("array" if isinstance(p["value"], list) else "string")
        for p in run["spec"]["params"]
    }
    assert sent == declared
    assert run["spec"]["pipelineRef"]["name"] == pipeline["metadata"]["name"]
    assert "workspaces" not in run["spec"]  # the Task brings its own volumes
    assert {r["name"] for r in pipeline["spec"]["results"]} == {"APP_IMAGE_DIGEST", "APP_IMAGE_URL"}


def test_only_the_hidden_push_step_sees_the_registry_credentials() -> None:
    task, _ = _task_and_pipeline()
    steps = task["spec"]["steps"]
    assert [s["name"] for s in steps] == ["clone", "detect", "build", "export"]

    def hidden(step: dict[str, Any]) -> bool:
        return any(fnmatch.fnmatch(f"step-{step['name']}", g) for g in DEFAULT_LOG_DENY_LIST)

    for step in steps:
        mounts = {m["name"] for m in step.get("volumeMounts", [])}
        assert ("registry-auth" in mounts) == (step["name"] == "export"), step["name"]
        assert hidden(step) == (step["name"] == "export"), step["name"]
        # Parameters reach scripts as environment variables, never substituted into the text.
        assert "$(params." not in step.get("script", ""), step["name"]
    (secret_volume,) = [v for v in task["spec"]["volumes"] if "secret" in v]
    assert secret_volume["secret"]["secretName"] == BuildsSettings().registry_auth_secret


# ----- buildpacks ----------------------------------------------------------------------------


def _run(program: Path, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(program)],
        cwd=cwd,
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_buildpack_descriptors_follow_buildpack_api_0_10() -> None:
    for directory in sorted(p for p in BUILDPACKS.iterdir() if p.is_dir()):
        descriptor = tomllib.loads((directory / "buildpack.toml").read_text())
        assert descriptor["api"] == "0.10"
        assert descriptor["buildpack"]["id"].startswith("toolforge/")
        for program in ("detect", "build"):
            assert os.access(directory / "bin" / program, os.X_OK)


def test_detect_passes_or_fails_with_code_100(tmp_path: Path) -> None:
    python, procfile = BUILDPACKS / "python/bin/detect", BUILDPACKS / "procfile/bin/detect"
    assert _run(python, tmp_path).returncode == 100
    assert _run(procfile, tmp_path).returncode == 100
    (tmp_path / "requirements.txt").write_text("")
    (tmp_path / "Procfile").write_text("web: x\n")
    assert _run(python, tmp_path).returncode == 0
    assert _run(procfile, tmp_path).returncode == 0


def test_procfile_build_writes_launch_processes(tmp_path: Path) -> None:
    app, layers = tmp_path / "app", tmp_path / "layers"
    app.mkdir()
    layers.mkdir()
    (app / "Procfile").write_text(
        '# comment\n\nworker: python3 w.py --x "a b"\nweb: gunicorn app\n'
    )
    done = _run(BUILDPACKS / "procfile/bin/build", app, CNB_LAYERS_DIR=str(layers))
    assert done.returncode == 0, done.stderr
    launch = tomllib.loads((layers / "launch.toml").read_text())
    assert launch["processes"] == [
        {
            "type": "worker",
            "command": ["bash", "-c", 'python3 w.py --x "a b"'],
            "default": False,
        },
        {"type": "web", "command": ["bash", "-c", "gunicorn app"], "default": True},
    ]
    # The same commands as scripts of a launch layer, so `launcher worker` finds one on PATH.
    assert tomllib.loads((layers / "processes.toml").read_text())["types"]["launch"] is True
    worker = layers / "processes" / "bin" / "worker"
    assert os.access(worker, os.X_OK)
    assert worker.read_text().splitlines()[-1] == 'python3 w.py --x "a b"'
    assert sorted(p.name for p in worker.parent.iterdir()) == ["web", "worker"]
    (app / "Procfile").write_text("web: x\nthis is not a process\n")
    failed = _run(BUILDPACKS / "procfile/bin/build", app, CNB_LAYERS_DIR=str(tmp_path / "other"))
    assert failed.returncode == 1
    assert "Procfile line 2 is not 'name: command'" in failed.stderr


# ----- layers and the sample wheel -------------------------------------------------------------


def test_write_layer_is_reproducible_and_adds_parents(tmp_path: Path) -> None:
    entries = [
        Entry("cnb/lifecycle/launcher", mode=0o755, data=b"\x7fELF"),
        Entry("cnb/lifecycle/detector", kind="symlink", target="lifecycle"),
        Entry("home/cnb", kind="dir", uid=1000, gid=1000),
    ]
    one, two = tmp_path / "1.tar", tmp_path / "2.tar"
    write_layer(one, entries)
    write_layer(two, list(reversed(entries)))
    assert one.read_bytes() == two.read_bytes()
    with tarfile.open(one) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert list(members) == sorted(members)
    assert members["cnb"].isdir()
    assert members["cnb/lifecycle"].isdir()
    assert members["cnb/lifecycle/detector"].linkname == "lifecycle"
    assert members["home/cnb"].uid == 1000
    with pytest.raises(ValueError, match="bad layer path"):
        write_layer(one, [Entry("../etc/passwd")])


def test_sample_wheel_records_match_its_files() -> None:
    with zipfile.ZipFile(io.BytesIO(greeting_wheel())) as wheel:
        record = wheel.read("greeting-1.0.dist-info/RECORD").decode().splitlines()
        for line in record:
            name, digest, size = line.rsplit(",", 2)
            if not digest:
                continue
            data = wheel.read(name)
            expected = urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert digest == f"sha256={expected}"
            assert int(size) == len(data)
    assert greeting_wheel() == greeting_wheel()
