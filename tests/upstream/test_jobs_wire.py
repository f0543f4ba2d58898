"""The jobs API on the wire as production serves it (REFERENCE.md, "The wire as production serves
it"; issue 13), checked through the real gateway with the tool's certificate: one test per
behaviour that the upstream clients rely on.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from upstream.conftest import wait_until

from toolforge_dev.pytest_plugin import Tool

pytestmark = pytest.mark.cluster


def _jobs(tool: Tool) -> str:
    return f"/jobs/v1/tool/{tool.name}/jobs"


def _create(http: httpx.Client, tool: Tool, **spec: Any) -> dict[str, Any]:
    response = http.post(_jobs(tool), json=spec)
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()["job"]
    return job


def _finished(http: httpx.Client, tool: Tool, name: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job: dict[str, Any] = http.get(f"{_jobs(tool)}/{name}").json()["job"]
        return job if job["status"]["short"] in ("succeeded", "failed") else None

    finished = wait_until(done, f"job {name} to finish")
    assert finished is not None
    return finished


def test_each_job_type_has_its_shape_without_nulls(tool_http: httpx.Client, tool: Tool) -> None:
    _create(tool_http, tool, name="once", cmd="sleep 600", imagename="bookworm")
    _create(tool_http, tool, name="cron", cmd="true", imagename="bookworm", schedule="@daily")
    _create(
        tool_http, tool, name="web", cmd="sleep 600", imagename="bookworm", job_type="continuous"
    )
    listed = tool_http.get(_jobs(tool))
    assert listed.status_code == 200
    jobs = {job["name"]: job for job in listed.json()["jobs"]}
    for job in jobs.values():
        assert None not in job.values(), job
        assert None not in job["status"].values(), job["status"]
        assert job["image_state"] == "stable"
        assert "continuous" not in job
    assert jobs["once"]["job_type"] == "one-off"
    assert not {"schedule", "replicas", "port", "timeout", "health_check"} & set(jobs["once"])
    assert jobs["cron"]["schedule"] == "@daily"
    assert "replicas" not in jobs["cron"]
    assert "port" not in jobs["cron"]
    assert jobs["web"]["replicas"] == 1
    assert not {"schedule", "retry", "port", "port_protocol"} & set(jobs["web"])
    # scheduled jobs carry their schedule times; the others do not
    assert "next_schedule" in jobs["cron"]["status"]
    assert "next_schedule" not in jobs["once"]["status"]


def test_include_unset_false_leaves_out_what_the_user_never_set(
    tool_http: httpx.Client, tool: Tool
) -> None:
    _create(
        tool_http, tool, name="cron", cmd="true", imagename="bookworm", schedule="@hourly",
        memory="256Mi", filelog=False,
    )  # fmt: skip
    full = tool_http.get(f"{_jobs(tool)}/cron").json()["job"]
    assert (full["cpu"], full["emails"], full["mount"], full["retry"]) == ("0.1", "none", "all", 0)
    minimal = tool_http.get(f"{_jobs(tool)}/cron", params={"include_unset": "false"}).json()["job"]
    spec_fields = set(minimal) - {"image", "image_state", "status", "status_short"}
    assert spec_fields - {"status_long", "schedule_actual"} == {
        "name", "cmd", "imagename", "job_type", "schedule", "memory", "filelog",
    }  # fmt: skip
    listed = tool_http.get(_jobs(tool), params={"include_unset": "false"}).json()["jobs"]
    assert listed == [minimal]


def test_status_duration_is_a_string(tool_http: httpx.Client, tool: Tool) -> None:
    _create(tool_http, tool, name="quick", cmd="sleep 2", imagename="bookworm")
    job = _finished(tool_http, tool, "quick")
    duration = job["status"]["duration"]
    assert isinstance(duration, str)
    assert duration.endswith("s"), duration


def _without_status(body: dict[str, Any]) -> dict[str, Any]:
    """An answer without the parts that change while a job starts (its status)."""
    status = {"status", "status_short", "status_long"}

    def strip(job: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in job.items() if k not in status}

    if "jobs" in body:
        return {**body, "jobs": [strip(job) for job in body["jobs"]]}
    if "job" in body:
        return {**body, "job": strip(body["job"])}
    return body


def test_routes_answer_with_a_trailing_slash_without_redirect(
    tool_http: httpx.Client, tool: Tool
) -> None:
    _create(tool_http, tool, name="once", cmd="sleep 600", imagename="bookworm")
    for path in (_jobs(tool), f"{_jobs(tool)}/once", f"/jobs/v1/tool/{tool.name}/images"):
        plain, slashed = tool_http.get(path), tool_http.get(path + "/")
        assert slashed.status_code == 200, (path, slashed.status_code, slashed.text)
        assert "location" not in slashed.headers
        assert _without_status(plain.json()) == _without_status(slashed.json())
    deleted = tool_http.delete(f"{_jobs(tool)}/once/")
    assert deleted.status_code == 200, deleted.text


def test_405_lists_every_method_of_the_path(tool_http: httpx.Client, tool: Tool) -> None:
    for method in ("PUT", "OPTIONS"):
        response = tool_http.request(method, _jobs(tool))
        assert response.status_code == 405, response.text
        assert response.headers["allow"] == "DELETE, GET, PATCH, POST"
        assert set(response.json()) == {"error"}


def test_errors_are_a_top_level_error_list(tool_http: httpx.Client, tool: Tool) -> None:
    missing = tool_http.get(f"{_jobs(tool)}/nope")
    assert missing.status_code == 404
    assert missing.json() == {"error": ["Job 'nope' does not exist"]}
    invalid = tool_http.post(_jobs(tool), json={"name": "x", "cmd": " ", "imagename": "bookworm"})
    assert invalid.status_code == 422
    assert invalid.json() == {"error": ["cmd must not be empty"]}


def test_mount_none_on_a_standard_image_is_400(tool_http: httpx.Client, tool: Tool) -> None:
    response = tool_http.post(
        _jobs(tool), json={"name": "x", "cmd": "true", "imagename": "bookworm", "mount": "none"}
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": ["Mount type none is only supported for build service images"]
    }


def test_commands_run_under_sh_and_pods_get_home_and_tool_data_dir(
    tool_http: httpx.Client, tool: Tool
) -> None:
    """``&&``, a pipe and a ``for`` loop, as users write them (issue 13: the loop exited 128,
    ``&&`` was printed), and ``HOME``/``TOOL_DATA_DIR`` of a pod that mounts the home."""
    cmd = (
        "echo one && echo two; seq 3 | tail -1; for i in a b; do echo $i; done; "
        'echo "home=$HOME data=$TOOL_DATA_DIR pwd=$(pwd)"'
    )
    job = _create(tool_http, tool, name="shell", cmd=cmd, imagename="bookworm")
    assert job["filelog"] is True  # the default for a standard image with mount all
    assert _finished(tool_http, tool, "shell")["status"]["short"] == "succeeded"
    home = f"/data/project/{tool.name}"
    assert (tool.home / "shell.out").read_text() == (
        f"one\ntwo\n3\na\nb\nhome={home} data={home} pwd={home}\n"
    )


def test_logs_404_without_output_and_for_filelog_jobs(tool_http: httpx.Client, tool: Tool) -> None:
    _create(tool_http, tool, name="tofile", cmd="echo hi", imagename="bookworm")
    _create(tool_http, tool, name="quiet", cmd="true", imagename="bookworm", filelog=False)
    _finished(tool_http, tool, "tofile")
    _finished(tool_http, tool, "quiet")
    for name in ("tofile", "quiet"):
        response = tool_http.get(f"{_jobs(tool)}/{name}/logs")
        assert response.status_code == 404, response.text
        assert response.json() == {"error": [f"Job '{name}' does not have any logs available"]}


def test_image_aliases_resolve_and_are_shown(tool_http: httpx.Client, tool: Tool) -> None:
    images = tool_http.get(f"/jobs/v1/tool/{tool.name}/images").json()["images"]
    by_name = {image["shortname"]: image for image in images}
    assert set(by_name["python3.11"]["aliases"]) == {"tf-python311", "python3"}
    # only aliases that are true: the python3.11 image is not called python3.13 or 3.9
    assert not any("3.13" in a or "39" in a for i in images for a in i["aliases"])
    job = _create(tool_http, tool, name="aliased", cmd="sleep 600", imagename="tf-python311")
    assert job["imagename"] == "tf-python311"
    assert job["image"] == by_name["python3.11"]["image"]
    assert job["image_state"] == "stable"


def test_patch_with_what_show_answered_changes_nothing(tool_http: httpx.Client, tool: Tool) -> None:
    """A client that sends back a job as ``show`` answered it (defaults, default filelog paths
    and all) changes nothing: PATCH compares what the job does, not how it was spelled."""
    _create(tool_http, tool, name="cron", cmd="true", imagename="bookworm", schedule="@daily")
    shown = tool_http.get(f"{_jobs(tool)}/cron").json()["job"]
    answer_only = {"image", "image_state", "status", "status_short", "status_long"}
    spec = {k: v for k, v in shown.items() if k not in answer_only | {"schedule_actual"}}
    assert spec["filelog_stdout"] == f"/data/project/{tool.name}/cron.out"
    response = tool_http.patch(_jobs(tool), json=spec)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "job_changed": False,
        "messages": {"info": ["Job cron is already up to date"], "warning": [], "error": []},
    }
