"""Wire models of the logs API (REFERENCE.md, "Logs"; the upstream clients
``toolforge-jobs-cli`` 16.2.3 and ``toolforge-logs-cli`` 0.0.5 read exactly these shapes).

- ``GET .../logs`` and ``GET .../job/{name}/logs`` ->
  ``{data: {logs: [LogLine], next: {url} | null}, messages}``;
- ``GET .../job/{name}/logs_stream`` -> one :class:`LogLine` a line (NDJSON);
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

if TYPE_CHECKING:
    from toolforge_logstore.client import LogEntry

__all__ = [
    "RUN_LOGS",
    "HealthResponse",
    "LogLine",
    "LogsData",
    "LogsResponse",
    "NextPage",
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


class NextPage(BaseModel):
    """Where the next page is: ``url`` is a relative reference (``?<query>``) to resolve
    against the URL of the page that named it (RFC 3986 section 5.2), so it works under any
    prefix the gateway or a client puts in front."""

    model_config = ConfigDict(extra="forbid")

    url: str


class LogsData(BaseModel):
    """One page of lines, and the next page (``null`` on the last one)."""

    model_config = ConfigDict(extra="forbid")

    logs: list[LogLine] = Field(default_factory=list)
    next: NextPage | None = None


class LogsResponse(MessagesResponse):
    """``{data: {logs, next}, messages}``."""

    data: LogsData = Field(default_factory=LogsData)


class Health(BaseModel):
    """The process's health."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["OK", "ERROR"] = "OK"
    message: str = "OK"


class HealthResponse(MessagesResponse):
    """``{health: {status, message}, messages}``."""

    health: Health = Field(default_factory=Health)
