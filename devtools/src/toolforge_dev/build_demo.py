"""The build demo of ``make run``/``make up``: the sample app in the platform's git server and a
PipelineRun file that builds it with the real Tekton, as the builds API would.

:func:`prepare` pushes :mod:`toolforge_dev.sample_app` as repository ``demo`` and writes
``<run dir>/demo-build.yaml``: a ``tekton.dev/v1`` PipelineRun (``generateName``) of the
``buildpacks`` Pipeline for tool ``demo`` with the parameters, label and ServiceAccount the
builds API sets (REFERENCE.md "Builds API"), building ``tool-demo/sample:latest``.
:func:`usage` is the text ``make run`` prints about it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from toolforge_dev import binaries as go_binaries
from toolforge_dev import buildpacks
from toolforge_dev.registry_pull import PULL_PORT
from toolforge_dev.sample_app import write_sample_app
from toolforge_dev.services import PlatformServices

__all__ = ["DemoBuild", "prepare", "usage"]

TOOL = "demo"


@dataclass(frozen=True)
class DemoBuild:
    """What :func:`prepare` made."""

    source_url: str
    commit: str
    pipelinerun_file: Path
    app_image: str


def prepare(services: PlatformServices) -> DemoBuild:
    """Push the sample app and write the demo PipelineRun (see the module docstring).

    Raises :class:`toolforge_dev.gitserver.GitServerError` when the push fails."""
    git = services.git_server()
    with tempfile.TemporaryDirectory() as tmp:
        commit = git.publish(TOOL, write_sample_app(Path(tmp) / "app"))
    registry = services.registry().address
    app_image = f"{registry}/tool-{TOOL}/sample:latest"
    params = {
        "BUILDER_IMAGE": buildpacks.BUILDER_IMAGE,
        "RUN_IMAGE": buildpacks.run_image_in_registry(registry),
        "APP_IMAGE": app_image,
        "SOURCE_URL": git.url(TOOL),
        "SOURCE_REFERENCE": commit,
        "UNRESOLVED_SOURCE_REFERENCE": "main",
        "ENV_VARS": [],
    }
    run = {
        "apiVersion": "tekton.dev/v1",
        "kind": "PipelineRun",
        "metadata": {
            "generateName": f"{TOOL}-buildpacks-pipelinerun-",
            "namespace": "image-build",
            "labels": {"user": TOOL},
        },
        "spec": {
            "pipelineRef": {"name": "buildpacks"},
            "params": [{"name": k, "value": v} for k, v in params.items()],
            "taskRunTemplate": {"serviceAccountName": "buildpacks-service-account"},
        },
    }
    path = services.cluster.directory / "demo-build.yaml"
    path.write_text(yaml.safe_dump(run, sort_keys=False))
    return DemoBuild(git.url(TOOL), commit, path, app_image)


def usage(demo: DemoBuild, kubeconfig: Path) -> str:
    """Commands that run the demo build and show its result (rich markup)."""
    kubectl = f"{go_binaries.kubernetes().path('kubectl')} --kubeconfig {kubeconfig}"
    pull = demo.app_image.replace(":8446/", f":{PULL_PORT}/")
    return f"""[bold]Builds[/] the sample app is in {demo.source_url} (commit {demo.commit[:12]});
build it with the real Tekton as the builds API would (clone, buildpacks, push):
  {kubectl} create -f {demo.pipelinerun_file}
  {kubectl} -n image-build get pipelineruns -l user={TOOL} -w
  {kubectl} -n image-build logs -l user={TOOL} --all-containers --prefix --tail=-1
  {kubectl} -n image-build get pipelineruns -l user={TOOL} \\
      -o jsonpath='{{.items[*].status.results}}'
The image is {demo.app_image} (pull it as {pull}; `launcher hello` prints a greeting).
"""
