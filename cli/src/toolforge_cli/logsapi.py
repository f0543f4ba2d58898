"""The logs API (gateway route ``/logs``; REFERENCE.md, "Logs"): a job's lines from the log
store, so they outlive its pods.

- ``GET /job/{name}/logs?lines=&since=&until=&direction=``: pages of
  ``{data: {logs: [{datetime, pod, container, message, ...}], next: {url} | null}}``; the
  client follows ``next.url`` (a reference relative to the page's URL) to the end;
- ``GET /job/{name}/logs_stream``: NDJSON, one line object a line, followed until stopped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

from toolforge_cli.apibase import ApiBase
from toolforge_cli.client import ApiServerError

__all__ = ["LogsApi"]


class LogsApi(ApiBase):
    """The logs API for the client's tool."""

    name = "logs"

    def job_lines(
        self,
        name: str,
        *,
        follow: bool,
        lines: int | None,
        since: str | None,
        until: str | None,
    ) -> Iterator[dict[str, Any]]:
        """The job's lines, oldest first: the last ``lines`` (all without it) of the range
        ``since``..``until`` (the API's defaults: the last hour until now); with ``follow``
        then new lines as they come (until the caller stops iterating).

        Raises what :class:`~toolforge_cli.client.ApiClient` raises (404 for a filelog job),
        and :class:`ApiServerError` for an answer of the wrong shape."""
        params = {k: v for k, v in (("since", since), ("until", until)) if v}
        if lines:
            params["lines"] = str(lines)
        if follow:
            for raw in self.lines(
                self.path("job", name, "logs_stream"), params=params, follow=True
            ):
                entry = json.loads(raw)
                if isinstance(entry, dict):
                    yield entry
            return
        if lines:
            # the last N lines: newest first from the API, printed oldest first
            params["direction"] = "newest_first"
            yield from reversed(list(self._pages(self.path("job", name, "logs"), params)))
        else:
            params["direction"] = "oldest_first"
            yield from self._pages(self.path("job", name, "logs"), params)

    def _pages(self, path: str, params: dict[str, str]) -> Iterator[dict[str, Any]]:
        url = f"{path}?{urlencode(params)}"
        while url:
            parts = urlsplit(url)
            body = self.client.request("GET", parts.path, params=dict(parse_qsl(parts.query)))
            data = body.get("data")
            if not isinstance(data, dict) or not isinstance(data.get("logs"), list):
                raise ApiServerError(500, "unexpected answer of the logs API: no data.logs", {})
            yield from (e for e in data["logs"] if isinstance(e, dict))
            following = data.get("next")
            url = urljoin(url, following["url"]) if isinstance(following, dict) else ""
