"""Serving the builds API: the kit's uvicorn over mTLS (:mod:`toolforge_kit.server`)."""

from __future__ import annotations

from typing import Any

import uvicorn
from fastapi import FastAPI

from toolforge_builds.app import create_app
from toolforge_builds.settings import BuildsSettings
from toolforge_kit import server

__all__ = ["build_config", "build_server"]


def build_config(
    settings: BuildsSettings, app: FastAPI | None = None, **overrides: Any
) -> uvicorn.Config:
    """The uvicorn configuration for ``settings`` (``app`` defaults to ``create_app(settings)``);
    see :func:`toolforge_kit.server.build_config`."""
    return server.build_config(settings, app or create_app(settings), **overrides)


def build_server(settings: BuildsSettings, **overrides: Any) -> uvicorn.Server:
    """A :class:`uvicorn.Server` for ``settings``; see :func:`build_config`."""
    return uvicorn.Server(build_config(settings, **overrides))
