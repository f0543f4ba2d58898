"""Routes of a tool's logs (REFERENCE.md, "Logs"): ``/v1/tool/{tool}/logs``,
``/v1/tool/{tool}/job/{name}/logs`` (paged) and ``/v1/tool/{tool}/job/{name}/logs_stream``
(followed, NDJSON). Every route answers with and without a trailing ``/``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from toolforge_auth.dependencies import CurrentIdentity
from toolforge_auth.identity import ServiceIdentity
from toolforge_auth.tools import is_tool_name
from toolforge_kit.app import ToolName, json_reply
from toolforge_kit.errors import ForbiddenError
from toolforge_kit.streaming import NDJSONStreamingResponse
from toolforge_kit.wire import Messages, MessagesResponse
from toolforge_logs.handlers.common import NOT_FOUND, JobName, Read, Service, errors
from toolforge_logs.models import (
    LogLine,
    LogsData,
    LogsResponse,
    NewJobEvent,
    NextPage,
    line_from_entry,
)
from toolforge_logs.query import JOB_EVENTS, RUN_LOGS, InvalidParameter, Page, next_url
from toolforge_logstore import LogEntry

__all__ = ["STREAM_ROUTE", "router"]

router = APIRouter(tags=["logs"])
STREAM_ROUTE = "/v1/tool/{tool}/job/{name}/logs_stream"
#: The service identity that may write job events (REFERENCE.md, "Logs").
JOBS_API_SERVICE = "jobs-api"
_SOURCES = frozenset({RUN_LOGS, JOB_EVENTS, "deployments"})


def _reply(
    page: Page, extra: dict[str, str] | None = None, info: list[str] | None = None
) -> Response:
    following = NextPage(url=next_url(page.next, extra)) if page.next else None
    data = LogsData(logs=[line_from_entry(e) for e in page.entries], next=following)
    return json_reply(LogsResponse(data=data, messages=Messages(info=info or [])))


def _csv(text: str | None) -> list[str]:
    return [part for part in (text or "").split(",") if part]


@router.get("/v1/tool/{tool}/logs", response_model=LogsResponse, responses=errors())
async def tool_logs(
    tool: ToolName,
    service: Service,
    read: Read,
    sources: Annotated[
        str | None,
        Query(description="Comma-separated: run-logs, jobs, deployments.", max_length=200),
    ] = None,
    job_names: Annotated[
        str | None,
        Query(description="Comma-separated job names (default: every job).", max_length=6000),
    ] = None,
    deployment_ids: Annotated[str | None, Query(max_length=6000)] = None,
    build_ids: Annotated[str | None, Query(max_length=6000)] = None,
) -> Response:
    """The tool's lines and job events (of every job, or of ``job_names``), paged: follow
    ``next.url``. ``sources``: ``run-logs`` (the jobs' output) and ``jobs`` (job events),
    both by default; ``deployments`` and builds are not kept here."""
    wanted = _csv(sources)
    unknown = sorted(set(wanted) - _SOURCES)
    if unknown:
        raise InvalidParameter(
            f"sources: unknown {', '.join(unknown)} (run-logs, jobs, deployments)"
        )
    kept = tuple(s for s in (RUN_LOGS, JOB_EVENTS) if not wanted or s in wanted)
    jobs = tuple(dict.fromkeys(_csv(job_names)))
    request = service.request(tool, jobs, read, sources=kept or (RUN_LOGS,))
    extra = {k: v for k, v in (("sources", sources), ("job_names", job_names)) if v}
    if not kept or _csv(deployment_ids) or _csv(build_ids):
        info = [
            "Only run-logs (the output of jobs) and job events are kept here; "
            "build logs: toolforge build logs"
        ]
        return _reply(Page([], None), info=info)
    return _reply(await service.page(request), extra)


@router.get(
    "/v1/tool/{tool}/job/{name}/logs", response_model=LogsResponse, responses=errors(NOT_FOUND)
)
async def job_logs(tool: ToolName, name: JobName, service: Service, read: Read) -> Response:
    """One job's lines, paged (``newest_first`` with ``lines`` gives the last lines, newest
    first): follow ``next.url``."""
    _request, page = await service.job_page(tool, name, read)
    return _reply(page)


async def _ndjson(entries: AsyncIterator[LogEntry]) -> AsyncIterator[bytes]:
    try:
        async for entry in entries:
            yield LogLine.from_entry(entry).model_dump_json().encode() + b"\n"
    finally:
        await entries.aclose()  # type: ignore[attr-defined]


@router.get(STREAM_ROUTE, responses=errors(NOT_FOUND, json_only=True))
async def job_logs_stream(tool: ToolName, name: JobName, service: Service, read: Read) -> Response:
    """One job's lines, followed: the last ``lines`` lines (or those since ``since``), then new
    ones as they come (about ``follow_delay_seconds`` after they were printed), one JSON object
    a line, until the client goes away."""
    entries = await service.start_follow(tool, name, read)
    return NDJSONStreamingResponse(_ndjson(entries))


@router.post(
    "/v1/tool/{tool}/source/jobs-api/log",
    response_model=MessagesResponse,
    status_code=201,
    responses=errors({403: "Only the jobs API's service identity (service:jobs-api) may write."}),
)
async def write_job_event(
    tool: Annotated[str, Path(description="The tool the event is about.", max_length=58)],
    identity: CurrentIdentity,
    service: Service,
    event: NewJobEvent,
) -> Response:
    """Keep a job event the jobs API reports (REFERENCE.md: only ``service:jobs-api``, which
    the gateway lets call this path alone)."""
    if not isinstance(identity, ServiceIdentity) or identity.name != JOBS_API_SERVICE:
        raise ForbiddenError(f"{identity.cn} may not write logs; only service:{JOBS_API_SERVICE}")
    if not is_tool_name(tool):
        raise InvalidParameter(f"tool: {tool!r} is not a tool name")
    await service.write_event(tool, event)
    return json_reply(MessagesResponse(), status.HTTP_201_CREATED)
