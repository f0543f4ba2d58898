"""API models of the jobs API v1 (REFERENCE.md, "Jobs API (v1)").

:class:`JobSpec` (what a user asks for), its field types and the health checks are in
:mod:`toolforge_jobs.spec` and re-exported here, so that handlers and clients of the models
import one module.

A spec remembers which fields the user set (:attr:`JobSpec.user_set`): jobs are stored as those
fields only (:meth:`JobSpec.stored`, see ``builders``) and validate back to an equal spec, and
``include_unset=false`` answers leave the others out (:meth:`Job.wire`).

Every rule that fails says which field broke which rule; :func:`validation_messages` turns a
pydantic ``ValidationError`` into strings that start with the field, for ``messages.error``.

The response models are the envelopes of every endpoint: each carries
``messages: {info, warning, error}``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
)
from pydantic.json_schema import SkipJsonSchema

from toolforge_jobs.errors import JobSpecError
from toolforge_jobs.spec import (
    CMD_PATTERN,
    NAME_MAX_LENGTH,
    NAME_PATTERN,
    QUANTITY_PATTERN,
    EmailOption,
    HealthCheck,
    HttpHealthCheck,
    JobSpec,
    JobType,
    MountOption,
    PortProtocol,
    PublishPath,
    ScriptHealthCheck,
    StatusShort,
    absent,
    is_buildservice_image,
    pod_home,
    specs_equal,
)
from toolforge_kit.wire import ErrorBody, Health, HealthResponse, Messages, MessagesResponse

__all__ = [
    "CMD_PATTERN",
    "NAME_MAX_LENGTH",
    "NAME_PATTERN",
    "QUANTITY_PATTERN",
    "ContinuousJobOut",
    "EmailOption",
    "ErrorResponse",
    "Health",
    "HealthCheck",
    "HealthResponse",
    "HttpHealthCheck",
    "ImageSummary",
    "ImagesResponse",
    "Job",
    "JobChangedResponse",
    "JobListResponse",
    "JobOut",
    "JobResponse",
    "JobSpec",
    "JobStatus",
    "JobType",
    "LogLine",
    "Messages",
    "MessagesResponse",
    "MountOption",
    "OneOffJobOut",
    "PortProtocol",
    "PublishPath",
    "Quota",
    "QuotaCategory",
    "QuotaItem",
    "QuotaResponse",
    "ScheduledJobOut",
    "ScriptHealthCheck",
    "StatusShort",
    "error_messages",
    "error_response",
    "is_buildservice_image",
    "pod_home",
    "specs_equal",
    "validation_messages",
]


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobStatus(_Response):
    """The structured status of a job.

    ``duration`` is how long the job has been running, or its finished run took, as
    ``1d2h3m4s`` (absent when unknown); ``up_to_date`` is false while a Deployment still rolls
    out an older spec; ``previous_schedule`` and ``next_schedule`` (ISO 8601, UTC) are there for
    scheduled jobs only. Fields without a value are absent from the JSON.
    """

    short: StatusShort
    messages: list[str] = []
    duration: str | SkipJsonSchema[None] = absent("Running for, or took: e.g. 1h2m3s.")
    up_to_date: bool = True
    previous_schedule: dt.datetime | SkipJsonSchema[None] = absent(
        "Scheduled jobs: when the last run was scheduled."
    )
    next_schedule: dt.datetime | SkipJsonSchema[None] = absent(
        "Scheduled jobs: when the next run is due."
    )

    def wire(self) -> dict[str, Any]:
        """The JSON object, without the fields that have no value."""
        return self.model_dump(mode="json", exclude_none=True)


#: Fields of every job type, in the order of the JSON, then those of each type.
_COMMON_FIELDS = (
    "name",
    "cmd",
    "imagename",
    "job_type",
    "filelog",
    "filelog_stdout",
    "filelog_stderr",
    "emails",
    "mount",
    "memory",
    "cpu",
)
_TYPE_FIELDS: dict[str, tuple[str, ...]] = {
    "one-off": ("retry",),
    "scheduled": ("schedule", "retry", "timeout"),
    "continuous": ("replicas", "port", "port_protocol", "health_check", "publish"),
}
#: Always in a job's JSON, set by the user or not (the clients need them).
_ALWAYS = frozenset({"name", "cmd", "imagename", "job_type"})


class Job(JobSpec):
    """A job as the API knows it: the normalised spec plus what the cluster says. Its JSON
    (:meth:`wire`) has the shape of its type."""

    image: str = Field(description="The image reference the pods run.")
    image_state: str = Field(
        default="unknown",
        description="State of the image in the image list: stable, deprecated, ... "
        "(unknown when the image is no longer listed).",
    )
    schedule_actual: str | None = Field(
        default=None, description="The cron line the CronJob runs (scheduled)."
    )
    status_short: str = Field(description='Legacy short status, e.g. "Running".')
    status_long: str = Field(description="Legacy human explanation of the status.")
    status: JobStatus
    public_url: str | None = Field(
        default=None, description="Where a published job answers (continuous with publish)."
    )

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
        image_state: str = "unknown",
        public_url: str | None = None,
    ) -> Job:
        """Combine a stored spec (validated) with what was read from the cluster. The spec's
        rules are not run again (they are slow for schedules, and a list builds many jobs)."""
        values = {name: getattr(spec, name) for name in JobSpec.model_fields}
        job = cls.model_construct(
            _fields_set=set(cls.model_fields),
            **values,
            image=image,
            image_state=image_state,
            schedule_actual=schedule_actual,
            status_short=status_short,
            status_long=status_long,
            status=status,
            public_url=public_url,
        )
        job._user_set = spec.user_set
        return job

    def wire(self, *, tool: str, include_unset: bool = True) -> dict[str, Any]:
        """The job's JSON as production serves it (REFERENCE.md, "The wire as production serves
        it"): the fields of its type only, none of them ``null``; with ``include_unset`` false,
        only the fields the user set (and ``name``, ``cmd``, ``imagename``, ``job_type``), so that
        ``dump`` writes what ``load`` accepts back. With ``include_unset``, a filelog job shows
        its default files (``/data/project/<tool>/<name>.out|.err``) and a published job its
        ``public_url`` (left out otherwise: upstream's ``dump`` warns about keys it does not
        know)."""
        out: dict[str, Any] = {}
        for field in (*_COMMON_FIELDS, *_TYPE_FIELDS[self.kind]):
            if not include_unset and field not in _ALWAYS and field not in self.user_set:
                continue
            value = getattr(self, field)
            if value is None and include_unset and self.filelog and field.startswith("filelog_"):
                suffix = ".out" if field == "filelog_stdout" else ".err"
                value = f"{pod_home(tool)}/{self.name}{suffix}"
            if value is None:
                continue
            out[field] = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        out["image"] = self.image
        out["image_state"] = self.image_state
        if self.kind == "scheduled" and self.schedule_actual is not None:
            out["schedule_actual"] = self.schedule_actual
        out["status_short"] = self.status_short
        out["status_long"] = self.status_long
        out["status"] = self.status.wire()
        if include_unset and self.kind == "continuous" and self.public_url is not None:
            out["public_url"] = self.public_url
        return out


# ----- the documented shapes of a job in answers (what :meth:`Job.wire` writes) -----------


class _JobOutBase(_Response):
    name: str = Field(json_schema_extra={"pattern": NAME_PATTERN, "maxLength": NAME_MAX_LENGTH})
    cmd: str
    imagename: str = Field(description="As the user gave it (a shortname or an alias).")
    filelog: bool = Field(default=False, description="Output appended to files in the home.")
    filelog_stdout: str | SkipJsonSchema[None] = absent("stdout file (filelog jobs).")
    filelog_stderr: str | SkipJsonSchema[None] = absent("stderr file (filelog jobs).")
    emails: EmailOption = "none"
    mount: MountOption = "all"
    memory: str = "0.5Gi"
    cpu: str = "0.1"
    image: str = Field(description="The image reference the pods run.")
    image_state: str = Field(description="stable, deprecated, ... or unknown.")
    status_short: str = Field(description='Legacy short status, e.g. "Running".')
    status_long: str = Field(description="Legacy human explanation of the status.")
    status: JobStatus


class OneOffJobOut(_JobOutBase):
    """A one-off job (batch/v1 Job). With ``include_unset=false`` the fields the user never
    set are absent."""

    job_type: Literal["one-off"]
    retry: int = 0


class ScheduledJobOut(_JobOutBase):
    """A scheduled job (CronJob): ``schedule`` as the user wrote it, ``schedule_actual`` the
    cron line it runs on."""

    job_type: Literal["scheduled"]
    schedule: str
    schedule_actual: str | SkipJsonSchema[None] = absent("The cron line the CronJob runs.")
    retry: int = 0
    timeout: int | SkipJsonSchema[None] = absent("Seconds a run may take.")


class ContinuousJobOut(_JobOutBase):
    """A continuous job (Deployment, plus a Service when it has a port)."""

    job_type: Literal["continuous"]
    replicas: int = 1
    port: int | SkipJsonSchema[None] = absent("The port served.")
    port_protocol: PortProtocol | SkipJsonSchema[None] = absent("tcp or udp (with a port).")
    health_check: HealthCheck | SkipJsonSchema[None] = absent("The health check, if any.")
    publish: PublishPath | SkipJsonSchema[None] = absent(
        'Published at the root ("/") of the tool\'s host.'
    )
    public_url: str | SkipJsonSchema[None] = absent(
        "The URL a published job answers at, e.g. https://<tool>.toolforge.org/ (with "
        "include_unset only)."
    )


#: A job in an answer: its shape depends on ``job_type``.
JobOut = Annotated[
    OneOffJobOut | ScheduledJobOut | ContinuousJobOut, Field(discriminator="job_type")
]


class JobListResponse(MessagesResponse):
    """GET ``/v1/tool/{t}/jobs``."""

    jobs: list[JobOut]


class JobResponse(MessagesResponse):
    """GET ``/v1/tool/{t}/jobs/{name}``, and POST ``/v1/tool/{t}/jobs`` (201)."""

    job: JobOut


class JobChangedResponse(MessagesResponse):
    """PATCH ``/v1/tool/{t}/jobs``: whether the job was created or updated."""

    job_changed: bool


class ImageSummary(_Response):
    """One usable image: its canonical ``shortname``, the ``image`` reference, and the other
    names (``aliases``) that ``imagename`` may use for it."""

    shortname: str
    image: str
    aliases: list[str] = []


class ImagesResponse(MessagesResponse):
    """GET ``/v1/tool/{t}/images``."""

    images: list[ImageSummary]


class QuotaItem(_Response):
    """One line of the quota: ``limit`` and ``used`` in human units (``"4Gi"``, ``"500m"``);
    ``used`` is absent where it has no meaning (per-job limits), so that the upstream client
    prints that category without a Used column."""

    name: str
    limit: str | None
    used: str | SkipJsonSchema[None] = absent("What is in use, in human units.")


class QuotaCategory(_Response):
    name: str
    items: list[QuotaItem]


class Quota(_Response):
    categories: list[QuotaCategory]


class QuotaResponse(MessagesResponse):
    """GET ``/v1/tool/{t}/quotas``."""

    quota: Quota


#: The body of every error: ``{"error": ["<message>", ...]}`` (REFERENCE.md, "The wire as
#: production serves it": no ``messages`` wrapper); the kit's, shared by every backend.
ErrorResponse = ErrorBody


class LogLine(_Response):
    """One line of GET ``/v1/tool/{t}/jobs/{name}/logs`` (JSON lines)."""

    pod: str
    container: str
    datetime: dt.datetime
    message: str


def error_response(*errors: str) -> ErrorResponse:
    """An error body: ``{"error": [...]}``."""
    return ErrorResponse(error=list(errors))


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
