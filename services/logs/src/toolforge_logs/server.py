"""Serving the logs API: the kit's uvicorn over mTLS (:mod:`toolforge_kit.server`)."""

from __future__ import annotations

from typing import Any

import uvicorn

from toolforge_kit import server
from toolforge_logs.app import create_app
from toolforge_logs.settings import LogsSettings

__all__ = ["build_server"]


def build_server(settings: LogsSettings, **overrides: Any) -> uvicorn.Server:
    """A :class:`uvicorn.Server` for ``settings`` (see :func:`toolforge_kit.build_server`)."""
    return server.build_server(settings, create_app(settings), **overrides)
