"""What the logs API's handlers share: the service dependency, parameters, documented errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Path, Query, Request

from toolforge_kit.app import Responses, error_responses
from toolforge_kit.wire import ErrorBody
from toolforge_logs.service import LogsService, ReadParameters

__all__ = ["AUTH", "JobName", "Read", "Service", "errors"]


def _service(request: Request) -> LogsService:
    service: LogsService = request.app.state.logs_service
    return service


#: The app's :class:`LogsService` (built by :mod:`toolforge_logs.factory`).
Service = Annotated[LogsService, Depends(_service)]
JobName = Annotated[
    str,
    Path(
        description="The job's name (pod label app.kubernetes.io/name).",
        min_length=1,
        max_length=253,
    ),
]


def _read(
    lines: Annotated[
        int | None, Query(description="At most this many lines in all pages (default: all).")
    ] = None,
    since: Annotated[
        str | None,
        Query(
            description="Start: ISO 8601 time or a duration before now (1h32m22s); default 1h.",
            max_length=64,
        ),
    ] = None,
    until: Annotated[
        str | None,
        Query(
            description="End (exclusive): ISO 8601 time or duration; default now.", max_length=64
        ),
    ] = None,
    direction: Annotated[
        str | None,
        Query(description="oldest_first (default) or newest_first.", max_length=16),
    ] = None,
    cursor: Annotated[
        str | None, Query(description="Set by next.url; do not build it.", max_length=40)
    ] = None,
) -> ReadParameters:
    return ReadParameters(since=since, until=until, direction=direction, lines=lines, cursor=cursor)


#: The read parameters of a route.
Read = Annotated[ReadParameters, Depends(_read)]

#: Error answers of every tool route.
AUTH = {
    400: "A parameter cannot be used; the message names it.",
    401: "No gateway client certificate, or no valid identity header.",
    403: "Another tool's path, or a service identity.",
    422: "A parameter has the wrong type.",
    502: "The log store refused the query.",
    503: "The log store or kube-apiserver cannot be reached; see Retry-After.",
}
NOT_FOUND = {404: "Job 'x' does not have any logs available (its output goes to files)."}


def errors(*groups: Mapping[int, str], json_only: bool = False) -> Responses:
    """The documented error answers of a tool route: :data:`AUTH` and ``groups``."""
    return error_responses(ErrorBody, AUTH, *groups, json_only=json_only)
