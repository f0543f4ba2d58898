"""The builds API v1 as seen through the gateway: ``/builds/v1/tool/<tool>/...`` (REFERENCE.md,
"Builds API (v1)" and "The wire as production serves it"; the gateway strips ``/builds``).

Two shapes of a build are read alike by :class:`Build`:

- production's (and our newer API's): ``status`` ``BUILD_SUCCESS``..., ``parameters.envvars``
  an object ``{NAME: value}``, ``use_deprecated_versions``, ``""`` for times not set yet;
- our older API's: ``status`` ``success``..., ``envvars`` a list of names, ``null`` times.

:attr:`Build.state` is the status in one vocabulary: pending, running, success, failure,
cancelled, timeout, unknown.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pydantic import Field

from toolforge_cli.apibase import Answer, ApiBase, QuotaAnswer, WireModel

__all__ = [
    "FINISHED_STATES",
    "Build",
    "BuildAnswer",
    "BuildList",
    "BuildParameters",
    "BuildsApi",
    "CleanAnswer",
    "IdAnswer",
    "NewBuild",
    "StartAnswer",
    "build_state",
]

#: States that do not change any more (REFERENCE.md, status from the ``Succeeded``
#: condition); pending, running and unknown may still change.
FINISHED_STATES = frozenset({"success", "failure", "cancelled", "timeout"})


def build_state(status: str | None) -> str:
    """``BUILD_SUCCESS`` or ``success`` -> ``success``; ``None``/empty -> ``unknown``."""
    if not status:
        return "unknown"
    return status.removeprefix("BUILD_").lower()


class BuildParameters(WireModel):
    """What was asked for. ``envvars``: ``{NAME: value}`` (production) or ``[NAME]``
    (older answers, names only)."""

    source_url: str = ""
    ref: str | None = None
    envvars: dict[str, str] | list[str] = Field(default_factory=dict)
    image_name: str | None = None
    use_latest_versions: bool = False
    use_deprecated_versions: bool = False

    @property
    def envvar_names(self) -> list[str]:
        return list(self.envvars)


class Build(WireModel):
    """One build. Times are RFC 3339 strings; ``""`` or ``null`` while not set."""

    build_id: str
    status: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    message: str | None = None
    parameters: BuildParameters = Field(default_factory=BuildParameters)
    resolved_ref: str | None = None
    destination_image: str | None = None

    @property
    def state(self) -> str:
        """:func:`build_state` of ``status``."""
        return build_state(self.status)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES


class BuildList(Answer):
    """GET ``/builds``, newest first."""

    builds: list[Build]


class BuildAnswer(Answer):
    """GET ``/builds/{id}`` and ``/builds/latest``."""

    build: Build


class NewBuild(WireModel):
    name: str
    resolved_ref: str | None = None
    parameters: BuildParameters = Field(default_factory=BuildParameters)


class StartAnswer(Answer):
    """POST ``/builds``."""

    new_build: NewBuild


class IdAnswer(Answer):
    """PUT ``/builds/{id}/cancel``, DELETE ``/builds/{id}``: ``{id, messages}``."""

    id: str | None = None


class CleanAnswer(Answer):
    """POST ``/clean``: ``messages.info`` says what was deleted; our API also lists the
    image references (``deleted_images``)."""

    deleted_images: list[str] = Field(default_factory=list)


class BuildsApi(ApiBase):
    """The builds API for the client's tool; see :class:`~toolforge_cli.apibase.ApiBase`."""

    name = "builds"

    def start(self, body: dict[str, Any]) -> StartAnswer:
        """POST ``/builds`` with ``{source_url, ref?, envvars?, image_name?,
        use_latest_versions?, use_deprecated_versions?}``; 400 for a bad field or an
        unresolvable repository/ref, 409 over the parallel-build quota."""
        return self.call(StartAnswer, "POST", self.path("builds"), json_body=body)

    def list_builds(self, *, report: bool = True) -> BuildList:
        """GET ``/builds``, newest first."""
        return self.call(BuildList, "GET", self.path("builds"), report=report)

    def latest(self) -> BuildAnswer:
        """GET ``/builds/latest``; 404 "No builds exist yet."."""
        return self.call(BuildAnswer, "GET", self.path("builds", "latest"))

    def get_build(self, build_id: str, *, report: bool = True) -> BuildAnswer:
        """GET ``/builds/{id}``; 404 when absent or another tool's."""
        return self.call(BuildAnswer, "GET", self.path("builds", build_id), report=report)

    def delete(self, build_id: str) -> IdAnswer:
        """DELETE ``/builds/{id}``; 404 when absent."""
        return self.call(IdAnswer, "DELETE", self.path("builds", build_id))

    def cancel(self, build_id: str) -> IdAnswer:
        """PUT ``/builds/{id}/cancel``; 409 when already finished."""
        return self.call(IdAnswer, "PUT", self.path("builds", build_id, "cancel"))

    def clean(self) -> CleanAnswer:
        """POST ``/clean``: delete the tool's images from the registry (404/405 from builds
        APIs that do not serve it)."""
        return self.call(CleanAnswer, "POST", self.path("clean"))

    def quota(self) -> QuotaAnswer:
        """GET ``/quotas``: category ``Registry`` (item ``Storage``), with our API also
        ``Builds`` (parallel builds)."""
        return self.call(QuotaAnswer, "GET", self.path("quotas"))

    def log_lines(self, build_id: str, *, follow: bool) -> Iterator[str]:
        """GET ``/builds/{id}/logs?follow=``: each NDJSON line (``{"line": "[step] <ts>
        text"}``) as it arrives; with ``follow`` the API waits for a pending run to start
        and streams until the run ends."""
        return self.lines(
            self.path("builds", build_id, "logs"),
            params={"follow": json.dumps(follow)},
            follow=follow,
        )
