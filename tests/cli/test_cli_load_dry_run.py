"""``toolforge jobs load --dry-run``: the per-job plan (pure) and, end to end through the
gateway to the real jobs API, that it shows the diff and changes nothing."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from platform_cli import toolforge
from toolforge_cli.jobsdiff import FieldChange, plan_job, quantity_value
from toolforge_cli.jobspec import JobOptions
from toolforge_dev.pytest_plugin import Tool
from toolforge_dev.services import PlatformServices

# The jobs API's answer for a scheduled job (GET /jobs): every default filled in.
EXISTING: dict[str, Any] = {
    "name": "daily",
    "cmd": "./daily.sh",
    "imagename": "bookworm",
    "job_type": "scheduled",
    "continuous": False,
    "schedule": "@daily",
    "filelog": False,
    "filelog_stdout": None,
    "filelog_stderr": None,
    "emails": "none",
    "mount": "all",
    "memory": "512Mi",
    "cpu": "100m",
    "retry": 0,
    "timeout": None,
    "replicas": None,
    "port": None,
    "port_protocol": None,
    "health_check": None,
}


def options(**entry: Any) -> JobOptions:
    base = {"name": "daily", "command": "./daily.sh", "image": "bookworm", "schedule": "@daily"}
    return JobOptions.model_validate({**base, **entry})


def test_a_new_job_is_created_with_its_keys() -> None:
    plan = plan_job(options(mem="1Gi"), None)
    assert plan.action == "create"
    assert plan.changes == [
        FieldChange("name", None, "daily"),
        FieldChange("command", None, "./daily.sh"),
        FieldChange("image", None, "bookworm"),
        FieldChange("schedule", None, "@daily"),
        FieldChange("mem", None, "1Gi"),
    ]


def test_defaults_spelled_out_quantities_and_wait_are_no_change() -> None:
    same = options(mem="0.5Gi", cpu="0.1", emails="none", retry=0, **{"no-filelog": True})
    assert quantity_value("0.5Gi") == Decimal(512 * 2**20)
    plan = plan_job(same, {**EXISTING, "memory": "512Mi"})
    assert (plan.action, plan.changes) == ("unchanged", [])
    one_off = JobOptions.model_validate(
        {"name": "daily", "command": "./daily.sh", "image": "bookworm", "wait": True}
    )
    existing = {**EXISTING, "job_type": "one-off", "schedule": None}
    assert plan_job(one_off, existing).action == "unchanged"


def test_changed_keys_are_listed_with_old_and_new_values() -> None:
    plan = plan_job(options(schedule="0 3 * * *", cpu="250m", emails="onfailure"), EXISTING)
    assert plan.action == "update"
    assert plan.changes == [
        FieldChange("schedule", "@daily", "0 3 * * *"),
        FieldChange("cpu", None, "250m"),
        FieldChange("emails", None, "onfailure"),
    ]
    # only quantities compare by value: an image "3.1" is not "3.10"
    plan = plan_job(options(image="3.10"), {**EXISTING, "imagename": "3.1"})
    assert plan.changes == [FieldChange("image", "3.1", "3.10")]
    # a key only the existing job has goes back to the default
    plan = plan_job(options(), {**EXISTING, "retry": 3})
    assert plan.changes == [FieldChange("retry", 3, None)]


def test_a_type_change_is_shown() -> None:
    continuous = JobOptions.model_validate(
        {"name": "daily", "command": "./daily.sh", "image": "bookworm", "continuous": True}
    )
    plan = plan_job(continuous, EXISTING)
    assert plan.changes == [
        FieldChange("schedule", "@daily", None),
        FieldChange("continuous", None, True),
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [("100m", Decimal("0.1")), ("1e3", Decimal(1000)), ("2Ki", Decimal(2048)), ("x", None)],
)
def test_quantity_value(text: str, value: Decimal | None) -> None:
    assert quantity_value(text) == value


# -- end to end -------------------------------------------------------------------------------


@pytest.mark.cluster
def test_dry_run_shows_the_diff_and_changes_nothing(
    platform: PlatformServices, tool: Tool, tmp_path: Path
) -> None:
    run = toolforge(
        tool, "jobs", "run", "daily", "--command", "echo daily", "--image", "python3.11",
        "--schedule", "@daily",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    before = toolforge(tool, "jobs", "show", "daily", "-o", "json")
    assert before.returncode == 0, before.stderr
    jobs_file = tmp_path / "jobs.yaml"
    dumped = toolforge(tool, "jobs", "dump", "-f", str(jobs_file))
    assert dumped.returncode == 0, dumped.stderr

    # dump then load --dry-run: nothing to do
    same = toolforge(tool, "jobs", "load", str(jobs_file), "--dry-run")
    assert same.returncode == 0, same.stderr
    assert same.stdout.split() == ["unchanged", "daily"]

    entries = yaml.safe_load(jobs_file.read_text())
    entries[0]["mem"] = "1Gi"
    entries[0]["schedule"] = "0 3 * * *"
    entries.append({"name": "extra", "command": "echo extra", "image": "python3.11"})
    jobs_file.write_text(yaml.safe_dump(entries))
    plan = toolforge(tool, "jobs", "load", str(jobs_file), "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert plan.stdout.splitlines() == [
        "update    daily",
        '    schedule: "@daily" -> "0 3 * * *"',
        '    mem: (not set) -> "1Gi"',
        "create    extra",
        '    name: "extra"',
        '    command: "echo extra"',
        '    image: "python3.11"',
    ]
    assert "Dry run: nothing was changed (1 to create, 1 to update)" in plan.stderr

    after = toolforge(tool, "jobs", "show", "daily", "-o", "json")
    assert after.returncode == 0, after.stderr
    job_before, job_after = json.loads(before.stdout)["job"], json.loads(after.stdout)["job"]
    assert (job_after["memory"], job_after["schedule"]) == ("0.5Gi", "@daily")  # the default
    assert {k: v for k, v in job_after.items() if k != "status"} == {
        k: v for k, v in job_before.items() if k != "status"
    }
    listed = toolforge(tool, "jobs", "list", "-o", "name")
    assert listed.stdout.split() == ["daily"]

    # and loading for real does what the dry run said
    loaded = toolforge(tool, "jobs", "load", str(jobs_file))
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.splitlines() == [  # the API's own words, as upstream prints them
        "Job daily was updated in storage and runtime",
        "Job extra created",
    ]
    again = toolforge(tool, "jobs", "load", str(jobs_file), "--dry-run")
    assert again.stdout.split() == ["unchanged", "daily", "unchanged", "extra"]
