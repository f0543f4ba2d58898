"""The wire envelope of the platform APIs as production serves it (REFERENCE.md, "The wire as
production serves it"), for backends to share:

- every success body carries ``messages: {info: [...], warning: [...], error: [...]}``
  (:class:`Messages`, :class:`MessagesResponse` as the base of a response model);
- the health answer of ``GET /v1/healthz`` is ``{health: {status, message}, messages}``
  (:class:`HealthResponse`; REFERENCE.md, envvars and jobs), one schema for every backend that
  answers so, so the gateway's aggregated OpenAPI document holds it once;
- an error body is ``{"error": ["<message>", ...]}`` at the top level, with the HTTP status
  (:class:`ErrorBody`; :func:`render_error` is the ``render_error`` of
  :func:`toolforge_kit.create_backend_app`). The upstream clients (toolforge-weld based) read
  exactly that key.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ErrorBody",
    "Health",
    "HealthResponse",
    "Messages",
    "MessagesResponse",
    "render_error",
]


class Messages(BaseModel):
    """Messages for the user, carried by every success response."""

    model_config = ConfigDict(extra="forbid")

    info: list[str] = Field(default_factory=list)
    warning: list[str] = Field(default_factory=list)
    error: list[str] = Field(default_factory=list)


class MessagesResponse(BaseModel):
    """A success body with nothing but ``messages``; the base of the response models."""

    model_config = ConfigDict(extra="forbid")

    messages: Messages = Field(default_factory=Messages)


class Health(BaseModel):
    """``status`` OK (the process serves requests) and a human ``message``."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["OK", "ERROR"] = "OK"
    message: str = "OK"


class HealthResponse(MessagesResponse):
    """``GET /v1/healthz``: ``{health: {status, message}, messages}``."""

    health: Health = Field(default_factory=Health)


class ErrorBody(BaseModel):
    """Every error answer: ``{"error": [messages]}`` with the HTTP status."""

    model_config = ConfigDict(extra="forbid")

    error: list[str] = Field(description="What went wrong, for the user (one or more lines).")


def render_error(errors: list[str]) -> dict[str, Any]:
    """The :class:`ErrorBody` of ``errors`` as JSON data."""
    return {"error": list(errors)}
