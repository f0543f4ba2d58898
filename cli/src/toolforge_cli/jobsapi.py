"""The jobs API v1 as seen through the gateway: ``/jobs/v1/tool/<tool>/...`` (REFERENCE.md,
"Jobs API (v1)" and "The wire as production serves it"; the gateway strips ``/jobs``).

Two shapes of a job are read alike by :class:`Job`:

- production's (and our newer API's): per job type, fields that do not apply are absent;
  with ``include_unset=false`` the fields the user never set are absent too; ``image_state``;
  ``status.duration`` a string such as ``1d2h3m4s``;
- our older API's: every field, ``null`` where it does not apply, ``continuous: bool``,
  ``status.duration`` in seconds.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from toolforge_cli.apibase import Answer, ApiBase, QuotaAnswer, WireModel

__all__ = [
    "HealthCheck",
    "Image",
    "ImageList",
    "Job",
    "JobAnswer",
    "JobChanged",
    "JobList",
    "JobStatus",
    "JobsApi",
    "format_duration",
]


def _number_as_text(value: object) -> object:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


#: A string the API might send as a number (``cpu: 1``).
Text = Annotated[str, BeforeValidator(_number_as_text)]
JobKind = Literal["one-off", "scheduled", "continuous"]


def format_duration(value: str | int | float | None) -> str | None:
    """``status.duration`` as production writes it: ``1d2h3m4s`` (zero parts left out,
    ``0s`` for nothing). A string is returned as it came; seconds (older answers) are
    formatted; ``None`` stays ``None``."""
    if value is None or isinstance(value, str):
        return value
    seconds = max(int(value), 0)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


class HealthCheck(WireModel):
    """``{type: script, script}`` or ``{type: http, path}``."""

    type: str
    script: str | None = None
    path: str | None = None


class JobStatus(WireModel):
    """The structured status: ``short`` is pending|running|succeeded|failed|unknown."""

    short: str = "unknown"
    messages: list[str] = Field(default_factory=list)
    duration: str | int | float | None = None
    up_to_date: bool = True
    previous_schedule: str | None = None
    next_schedule: str | None = None


class Job(WireModel):
    """A job as the jobs API returns it. Only ``name`` is always there; everything else may
    be absent (it does not apply, or the user never set it and ``include_unset=false``)."""

    name: str
    cmd: str | None = None
    imagename: str | None = None
    image: str | None = None
    image_state: str | None = None
    job_type: str | None = None
    continuous: bool | None = None
    schedule: str | None = None
    schedule_actual: str | None = None
    timeout: int | None = None
    retry: int | None = None
    memory: Text | None = None
    cpu: Text | None = None
    emails: str | None = None
    mount: str | None = None
    filelog: bool | None = None
    filelog_stdout: str | None = None
    filelog_stderr: str | None = None
    replicas: int | None = None
    port: int | None = None
    port_protocol: str | None = None
    health_check: HealthCheck | None = None
    publish: str | None = None
    public_url: str | None = None
    status_short: str | None = None
    status_long: str | None = None
    status: JobStatus | None = None

    @property
    def kind(self) -> JobKind:
        """``job_type``, or for answers without it: ``schedule`` -> scheduled,
        ``continuous: true`` -> continuous, else one-off."""
        if self.job_type in ("one-off", "scheduled", "continuous"):
            return self.job_type  # type: ignore[return-value]
        if self.schedule:
            return "scheduled"
        return "continuous" if self.continuous else "one-off"

    @property
    def short_status(self) -> str:
        """``status.short`` (``unknown`` when absent)."""
        return self.status.short if self.status is not None else "unknown"


class JobList(Answer):
    """GET ``/jobs``."""

    jobs: list[Job]


class JobAnswer(Answer):
    """GET ``/jobs/{name}``, POST ``/jobs``."""

    job: Job


class JobChanged(Answer):
    """PATCH ``/jobs``: ``messages.info`` says what happened (``Job x is already up to
    date``...)."""

    job_changed: bool


class Image(WireModel):
    """One entry of the image list; ``aliases`` are other short names of the same image."""

    shortname: str
    image: str = ""
    aliases: list[str] = Field(default_factory=list)
    state: str | None = None


class ImageList(Answer):
    """GET ``/images``."""

    images: list[Image]


class JobsApi(ApiBase):
    """The jobs API for the client's tool; see :class:`~toolforge_cli.apibase.ApiBase`."""

    name = "jobs"

    def list_jobs(self, *, include_unset: bool | None = None) -> JobList:
        """GET ``/jobs``; ``include_unset=False``: leave out what the user never set (an API
        that does not know the parameter ignores it and sends every field)."""
        params = None if include_unset is None else {"include_unset": json.dumps(include_unset)}
        return self.call(JobList, "GET", self.path("jobs"), params=params)

    def get_job(self, name: str, *, report: bool = True) -> JobAnswer:
        """GET ``/jobs/{name}``; 404 when there is none."""
        return self.call(JobAnswer, "GET", self.path("jobs", name), report=report)

    def create_job(self, body: dict[str, Any]) -> JobAnswer:
        """POST ``/jobs`` -> 201; 409 when the name is taken."""
        return self.call(JobAnswer, "POST", self.path("jobs"), json_body=body)

    def upsert_job(self, body: dict[str, Any], *, report: bool = True) -> JobChanged:
        """PATCH ``/jobs``: create or update one job."""
        return self.call(JobChanged, "PATCH", self.path("jobs"), json_body=body, report=report)

    def delete_job(self, name: str) -> Answer:
        """DELETE ``/jobs/{name}``."""
        return self.call(Answer, "DELETE", self.path("jobs", name))

    def flush(self) -> Answer:
        """DELETE ``/jobs``: every job of the tool."""
        return self.call(Answer, "DELETE", self.path("jobs"))

    def restart(self, name: str) -> Answer:
        """POST ``/jobs/{name}/restart``; 400 for one-off jobs."""
        return self.call(Answer, "POST", self.path("jobs", name, "restart"))

    def images(self) -> ImageList:
        """GET ``/images``."""
        return self.call(ImageList, "GET", self.path("images"))

    def quota(self) -> QuotaAnswer:
        """GET ``/quotas``."""
        return self.call(QuotaAnswer, "GET", self.path("quotas"))
