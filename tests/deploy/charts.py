"""Rendering the charts in tests: ``helm`` from the dev cache, fixed test values.

``render(chart, values_name, *sets)`` runs ``helm template`` with ``values.yaml`` plus
``values-<values_name>.yaml`` (``"default"``: none) and fixed CA bundles and image tag, and
returns the objects. ``helm(*args)`` runs helm and returns the finished process.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from toolforge_dev import binaries
from toolforge_dev.deploy import CHARTS, CHARTS_DIR, NAMESPACE

VALUES = ("default", "local", "production")
#: Stand-ins for PEM bundles: the charts only copy them into a ConfigMap.
FAKE_PEM = "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n"
GOLDEN_DIR = Path(__file__).parent / "golden"


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``helm args...`` (the cached build of ``make binaries``), output captured."""
    proc = subprocess.run(
        [str(binaries.helm().path("helm")), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def build_dependencies() -> None:
    """``helm dependency build`` for every chart (packs the library chart in)."""
    for chart in CHARTS:
        helm("dependency", "build", str(CHARTS_DIR / chart))


def values_args(chart: str, values_name: str) -> list[str]:
    """``-f`` and ``--set`` flags for one chart and values file, with fixed test values."""
    args: list[str] = []
    if values_name != "default":
        args += ["-f", str(CHARTS_DIR / chart / f"values-{values_name}.yaml")]
    args += ["--set", "image.tag=test", "--set-string", f"caBundles.backend-ca={FAKE_PEM}"]
    if chart == "gateway":
        args += ["--set-string", f"caBundles.cluster-ca={FAKE_PEM}"]
    if chart == "envvars-webhook":
        args += [
            "--set-string",
            f"caBundles.webhook-ca={FAKE_PEM}",
            "--set-string",
            f"caBundles.apiserver-client-ca={FAKE_PEM}",
        ]
    return args


def template(chart: str, values_name: str, *sets: str) -> str:
    """The rendered manifest text."""
    args = ["template", chart, str(CHARTS_DIR / chart), "--namespace", NAMESPACE]
    return helm(*args, *values_args(chart, values_name), *sets).stdout


def render(chart: str, values_name: str, *sets: str) -> list[dict[str, Any]]:
    """The rendered objects (empty documents dropped)."""
    return [d for d in yaml.safe_load_all(template(chart, values_name, *sets)) if d]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The objects of one kind."""
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The single object of ``kind``; fails unless there is exactly one."""
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]
