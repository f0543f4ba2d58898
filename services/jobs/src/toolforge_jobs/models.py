"""API models of the jobs API v1 (REFERENCE.md, "Jobs API (v1)").

:class:`JobSpec` is what a user asks for (request body of POST/PATCH ``/v1/tool/{t}/jobs``, an
entry of ``jobs.yaml``). Unknown fields are rejected. Validation also normalises it:
``job_type`` is always set afterwards (inferred from ``schedule`` / ``continuous`` when not
given), ``continuous`` agrees with it, and continuous jobs get ``replicas`` (default 1) and
``port_protocol`` (default ``tcp`` when a port is set). A normalised spec validates again to an
equal spec, which is how jobs are stored and read back (see ``builders``).

Every rule that fails says which field broke which rule; :func:`validation_messages` turns a
pydantic ``ValidationError`` into strings that start with the field, for ``messages.error``.

The response models are the envelopes of every endpoint: each carries
``messages: {info, warning, error}``.
"""

from __future__ import annotations

import datetime as dt
import re
import shlex
from collections.abc import Collection, Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from toolforge_jobs.errors import JobSpecError
from toolforge_jobs.quantity import InvalidQuantityError, parse_quantity
from toolforge_jobs.schedule import check_schedule

__all__ = [
    "NAME_MAX_LENGTH",
    "NAME_PATTERN",
    "EmailOption",
    "HealthCheck",
    "HealthResponse",
    "HttpHealthCheck",
    "ImageSummary",
    "ImagesResponse",
    "Job",
    "JobChangedResponse",
    "JobListResponse",
    "JobResponse",
    "JobSpec",
    "JobStatus",
    "JobType",
    "LogLine",
    "Messages",
    "MessagesResponse",
    "MountOption",
    "PortProtocol",
    "Quota",
    "QuotaCategory",
    "QuotaItem",
    "QuotaResponse",
    "ScriptHealthCheck",
    "StatusShort",
    "error_messages",
    "error_response",
    "specs_equal",
    "validation_messages",
]

#: Job names (REFERENCE.md): DNS-1123 subdomain-like, at most 52 characters so that the
#: CronJob controller's 11-character suffix still fits a 63-character Job name.
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
NAME_MAX_LENGTH = 52
# A Service name is a DNS-1035 label: a job with a port needs a name that is one too.
_SERVICE_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

JobType = Literal["one-off", "scheduled", "continuous"]
EmailOption = Literal["none", "all", "onfinish", "onfailure"]
MountOption = Literal["all", "none"]
PortProtocol = Literal["tcp", "udp"]
StatusShort = Literal["pending", "running", "succeeded", "failed", "unknown"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScriptHealthCheck(_Request):
    """Health check by running ``script`` with ``/bin/sh -c`` in the container; exit 0 is
    healthy."""

    type: Literal["script"]
    script: str

    @field_validator("script")
    @classmethod
    def _script(cls, value: str) -> str:
        if not value.strip():
            raise JobSpecError("health_check.script", "must not be empty")
        return value


class HttpHealthCheck(_Request):
    """Health check by HTTP GET of ``path`` on the job's port; 200-399 is healthy."""

    type: Literal["http"]
    path: str

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise JobSpecError("health_check.path", f"must start with '/' (got {value!r})")
        return value


HealthCheck = Annotated[ScriptHealthCheck | HttpHealthCheck, Field(discriminator="type")]


class JobSpec(_Request):
    """A job as the user specifies it (REFERENCE.md, "Job fields").

    Raises (on validation): ``pydantic.ValidationError`` whose entries name the field and
    the rule; see :func:`validation_messages`.
    """

    name: str = Field(
        description="Job name: DNS-1123 subdomain-like, at most 52 characters.",
        json_schema_extra={"pattern": NAME_PATTERN, "maxLength": NAME_MAX_LENGTH},
    )
    cmd: str = Field(description="Command line. Split shell-style unless filelog is on.")
    imagename: str = Field(description="Image shortname or alias from the images endpoint.")
    job_type: JobType | None = Field(
        default=None,
        description="one-off, scheduled or continuous; inferred from schedule/continuous "
        "when absent and always set after validation.",
    )
    continuous: bool = Field(default=False, description="Same as job_type: continuous.")
    schedule: str | None = Field(
        default=None, description="5-field cron line or @hourly/@daily/... (scheduled)."
    )
    filelog: bool = Field(default=False, description="Append stdout/stderr to files.")
    filelog_stdout: str | None = Field(
        default=None, description="stdout file, default <home>/<name>.out; relative to home."
    )
    filelog_stderr: str | None = Field(
        default=None, description="stderr file, default <home>/<name>.err; relative to home."
    )
    emails: EmailOption = "none"
    mount: MountOption = Field(default="all", description="Mount the tool's home (all).")
    memory: str = Field(default="512Mi", description="Memory, a Kubernetes quantity.")
    cpu: str = Field(default="100m", description="CPU, a Kubernetes quantity.")
    retry: int = Field(
        default=0,
        description="Retries 0..5 (one-off and scheduled).",
        json_schema_extra={"minimum": 0, "maximum": 5},
    )
    timeout: int | None = Field(default=None, description="Seconds a run may take (scheduled).")
    replicas: int | None = Field(default=None, description="Pods (continuous; default 1).")
    port: int | None = Field(default=None, description="Port 1..65535 (continuous).")
    port_protocol: PortProtocol | None = Field(
        default=None, description="tcp or udp (continuous with a port; default tcp)."
    )
    health_check: HealthCheck | None = Field(default=None, description="(continuous)")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if len(value) > NAME_MAX_LENGTH:
            raise JobSpecError(
                "name", f"must be at most {NAME_MAX_LENGTH} characters (got {len(value)})"
            )
        if not re.fullmatch(NAME_PATTERN, value):
            raise JobSpecError(
                "name",
                f"{value!r} must consist of lower case letters, digits, '-' and '.', and "
                "start and end with a letter or digit",
            )
        return value

    @field_validator("cmd")
    @classmethod
    def _cmd(cls, value: str) -> str:
        if not value.strip():
            raise JobSpecError("cmd", "must not be empty")
        return value

    @field_validator("imagename")
    @classmethod
    def _imagename(cls, value: str) -> str:
        if not value:
            raise JobSpecError("imagename", "must not be empty")
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        if value is not None:
            check_schedule(value)
        return value

    @field_validator("filelog_stdout", "filelog_stderr")
    @classmethod
    def _filelog_path(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and (not value.strip() or "\0" in value):
            raise JobSpecError(str(info.field_name), "must be a non-empty path")
        return value

    @field_validator("memory", "cpu")
    @classmethod
    def _quantity(cls, value: str, info: ValidationInfo) -> str:
        try:
            amount = parse_quantity(value)
        except InvalidQuantityError as exc:
            raise JobSpecError(str(info.field_name), f"is invalid: {exc}") from None
        if amount <= 0:
            raise JobSpecError(str(info.field_name), f"must be more than zero (got {value!r})")
        return value

    @field_validator("retry")
    @classmethod
    def _retry(cls, value: int) -> int:
        if not 0 <= value <= 5:
            raise JobSpecError("retry", f"must be between 0 and 5 (got {value})")
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise JobSpecError("timeout", f"must be at least 1 second (got {value})")
        return value

    @field_validator("replicas")
    @classmethod
    def _replicas(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise JobSpecError("replicas", f"must be at least 1 (got {value})")
        return value

    @field_validator("port")
    @classmethod
    def _port(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= 65535:
            raise JobSpecError("port", f"must be between 1 and 65535 (got {value})")
        return value

    @model_validator(mode="after")
    def _normalise(self) -> JobSpec:
        self._resolve_type()
        kind = self.job_type
        if self.retry and kind == "continuous":
            raise JobSpecError("retry", "is only valid for one-off and scheduled jobs")
        if self.timeout is not None and kind != "scheduled":
            raise JobSpecError("timeout", "is only valid for scheduled jobs")
        for field in ("replicas", "port", "port_protocol", "health_check"):
            if getattr(self, field) is not None and kind != "continuous":
                raise JobSpecError(field, "is only valid for continuous jobs")
        if kind == "continuous":
            self._normalise_continuous()
        self._check_filelog()
        return self

    def _resolve_type(self) -> None:
        if self.schedule is not None and self.continuous:
            raise JobSpecError("schedule", "and continuous: true are mutually exclusive")
        inferred: JobType = (
            "scheduled"
            if self.schedule is not None
            else "continuous"
            if self.continuous
            else "one-off"
        )
        if self.job_type is None:
            self.job_type = inferred
        elif self.job_type == "scheduled" and self.schedule is None:
            raise JobSpecError("schedule", "is required for scheduled jobs")
        elif self.job_type != "scheduled" and self.schedule is not None:
            raise JobSpecError("schedule", "is only valid for scheduled jobs")
        elif "continuous" in self.model_fields_set and self.continuous != (
            self.job_type == "continuous"
        ):
            raise JobSpecError(
                "continuous", f"{str(self.continuous).lower()} contradicts job_type {self.job_type}"
            )
        self.continuous = self.job_type == "continuous"

    def _normalise_continuous(self) -> None:
        if self.replicas is None:
            self.replicas = 1
        if self.port is None:
            if self.port_protocol is not None:
                raise JobSpecError("port_protocol", "needs a port")
        else:
            if self.port_protocol is None:
                self.port_protocol = "tcp"
            if not _SERVICE_NAME_RE.fullmatch(self.name):
                raise JobSpecError(
                    "name",
                    "of a job with a port must start with a letter and contain no '.' "
                    "(it names the job's Service, a DNS-1035 label)",
                )
        if isinstance(self.health_check, HttpHealthCheck):
            if self.port is None:
                raise JobSpecError("health_check", "type http needs a port")
            if self.port_protocol != "tcp":
                raise JobSpecError("health_check", "type http needs a tcp port")

    def _check_filelog(self) -> None:
        if self.filelog and self.mount != "all":
            raise JobSpecError(
                "filelog", "needs mount: all (the log files are written to the tool's home)"
            )
        for field in ("filelog_stdout", "filelog_stderr"):
            if getattr(self, field) is not None and not self.filelog:
                raise JobSpecError(field, "is only valid with filelog: true")
        if not self.filelog:
            try:
                argv = shlex.split(self.cmd)
            except ValueError as exc:
                raise JobSpecError(
                    "cmd", f"cannot be split into arguments ({exc}); fix the quoting"
                ) from None
            if not argv:
                raise JobSpecError("cmd", "must not be empty")

    @property
    def kind(self) -> JobType:
        """``job_type``, which validation always sets."""
        if self.job_type is None:  # pragma: no cover - unreachable after validation
            raise ValueError("job_type is not set; the spec was not validated")
        return self.job_type

    def comparable(self) -> dict[str, Any]:
        """The spec as a dict in which equal jobs are equal: quantities as their value
        (``"0.5"`` and ``"500m"`` compare equal)."""
        data = self.model_dump(mode="json")
        data["memory"] = parse_quantity(self.memory)
        data["cpu"] = parse_quantity(self.cpu)
        return data


def specs_equal(a: JobSpec, b: JobSpec) -> bool:
    """Whether two normalised specs describe the same job (PATCH's "already up to date")."""
    return a.comparable() == b.comparable()


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Messages(_Response):
    """Messages for the user, carried by every response (REFERENCE.md)."""

    info: list[str] = []
    warning: list[str] = []
    error: list[str] = []


class JobStatus(_Response):
    """The structured status of a job.

    ``duration`` is seconds (running so far, or of the finished run); ``up_to_date`` is false
    while a Deployment still rolls out an older spec; ``previous_schedule`` and
    ``next_schedule`` (UTC) are set for scheduled jobs.
    """

    short: StatusShort
    messages: list[str] = []
    duration: int | None = None
    up_to_date: bool = True
    previous_schedule: dt.datetime | None = None
    next_schedule: dt.datetime | None = None


class Job(JobSpec):
    """A job as the API returns it: the normalised spec plus what the cluster says."""

    image: str = Field(description="The image reference the pods run.")
    schedule_actual: str | None = Field(
        default=None, description="The cron line the CronJob runs (scheduled)."
    )
    status_short: str = Field(description='Legacy short status, e.g. "Running".')
    status_long: str = Field(description="Legacy human explanation of the status.")
    status: JobStatus

    @classmethod
    def from_spec(
        cls,
        spec: JobSpec,
        *,
        image: str,
        status: JobStatus,
        status_short: str,
        status_long: str,
        schedule_actual: str | None = None,
    ) -> Job:
        """Combine a stored spec (validated) with what was read from the cluster. The spec's
        rules are not run again (they are slow for schedules, and a list builds many jobs)."""
        values = {name: getattr(spec, name) for name in JobSpec.model_fields}
        return cls.model_construct(
            _fields_set=set(cls.model_fields),
            **values,
            image=image,
            schedule_actual=schedule_actual,
            status_short=status_short,
            status_long=status_long,
            status=status,
        )


class MessagesResponse(_Response):
    """Body of DELETE, flush, restart and of every error (``messages.error`` filled)."""

    messages: Messages = Field(default_factory=Messages)


class JobListResponse(MessagesResponse):
    """GET ``/v1/tool/{t}/jobs``."""

    jobs: list[Job]


class JobResponse(MessagesResponse):
    """GET ``/v1/tool/{t}/jobs/{name}``, and POST ``/v1/tool/{t}/jobs`` (201)."""

    job: Job


class JobChangedResponse(MessagesResponse):
    """PATCH ``/v1/tool/{t}/jobs``: whether the job was created or updated."""

    job_changed: bool


class ImageSummary(_Response):
    """One usable image."""

    shortname: str
    image: str


class ImagesResponse(MessagesResponse):
    """GET ``/v1/tool/{t}/images``."""

    images: list[ImageSummary]


class QuotaItem(_Response):
    """One line of the quota: ``limit`` and ``used`` in human units (``"4Gi"``, ``"500m"``);
    ``used`` is null where it has no meaning (per-job limits)."""

    name: str
    limit: str | None
    used: str | None


class QuotaCategory(_Response):
    name: str
    items: list[QuotaItem]


class Quota(_Response):
    categories: list[QuotaCategory]


class QuotaResponse(MessagesResponse):
    """GET ``/v1/tool/{t}/quotas``."""

    quota: Quota


class HealthResponse(MessagesResponse):
    """GET ``/v1/healthz``."""

    status: Literal["OK"] = "OK"


class LogLine(_Response):
    """One line of GET ``/v1/tool/{t}/jobs/{name}/logs`` (JSON lines)."""

    pod: str
    container: str
    datetime: dt.datetime
    message: str


def error_response(*errors: str) -> MessagesResponse:
    """An error body: ``{"messages": {"info": [], "warning": [], "error": [...]}}``."""
    return MessagesResponse(messages=Messages(error=list(errors)))


def validation_messages(exc: ValidationError) -> list[str]:
    """Error strings naming the field for a pydantic ``ValidationError`` of these models.

    Our own rules are sentences that start with the field (:class:`JobSpecError`); pydantic's
    own (missing field, wrong type, unknown field, bad literal) get the field path prefixed:
    ``"emails: Input should be 'none', 'all', 'onfinish' or 'onfailure'"``.
    """
    return error_messages(exc.errors())


def error_messages(
    errors: Iterable[Mapping[str, Any]], *, skip_prefixes: Collection[str] = ()
) -> list[str]:
    """:func:`validation_messages` for pydantic's error dicts (``ValidationError.errors()``,
    FastAPI's ``RequestValidationError.errors()``). A first ``loc`` element in
    ``skip_prefixes`` (FastAPI's ``"body"``, ``"query"``, ``"path"``) is left out of the field
    path unless it is the whole path."""
    messages = []
    for error in errors:
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, JobSpecError):
            messages.append(str(cause))
            continue
        loc = [str(part) for part in error.get("loc") or ()]
        if error.get("type") == "json_invalid":  # FastAPI: loc is ("body", <offset>)
            offset = f" (at character {loc[-1]})" if len(loc) > 1 else ""
            messages.append(f"body: {error.get('msg')}: {cause}{offset}")
            continue
        if len(loc) > 1 and loc[0] in skip_prefixes:
            loc = loc[1:]
        messages.append(f"{'.'.join(loc) or 'body'}: {error.get('msg')}")
    return messages
