"""Wire models of the logs API (REFERENCE.md, "Logs"; the upstream clients
``toolforge-jobs-cli`` 16.2.3 and ``toolforge-logs-cli`` 0.0.5 read exactly these shapes).

- ``GET .../logs`` and ``GET .../job/{name}/logs`` ->
  ``{data: {logs: [LogLine], next: {url} | null}, messages}``;
- ``GET .../job/{name}/logs_stream`` -> one :class:`LogLine` a line (NDJSON);
- ``POST .../source/jobs-api/log`` (the jobs API's service identity only) takes a
  :class:`NewJobEvent`; ``GET .../logs`` answers those as :class:`JobEvent` (``source: jobs``,
  which the logs CLI prints as ``JOB CREATED: job 'x' created by user 'y', ...``);
- errors -> ``{"error": [...]}`` with the status (:mod:`toolforge_kit.wire`).

A :class:`LogLine` carries what both clients print: ``datetime`` (RFC 3339, nanoseconds, UTC),
``pod``, ``container``, ``message`` (the jobs CLI: ``<datetime> [<pod>] [<container>]
<message>``), and ``source`` (``run-logs``: a container's output) with ``job_name`` (the logs
CLI: ``<datetime> [<job_name>] [<pod>|<container>] <message>``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from toolforge_kit.wire import MessagesResponse
from toolforge_logs.query import EVENTS_SUFFIX

if TYPE_CHECKING:
    from toolforge_logstore.client import LogEntry

__all__ = [
    "RUN_LOGS",
    "JobEvent",
    "LogLine",
    "LogsData",
    "LogsResponse",
    "NewJobEvent",
    "NextPage",
    "line_from_entry",
]

#: The source of a container's output (upstream's name).
RUN_LOGS: Final = "run-logs"


class LogLine(BaseModel):
    """One line a job's container printed."""

    model_config = ConfigDict(extra="forbid")

    datetime: str = Field(description="When the container runtime read the line (RFC 3339, ns).")
    pod: str = Field(description="The pod that printed it ('' when unknown).")
    container: str = Field(description="The container that printed it ('' when unknown).")
    message: str = Field(description="The line as printed, without its newline.")
    source: Literal["run-logs"] = Field(default="run-logs", description="Where it comes from.")
    job_name: str = Field(description="The job (pod label app.kubernetes.io/name; '' if none).")

    @classmethod
    def from_entry(cls, entry: LogEntry) -> LogLine:
        """The wire form of a line read from the store."""
        return cls(
            datetime=entry.time,
            pod=entry.pod or "",
            container=entry.container or "",
            message=entry.message,
            job_name=entry.job or "",
        )


EventType = Literal["created", "deleted", "updated", "restarted"]
MessageFormat = Literal["text", "json", "yaml"]


class NewJobEvent(BaseModel):
    """What the jobs API reports about a job (upstream's job events)."""

    model_config = ConfigDict(extra="forbid")

    job_name: str = Field(min_length=1, max_length=253, description="The job.")
    event_type: EventType = Field(description="What happened to it.")
    user_name: str = Field(min_length=1, max_length=253, description="Who did it.")
    message_format: MessageFormat = Field(default="text", description="How to read `message`.")
    message: str = Field(default="", max_length=65_536, description="Details (e.g. the spec).")


class JobEvent(NewJobEvent):
    """A job event read back (``source: jobs``)."""

    datetime: str = Field(description="When the jobs API reported it (RFC 3339, ns).")
    source: Literal["jobs"] = "jobs"

    @classmethod
    def from_entry(cls, entry: LogEntry) -> JobEvent:
        """The event stored as ``entry`` (its message is the event's JSON); an unreadable one
        becomes an ``updated`` event carrying the raw text."""
        try:
            event = NewJobEvent.model_validate_json(entry.message)
        except ValueError:
            event = NewJobEvent(
                job_name=entry.job or "?",
                event_type="updated",
                user_name="?",
                message=entry.message,
            )
        return cls(datetime=entry.time, **event.model_dump())


def line_from_entry(entry: LogEntry) -> LogLine | JobEvent:
    """The wire form of a row: a job event from the events namespace, else a line."""
    if entry.namespace.endswith(EVENTS_SUFFIX):
        return JobEvent.from_entry(entry)
    return LogLine.from_entry(entry)


class NextPage(BaseModel):
    """Where the next page is: ``url`` is a relative reference (``?<query>``) to resolve
    against the URL of the page that named it (RFC 3986 section 5.2), so it works under any
    prefix the gateway or a client puts in front."""

    model_config = ConfigDict(extra="forbid")

    url: str


class LogsData(BaseModel):
    """One page of lines, and the next page (``null`` on the last one)."""

    model_config = ConfigDict(extra="forbid")

    logs: list[LogLine | JobEvent] = Field(default_factory=list)
    next: NextPage | None = None


class LogsResponse(MessagesResponse):
    """``{data: {logs, next}, messages}``."""

    data: LogsData = Field(default_factory=LogsData)
