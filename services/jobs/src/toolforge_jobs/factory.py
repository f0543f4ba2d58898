"""Wiring of the jobs API: settings -> clients -> service, for the app's lifespan.

:func:`lifespan` opens the kube-apiserver clients (:class:`ToolImpersonatingStorage`), the
object cache (when ``cache_enabled``), the image list and the registry reader of build
service images (when ``registry_pull_address`` is set), builds the
:class:`~toolforge_jobs.service.JobsService` into ``app.state.jobs_service`` (and the cache into
``app.state.object_cache``, ``None`` when disabled), and at shutdown stops every watch and
closes the clients.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from toolforge_jobs.cache import ObjectCache
from toolforge_jobs.metrics import JobsMetrics
from toolforge_jobs.registry import BuiltImageRegistry
from toolforge_jobs.service import JobsService, image_catalog
from toolforge_jobs.settings import JobsSettings
from toolforge_jobs.storage import ToolImpersonatingStorage

__all__ = ["lifespan"]


def lifespan(
    settings: JobsSettings, metrics: JobsMetrics
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app lifespan that wires the jobs API for ``settings``; see the module docs."""

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        storage = await ToolImpersonatingStorage.connect(settings, metrics)
        cache = ObjectCache(storage, metrics, settings) if settings.cache_enabled else None
        built = BuiltImageRegistry.from_settings(settings)
        app.state.object_cache = cache
        app.state.jobs_service = JobsService(
            storage, image_catalog(storage, settings), settings, cache=cache, built=built
        )
        try:
            yield
        finally:
            if built is not None:
                await built.close()
            if cache is not None:
                await cache.close()
            await storage.close()

    return run
