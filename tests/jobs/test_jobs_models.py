"""JobSpec validation (one test per rule; every message names its field), normalisation, and
the response envelopes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError

from toolforge_jobs.models import (
    ImagesResponse,
    ImageSummary,
    Job,
    JobChangedResponse,
    JobListResponse,
    JobSpec,
    JobStatus,
    QuotaResponse,
    error_response,
    validation_messages,
)

BASE: dict[str, Any] = {"name": "job1", "cmd": "./run", "imagename": "bookworm"}
CONTINUOUS: dict[str, Any] = {**BASE, "continuous": True}


def _errors(**fields: Any) -> list[str]:
    with pytest.raises(ValidationError) as exc:
        JobSpec.model_validate({**BASE, **fields})
    return validation_messages(exc.value)


# (case id, fields on top of BASE, field that must lead the message, words of the rule)
RULES: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown field", {"command": "x"}, "command", "Extra inputs are not permitted"),
    ("name pattern", {"name": "My_Job"}, "name", "lower case letters"),
    ("name leading dash", {"name": "-job"}, "name", "start and end with a letter or digit"),
    ("name length", {"name": "a" * 53}, "name", "at most 52 characters"),
    ("empty cmd", {"cmd": "  "}, "cmd", "must not be empty"),
    (
        "unsplittable cmd of a build service image",
        {"cmd": "echo 'unterminated", "imagename": "tool-x/app:latest"},
        "cmd",
        "cannot be split",
    ),
    ("empty imagename", {"imagename": ""}, "imagename", "must not be empty"),
    ("emails option", {"emails": "sometimes"}, "emails", "'onfailure'"),
    ("mount option", {"mount": "some"}, "mount", "'all' or 'none'"),
    ("job_type option", {"job_type": "daemon"}, "job_type", "'continuous'"),
    ("memory quantity", {"memory": "1GB"}, "memory", "'1GB' is not a quantity"),
    ("memory suffix", {"memory": "1K"}, "memory", "unknown suffix 'K'"),
    ("memory zero", {"memory": "0"}, "memory", "more than zero"),
    ("cpu quantity", {"cpu": "half"}, "cpu", "not a quantity"),
    ("cpu negative", {"cpu": "-1"}, "cpu", "more than zero"),
    ("retry range", {"retry": 6}, "retry", "between 0 and 5"),
    ("retry negative", {"retry": -1}, "retry", "between 0 and 5"),
    (
        "retry continuous",
        {"continuous": True, "retry": 2},
        "retry",
        "only valid for one-off and scheduled jobs",
    ),
    ("timeout one-off", {"timeout": 60}, "timeout", "only valid for scheduled jobs"),
    ("timeout zero", {"schedule": "@daily", "timeout": 0}, "timeout", "at least 1 second"),
    ("schedule six fields", {"schedule": "0 * * * * *"}, "schedule", "exactly 5"),
    ("schedule invalid", {"schedule": "61 * * * *"}, "schedule", "outside 0-59"),
    (
        "schedule and continuous",
        {"schedule": "@daily", "continuous": True},
        "schedule",
        "mutually exclusive",
    ),
    (
        "schedule on one-off",
        {"job_type": "one-off", "schedule": "@daily"},
        "schedule",
        "only valid for scheduled jobs",
    ),
    ("scheduled without schedule", {"job_type": "scheduled"}, "schedule", "required"),
    (
        "continuous contradicts",
        {"job_type": "one-off", "continuous": True},
        "continuous",
        "contradicts job_type one-off",
    ),
    ("replicas one-off", {"replicas": 2}, "replicas", "only valid for continuous jobs"),
    ("replicas zero", {"continuous": True, "replicas": 0}, "replicas", "at least 1"),
    ("port one-off", {"port": 80}, "port", "only valid for continuous jobs"),
    ("port range", {"continuous": True, "port": 65536}, "port", "between 1 and 65535"),
    ("port zero", {"continuous": True, "port": 0}, "port", "between 1 and 65535"),
    (
        "port_protocol option",
        {"continuous": True, "port": 80, "port_protocol": "sctp"},
        "port_protocol",
        "'tcp' or 'udp'",
    ),
    (
        "port_protocol without port",
        {"continuous": True, "port_protocol": "udp"},
        "port_protocol",
        "needs a port",
    ),
    (
        "port name",
        {"name": "web.v2", "continuous": True, "port": 80},
        "name",
        "must start with a letter and contain no '.'",
    ),
    (
        "health_check one-off",
        {"health_check": {"type": "script", "script": "true"}},
        "health_check",
        "only valid for continuous jobs",
    ),
    (
        "http health check without port",
        {"continuous": True, "health_check": {"type": "http", "path": "/"}},
        "health_check",
        "type http needs a port",
    ),
    (
        "http health check on udp",
        {
            "continuous": True,
            "port": 53,
            "port_protocol": "udp",
            "health_check": {"type": "http", "path": "/"},
        },
        "health_check",
        "needs a tcp port",
    ),
    (
        "health check type",
        {"continuous": True, "health_check": {"type": "grpc"}},
        "health_check",
        "does not match any of the expected tags",
    ),
    (
        "http path",
        {"continuous": True, "port": 80, "health_check": {"type": "http", "path": "x"}},
        "health_check.path",
        "must start with '/'",
    ),
    (
        "empty script",
        {"continuous": True, "health_check": {"type": "script", "script": " "}},
        "health_check.script",
        "must not be empty",
    ),
    (
        "health check extra field",
        {"continuous": True, "health_check": {"type": "script", "script": "true", "x": 1}},
        "health_check.script.x",
        "Extra inputs are not permitted",
    ),
    ("filelog without home", {"filelog": True, "mount": "none"}, "filelog", "needs mount: all"),
    (
        "filelog_stdout without filelog",
        {"filelog_stdout": "x.out", "filelog": False},
        "filelog_stdout",
        "only valid with filelog: true",
    ),
    (
        "filelog_stderr without filelog",
        {"filelog_stderr": "x.err", "filelog": False},
        "filelog_stderr",
        "only valid with filelog: true",
    ),
    (
        "filelog path empty",
        {"filelog": True, "filelog_stdout": ""},
        "filelog_stdout",
        "non-empty path",
    ),
    ("missing cmd", {"cmd": None}, "cmd", "Input should be a valid string"),
]


@pytest.mark.parametrize(
    ("fields", "field", "rule"), [r[1:] for r in RULES], ids=[r[0] for r in RULES]
)
def test_rule(fields: dict[str, Any], field: str, rule: str) -> None:
    messages = _errors(**fields)
    assert len(messages) == 1, messages
    (message,) = messages
    assert message.startswith(f"{field} ") or message.startswith(f"{field}: "), message
    assert rule in message


def test_missing_required_fields_are_each_named() -> None:
    with pytest.raises(ValidationError) as exc:
        JobSpec.model_validate({})
    assert sorted(validation_messages(exc.value)) == [
        "cmd: Field required",
        "imagename: Field required",
        "name: Field required",
    ]


def test_defaults() -> None:
    spec = JobSpec.model_validate(BASE)
    # memory and cpu as the upstream client knows its defaults ("0.5Gi", "0.1": it shows them
    # as "default"); filelog on for a standard image with mount all (REFERENCE.md)
    assert (spec.emails, spec.mount, spec.memory, spec.cpu, spec.retry) == (
        "none",
        "all",
        "0.5Gi",
        "0.1",
        0,
    )
    assert (spec.filelog, spec.filelog_stdout, spec.filelog_stderr) == (True, None, None)
    assert spec.user_set == set(BASE)


def test_defaults_of_a_build_service_image() -> None:
    spec = JobSpec.model_validate({**BASE, "imagename": "tool-x/app:latest"})
    assert (spec.mount, spec.filelog) == ("none", False)
    explicit = JobSpec.model_validate(
        {**BASE, "imagename": "tool-x/app:latest", "mount": "all", "filelog": True}
    )
    assert (explicit.mount, explicit.filelog) == ("all", True)


def test_null_counts_as_not_set() -> None:
    spec = JobSpec.model_validate({**BASE, "filelog": None, "mount": None, "schedule": None})
    assert spec.user_set == set(BASE)
    assert (spec.filelog, spec.mount, spec.job_type) == (True, "all", "one-off")
    assert (spec.schedule, spec.timeout, spec.replicas, spec.port, spec.health_check) == (
        None,
        None,
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("fields", "job_type"),
    [
        ({}, "one-off"),
        ({"schedule": "@hourly"}, "scheduled"),
        ({"continuous": True}, "continuous"),
        ({"job_type": "continuous"}, "continuous"),
        ({"job_type": "scheduled", "schedule": "0 0 * * *"}, "scheduled"),
    ],
)
def test_job_type_is_inferred_and_always_set(fields: dict[str, Any], job_type: str) -> None:
    spec = JobSpec.model_validate({**BASE, **fields})
    assert spec.job_type == job_type
    assert spec.kind == job_type
    assert spec.continuous == (job_type == "continuous")


def test_continuous_defaults() -> None:
    spec = JobSpec.model_validate({**CONTINUOUS, "port": 8080})
    assert (spec.replicas, spec.port_protocol) == (1, "tcp")
    assert JobSpec.model_validate(CONTINUOUS).port_protocol is None


def test_retry_zero_is_accepted_for_continuous_jobs() -> None:
    # clients that always send the default must not be refused
    assert JobSpec.model_validate({**CONTINUOUS, "retry": 0}).retry == 0


def test_normalised_spec_validates_to_an_equal_spec() -> None:
    for fields in ({}, {"schedule": "@daily", "timeout": 5}, {"continuous": True, "port": 1}):
        spec = JobSpec.model_validate({**BASE, **fields})
        full = JobSpec.model_validate(spec.model_dump(mode="json"))
        assert full.model_dump() == spec.model_dump()
        # what is stored: only the fields the user set, validating back to the same spec
        stored = JobSpec.model_validate(spec.stored())
        assert stored == spec
        assert stored.user_set == spec.user_set == set(BASE) | set(fields)


def test_filelog_command_is_not_split() -> None:
    # the shell gets it whole, so unbalanced quotes are the shell's business
    assert JobSpec.model_validate({**BASE, "cmd": "echo 'a", "filelog": True}).filelog


def _job() -> Job:
    spec = JobSpec.model_validate({**BASE, "schedule": "@daily"})
    return Job.from_spec(
        spec,
        image="registry.local/toolforge/bookworm:stable",
        schedule_actual="17 3 * * *",
        status=JobStatus(
            short="pending",
            messages=["Waiting for scheduled time"],
            next_schedule=dt.datetime(2024, 1, 2, 3, 17, tzinfo=dt.UTC),
        ),
        status_short="Waiting for scheduled time",
        image_state="stable",
        status_long="Waiting for scheduled time",
    )


def test_job_response_carries_spec_and_status() -> None:
    job = _job().wire(tool="t")
    JobListResponse.model_validate({"jobs": [job]})  # the documented shape
    assert job["name"] == "job1"
    assert job["schedule"] == "@daily"
    assert job["schedule_actual"] == "17 3 * * *"
    assert job["image"] == "registry.local/toolforge/bookworm:stable"
    assert job["status_short"] == "Waiting for scheduled time"
    assert job["status"]["short"] == "pending"
    assert job["status"]["next_schedule"] == "2024-01-02T03:17:00Z"
    assert job["status"]["up_to_date"] is True
    assert "duration" not in job["status"]
    assert "previous_schedule" not in job["status"]
    assert job["image_state"] == "stable"


def test_each_type_has_its_own_shape_and_no_nulls() -> None:
    """REFERENCE.md: a field that does not apply to the type is absent, not null; the
    upstream client's ``dump`` writes whatever it gets (issue 13: ``schedule: null``...)."""
    status = JobStatus(short="running")
    kinds: dict[str, dict[str, Any]] = {
        "one-off": {},
        "scheduled": {"schedule": "@daily"},
        "continuous": {"continuous": True},
    }
    for kind, fields in kinds.items():
        spec = JobSpec.model_validate({**BASE, **fields})
        job = Job.from_spec(spec, image="i", status=status, status_short="s", status_long="l")
        wire = job.wire(tool="t")
        assert wire["job_type"] == kind
        assert None not in wire.values(), wire
        assert "continuous" not in wire
        assert ("schedule" in wire) == (kind == "scheduled")
        assert ("replicas" in wire) == (kind == "continuous")
        assert ("retry" in wire) == (kind != "continuous")
        assert "port" not in wire
        assert "timeout" not in wire
        assert "health_check" not in wire
        assert wire["filelog_stdout"] == "/data/project/t/job1.out"  # the default, shown
        JobListResponse.model_validate({"jobs": [wire]})


def test_include_unset_false_keeps_only_what_the_user_set() -> None:
    spec = JobSpec.model_validate(
        {**BASE, "job_type": "continuous", "port": 8080, "filelog": False, "mount": None}
    )
    job = Job.from_spec(
        spec, image="i", status=JobStatus(short="running"), status_short="s", status_long="l"
    )
    wire = job.wire(tool="t", include_unset=False)
    spec_fields = set(wire) - {"image", "image_state", "status", "status_short", "status_long"}
    assert spec_fields == {"name", "cmd", "imagename", "job_type", "port", "filelog"}
    full = job.wire(tool="t")
    assert (full["port_protocol"], full["replicas"], full["mount"]) == ("tcp", 1, "all")


def test_envelopes() -> None:
    assert JobChangedResponse(job_changed=False).model_dump()["job_changed"] is False
    images = ImagesResponse(images=[ImageSummary(shortname="bookworm", image="r/b:1")])
    assert images.model_dump()["images"] == [
        {"shortname": "bookworm", "image": "r/b:1", "aliases": []}
    ]
    quota = QuotaResponse.model_validate(
        {
            "quota": {
                "categories": [{"name": "c", "items": [{"name": "i", "limit": "1", "used": None}]}]
            }
        }
    )
    assert quota.quota.categories[0].items[0].used is None
    error = error_response("Job 'x' does not exist").model_dump()
    assert error == {"error": ["Job 'x' does not exist"]}
    # each response gets its own messages object
    first, second = JobChangedResponse(job_changed=True), JobChangedResponse(job_changed=True)
    first.messages.info.append("updated")
    assert second.messages.info == []
