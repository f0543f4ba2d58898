"""A client generated from the gateway's served ``/openapi.json`` works (issue 13, "Generated
clients").

A component two backends define differently is renamed ``<route>_<name>`` by the gateway's
aggregation (``merge_specs``) and gets that name as its ``title`` too: generators name models
by title, so ``jobs_HealthResponse`` and ``builds_HealthResponse`` would otherwise both become
``HealthResponse``, and openapi-python-client would drop them and every operation using them.
:func:`test_served_spec_generates_a_complete_client` holds the served document to that.

``openapi-python-client`` (pinned in ``devtools/upstream/generator.txt``, its own environment:
:func:`toolforge_dev.upstream_clients.ensure_generator`) generates a package from the
aggregated document of all backends; a script run with the generator's Python (which has the
client's ``httpx`` and ``attrs``) then creates, lists, shows and deletes a job and lists builds as
the tool, over the gateway with the tool's certificate.
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from toolforge_dev.cluster import Cluster
from toolforge_dev.pytest_plugin import Tool
from toolforge_dev.services import PlatformServices
from toolforge_dev.upstream_clients import ensure_generator

pytestmark = pytest.mark.cluster

PACKAGE = "toolforge_client"
_OPERATION = re.compile(r'"method": "(\w+)",\s*"url": "([^"]+)"')

SCRIPT = textwrap.dedent(
    """
    import importlib, json, os, ssl, typing
    from toolforge_client.client import Client

    ops = json.loads(os.environ["OPS"])
    tool = os.environ["TOOL"]
    context = ssl.create_default_context(cafile=os.environ["CA"])
    context.load_cert_chain(os.environ["CERT"], os.environ["KEY"])
    client = Client(base_url=os.environ["URL"], verify_ssl=context)

    def op(key):
        return importlib.import_module(ops[key])

    out = {}
    create = op("create")
    body_type = typing.get_type_hints(create.sync_detailed)["body"]
    body = body_type.from_dict({"name": "gen", "cmd": "sleep 600", "imagename": "bookworm"})
    created = create.sync_detailed(tool=tool, client=client, body=body)
    out["create"] = [created.status_code.value, type(created.parsed).__name__]
    out["created_job"] = created.parsed.job.to_dict()

    listed = op("list").sync(tool=tool, client=client)
    out["list"] = [type(listed).__name__, [job.name for job in listed.jobs]]
    minimal = op("list").sync(tool=tool, client=client, include_unset=False)
    out["list_minimal"] = minimal.jobs[0].to_dict()

    shown = op("show").sync(tool=tool, name="gen", client=client)
    out["show"] = [shown.job.name, shown.job.job_type, type(shown.job).__name__]
    missing = op("show").sync_detailed(tool=tool, name="nope", client=client)
    out["show_missing"] = [missing.status_code.value, missing.parsed.to_dict()]

    deleted = op("delete").sync_detailed(tool=tool, name="gen", client=client)
    out["delete"] = deleted.status_code.value
    out["after_delete"] = [job.name for job in op("list").sync(tool=tool, client=client).jobs]

    builds = op("builds").sync_detailed(tool=tool, client=client)
    out["builds"] = [builds.status_code.value, json.loads(builds.content)]
    print(json.dumps(out))
    """
)


def _operations(package: Path) -> dict[tuple[str, str], str]:
    """``{(METHOD, url template): module}`` of the generated package."""
    found: dict[tuple[str, str], str] = {}
    for path in sorted((package / "api").rglob("*.py")):
        for method, url in _OPERATION.findall(path.read_text()):
            module = ".".join(path.relative_to(package.parent).with_suffix("").parts)
            found[(method.upper(), url)] = module
    return found


def _served_spec(tool_http: httpx.Client) -> dict[str, Any]:
    served = tool_http.get("/openapi.json")
    assert served.status_code == 200, served.text
    spec: dict[str, Any] = served.json()
    ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)), "operationIds must be unique in the aggregated spec"
    return spec


def _generate(spec: dict[str, Any], directory: Path) -> tuple[Path, str]:
    """Generate :data:`PACKAGE` from ``spec`` in ``directory``; returns the generator's
    environment and its output, after checking that it left out nothing but the NDJSON log
    streams (no JSON schema applies to them)."""
    (directory / "openapi.json").write_text(json.dumps(spec))
    generator = ensure_generator()
    env = {"PATH": f"{generator / 'bin'}:/usr/bin:/bin", "HOME": str(directory)}
    generated = subprocess.run(
        [
            str(generator / "bin" / "openapi-python-client"),
            "generate",
            "--path",
            "openapi.json",
            "--output-path",
            PACKAGE,
            "--meta",
            "none",
        ],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = generated.stdout + generated.stderr
    assert generated.returncode == 0, output
    warnings = re.findall(r"^WARNING parsing (\w+ \S+)", output, re.M)
    assert all(w.endswith(("/logs", "/logs_stream")) for w in warnings), output
    assert "Unable to" not in output, output
    return generator, output


def test_served_spec_generates_a_complete_client(tool_http: httpx.Client, tmp_path: Path) -> None:
    _generate(_served_spec(tool_http), tmp_path)


def test_generated_client_creates_lists_shows_deletes_jobs_and_lists_builds(
    platform: PlatformServices,
    cluster: Cluster,
    tool: Tool,
    tool_http: httpx.Client,
    tmp_path: Path,
) -> None:
    generator, _ = _generate(_served_spec(tool_http), tmp_path)
    env = {"PATH": f"{generator / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}

    operations = _operations(tmp_path / PACKAGE)
    jobs, job = "/jobs/v1/tool/{tool}/jobs", "/jobs/v1/tool/{tool}/jobs/{name}"
    ops = {
        "create": operations[("POST", jobs)],
        "list": operations[("GET", jobs)],
        "show": operations[("GET", job)],
        "delete": operations[("DELETE", job)],
        "builds": operations[("GET", "/builds/v1/tool/{tool}/builds")],
    }
    run = subprocess.run(
        [str(generator / "bin" / "python"), "-c", SCRIPT],
        cwd=tmp_path,
        env={
            **env,
            "PYTHONPATH": str(tmp_path),
            "OPS": json.dumps(ops),
            "TOOL": tool.name,
            "URL": platform.gateway_url,
            "CA": str(cluster.pki_dir / "cluster-ca.crt"),
            "CERT": str(tool.home / ".toolskube" / "client.crt"),
            "KEY": str(tool.home / ".toolskube" / "client.key"),
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    out = json.loads(run.stdout)
    assert out["create"] == [201, "JobResponse"]
    assert out["created_job"]["job_type"] == "one-off"
    assert out["created_job"]["image_state"] == "stable"
    assert out["list"] == ["JobListResponse", ["gen"]]
    assert set(out["list_minimal"]) >= {"name", "cmd", "imagename", "job_type"}
    assert "memory" not in out["list_minimal"]
    assert out["show"] == ["gen", "one-off", "OneOffJobOut"]
    assert out["show_missing"] == [404, {"error": ["Job 'nope' does not exist"]}]
    assert out["delete"] == 200
    assert out["after_delete"] == []
    assert out["builds"][0] == 200, out["builds"]
    assert out["builds"][1]["builds"] == []
