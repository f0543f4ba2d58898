"""Every chart, with every values file, applied as a server-side dry run to the real
kube-apiserver (cert-manager and Tekton CRDs installed by the cluster bootstrap from
devtools/crds/), so every rendered object is schema-valid and admissible: field validation is
strict, so an unknown or misplaced field fails too."""

from __future__ import annotations

import pytest
from deploy.charts import VALUES, build_dependencies, template

from toolforge_dev import binaries
from toolforge_dev.cluster import Cluster, ClusterError
from toolforge_dev.deploy import CHARTS, NAMESPACE

pytestmark = pytest.mark.cluster


def dry_run(cluster: Cluster, manifest: str) -> str:
    """``kubectl apply --dry-run=server --validate=strict``; raises ClusterError if refused."""
    return cluster.kubectl(
        binaries.Binaries.from_cache(),
        "apply",
        "--dry-run=server",
        "--validate=strict",
        "-f",
        "-",
        input_text=manifest,
    )


@pytest.fixture(scope="module")
def release_namespace(cluster: Cluster) -> str:
    build_dependencies()
    namespace = f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n"
    cluster.kubectl(binaries.Binaries.from_cache(), "apply", "-f", "-", input_text=namespace)
    return NAMESPACE


@pytest.mark.parametrize(("chart", "values"), [(c, v) for c in CHARTS for v in VALUES])
def test_server_side_dry_run_accepts_every_object(
    cluster: Cluster, release_namespace: str, chart: str, values: str
) -> None:
    manifest = template(chart, values)
    applied = dry_run(cluster, manifest).splitlines()
    assert applied, "nothing was applied"
    assert all("(server dry run)" in line for line in applied), applied
    kinds = {line.split("/")[0].split(".")[0] for line in applied}
    assert {"deployment", "service", "configmap", "poddisruptionbudget"} <= kinds
    if values == "production":
        assert "certificate" in kinds


def test_dry_run_rejects_a_schema_violation(cluster: Cluster, release_namespace: str) -> None:
    """The check above can fail: a value of the wrong type is refused by the real apiserver."""
    manifest = template("jobs-api", "local", "--set", "podDisruptionBudget.maxUnavailable=lots")
    with pytest.raises(ClusterError, match=r"maxUnavailable|PodDisruptionBudget"):
        dry_run(cluster, manifest)
