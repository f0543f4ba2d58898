"""A job as the user writes it (``toolforge jobs run`` flags, ``jobs.yaml`` entries) and its
translation to and from the jobs API.

``jobs.yaml`` keys are the long names of the ``run`` flags (REFERENCE.md, CLI paragraph), so
both go through :class:`JobOptions` and produce the same request body:

======================== ======================== =========================================
run flag                 jobs.yaml key            API field (POST/PATCH ``/jobs`` body)
======================== ======================== =========================================
NAME (argument)          ``name``                 ``name``
``--command``            ``command``              ``cmd``
``--image``              ``image``                ``imagename``
``--schedule``           ``schedule``             ``schedule``
``--continuous``         ``continuous``           ``job_type: continuous``
``--retry``              ``retry``                ``retry``
``--mem``                ``mem``                  ``memory``
``--cpu``                ``cpu``                  ``cpu``
``--emails``             ``emails``               ``emails``
``--mount``              ``mount``                ``mount``
``--filelog``            ``filelog``              ``filelog: true``
``--no-filelog``         ``no-filelog``           ``filelog: false``
``-o/--filelog-stdout``  ``filelog-stdout``       ``filelog_stdout`` (implies filelog)
``-e/--filelog-stderr``  ``filelog-stderr``       ``filelog_stderr`` (implies filelog)
``--timeout``            ``timeout``              ``timeout``
``--health-check-script`` ``health-check-script`` ``health_check: {type: script, script}``
``--health-check-http``  ``health-check-http``    ``health_check: {type: http, path}``
``-p/--port N[/proto]``  ``port`` (int or str)    ``port`` (+ ``port_protocol`` if given)
``--replicas``           ``replicas``             ``replicas``
``--publish [/]``        ``publish``              ``publish`` (continuous, TCP ``port``)
``--wait [S]``           ``wait`` (bool or int)   (client side only, not sent)
======================== ======================== =========================================

Every body says ``job_type`` (``one-off``, ``scheduled`` or ``continuous``), as upstream's
client sends it; options that are not given are not sent, so the API applies its defaults
(REFERENCE.md, "Job fields"). jobs.yaml files written by upstream's ``dump`` load as they are:
their ``filelog: 'yes'`` and ``no-filelog: 'true'`` strings read as ``true``.
:meth:`JobOptions.problems` checks the rules that involve several options before any request
is made; the API checks everything again (quantities, image names, limits).
:func:`options_from_job` goes the other way (``dump``), leaving out values equal to the API's
defaults, so that loading a dump changes nothing. Which values are defaults depends on the
API's answer (:func:`older_jobs_api`): production's jobs API, asked with
``include_unset=false``, sends only what the user set, and its defaults for ``filelog`` and
``mount`` depend on the image, so an explicit ``filelog: false`` or ``mount: all`` is kept;
our older API sends every field with image-independent defaults (file logs off, mount all),
which are left out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
)

from toolforge_cli.jobsapi import Job

__all__ = [
    "API_DEFAULTS",
    "DEFAULT_WAIT_SECONDS",
    "NAME_MAX_LENGTH",
    "NAME_PATTERN",
    "OPTION_KEYS",
    "JobOptions",
    "Port",
    "flag_name",
    "key_name",
    "older_jobs_api",
    "options_from_job",
    "parse_port",
]

#: Job names (REFERENCE.md, "Job fields").
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
NAME_MAX_LENGTH = 52
#: ``--wait`` without a value, ``wait: true`` in jobs.yaml: seconds to wait at most.
DEFAULT_WAIT_SECONDS = 600
#: Values the API fills in when an option is not given (REFERENCE.md, "Job fields"). Those of
#: ``filelog`` and ``mount`` are our older API's; production's depend on the image.
API_DEFAULTS: dict[str, Any] = {
    "memory": "512Mi",
    "cpu": "100m",
    "emails": "none",
    "mount": "all",
    "retry": 0,
    "filelog": False,
    "replicas": 1,
}

Emails = Literal["none", "all", "onfinish", "onfailure"]
Mount = Literal["all", "none"]


class Port(NamedTuple):
    """A port and, when given (``8080/udp``), its protocol."""

    number: int
    protocol: Literal["tcp", "udp"] | None = None

    def __str__(self) -> str:
        return f"{self.number}/{self.protocol}" if self.protocol else str(self.number)


_PORT_RE = re.compile(r"^(\d+)(?:/(tcp|udp))?$")


def parse_port(value: object) -> Port:
    """``8080``, ``"8080"``, ``"8080/tcp"`` or ``"8080/udp"`` -> :class:`Port`; the number
    must be 1..65535. Raises ``ValueError`` otherwise."""
    if isinstance(value, Port):
        return value
    if isinstance(value, bool):
        raise ValueError("must be a port number, optionally followed by /tcp or /udp")
    match = _PORT_RE.fullmatch(str(value).strip().lower())
    if match is None:
        raise ValueError(f"{value!r} is not PORT or PORT/tcp or PORT/udp (e.g. 8080 or 5353/udp)")
    number = int(match.group(1))
    if not 1 <= number <= 65535:
        raise ValueError(f"port must be between 1 and 65535 (got {number})")
    protocol: Literal["tcp", "udp"] | None = match.group(2)  # type: ignore[assignment]
    return Port(number, protocol)


def _quantity(value: object) -> object:
    """YAML reads ``cpu: 1`` or ``cpu: 0.5`` as numbers; the API wants strings."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _upstream_true(value: object) -> object:
    """Upstream's ``dump`` writes ``filelog: 'yes'`` and ``no-filelog: 'true'``, and its
    ``load`` reads them as ``true`` (toolforge-jobs-cli 16.2.3)."""
    return True if value in ("yes", "true") else value


Quantity = Annotated[StrictStr, BeforeValidator(_quantity)]
Flag = Annotated[StrictBool, BeforeValidator(_upstream_true)]
PortValue = Annotated[Port, BeforeValidator(parse_port)]


def key_name(field: str) -> str:
    """The jobs.yaml key of a :class:`JobOptions` field: ``filelog_stdout`` ->
    ``filelog-stdout``."""
    return field.replace("_", "-")


def flag_name(field: str) -> str:
    """The ``run`` flag of a :class:`JobOptions` field: ``filelog_stdout`` ->
    ``--filelog-stdout`` (``name`` is the NAME argument)."""
    return "NAME" if field == "name" else "--" + key_name(field)


class JobOptions(BaseModel):
    """One job, keyed like jobs.yaml (hyphenated keys, see the module table).

    Validation checks the type of every value and rejects unknown keys (``extra="forbid"``);
    it raises ``pydantic.ValidationError``. Rules across options: :meth:`problems`.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=key_name, populate_by_name=False
    )

    name: Annotated[StrictStr, Field(min_length=1)]
    command: Annotated[StrictStr, Field(min_length=1)]
    image: Annotated[StrictStr, Field(min_length=1)]
    schedule: StrictStr | None = None
    continuous: StrictBool = False
    retry: Annotated[StrictInt, Field(ge=0, le=5)] | None = None
    mem: Quantity | None = None
    cpu: Quantity | None = None
    emails: Emails | None = None
    mount: Mount | None = None
    filelog: Flag | None = None
    no_filelog: Flag | None = None
    filelog_stdout: StrictStr | None = None
    filelog_stderr: StrictStr | None = None
    timeout: Annotated[StrictInt, Field(ge=1)] | None = None
    health_check_script: StrictStr | None = None
    health_check_http: StrictStr | None = None
    port: PortValue | None = None
    replicas: Annotated[StrictInt, Field(ge=1)] | None = None
    publish: Literal["/"] | None = None
    wait: StrictBool | Annotated[StrictInt, Field(ge=1)] | None = None

    @property
    def job_type(self) -> Literal["one-off", "scheduled", "continuous"]:
        if self.schedule is not None:
            return "scheduled"
        return "continuous" if self.continuous else "one-off"

    @property
    def wait_seconds(self) -> int | None:
        """Seconds to wait for the job after creating it, or ``None`` not to wait."""
        if self.wait is None or self.wait is False:
            return None
        return DEFAULT_WAIT_SECONDS if self.wait is True else int(self.wait)

    @property
    def filelog_enabled(self) -> bool | None:
        """``filelog``, ``no-filelog`` and ``-o``/``-e`` combined; ``None``: not given."""
        if self.filelog is not None:
            return self.filelog
        if self.no_filelog is not None:
            return not self.no_filelog
        if self.filelog_stdout is not None or self.filelog_stderr is not None:
            return True
        return None

    def problems(self, name_of: Callable[[str], str] = key_name) -> list[str]:
        """Rules that involve several options (REFERENCE.md, "Job fields"), as sentences
        that name the options with ``name_of`` (:func:`key_name` for jobs.yaml,
        :func:`flag_name` for the ``run`` flags). Empty when all is well."""
        n = name_of
        found: list[str] = []
        if len(self.name) > NAME_MAX_LENGTH:
            found.append(f"{n('name')} {self.name!r} is longer than {NAME_MAX_LENGTH} characters")
        elif not re.fullmatch(NAME_PATTERN, self.name):
            found.append(
                f"{n('name')} {self.name!r} must consist of lower case letters, digits, '-' "
                "and '.', and start and end with a letter or digit"
            )
        if self.schedule is not None and self.continuous:
            found.append(f"{n('schedule')} and {n('continuous')} are mutually exclusive")
        if self.health_check_script is not None and self.health_check_http is not None:
            found.append(
                f"{n('health_check_script')} and {n('health_check_http')} are mutually exclusive"
            )
        if self.filelog is not None and self.filelog == self.no_filelog:
            found.append(f"{n('filelog')} and {n('no_filelog')} contradict each other")
        if self.filelog_enabled is False:
            for field in ("filelog_stdout", "filelog_stderr"):
                if getattr(self, field) is not None:
                    found.append(f"{n(field)} needs file logs, which are switched off")
        kind = self.job_type
        if kind != "continuous":
            for field in (
                "port",
                "replicas",
                "health_check_script",
                "health_check_http",
                "publish",
            ):
                if getattr(self, field) is not None:
                    found.append(f"{n(field)} is only valid with {n('continuous')}")
        if kind == "continuous" and self.retry:
            found.append(f"{n('retry')} is not valid with {n('continuous')}")
        if self.timeout is not None and kind != "scheduled":
            found.append(f"{n('timeout')} is only valid with {n('schedule')}")
        if self.health_check_http is not None:
            if not self.health_check_http.startswith("/"):
                found.append(
                    f"{n('health_check_http')} must be a path starting with '/' "
                    f"(got {self.health_check_http!r})"
                )
            if self.port is None or self.port.protocol == "udp":
                found.append(f"{n('health_check_http')} needs a TCP {n('port')}")
        udp_or_none = self.port is None or self.port.protocol == "udp"
        if self.publish is not None and kind == "continuous" and udp_or_none:
            found.append(f"{n('publish')} needs a TCP {n('port')} (the job serves HTTP on it)")
        if self.wait_seconds is not None and kind == "scheduled":
            found.append(
                f"{n('wait')} is not valid with {n('schedule')}: a scheduled job runs at its "
                "schedule (wait works for one-off and continuous jobs)"
            )
        return found

    def to_body(self) -> dict[str, Any]:
        """The request body for POST/PATCH ``/v1/tool/{t}/jobs``: only given options."""
        body: dict[str, Any] = {
            "name": self.name,
            "cmd": self.command,
            "imagename": self.image,
            "job_type": self.job_type,
        }
        if self.schedule is not None:
            body["schedule"] = self.schedule
        copy = {
            "retry": "retry",
            "mem": "memory",
            "cpu": "cpu",
            "emails": "emails",
            "mount": "mount",
            "filelog_stdout": "filelog_stdout",
            "filelog_stderr": "filelog_stderr",
            "timeout": "timeout",
            "replicas": "replicas",
        }
        for field, api_field in copy.items():
            value = getattr(self, field)
            if value is not None:
                body[api_field] = value
        if self.filelog_enabled is not None:
            body["filelog"] = self.filelog_enabled
        if self.health_check_script is not None:
            body["health_check"] = {"type": "script", "script": self.health_check_script}
        elif self.health_check_http is not None:
            body["health_check"] = {"type": "http", "path": self.health_check_http}
        if self.port is not None:
            body["port"] = self.port.number
            if self.port.protocol is not None:
                body["port_protocol"] = self.port.protocol
        if self.publish is not None:
            body["publish"] = self.publish
        return body

    def to_entry(self) -> dict[str, Any]:
        """The jobs.yaml mapping: given options only, in the order of the module table."""
        data = self.model_dump(by_alias=True, exclude_none=True)
        if not self.continuous:
            data.pop("continuous", None)
        if self.port is not None:
            data["port"] = (
                self.port.number if self.port.protocol in (None, "tcp") else str(self.port)
            )
        return data


#: The jobs.yaml keys, in the order of the module table.
OPTION_KEYS: tuple[str, ...] = tuple(key_name(f) for f in JobOptions.model_fields)


def older_jobs_api(job: Job) -> bool:
    """Whether ``job`` is an answer of our older jobs API, told by the missing ``image_state``
    (production always sends it, REFERENCE.md "The wire as production serves it"). That API
    sends every field and ignores ``include_unset``; its defaults do not depend on the image:
    file logs off, mount all. (Taking a newer answer for an older one would lose an explicit
    ``filelog: false``; the other way round only makes a dump longer.)"""
    return "image_state" not in job.model_fields_set


#: Defaults that do not depend on the image (production and our older API alike).
_FIXED_DEFAULTS = ("memory", "cpu", "emails", "retry", "replicas")


def options_from_job(job: Job | Mapping[str, Any], *, legacy: bool | None = None) -> JobOptions:
    """A job as the API returns it (GET ``/jobs``, decoded or as :class:`Job`) -> the options
    that recreate it.

    Values equal to :data:`API_DEFAULTS` are left out; so are ``filelog: false`` and
    ``mount: all`` when ``legacy`` (default: :func:`older_jobs_api` of ``job``), which
    are kept otherwise (``no-filelog: true``, ``mount: all``). ``schedule`` is the user's text
    (not ``schedule_actual``). Raises ``KeyError`` when the job lacks ``cmd`` or ``imagename``
    and ``pydantic.ValidationError`` for values of the wrong type.
    """
    if not isinstance(job, Job):
        job = Job.model_validate(job)
    if legacy is None:
        legacy = older_jobs_api(job)
    droppable = set(_FIXED_DEFAULTS) | ({"mount"} if legacy else set())

    def given(field: str) -> Any:
        value = getattr(job, field)
        if value is None or (field in droppable and API_DEFAULTS.get(field) == value):
            return None
        return value

    if job.cmd is None or job.imagename is None:
        raise KeyError("cmd" if job.cmd is None else "imagename")
    kind = job.kind
    entry: dict[str, Any] = {"name": job.name, "command": job.cmd, "image": job.imagename}
    if kind == "scheduled" and job.schedule is not None:
        entry["schedule"] = job.schedule
    if kind == "continuous":
        entry["continuous"] = True
    for api_field, key in (
        ("memory", "mem"),
        ("cpu", "cpu"),
        ("emails", "emails"),
        ("mount", "mount"),
        ("timeout", "timeout"),
    ):
        if (value := given(api_field)) is not None:
            entry[key] = value
    if kind != "continuous" and (value := given("retry")) is not None:
        entry["retry"] = value
    if job.filelog:
        entry["filelog"] = True
        for api_field in ("filelog_stdout", "filelog_stderr"):
            if (value := getattr(job, api_field)) is not None:
                entry[key_name(api_field)] = value
    elif job.filelog is False and not legacy:
        entry["no-filelog"] = True
    if kind == "continuous":
        if (value := given("replicas")) is not None:
            entry["replicas"] = value
        if job.port is not None:
            protocol = job.port_protocol
            entry["port"] = job.port if protocol in (None, "tcp") else f"{job.port}/{protocol}"
        check = job.health_check
        if check is not None:
            if check.type == "script":
                entry["health-check-script"] = check.script
            elif check.type == "http":
                entry["health-check-http"] = check.path
        if job.publish:
            entry["publish"] = job.publish
    return JobOptions.model_validate(entry)
