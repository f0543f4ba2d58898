"""Wiring of the builds API: settings -> clients -> service, for the app's lifespan.

:func:`lifespan` opens the registry client and the kube-apiserver client
(:class:`~toolforge_builds.storage.LabelScopedServiceStorage`), builds the
:class:`~toolforge_builds.service.BuildsService` into ``app.state.builds_service``, and closes
both at shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from toolforge_builds.registry import RegistryClient
from toolforge_builds.service import BuildsService
from toolforge_builds.settings import BuildsSettings
from toolforge_builds.storage import LabelScopedServiceStorage
from toolforge_kit.metrics import ServiceMetrics

__all__ = ["lifespan"]


def lifespan(
    settings: BuildsSettings, metrics: ServiceMetrics
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app lifespan that wires the builds API for ``settings``; see the module docs."""

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        registry = RegistryClient.from_settings(settings)
        try:
            storage = await LabelScopedServiceStorage.connect(settings, metrics)
        except BaseException:
            await registry.close()
            raise
        app.state.builds_service = BuildsService(storage, settings, registry)
        try:
            yield
        finally:
            await storage.close()
            await registry.close()

    return run
