"""Job logs from the log store and the pod log API: the NDJSON stream of
``GET .../jobs/{name}/logs``.

Without ``follow``, when the log store is configured (``logstore_url``), the lines of the job
in the store (the last ``logstore_window_seconds``) are merged with the pod log API's lines of
the job's pods that still exist, one line once (the same pod and container runtime time). The
store has every line a few seconds after it was printed, including those of deleted and
replaced pods; the pod log API falls in only for the newest lines of live pods, which the store
may not have yet. With ``follow`` the pod log API alone is read (as below), so the stream still
ends with the job.

The logs of a job are those of the ``job`` container of its pods (the newest
``logs_max_pods``), read as the tool (:class:`~toolforge_jobs.storage.ToolImpersonatingStorage`)
and merged in time order. With ``follow`` every pod is streamed until its container ends, pods
that start later are picked up, and the stream ends when no more pods can come (the Job
finished, the Deployment is gone, the CronJob has no active Job) or after
``logs_follow_max_seconds``. A client that goes away cancels and closes every pod stream.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Iterable

from toolforge_jobs.builders import (
    CONTAINER_NAME,
    UnreadableJobError,
    job_from_objects,
)
from toolforge_jobs.logs import LogRecord, parse_log_line
from toolforge_jobs.objects import (
    MANAGED_SELECTOR,
    NAME_LABEL,
    PLURAL,
    Obj,
    finished,
    meta,
    parse_time,
)
from toolforge_jobs.settings import JobsSettings
from toolforge_jobs.storage import ToolImpersonatingStorage, gather_all
from toolforge_kit.errors import APIError, BadRequestError, NotFoundError
from toolforge_kit.streaming import iter_lines
from toolforge_logstore import (
    Direction,
    LogQuery,
    LogStoreClient,
    LogStoreConfig,
    LogStoreError,
    StreamSelector,
)

__all__ = ["PodLogs"]

_log = logging.getLogger(__name__)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class PodLogs:
    """Reads and follows the pod logs of jobs; see the module documentation."""

    def __init__(self, storage: ToolImpersonatingStorage, settings: JobsSettings) -> None:
        self._storage = storage
        self._settings = settings

    async def open(
        self, tool: str, primary: Obj, *, follow: bool, lines: int | None
    ) -> AsyncIterator[bytes]:
        """The log of the job whose primary object is ``primary``, as NDJSON lines (see
        :mod:`toolforge_jobs.logs`), as an async iterator to stream. Checks happen before this
        returns, so they can still be answered as errors:

        Raises:
            NotFoundError: ``Job 'x' does not have any logs available`` (REFERENCE.md, "The
                wire as production serves it"; scripts retry on it): the job writes its
                output to files (filelog), it has no pods, or (not following) no output yet.
            UnavailableError: too many log streams are open.
        """
        name = meta(primary).get("name", "")
        try:
            spec = job_from_objects([primary])
        except UnreadableJobError as exc:
            raise NotFoundError(f"Job '{name}' cannot be read as a job") from exc
        no_logs = f"Job '{name}' does not have any logs available"
        if spec.filelog:
            raise NotFoundError(no_logs)  # its output goes to files in the tool's home
        pods = await self._pods_of(tool, name)
        if follow and pods:
            return self._follow(tool, primary, pods, lines)
        records = await self._read_logs(tool, pods, lines) if pods else []
        if not follow:
            records = _merge(await self._stored(tool, name, lines), records, lines)
        if not records:
            raise NotFoundError(no_logs)
        return _aiter(record.ndjson() for record in records)

    async def _stored(self, tool: str, name: str, lines: int | None) -> list[LogRecord]:
        """The job's lines in the log store (none when it is not configured or cannot be
        read: the pod log API still answers)."""
        settings = self._settings
        if settings.logstore_url is None or settings.logstore_password_file is None:
            return []
        start = time.time_ns() - settings.logstore_window_seconds * 1_000_000_000
        query = LogQuery(
            StreamSelector(f"tool-{tool}", job=name),
            start=start,
            limit=lines or 10_000,
            direction=Direction.BACKWARD,
        )
        try:
            config = LogStoreConfig(
                url=settings.logstore_url,
                username=settings.logstore_username,
                password=settings.logstore_password_file.read_text().strip(),
                ca_file=settings.logstore_ca_file,
            )
            async with LogStoreClient(config) as store:
                entries = await store.query(query)
        except (LogStoreError, OSError) as exc:
            _log.warning("tool %s: log store not read for job %s: %s", tool, name, exc)
            return []
        return [
            LogRecord(
                datetime=_EPOCH + dt.timedelta(microseconds=e.time_ns // 1000),
                pod=e.pod or "",
                container=e.container or CONTAINER_NAME,
                message=e.message,
            )
            for e in reversed(entries)
        ]

    async def _pods_of(self, tool: str, name: str) -> list[Obj]:
        pods = await self._storage.list(
            tool, "pods", label_selector=f"{MANAGED_SELECTOR},{NAME_LABEL}={name}"
        )
        live = [p for p in pods if not meta(p).get("deletionTimestamp")]
        live.sort(key=lambda p: parse_time(meta(p).get("creationTimestamp")))
        return live[-self._settings.logs_max_pods :]

    async def _read_logs(self, tool: str, pods: list[Obj], lines: int | None) -> list[LogRecord]:
        """Whole (or the last ``lines`` of) logs of ``pods``, merged in time order."""

        async def one(pod: Obj) -> list[LogRecord]:
            pod_name = meta(pod).get("name", "")
            records: list[LogRecord] = []
            try:
                async with self._storage.pod_log(
                    tool, pod_name, container=CONTAINER_NAME, follow=False, tail_lines=lines
                ) as stream:
                    async for raw in iter_lines(
                        stream.iter_any(), self._settings.logs_max_line_bytes
                    ):
                        records.append(parse_log_line(raw, pod=pod_name, container=CONTAINER_NAME))
            except (BadRequestError, NotFoundError):
                return []  # not started yet, or gone meanwhile
            return records

        per_pod = await gather_all(*(one(pod) for pod in pods))
        merged = sorted((r for records in per_pod for r in records), key=lambda r: r.datetime)
        return merged[-lines:] if lines is not None else merged

    async def _still_running(self, tool: str, primary: Obj) -> bool:
        """Whether more pods may come: the Job is unfinished, the Deployment exists, the
        CronJob has an active Job."""
        current = await self._storage.get(
            tool, PLURAL[primary["kind"]], meta(primary).get("name", "")
        )
        if current is None or meta(current).get("uid") != meta(primary).get("uid"):
            return False
        if current["kind"] == "Job":
            return not finished(current)
        if current["kind"] == "CronJob":
            return bool((current.get("status") or {}).get("active"))
        return True

    async def _follow_pod(self, tool: str, pod: Obj, lines: int | None, out: _Sink) -> None:
        """Stream one pod's log into ``out`` until its container ends; while the container
        has not started, wait for it (poll)."""
        pod_name = meta(pod).get("name", "")
        try:
            await self._follow_pod_once(tool, pod_name, lines, out)
        except APIError as exc:
            _log.warning("tool %s: log stream of pod %s ended: %s", tool, pod_name, exc)

    async def _follow_pod_once(
        self, tool: str, pod_name: str, lines: int | None, out: _Sink
    ) -> None:
        while True:
            try:
                async with self._storage.pod_log(
                    tool, pod_name, container=CONTAINER_NAME, follow=True, tail_lines=lines
                ) as stream:
                    async for raw in iter_lines(
                        stream.iter_any(), self._settings.logs_max_line_bytes
                    ):
                        await out.put(parse_log_line(raw, pod=pod_name, container=CONTAINER_NAME))
                return
            except NotFoundError:
                return
            except BadRequestError:
                pass  # the container is waiting to start
            current = await self._storage.get(tool, "pods", pod_name)
            if current is None or meta(current).get("deletionTimestamp"):
                return
            if (current.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                for record in await self._read_logs(tool, [current], lines):
                    await out.put(record)
                return
            await asyncio.sleep(self._settings.logs_poll_seconds)

    async def _follow(
        self, tool: str, primary: Obj, pods: list[Obj], lines: int | None
    ) -> AsyncIterator[bytes]:
        """Follow the logs of ``pods`` and of pods that start later, until no pod is left
        running and no more can come (:meth:`_still_running`), or ``logs_follow_max_seconds``
        passed. Leaving early (the client went away) cancels and closes every pod stream."""
        poll = self._settings.logs_poll_seconds
        deadline = time.monotonic() + self._settings.logs_follow_max_seconds
        out = _Sink()
        tasks: dict[str, asyncio.Task[None]] = {}

        def start(found: Iterable[Obj]) -> None:
            for pod in found:
                uid = meta(pod).get("uid", "")
                if uid and uid not in tasks:
                    tasks[uid] = asyncio.create_task(self._follow_pod(tool, pod, lines, out))

        try:
            start(pods)
            while time.monotonic() < deadline:
                record = await out.get(timeout=poll)
                if record is not None:
                    yield record.ndjson()
                    continue
                if any(not t.done() for t in tasks.values()) or not out.empty():
                    continue
                name = meta(primary).get("name", "")
                fresh = [
                    p for p in await self._pods_of(tool, name) if meta(p).get("uid") not in tasks
                ]
                if fresh:
                    start(fresh)
                elif not await self._still_running(tool, primary):
                    break
        except APIError as exc:
            _log.warning(
                "tool %s: log follow of %s stopped: %s", tool, meta(primary).get("name"), exc
            )
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)


class _Sink:
    """The queue pod streams write records to; :meth:`get` waits at most ``timeout``."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[LogRecord] = asyncio.Queue(maxsize=1024)

    async def put(self, record: LogRecord) -> None:
        await self._queue.put(record)

    def empty(self) -> bool:
        return self._queue.empty()

    async def get(self, timeout: float) -> LogRecord | None:
        try:
            async with asyncio.timeout(timeout):
                return await self._queue.get()
        except TimeoutError:
            return None


def _merge(stored: list[LogRecord], live: list[LogRecord], lines: int | None) -> list[LogRecord]:
    """Both lists in time order, a line that is in both (same pod, container, time and text;
    the pod log API's times are read to the microsecond) once; the last ``lines``."""
    seen = {(r.pod, r.container, r.datetime, r.message) for r in stored}
    merged = stored + [r for r in live if (r.pod, r.container, r.datetime, r.message) not in seen]
    merged.sort(key=lambda r: r.datetime)
    return merged[-lines:] if lines is not None else merged


async def _aiter(items: Iterable[bytes]) -> AsyncIterator[bytes]:
    for item in items:
        yield item
