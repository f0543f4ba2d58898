"""Wiring of the emailer for the app's lifespan: settings -> storage -> log source, SMTP
sender -> :class:`~toolforge_emailer.service.Emailer` (in ``app.state.emailer``), started at
start-up; at shutdown the daemon stops (the state is written, the Lease released) and the
apiserver pools close."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from toolforge_emailer.logsource import PodLogSource
from toolforge_emailer.metrics import EmailerMetrics
from toolforge_emailer.service import Emailer
from toolforge_emailer.settings import EmailerSettings
from toolforge_emailer.smtp import SmtpSender
from toolforge_emailer.storage import EmailerStorage

__all__ = ["lifespan"]


def lifespan(
    settings: EmailerSettings, metrics: EmailerMetrics
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app lifespan that runs the emailer for ``settings``."""

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        storage = await EmailerStorage.connect(settings, metrics)
        smtp = SmtpSender(
            ca_file=settings.smtp_ca_file, require_starttls=settings.smtp_require_starttls
        )
        emailer = Emailer(storage, PodLogSource(storage), smtp, metrics, settings)
        app.state.emailer = emailer
        emailer.start()
        try:
            yield
        finally:
            await emailer.stop()
            await storage.close()

    return run
