"""The request side of the jobs API v1 (REFERENCE.md, "Jobs API (v1)"): :class:`JobSpec`, what
a user asks for (request body of POST/PATCH ``/v1/tool/{t}/jobs``, an entry of ``jobs.yaml``),
its field types and patterns, and the health checks. :mod:`toolforge_jobs.models` re-exports
all of it beside the response models.

Unknown fields are rejected. Validation also normalises a spec: ``job_type`` is always set
afterwards (inferred from ``schedule`` / ``continuous`` when not given), ``continuous`` agrees
with it, and continuous jobs get ``replicas`` (default 1) and ``port_protocol`` (default
``tcp`` when a port is set). The defaults that depend on the image (REFERENCE.md, "The wire as
production serves it"): ``mount`` is ``all`` for a standard image and ``none`` for one built by
the build service (named ``tool-<tool>/<image>:<tag>``); ``filelog`` is on for a standard image
with ``mount: all`` and off otherwise. A spec remembers which fields the user set
(:attr:`JobSpec.user_set`).
"""

from __future__ import annotations

import re
import shlex
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from toolforge_jobs.errors import JobSpecError
from toolforge_jobs.quantity import InvalidQuantityError, parse_quantity
from toolforge_jobs.schedule import check_schedule

__all__ = [
    "CMD_PATTERN",
    "NAME_MAX_LENGTH",
    "NAME_PATTERN",
    "QUANTITY_PATTERN",
    "EmailOption",
    "HealthCheck",
    "HttpHealthCheck",
    "JobSpec",
    "JobType",
    "MountOption",
    "PortProtocol",
    "PublishPath",
    "ScriptHealthCheck",
    "StatusShort",
    "absent",
    "is_buildservice_image",
    "pod_home",
    "specs_equal",
]

#: Job names (REFERENCE.md): DNS-1123 subdomain-like, at most 52 characters so that the
#: CronJob controller's 11-character suffix still fits a 63-character Job name.
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
NAME_MAX_LENGTH = 52
#: A command: at least one character that is not white space (what :class:`JobSpec` checks).
CMD_PATTERN = r"\S"
#: A Kubernetes quantity as :func:`~toolforge_jobs.quantity.parse_quantity` reads it (the value
#: must also be above zero).
QUANTITY_PATTERN = r"^[+]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+|[KMGTPE]i|[numkMGTPE])?$"
#: A filelog path: not only white space, no NUL character.
_PATH_PATTERN = r"^[^\x00]*\S[^\x00]*$"
# A Service name is a DNS-1035 label: a job with a port needs a name that is one too.
_SERVICE_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

JobType = Literal["one-off", "scheduled", "continuous"]
EmailOption = Literal["none", "all", "onfinish", "onfailure"]
MountOption = Literal["all", "none"]
PortProtocol = Literal["tcp", "udp"]
#: What a continuous job may publish (REFERENCE.md, "The wire as production serves it"): the
#: whole host of its tool, ``https://<tool>.<public domain>/``.
PublishPath = Literal["/"]
StatusShort = Literal["pending", "running", "succeeded", "failed", "unknown"]


def is_buildservice_image(imagename: str) -> bool:
    """Whether ``imagename`` names an image the build service made for a tool
    (``tool-<tool>/<image>:<tag>``, REFERENCE.md) rather than a standard one from the image
    list (whose names have no ``/``)."""
    return "/" in imagename


def pod_home(tool: str) -> str:
    """The tool's home as its pods see it: ``/data/project/<tool>``."""
    return f"/data/project/{tool}"


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def absent(description: str, **extra: Any) -> Any:
    """A field that is left out of the JSON when it has no value (never ``null``)."""

    def schema_extra(schema: dict[str, Any]) -> None:
        _no_default(schema)
        schema.update(extra)

    return Field(default=None, description=description, json_schema_extra=schema_extra)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScriptHealthCheck(_Request):
    """Health check by running ``script`` with ``/bin/sh -c`` in the container; exit 0 is
    healthy."""

    type: Literal["script"]
    script: str = Field(
        description="Shell command; not only white space.",
        json_schema_extra={"pattern": CMD_PATTERN},
    )

    @field_validator("script")
    @classmethod
    def _script(cls, value: str) -> str:
        if not value.strip():
            raise JobSpecError("health_check.script", "must not be empty")
        return value


class HttpHealthCheck(_Request):
    """Health check by HTTP GET of ``path`` on the job's port; 200-399 is healthy."""

    type: Literal["http"]
    path: str = Field(description="URL path, starting with '/'.", pattern="^/")

    @field_validator("path", mode="before")
    @classmethod
    def _path(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.startswith("/"):
            raise JobSpecError("health_check.path", f"must start with '/' (got {value!r})")
        return value


HealthCheck = Annotated[ScriptHealthCheck | HttpHealthCheck, Field(discriminator="type")]


class JobSpec(_Request):
    """A job as the user specifies it (REFERENCE.md, "Job fields"; defaults as in "The wire as
    production serves it"). A field sent as ``null`` counts as not set.

    Raises (on validation): ``pydantic.ValidationError`` whose entries name the field and
    the rule; see :func:`validation_messages`.
    """

    name: str = Field(
        description="Job name: DNS-1123 subdomain-like, at most 52 characters.",
        json_schema_extra={"pattern": NAME_PATTERN, "maxLength": NAME_MAX_LENGTH},
    )
    cmd: str = Field(
        description="Command line, run with /bin/sh -c (a standard image); not only white space.",
        json_schema_extra={"pattern": CMD_PATTERN, "minLength": 1},
    )
    imagename: str = Field(
        description="Image shortname or alias from the images endpoint, or one of the "
        "tool's own build service images: tool-<tool>/<name>:<tag>[@sha256:<digest>].",
        json_schema_extra={"minLength": 1},
    )
    job_type: JobType | None = Field(
        default=None,
        description="one-off, scheduled or continuous; inferred from schedule/continuous "
        "when absent and always set after validation.",
    )
    continuous: bool = Field(default=False, description="Same as job_type: continuous.")
    schedule: str | None = Field(
        default=None,
        description="5-field cron line or @hourly/@daily/@weekly/@monthly/@yearly (scheduled).",
    )
    filelog: bool | None = Field(
        default=None,
        description="Append stdout/stderr to files in the home. Default: on for a standard "
        "image with mount all, else off.",
    )
    filelog_stdout: str | None = Field(
        default=None,
        description="stdout file, default <home>/<name>.out; relative to the home.",
        json_schema_extra={"pattern": _PATH_PATTERN},
    )
    filelog_stderr: str | None = Field(
        default=None,
        description="stderr file, default <home>/<name>.err; relative to the home.",
        json_schema_extra={"pattern": _PATH_PATTERN},
    )
    emails: EmailOption = "none"
    mount: MountOption | None = Field(
        default=None,
        description="Mount the tool's home (all) or not (none; only for build service "
        "images). Default: all for a standard image, none for a build service image.",
    )
    memory: str = Field(
        default="0.5Gi",
        description="Memory, a Kubernetes quantity above zero.",
        json_schema_extra={"pattern": QUANTITY_PATTERN},
    )
    cpu: str = Field(
        default="0.1",
        description="CPU, a Kubernetes quantity above zero.",
        json_schema_extra={"pattern": QUANTITY_PATTERN},
    )
    retry: int = Field(
        default=0,
        description="Retries 0..5 (one-off and scheduled).",
        json_schema_extra={"minimum": 0, "maximum": 5},
    )
    timeout: int | None = Field(
        default=None,
        description="Seconds a run may take (scheduled).",
        json_schema_extra={"minimum": 1},
    )
    replicas: int | None = Field(
        default=None,
        description="Pods (continuous; default 1).",
        json_schema_extra={"minimum": 1},
    )
    port: int | None = Field(
        default=None,
        description="Port 1..65535 (continuous).",
        json_schema_extra={"minimum": 1, "maximum": 65535},
    )
    port_protocol: PortProtocol | None = Field(
        default=None, description="tcp or udp (continuous with a port; default tcp)."
    )
    health_check: HealthCheck | None = Field(default=None, description="(continuous)")
    publish: PublishPath | None = Field(
        default=None,
        description="Serve the job at https://<tool>.<public domain>/ (continuous with a tcp "
        'port; only "/"; at most one job per tool).',
    )

    _user_set: frozenset[str] = PrivateAttr(default=frozenset())

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

    @field_validator("publish", mode="before")
    @classmethod
    def _publish(cls, value: Any) -> Any:
        if value is not None and value != "/":
            raise JobSpecError(
                "publish",
                f'must be "/" (a job is published at the root of its tool\'s host; got {value!r})',
            )
        return value

    @field_validator("port")
    @classmethod
    def _port(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= 65535:
            raise JobSpecError("port", f"must be between 1 and 65535 (got {value})")
        return value

    @model_validator(mode="after")
    def _normalise(self) -> JobSpec:
        user_set = frozenset(f for f in self.model_fields_set if getattr(self, f) is not None)
        self._resolve_type()
        kind = self.job_type
        if self.retry and kind == "continuous":
            raise JobSpecError("retry", "is only valid for one-off and scheduled jobs")
        if self.timeout is not None and kind != "scheduled":
            raise JobSpecError("timeout", "is only valid for scheduled jobs")
        for field in ("replicas", "port", "port_protocol", "health_check", "publish"):
            if getattr(self, field) is not None and kind != "continuous":
                raise JobSpecError(field, "is only valid for continuous jobs")
        if kind == "continuous":
            self._normalise_continuous()
        self._apply_image_defaults()
        self._check_filelog()
        self._user_set = user_set
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
        if self.publish is not None:
            if self.port is None:
                raise JobSpecError("publish", "needs a port (the port the job serves HTTP on)")
            if self.port_protocol != "tcp":
                raise JobSpecError("publish", "needs a tcp port (HTTP runs over TCP)")
        if isinstance(self.health_check, HttpHealthCheck):
            if self.port is None:
                raise JobSpecError("health_check", "type http needs a port")
            if self.port_protocol != "tcp":
                raise JobSpecError("health_check", "type http needs a tcp port")

    def _apply_image_defaults(self) -> None:
        standard = not is_buildservice_image(self.imagename)
        if self.mount is None:
            self.mount = "all" if standard else "none"
        if self.filelog is None:
            self.filelog = standard and self.mount == "all"

    def _check_filelog(self) -> None:
        if self.filelog and self.mount != "all":
            raise JobSpecError(
                "filelog", "needs mount: all (the log files are written to the tool's home)"
            )
        for field in ("filelog_stdout", "filelog_stderr"):
            if getattr(self, field) is not None and not self.filelog:
                raise JobSpecError(field, "is only valid with filelog: true")
        if is_buildservice_image(self.imagename) and not self.filelog:
            # run directly (behind the launcher), so the command must split into arguments
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

    @property
    def user_set(self) -> frozenset[str]:
        """The fields the user gave (with a value other than ``null``)."""
        return self._user_set

    def stored(self) -> dict[str, Any]:
        """What is stored of the spec: the fields the user set, as JSON values. It validates
        back to an equal spec with the same :attr:`user_set`."""
        return self.model_dump(mode="json", include=set(self._user_set))

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
