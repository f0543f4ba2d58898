"""Wiring of the logs API: settings -> store client and kube client -> service, for the app's
lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from toolforge_logs.metrics import LogsMetrics
from toolforge_logs.service import LogsService
from toolforge_logs.settings import LogsSettings
from toolforge_logs.storage import LogStoreStorage, ToolImpersonatingJobsStorage

__all__ = ["lifespan"]


def lifespan(
    settings: LogsSettings, metrics: LogsMetrics
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Opens the clients into ``app.state.logs_service`` and closes them at shutdown."""

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        store = LogStoreStorage.connect(settings, metrics)
        try:
            jobs = await ToolImpersonatingJobsStorage.connect(settings, metrics)
        except BaseException:
            await store.close()
            raise
        app.state.logs_service = LogsService(store, jobs, settings)
        try:
            yield
        finally:
            await jobs.close()
            await store.close()

    return run
