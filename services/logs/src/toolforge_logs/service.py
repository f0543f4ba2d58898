"""Rules of the logs API: which lines a tool may read and how a read is paged or followed.

- Isolation: every read selects the streams of ``tool-<tool>`` (the verified tool's
  namespace) and nothing else; job names are values of the same stream filter
  (:mod:`toolforge_logs.query`). The build namespace is never read (the collector does not
  even ship it; build logs stay in the builds API).
- A job whose output goes to files (filelog) has no lines here: a read that finds none
  answers 404 ``Job 'x' does not have any logs available`` (the jobs API's words), with where
  the files are. A read that finds no lines of a job the tool does not have (any more) answers
  404 ``Job 'x' does not exist``; lines of a deleted job are still answered while the store
  keeps them (its retention).
- A follow first sends the lines up to ``now - follow_delay`` (the last ``lines`` lines, or all
  since ``since``), then the store's live tail of the lines after that point, which stays
  ``follow_delay`` behind now so that no line that becomes searchable late is skipped
  (``docs/logs.md``). It ends when the client goes away; the tail is closed with it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

from toolforge_auth.tools import namespace_for
from toolforge_kit.errors import NotFoundError, UnavailableError
from toolforge_logs.models import NewJobEvent
from toolforge_logs.query import (
    JOB_EVENTS,
    RUN_LOGS,
    InvalidParameter,
    LogsRequest,
    Page,
    assemble_page,
    build_queries,
    parse_cursor,
    parse_direction,
    parse_time,
    stream_namespace,
)
from toolforge_logs.settings import LogsSettings
from toolforge_logs.storage import LogStoreStorage, ToolImpersonatingJobsStorage
from toolforge_logstore import Direction, LogEntry, NewLogEntry, StreamSelector, TailQuery

__all__ = ["LogsService", "ReadParameters"]

_TOOL_NAMES_MAX = 20


class ReadParameters:
    """The query parameters of a read, as given (strings or ``None``)."""

    def __init__(
        self,
        *,
        since: str | None = None,
        until: str | None = None,
        direction: str | None = None,
        lines: int | None = None,
        cursor: str | None = None,
    ) -> None:
        self.since = since
        self.until = until
        self.direction = direction
        self.lines = lines
        self.cursor = cursor


class LogsService:
    """The logs API's operations for the verified ``tool``.

    Raises (every method): :class:`~toolforge_logs.query.InvalidParameter` (400), the
    storage's errors (503 store or kube-apiserver unreachable, 502, 403), plus those documented.
    """

    def __init__(
        self,
        store: LogStoreStorage,
        jobs: ToolImpersonatingJobsStorage,
        settings: LogsSettings,
        *,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._store = store
        self._jobs = jobs
        self._settings = settings
        self._clock = clock
        self._follows = 0

    def request(
        self,
        tool: str,
        jobs: tuple[str, ...],
        params: ReadParameters,
        *,
        end_ns: int | None = None,
        sources: tuple[str, ...] = (RUN_LOGS,),
    ) -> LogsRequest:
        """The :class:`LogsRequest` of ``params`` for ``tool``'s namespace (``end_ns``: the
        default end instead of now)."""
        now = self._clock()
        if len(jobs) > _TOOL_NAMES_MAX:
            raise InvalidParameter(f"job_names: at most {_TOOL_NAMES_MAX} names")
        if params.lines is not None and not 1 <= params.lines <= self._settings.max_lines:
            raise InvalidParameter(f"lines: must be between 1 and {self._settings.max_lines}")
        until = parse_time("until", params.until, now) if params.until else (end_ns or now)
        if params.since:
            since = parse_time("since", params.since, now)
        else:
            since = until - self._settings.default_since_seconds * 1_000_000_000
        return LogsRequest(
            namespace=namespace_for(tool),
            jobs=jobs,
            start_ns=since,
            end_ns=until,
            direction=parse_direction(params.direction),
            lines=params.lines,
            cursor=parse_cursor(params.cursor),
            sources=sources,
        )

    async def write_event(self, tool: str, event: NewJobEvent) -> None:
        """Keep ``event`` (reported by the jobs API) among the tool's job events."""
        namespace = stream_namespace(namespace_for(tool), JOB_EVENTS)
        await self._store.insert(
            [
                NewLogEntry(
                    self._clock(),
                    event.model_dump_json(),
                    namespace,
                    job=event.job_name,
                    container="jobs-api",
                )
            ]
        )

    async def page(self, request: LogsRequest) -> Page:
        """One page of ``request``."""
        queries = build_queries(request, self._settings.page_size)
        results = [await self._store.query(query) for query in queries]
        return assemble_page(request, results, self._settings.page_size)

    async def job_page(
        self, tool: str, job: str, params: ReadParameters
    ) -> tuple[LogsRequest, Page]:
        """One page of the lines of the tool's job ``job``.

        Raises:
            NotFoundError: no lines, and the job writes its output to files (filelog) or
                does not exist.
        """
        request = self.request(tool, (job,), params)
        page = await self.page(request)
        if not page.entries and request.cursor is None:
            await self._check_has_logs(tool, job)
        return request, page

    async def _check_has_logs(self, tool: str, job: str) -> None:
        state = await self._jobs.job_state(tool, job)
        if state == "filelog":
            raise NotFoundError(
                f"Job '{job}' does not have any logs available: its output goes to files "
                f"in the tool's home (filelog, by default ~/{job}.out and ~/{job}.err)"
            )
        if state == "missing":
            raise NotFoundError(f"Job '{job}' does not exist")

    async def start_follow(
        self, tool: str, job: str, params: ReadParameters
    ) -> AsyncIterator[LogEntry]:
        """Check a follow of ``job`` can start, and return its lines (see the module
        documentation). Iterate it to the end or ``aclose()`` it: that closes the store tail.

        Raises:
            NotFoundError: the job writes its output to files (filelog) or does not exist.
            UnavailableError: ``max_follows`` follows are open already.
        """
        if self._follows >= self._settings.max_follows:
            raise UnavailableError(
                "too many logs are being followed right now; try again",
                retry_after=self._settings.retry_after_seconds,
            )
        delay_ns = int(self._settings.follow_delay_seconds * 1_000_000_000)
        cutoff = self._clock() - delay_ns
        backlog_params = ReadParameters(
            since=params.since,
            direction="newest_first" if params.lines else "oldest_first",
            lines=params.lines,
        )
        backlog = self.request(tool, (job,), backlog_params, end_ns=cutoff)
        backlog = LogsRequest(
            namespace=backlog.namespace,
            jobs=backlog.jobs,
            start_ns=min(backlog.start_ns, cutoff - 1),
            end_ns=cutoff,
            direction=backlog.direction,
            lines=backlog.lines,
        )
        first = await self.page(backlog)
        if not first.entries:
            await self._check_has_logs(tool, job)
        backward = backlog.direction is Direction.BACKWARD
        return self._follow(StreamSelector(backlog.namespace, job=job), first, backward, cutoff)

    async def _follow(
        self, selector: StreamSelector, first: Page, backward: bool, cutoff: int
    ) -> AsyncIterator[LogEntry]:
        """The backlog from its ``first`` page (newest first when ``backward``: sent oldest
        first), then the tail of the lines from ``cutoff`` on."""
        self._follows += 1
        try:
            if backward:
                newest_first = list(first.entries)
                async for entry in self._pages(first.next):
                    newest_first.append(entry)
                for entry in reversed(newest_first):
                    yield entry
            else:
                for entry in first.entries:
                    yield entry
                async for entry in self._pages(first.next):
                    yield entry
            behind = max(0, self._clock() - cutoff) + 1_000_000_000
            tail = TailQuery(
                selector,
                history=timedelta(microseconds=behind // 1000),
                delay=timedelta(seconds=self._settings.follow_delay_seconds),
                refresh=timedelta(seconds=self._settings.follow_refresh_seconds),
            )
            async with self._store.tail(tail) as entries:
                async for entry in entries:
                    if entry.time_ns >= cutoff:
                        yield entry
        finally:
            self._follows -= 1

    async def _pages(self, request: LogsRequest | None) -> AsyncIterator[LogEntry]:
        current = request
        while current is not None:
            page = await self.page(current)
            for entry in page.entries:
                yield entry
            current = page.next

    @property
    def follows(self) -> int:
        """Follows open now."""
        return self._follows
