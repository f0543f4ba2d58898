"""The logs API's two doors: the log store (:class:`LogStoreStorage`, VictoriaLogs through
:mod:`toolforge_logstore`) and the tool's job objects (:class:`ToolImpersonatingJobsStorage`,
kube-apiserver as the tool: does the job exist, is it a filelog job).

Store failures are mapped to the kit's errors: unreachable, timed out or 5xx ->
:class:`~toolforge_kit.errors.UnavailableError` (503 with ``Retry-After``); any other refusal
-> :class:`~toolforge_kit.errors.ClusterError` (502; the store's message goes to the log only).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from toolforge_auth.tools import namespace_for
from toolforge_kit.errors import ClusterError, UnavailableError
from toolforge_kit.kube import KubeClient, Resource
from toolforge_logs.metrics import LogsMetrics
from toolforge_logs.settings import LogsSettings
from toolforge_logstore import (
    LogEntry,
    LogQuery,
    LogStoreClient,
    LogStoreConfig,
    LogStoreError,
    LogStoreUnavailableError,
    NewLogEntry,
    TailQuery,
)

__all__ = ["JobState", "LogStoreStorage", "ToolImpersonatingJobsStorage"]

_log = logging.getLogger(__name__)

#: See :meth:`ToolImpersonatingJobsStorage.job_state`.
JobState = Literal["filelog", "stdout", "missing"]

#: The objects the jobs API makes for a job (REFERENCE.md, "Kubernetes mapping").
_JOB_RESOURCES = (
    Resource("/apis/batch/v1", "jobs", "Job", "batch/v1"),
    Resource("/apis/batch/v1", "cronjobs", "CronJob", "batch/v1"),
    Resource("/apis/apps/v1", "deployments", "Deployment", "apps/v1"),
)
#: Label of a job whose output goes to files (toolforge_jobs.builders).
FILELOG_LABEL = "jobs.toolforge.org/filelog"
_JOB_LABEL = "app.kubernetes.io/name"


def _label_value(text: str) -> bool:
    """A valid Kubernetes label value (so it can go into a label selector)."""
    return (
        len(text) <= 63
        and re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?", text) is not None
    )


class LogStoreStorage:
    """Reads of the log store. Build with :meth:`connect`; :meth:`close` at shutdown."""

    def __init__(self, client: LogStoreClient, metrics: LogsMetrics, retry_after: int) -> None:
        self._client = client
        self._metrics = metrics
        self._retry_after = retry_after

    @classmethod
    def connect(cls, settings: LogsSettings, metrics: LogsMetrics) -> LogStoreStorage:
        """A client of the store of ``settings``.

        Raises:
            OSError, ValueError: the password or the CA file cannot be read.
        """
        config = LogStoreConfig(
            url=settings.logstore_url,
            username=settings.logstore_username,
            password=settings.logstore_password_value(),
            ca_file=settings.logstore_ca_file,
            timeout=settings.logstore_timeout_seconds,
        )
        return cls(LogStoreClient(config), metrics, settings.retry_after_seconds)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    def _map(self, kind: str, exc: LogStoreError) -> Exception:
        if isinstance(exc, LogStoreUnavailableError):
            self._metrics.store_queries.labels(kind, "unavailable").inc()
            _log.warning("log store unavailable: %s", exc)
            return UnavailableError(
                "the log store cannot be reached; try again", retry_after=self._retry_after
            )
        self._metrics.store_queries.labels(kind, "refused").inc()
        _log.error("log store refused a %s: %s", kind, exc)
        return ClusterError("the log store refused the query; it has been logged")

    async def query(self, query: LogQuery) -> list[LogEntry]:
        """The lines of ``query`` in its direction.

        Raises:
            UnavailableError, ClusterError: see the module documentation.
        """
        started = time.perf_counter()
        try:
            entries = await self._client.query(query)
        except LogStoreError as exc:
            raise self._map("query", exc) from exc
        finally:
            self._metrics.store_query_duration.observe(time.perf_counter() - started)
        self._metrics.store_queries.labels("query", "ok").inc()
        return entries

    async def insert(self, entries: list[NewLogEntry]) -> None:
        """Write ``entries`` (searchable about a second later).

        Raises:
            UnavailableError, ClusterError: see the module documentation.
        """
        try:
            await self._client.insert(entries)
        except LogStoreError as exc:
            raise self._map("insert", exc) from exc
        self._metrics.store_queries.labels("insert", "ok").inc()

    @asynccontextmanager
    async def tail(self, query: TailQuery) -> AsyncIterator[AsyncIterator[LogEntry]]:
        """A live tail of ``query`` as an async iterator, open while the context is; leaving
        the context closes the store request (the store then stops the query) and lowers
        ``store_tails_open`` again.

        Raises:
            UnavailableError, ClusterError: while iterating, see the module documentation.
        """
        stream = self._client.tail(query)
        self._metrics.store_tails_open.inc()
        self._metrics.store_queries.labels("tail", "ok").inc()

        async def entries() -> AsyncIterator[LogEntry]:
            try:
                async for entry in stream:
                    yield entry
            except LogStoreError as exc:
                raise self._map("tail", exc) from exc

        iterator = entries()
        try:
            yield iterator
        finally:
            try:
                await iterator.aclose()  # type: ignore[attr-defined]
            finally:
                await stream.aclose()
                self._metrics.store_tails_open.dec()


class ToolImpersonatingJobsStorage:
    """The tool's job objects, read as the tool (impersonation, like the jobs API), so the
    tool's own RBAC confines the read. Build with :meth:`connect`; :meth:`close` at shutdown.

    Raises (every method): the kit's errors (403, 503...).
    """

    def __init__(self, kube: KubeClient) -> None:
        self._kube = kube

    @classmethod
    async def connect(
        cls, settings: LogsSettings, metrics: LogsMetrics
    ) -> ToolImpersonatingJobsStorage:
        """Open the client with the API's own credentials (``kubeconfig`` or in-cluster).

        Raises:
            kubernetes_asyncio.config.ConfigException, OSError: unusable credentials.
        """
        kube = await KubeClient.for_backend(
            settings,
            user_agent="toolforge-logs-api",
            metrics=metrics,
        )
        return cls(kube)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._kube.close()

    async def job_state(self, tool: str, job: str) -> JobState:
        """What the tool has under the job name ``job``: ``filelog`` when its Job, CronJob or
        Deployment carries ``jobs.toolforge.org/filelog=yes`` (its output goes to files),
        ``stdout`` when it exists otherwise, ``missing`` when none exists (also for a name that
        cannot be a label value, hence no job's name)."""
        if not _label_value(job):
            return "missing"
        found = False
        for resource in _JOB_RESOURCES:
            items, _ = await self._kube.list(
                resource, namespace_for(tool), as_tool=tool, label_selector=f"{_JOB_LABEL}={job}"
            )
            for item in items:
                labels = (item.get("metadata") or {}).get("labels") or {}
                if labels.get(FILELOG_LABEL) == "yes":
                    return "filelog"
                found = True
        return "stdout" if found else "missing"
