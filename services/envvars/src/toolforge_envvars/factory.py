"""Wiring of the envvars API: settings -> storage -> service, for the app's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from toolforge_envvars.service import EnvvarsService
from toolforge_envvars.settings import EnvvarsSettings
from toolforge_envvars.storage import ToolImpersonatingSecretStorage
from toolforge_kit.metrics import ServiceMetrics

__all__ = ["lifespan"]


def lifespan(
    settings: EnvvarsSettings, metrics: ServiceMetrics
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Opens the client into ``app.state.envvars_service`` and closes it at shutdown."""

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        storage = await ToolImpersonatingSecretStorage.connect(settings, metrics)
        app.state.envvars_service = EnvvarsService(storage, settings)
        try:
            yield
        finally:
            await storage.close()

    return run
