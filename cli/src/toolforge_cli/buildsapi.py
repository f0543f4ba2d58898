"""The builds API v1 as seen through the gateway: ``/builds/v1/tool/<tool>/...`` (REFERENCE.md,
"Builds API (v1)"; ``services/builds/openapi.json``; the gateway strips the ``/builds``
prefix).

Each method returns the decoded JSON body of the answer (a dict with ``messages``) and raises
what :class:`~toolforge_cli.client.ApiClient` raises (4xx -> exit 1, 5xx/transport -> exit 2).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from toolforge_cli.client import ApiClient

__all__ = ["FINISHED_STATUSES", "BuildsApi"]

#: Build statuses that do not change any more (REFERENCE.md, status from the ``Succeeded``
#: condition); ``pending``, ``running`` and ``unknown`` may still change.
FINISHED_STATUSES = frozenset({"success", "failure", "cancelled", "timeout"})


class BuildsApi:
    """Typed calls of the builds API for the client's tool."""

    def __init__(self, client: ApiClient):
        self.client = client
        self.base = f"/builds/v1/tool/{quote(client.tool, safe='')}"

    def _build(self, build_id: str) -> str:
        return f"{self.base}/builds/{quote(build_id, safe='')}"

    def start(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``/builds`` with ``{source_url, ref?, envvars?, image_name?,
        use_latest_versions?}`` -> ``{new_build: {name, resolved_ref, parameters}, messages}``;
        400 for a bad field or an unresolvable repository/ref, 409 over the parallel-build
        quota."""
        return self.client.request("POST", f"{self.base}/builds", json_body=body)

    def list_builds(self) -> dict[str, Any]:
        """GET ``/builds`` -> ``{builds: [build], messages}``, newest first."""
        return self.client.request("GET", f"{self.base}/builds")

    def latest(self) -> dict[str, Any]:
        """GET ``/builds/latest`` -> ``{build, messages}``; 404 "No builds exist yet."."""
        return self.client.request("GET", f"{self.base}/builds/latest")

    def get_build(self, build_id: str, *, report: bool = True) -> dict[str, Any]:
        """GET ``/builds/{id}`` -> ``{build, messages}``; 404 when absent or another tool's.
        ``report=False``: do not pass the messages on (polling)."""
        return self.client.request("GET", self._build(build_id), report=report)

    def delete(self, build_id: str) -> dict[str, Any]:
        """DELETE ``/builds/{id}`` -> ``{id, messages}``; 404 when absent."""
        return self.client.request("DELETE", self._build(build_id))

    def cancel(self, build_id: str) -> dict[str, Any]:
        """PUT ``/builds/{id}/cancel`` -> ``{id, messages}``; 409 when already finished."""
        return self.client.request("PUT", f"{self._build(build_id)}/cancel")

    def clean(self) -> dict[str, Any]:
        """POST ``/clean`` (delete the tool's images from the registry) ->
        ``{deleted_images: [ref], deleted_manifests, messages}`` (``messages.info`` counts what
        was deleted). Not served by older builds APIs: 404/405 when it is missing."""
        return self.client.request("POST", f"{self.base}/clean")

    def quota(self) -> dict[str, Any]:
        """GET ``/quotas`` -> ``{quota: {categories: [{name, items: [{name, limit, used,
        available, limit_bytes?, used_bytes?}]}]}, messages}``: category ``Builds`` (parallel
        builds) and ``Registry`` (item ``Storage``, human units plus exact bytes)."""
        return self.client.request("GET", f"{self.base}/quotas")

    def log_lines(self, build_id: str, *, follow: bool) -> Iterator[str]:
        """GET ``/builds/{id}/logs?follow=``: each NDJSON line (``{"line": "[step] <ts>
        text"}``) as it arrives. With ``follow`` the API waits for a pending run to start and
        streams until the run ends."""
        return self.client.stream_lines(
            f"{self._build(build_id)}/logs",
            params={"follow": json.dumps(follow)},
            follow=follow,
        )
