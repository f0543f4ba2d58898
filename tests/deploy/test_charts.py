"""The Helm charts (charts/): lint, golden renderings, and the operational rules they must keep
(pod security, replicas, probes, PodDisruptionBudgets, NetworkPolicies, least-privilege RBAC,
settings files the services accept). No cluster needed here; the server-side dry run against
the real kube-apiserver is in test_charts_cluster.py."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from deploy.charts import (
    FAKE_PEM,
    GOLDEN_DIR,
    VALUES,
    build_dependencies,
    by_kind,
    helm,
    one,
    render,
    template,
    values_args,
)
from pydantic import BaseModel

from golden import assert_golden
from toolforge_builds.settings import BuildsSettings
from toolforge_dev.deploy import CHARTS, CHARTS_DIR, NAMESPACE
from toolforge_emailer.settings import EmailerSettings
from toolforge_envvars.settings import EnvvarsSettings, WebhookSettings
from toolforge_gateway.settings import GatewaySettings
from toolforge_jobs.settings import JobsSettings
from toolforge_logs.settings import LogsSettings

CASES = [(chart, values) for chart in CHARTS for values in VALUES]
IDS = [f"{chart}-{values}" for chart, values in CASES]
SETTINGS: dict[str, type[BaseModel]] = {
    "gateway": GatewaySettings,
    "jobs-api": JobsSettings,
    "builds-api": BuildsSettings,
    "envvars-api": EnvvarsSettings,
    "envvars-webhook": WebhookSettings,
    "emailer": EmailerSettings,
    "logs-api": LogsSettings,
}


@pytest.fixture(scope="module", autouse=True)
def _dependencies() -> None:
    build_dependencies()


@pytest.mark.parametrize(("chart", "values"), CASES, ids=IDS)
def test_helm_lint_strict(chart: str, values: str) -> None:
    proc = helm("lint", "--strict", str(CHARTS_DIR / chart), *values_args(chart, values))
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize(("chart", "values"), CASES, ids=IDS)
def test_rendering_matches_golden_file(chart: str, values: str) -> None:
    """Every rendered object is reviewed: a change to a chart shows up as a golden-file diff.
    ``UPDATE_GOLDEN=1`` rewrites the files."""
    assert_golden(GOLDEN_DIR / f"{chart}-{values}.yaml", template(chart, values))


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize(("chart", "values"), CASES, ids=IDS)
def test_pods_are_locked_down_and_replicated(chart: str, values: str) -> None:
    objects = render(chart, values)
    deployment = one(objects, "Deployment")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["replicas"] >= 2
    assert _selects(spec["selector"]["matchLabels"], labels)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["topologySpreadConstraints"]
    for constraint in pod["topologySpreadConstraints"]:
        assert _selects(constraint["labelSelector"]["matchLabels"], labels)
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"].endswith("/healthz")
    assert container["image"].endswith(":test")
    pdb = one(objects, "PodDisruptionBudget")
    assert _selects(pdb["spec"]["selector"]["matchLabels"], labels)
    assert pdb["spec"].get("maxUnavailable", 0) == 1 or pdb["spec"].get("minAvailable")


@pytest.mark.parametrize(("chart", "values"), CASES, ids=IDS)
def test_settings_file_is_accepted_by_the_service(chart: str, values: str) -> None:
    """The rendered config.yaml validates against the service's own settings model, which
    forbids unknown keys: a typo in a chart's config is caught here, not in a crash loop."""
    config_map = next(
        c for c in by_kind(render(chart, values), "ConfigMap") if "config.yaml" in c["data"]
    )
    settings = yaml.safe_load(config_map["data"]["config.yaml"])
    model = SETTINGS[chart].model_validate(settings)
    assert model.model_dump()["port"] == 8443
    for name, pem in config_map["data"].items():
        if name.endswith(".crt"):
            assert pem == FAKE_PEM


def _gateway_settings(*sets: str) -> GatewaySettings:
    config_map = next(
        c
        for c in by_kind(render("gateway", "local", *sets), "ConfigMap")
        if "config.yaml" in c["data"]
    )
    return GatewaySettings.model_validate(yaml.safe_load(config_map["data"]["config.yaml"]))


def test_gateway_workers_value_reaches_the_settings_file() -> None:
    """``workers`` (one gateway process per pod unless raised) is the gateway's setting."""
    assert _gateway_settings().workers == 1
    assert _gateway_settings("--set", "workers=2").workers == 2


def test_gateway_reaches_only_backends_and_needs_no_api_access() -> None:
    objects = render("gateway", "local")
    for kind in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"):
        assert by_kind(objects, kind) == []
    assert one(objects, "ServiceAccount")["automountServiceAccountToken"] is False
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    service = one(objects, "Service")
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["ports"][0]["nodePort"] == 30003
    policy = one(objects, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    egress_pods = [
        peer["podSelector"]["matchLabels"]
        for rule in policy["spec"]["egress"]
        for peer in rule.get("to", [])
    ]
    assert egress_pods == [
        {"app.kubernetes.io/name": "jobs-api"},
        {"app.kubernetes.io/name": "builds-api"},
        {"app.kubernetes.io/name": "envvars-api"},
        {"app.kubernetes.io/name": "logs-api"},
    ]


def test_node_port_and_routes_come_from_values() -> None:
    objects = render(
        "gateway",
        "local",
        "--set",
        "service.nodePort=30100",
        "--set",
        "routes.jobs.url=https://jobs.example:9443",
    )
    assert one(objects, "Service")["spec"]["ports"][0]["nodePort"] == 30100
    config = yaml.safe_load(one(objects, "ConfigMap")["data"]["config.yaml"])
    assert config["routes"]["jobs"]["url"] == "https://jobs.example:9443"
    assert config["routes"]["builds"]["url"] == "https://builds-api:8443"


@pytest.mark.parametrize("chart", ["jobs-api", "builds-api", "envvars-api", "logs-api"])
def test_backends_accept_only_the_gateway(chart: str) -> None:
    policy = one(render(chart, "local"), "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8443}]


def _rules(obj: dict[str, Any]) -> list[tuple[str, str, tuple[str, ...], tuple[str, ...]]]:
    return [
        (
            ",".join(rule["apiGroups"]),
            resource,
            tuple(sorted(rule["verbs"])),
            tuple(rule.get("resourceNames", ())),
        )
        for rule in obj["rules"]
        for resource in rule["resources"]
    ]


def test_jobs_api_rbac_is_impersonation_and_reads_only() -> None:
    objects = render("jobs-api", "local")
    (cluster_role,) = by_kind(objects, "ClusterRole")
    assert _rules(cluster_role) == [
        ("", "users", ("impersonate",), ()),
        ("", "groups", ("impersonate",), ("toolforge",)),
        ("", "namespaces", ("get",), ()),
    ]
    (role,) = by_kind(objects, "Role")
    assert role["metadata"]["namespace"] == "tf-public"
    assert _rules(role) == [("", "configmaps", ("get",), ("image-config",))]
    for binding in by_kind(objects, "ClusterRoleBinding") + by_kind(objects, "RoleBinding"):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "jobs-api", "namespace": NAMESPACE}
        ]


@pytest.mark.parametrize(
    ("values", "domain", "url"),
    [
        ("production", "toolforge.org", "https://{tool}.{domain}"),
        ("local", "toolforge.local", "http://{tool}.{domain}:30000"),
    ],
)
def test_jobs_api_values_name_the_public_domain_and_gateway(
    values: str, domain: str, url: str
) -> None:
    """Published jobs: the settings name the domain and the Gateway; the API writes the
    HTTPRoutes as the tool, so its own ClusterRole stays as above (no HTTPRoute rights)."""
    objects = render("jobs-api", values)
    config = JobsSettings.model_validate(
        yaml.safe_load(one(objects, "ConfigMap")["data"]["config.yaml"])
    )
    assert (config.public_domain, config.public_url_template) == (domain, url)
    assert (config.gateway_namespace, config.gateway_name) == ("toolforge-web", "web")
    for role in by_kind(objects, "ClusterRole") + by_kind(objects, "Role"):
        assert all("gateway.networking.k8s.io" not in r["apiGroups"] for r in role["rules"])


def test_builds_api_rbac_stays_in_the_builds_namespace() -> None:
    objects = render("builds-api", "local")
    assert by_kind(objects, "ClusterRole") == []
    assert by_kind(objects, "ClusterRoleBinding") == []
    (role,) = by_kind(objects, "Role")
    assert role["metadata"]["namespace"] == "image-build"
    rules = _rules(role)
    assert ("", "secrets", ("get",), ("buildpacks-registry-auth",)) in rules
    for _group, resource, verbs, _names in rules:
        assert "*" not in verbs
        assert resource != "*"
        if resource in ("pods", "pods/log", "taskruns"):
            assert set(verbs) <= {"get", "list", "watch"}


def test_quotas_and_image_list_location_come_from_values() -> None:
    base = render("builds-api", "local")
    changed = render("builds-api", "local", "--set", "config.max_parallel_builds=7")
    config = yaml.safe_load(one(changed, "ConfigMap")["data"]["config.yaml"])
    assert config["max_parallel_builds"] == 7
    assert BuildsSettings.model_validate(config).max_parallel_builds == 7

    def checksum(objects: list[dict[str, Any]]) -> str:
        annotations = one(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]
        return str(annotations["checksum/config"])

    # A settings change rolls the pods.
    assert checksum(base) != checksum(changed)
    jobs = render("jobs-api", "local", "--set", "config.image_config_name=images-v2")
    jobs_config = yaml.safe_load(one(jobs, "ConfigMap")["data"]["config.yaml"])
    assert jobs_config["image_config_name"] == "images-v2"
    (role,) = by_kind(jobs, "Role")
    assert role["rules"][0]["resourceNames"] == ["images-v2"]


def test_production_values_use_cert_manager() -> None:
    objects = render("gateway", "production")
    certificates = {c["metadata"]["name"]: c["spec"] for c in by_kind(objects, "Certificate")}
    assert set(certificates) == {"gateway-tls", "gateway-backend-client"}
    client = certificates["gateway-backend-client"]
    assert client["commonName"] == "toolforge-api-gateway"
    assert client["subject"] == {"organizations": ["toolforge"]}
    assert client["usages"] == ["client auth", "digital signature"]
    assert client["issuerRef"]["kind"] == "ClusterIssuer"
    for chart in ("jobs-api", "builds-api"):
        (certificate,) = by_kind(render(chart, "production"), "Certificate")
        assert f"{chart}.{NAMESPACE}.svc" in certificate["spec"]["dnsNames"]
        assert certificate["spec"]["usages"] == ["server auth", "digital signature"]
    # Local mode uses the pre-provisioned Secrets instead.
    assert by_kind(render("gateway", "local"), "Certificate") == []


@pytest.mark.parametrize(
    ("chart", "sets", "message"),
    [
        ("jobs-api", ["--set", "image.tag="], "image.tag is required"),
        ("gateway", ["--set-string", "caBundles.cluster-ca="], "caBundles.cluster-ca is required"),
        (
            "builds-api",
            ["--set-string", "caBundles.backend-ca="],
            "caBundles.backend-ca is required",
        ),
        ("jobs-api", ["--set", "tls.mode=selfsigned"], "tls.mode must be"),
    ],
)
def test_missing_or_bad_values_fail_with_a_message(
    chart: str, sets: list[str], message: str
) -> None:
    args = ["template", chart, str(CHARTS_DIR / chart), *values_args(chart, "local"), *sets]
    proc = helm(*args, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr


def test_image_list_from_values_gets_its_own_configmap_and_only_that(tmp_path: Any) -> None:
    images = tmp_path / "images-v1.yaml"
    images.write_text("bookworm:\n  aliases: [tf-bookworm]\n  state: stable\n")
    objects = render("jobs-api", "local", "--set-file", f"imageConfig={images}")
    lists = [c for c in by_kind(objects, "ConfigMap") if c["metadata"]["name"] == "jobs-api-images"]
    assert [c["data"]["images-v1.yaml"] for c in lists] == [images.read_text()]
    config_map = next(c for c in by_kind(objects, "ConfigMap") if "config.yaml" in c["data"])
    settings = JobsSettings.model_validate(yaml.safe_load(config_map["data"]["config.yaml"]))
    assert (settings.image_config_namespace, settings.image_config_name) == (
        NAMESPACE,
        "jobs-api-images",
    )
    (role,) = by_kind(objects, "Role")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert _rules(role) == [("", "configmaps", ("get",), ("jobs-api-images",))]
    (binding,) = by_kind(objects, "RoleBinding")
    assert binding["metadata"]["namespace"] == NAMESPACE
    # Without it, nothing of the kind is rendered and the platform's list is read.
    assert [c["metadata"]["name"] for c in by_kind(render("jobs-api", "local"), "ConfigMap")] == [
        "jobs-api-config"
    ]


def test_envvars_api_rbac_is_impersonation_only() -> None:
    objects = render("envvars-api", "local")
    (role,) = by_kind(objects, "ClusterRole")
    assert _rules(role) == [
        ("", "users", ("impersonate",), ()),
        ("", "groups", ("impersonate",), ("toolforge",)),
    ]
    assert by_kind(objects, "Role") == []


def test_logs_api_rbac_is_impersonation_only_and_its_password_comes_from_a_secret() -> None:
    objects = render("logs-api", "local")
    (role,) = by_kind(objects, "ClusterRole")
    assert _rules(role) == [
        ("", "users", ("impersonate",), ()),
        ("", "groups", ("impersonate",), ("toolforge",)),
    ]
    assert by_kind(objects, "Role") == []
    container = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "TOOLFORGE_LOGS_LOGSTORE_PASSWORD", "valueFrom": {"secretKeyRef": {
        "name": "logs-api-logstore", "key": "password"}}} in container["env"]  # fmt: skip
    config = one(objects, "ConfigMap")["data"]["config.yaml"]
    assert "password" not in config.replace("logstore_password_file", "")


def test_envvars_webhook_reads_one_secret_name_and_is_registered_safely() -> None:
    objects = render("envvars-webhook", "local")
    (role,) = by_kind(objects, "ClusterRole")
    assert _rules(role) == [("", "secrets", ("get",), ("toolforge-envvars",))]
    (config,) = by_kind(objects, "MutatingWebhookConfiguration")
    (hook,) = config["webhooks"]
    assert hook["failurePolicy"] == "Fail"
    assert hook["sideEffects"] == "None"
    assert 1 <= hook["timeoutSeconds"] <= 10
    assert hook["namespaceSelector"] == {
        "matchExpressions": [{"key": "toolforge.org/tool", "operator": "Exists"}]
    }
    assert hook["rules"][0]["operations"] == ["CREATE"]
    assert hook["clientConfig"]["service"]["path"] == "/mutate"
    assert hook["clientConfig"]["caBundle"]  # secret mode: the given CA
    (policy,) = by_kind(objects, "NetworkPolicy")
    assert policy["spec"]["ingress"][0]["from"] == [{"ipBlock": {"cidr": "10.244.0.1/32"}}]
    production = render("envvars-webhook", "production")
    (config,) = by_kind(production, "MutatingWebhookConfiguration")
    assert "caBundle" not in config["webhooks"][0]["clientConfig"]
    assert config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].endswith(
        "/envvars-webhook-tls"
    )
    assert by_kind(production, "Certificate")


def test_emailer_rbac_is_pods_read_and_its_own_objects_by_name() -> None:
    objects = render("emailer", "local")
    (cluster_role,) = by_kind(objects, "ClusterRole")
    assert _rules(cluster_role) == [
        ("", "pods", ("list", "watch"), ()),
        ("", "pods/log", ("get",), ()),
    ]
    (role,) = by_kind(objects, "Role")
    # local: the namespace of the host emailer's objects, shared through the Lease
    assert role["metadata"]["namespace"] == "jobs-emailer"
    assert _rules(role) == [
        ("", "configmaps", ("get",), ("jobs-emailer-config",)),
        ("", "configmaps", ("get", "patch"), ("jobs-emailer-state",)),
        ("coordination.k8s.io", "leases", ("get", "patch"), ("jobs-emailer",)),
    ]
    for binding in by_kind(objects, "ClusterRoleBinding") + by_kind(objects, "RoleBinding"):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "emailer", "namespace": NAMESPACE}
        ]
    # local mode uses the host emailer's objects; the default creates its own, kept on uninstall
    assert [o["metadata"]["name"] for o in by_kind(objects, "Lease")] == []
    default = render("emailer", "default")
    (lease,) = by_kind(default, "Lease")
    assert lease["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    live = next(
        c for c in by_kind(default, "ConfigMap") if c["metadata"]["name"] == "jobs-emailer-config"
    )
    assert live["data"]["task_compose_emails_loop_sleep"] == "400"


def test_emailer_reaches_only_dns_the_apiserver_and_smtp() -> None:
    policy = one(render("emailer", "local"), "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = policy["spec"]["ingress"]
    assert ingress["ports"] == [{"protocol": "TCP", "port": 8443}]
    ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert ports == {53, 443, 6443, 1025}
    smtp = [r for r in policy["spec"]["egress"] if {"protocol": "TCP", "port": 1025} in r["ports"]]
    assert smtp == [
        {
            "to": [{"ipBlock": {"cidr": "10.244.0.1/32"}}],
            "ports": [{"protocol": "TCP", "port": 1025}],
        }
    ]
