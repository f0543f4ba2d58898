"""Published jobs (``publish: "/"``): the spec's rules, the HTTPRoute builder against its
golden file and the phase-1 contract (``toolforge_dev.webapp.tool_route``), the route
reading behind the 409, the public URL in the job's JSON, and the web settings.

``UPDATE_GOLDEN=1 pytest tests/jobs`` rewrites the golden file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from golden import assert_golden
from toolforge_dev.web_manifests import GATEWAY_NAME, NAMESPACE, PUBLIC_DOMAIN
from toolforge_dev.webapp import tool_route
from toolforge_jobs.builders import PRESTOP_SLEEP_SECONDS, ToolContext, build_objects, job_labels
from toolforge_jobs.models import Job, JobSpec, JobStatus, validation_messages
from toolforge_jobs.routes import WebSettings, build_route, path_holder, public_url
from toolforge_jobs.settings import JobsSettings

GOLDEN = Path(__file__).parent / "golden"
LOCAL = WebSettings(
    public_domain=PUBLIC_DOMAIN,
    gateway_namespace=NAMESPACE,
    gateway_name=GATEWAY_NAME,
    url_template="http://{tool}.{domain}:30000",
)
WEB: dict[str, Any] = {
    "name": "web",
    "cmd": "python3 app.py",
    "imagename": "python3.11",
    "continuous": True,
    "port": 8000,
    "publish": "/",
}


@pytest.fixture
def tool() -> ToolContext:
    return ToolContext(name="mytool", uid=50001, home_host_path="/srv/homes/mytool")


def _errors(**fields: Any) -> list[str]:
    with pytest.raises(ValidationError) as exc:
        JobSpec.model_validate({**WEB, **fields})
    return validation_messages(exc.value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"publish": "/api"}, 'publish must be "/"'),
        ({"publish": ""}, 'publish must be "/"'),
        ({"port": None}, "publish needs a port"),
        ({"port_protocol": "udp"}, "publish needs a tcp port"),
        ({"continuous": False, "port": None}, "publish is only valid for continuous jobs"),
        (
            {"continuous": False, "schedule": "@daily", "port": None},
            "publish is only valid for continuous jobs",
        ),
    ],
    ids=["other-path", "empty", "no-port", "udp", "one-off", "scheduled"],
)
def test_publish_is_refused_where_it_does_not_apply(fields: dict[str, Any], message: str) -> None:
    messages = _errors(**fields)
    assert any(m.startswith(message) for m in messages), messages


def test_publish_is_kept_as_set_and_read_back() -> None:
    spec = JobSpec.model_validate(WEB)
    assert spec.publish == "/"
    assert spec.stored()["publish"] == "/"
    assert JobSpec.model_validate(spec.stored()).publish == "/"
    unpublished = JobSpec.model_validate({**WEB, "publish": None})
    assert unpublished.publish is None
    assert "publish" not in unpublished.stored()


def test_route_golden_and_contract(tool: ToolContext) -> None:
    spec = JobSpec.model_validate(WEB)
    route = build_route(spec, tool, LOCAL)
    assert route is not None
    assert_golden(
        GOLDEN / "published-route.yaml", yaml.safe_dump(route, sort_keys=False, width=100)
    )
    # The route phase 1 wrote down (docs/web-traffic.md), with the job's labels and namespace.
    contract = tool_route("mytool", "web", 8000, labels=job_labels(spec, tool))
    assert route["spec"] == contract["spec"]
    assert route["metadata"] == {**contract["metadata"], "namespace": "tool-mytool"}


def test_route_follows_the_port_and_settings(tool: ToolContext) -> None:
    spec = JobSpec.model_validate({**WEB, "port": 9090})
    web = WebSettings(public_domain="toolforge.org", gateway_namespace="gw", gateway_name="pub")
    route = build_route(spec, tool, web)
    assert route is not None
    assert route["spec"]["rules"][0]["backendRefs"] == [{"name": "web", "port": 9090}]
    assert route["spec"]["hostnames"] == ["mytool.toolforge.org"]
    assert route["spec"]["parentRefs"][0] == {
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "namespace": "gw",
        "name": "pub",
    }
    assert build_route(JobSpec.model_validate({**WEB, "publish": None}), tool, web) is None


def test_published_pods_stop_slowly_and_others_do_not(tool: ToolContext) -> None:
    published = build_objects(JobSpec.model_validate(WEB), tool, "img")[0]
    container = published["spec"]["template"]["spec"]["containers"][0]
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": PRESTOP_SLEEP_SECONDS}}}
    grace = published["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > PRESTOP_SLEEP_SECONDS
    assert "startupProbe" in container  # readiness waits for the port
    plain = build_objects(JobSpec.model_validate({**WEB, "publish": None}), tool, "img")[0]
    assert "lifecycle" not in plain["spec"]["template"]["spec"]["containers"][0]


def _route(name: str, path: str | None, *, job: str | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"backendRefs": [{"name": name, "port": 80}]}
    if path is not None:
        rule["matches"] = [{"path": {"type": "PathPrefix", "value": path}}]
    labels = (
        {"app.kubernetes.io/name": job, "app.kubernetes.io/managed-by": "toolforge-jobs-framework"}
        if job
        else {}
    )
    return {"metadata": {"name": name, "labels": labels}, "spec": {"rules": [rule]}}


def test_path_holder_names_the_other_job() -> None:
    routes = [_route("web", "/", job="web"), _route("api", "/api", job="api")]
    assert path_holder(routes, "web", "/") is None  # its own route
    assert path_holder(routes, "other", "/") == "job 'web'"
    assert path_holder(routes, "other", "/x") is None
    # a route the tool made by hand, without matches (which means /)
    assert path_holder([_route("hand-made", None)], "web", "/") == "HTTPRoute 'hand-made'"
    assert path_holder([], "web", "/") is None


def test_public_url_only_in_the_full_json() -> None:
    spec = JobSpec.model_validate(WEB)
    job = Job.from_spec(
        spec,
        image="i",
        status=JobStatus(short="running"),
        status_short="s",
        status_long="l",
        public_url=public_url("mytool", "/", LOCAL),
    )
    full = job.wire(tool="mytool")
    assert full["publish"] == "/"
    assert full["public_url"] == "http://mytool.toolforge.local:30000/"
    dump = job.wire(tool="mytool", include_unset=False)
    assert dump["publish"] == "/"
    assert "public_url" not in dump  # upstream's dump warns about keys it does not know


def test_public_url_forms() -> None:
    prod = WebSettings(public_domain="toolforge.org", gateway_namespace="g", gateway_name="w")
    assert public_url("mytool", "/", prod) == "https://mytool.toolforge.org/"
    assert public_url("mytool", "/", LOCAL) == "http://mytool.toolforge.local:30000/"


@pytest.mark.parametrize(
    "template", ["ftp://{tool}.{domain}", "https://{tool}.{domain}/{path}", "https://x.{domain}"]
)
def test_bad_url_templates_are_refused(template: str) -> None:
    with pytest.raises(ValueError, match="template"):
        JobsSettings(public_url_template=template)


def test_settings_defaults_are_production_like() -> None:
    web = JobsSettings().web()
    assert (web.public_domain, web.gateway_namespace, web.gateway_name) == (
        "toolforge.org",
        "toolforge-web",
        "web",
    )
    assert public_url("t", "/", web) == "https://t.toolforge.org/"


def test_the_tools_role_allows_every_route_call_the_api_makes_as_the_tool() -> None:
    """The API writes routes by impersonation, with the tool's RBAC: get (delete, replace),
    list (the one-job-per-path check), create, update (PUT on a port change), delete,
    deletecollection (flush)."""
    from toolforge_admin.web_policies import TOOL_ROUTE_RULE

    assert TOOL_ROUTE_RULE["resources"] == ["httproutes"]
    assert {"get", "list", "create", "update", "delete", "deletecollection"} <= set(
        TOOL_ROUTE_RULE["verbs"]
    )
