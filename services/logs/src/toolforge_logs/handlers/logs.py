"""Routes of a tool's logs (REFERENCE.md, "Logs"): ``/v1/tool/{tool}/logs``,
``/v1/tool/{tool}/job/{name}/logs`` (paged) and ``/v1/tool/{tool}/job/{name}/logs_stream``
(followed, NDJSON). Every route answers with and without a trailing ``/``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Response

from toolforge_kit.app import ToolName, json_reply
from toolforge_kit.streaming import NDJSONStreamingResponse
from toolforge_kit.wire import Messages
from toolforge_logs.handlers.common import NOT_FOUND, JobName, Read, Service, errors
from toolforge_logs.models import RUN_LOGS, LogLine, LogsData, LogsResponse, NextPage
from toolforge_logs.query import InvalidParameter, Page, next_url
from toolforge_logstore import LogEntry

__all__ = ["STREAM_ROUTE", "router"]

router = APIRouter(tags=["logs"])
STREAM_ROUTE = "/v1/tool/{tool}/job/{name}/logs_stream"
_SOURCES = frozenset({RUN_LOGS, "jobs", "deployments"})


def _reply(
    page: Page, extra: dict[str, str] | None = None, info: list[str] | None = None
) -> Response:
    following = NextPage(url=next_url(page.next, extra)) if page.next else None
    data = LogsData(logs=[LogLine.from_entry(e) for e in page.entries], next=following)
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
    """The tool's lines (of every job, or of ``job_names``), paged: follow ``next.url``."""
    wanted = _csv(sources)
    unknown = sorted(set(wanted) - _SOURCES)
    if unknown:
        raise InvalidParameter(
            f"sources: unknown {', '.join(unknown)} (run-logs, jobs, deployments)"
        )
    jobs = tuple(dict.fromkeys(_csv(job_names)))
    request = service.request(tool, jobs, read)
    extra = {k: v for k, v in (("sources", sources), ("job_names", job_names)) if v}
    if (wanted and RUN_LOGS not in wanted) or _csv(deployment_ids) or _csv(build_ids):
        info = [
            "Only run-logs (the output of jobs) are kept here; build logs: toolforge build logs"
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
