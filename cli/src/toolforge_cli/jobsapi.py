"""The jobs API v1 as seen through the gateway: ``/jobs/v1/tool/<tool>/...`` (REFERENCE.md,
"Jobs API (v1)"; the gateway strips the ``/jobs`` prefix).

Each method returns the decoded JSON body of the answer (a dict with ``messages``) and raises
what :class:`~toolforge_cli.client.ApiClient` raises.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from toolforge_cli.client import ApiClient

__all__ = ["JobsApi"]


class JobsApi:
    """Typed calls of the jobs API for the client's tool."""

    def __init__(self, client: ApiClient):
        self.client = client
        self.base = f"/jobs/v1/tool/{quote(client.tool, safe='')}"

    def _job(self, name: str) -> str:
        return f"{self.base}/jobs/{quote(name, safe='')}"

    def list_jobs(self) -> dict[str, Any]:
        """GET ``/jobs`` -> ``{jobs: [job], messages}``."""
        return self.client.request("GET", f"{self.base}/jobs")

    def get_job(self, name: str, *, report: bool = True) -> dict[str, Any]:
        """GET ``/jobs/{name}`` -> ``{job, messages}``; 404 when there is none.
        ``report=False``: do not pass the messages on (polling)."""
        return self.client.request("GET", self._job(name), report=report)

    def create_job(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``/jobs`` -> 201 ``{job, messages}``; 409 when the name is taken."""
        return self.client.request("POST", f"{self.base}/jobs", json_body=body)

    def upsert_job(self, body: dict[str, Any]) -> dict[str, Any]:
        """PATCH ``/jobs`` -> ``{job_changed: bool, messages}``."""
        return self.client.request("PATCH", f"{self.base}/jobs", json_body=body)

    def delete_job(self, name: str) -> dict[str, Any]:
        """DELETE ``/jobs/{name}`` -> ``{messages}``."""
        return self.client.request("DELETE", self._job(name))

    def flush(self) -> dict[str, Any]:
        """DELETE ``/jobs`` (every job of the tool) -> ``{messages}``."""
        return self.client.request("DELETE", f"{self.base}/jobs")

    def restart(self, name: str) -> dict[str, Any]:
        """POST ``/jobs/{name}/restart`` -> ``{messages}``; 400 for one-off jobs."""
        return self.client.request("POST", f"{self._job(name)}/restart")

    def images(self) -> dict[str, Any]:
        """GET ``/images`` -> ``{images: [{shortname, image}], messages}``."""
        return self.client.request("GET", f"{self.base}/images")

    def quota(self) -> dict[str, Any]:
        """GET ``/quotas`` -> ``{quota: {categories: [...]}, messages}``."""
        return self.client.request("GET", f"{self.base}/quotas")

    def log_lines(self, name: str, *, follow: bool, lines: int | None) -> Iterator[str]:
        """GET ``/jobs/{name}/logs?follow=&lines=``: each NDJSON line as it arrives."""
        params = {"follow": json.dumps(follow)}
        if lines is not None:
            params["lines"] = str(lines)
        return self.client.stream_lines(f"{self._job(name)}/logs", params=params, follow=follow)
