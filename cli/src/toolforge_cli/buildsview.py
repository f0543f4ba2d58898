"""Human views of builds API answers: rich tables and log lines (pure: data in, renderable
out), and upstream's JSON shape of a build (``--json``). Every value from the API is a
:class:`rich.text.Text`, never markup.

Statuses are shown in one vocabulary whatever the wire sent (``BUILD_SUCCESS`` or
``success``): pending, running, success, failure, cancelled, timeout, unknown
(:attr:`~toolforge_cli.buildsapi.Build.state`). Env var values are never shown in tables.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from toolforge_cli.apibase import Quota
from toolforge_cli.buildsapi import Build
from toolforge_cli.errors import UserError

__all__ = [
    "build_detail_table",
    "builds_table",
    "log_line_text",
    "quota_tables",
    "upstream_build",
]

_STATUS_STYLES = {
    "success": "green",
    "failure": "red",
    "timeout": "red",
    "cancelled": "yellow",
    "running": "cyan",
}
#: upstream's words for our states (``toolforge-build`` 0.0.29, ``_format_build``).
_UPSTREAM_STATUS = {"success": "ok", "failure": "error"}


def _text(value: Any) -> Text:
    return Text("" if value is None else str(value))


def _state(state: str) -> Text:
    return Text(state, style=_STATUS_STYLES.get(state, ""))


def _table(*headers: str) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for header in headers:
        table.add_column(header, overflow="fold")
    return table


def builds_table(builds: Iterable[Build]) -> Table:
    """``list``: id, status, start and end time, source URL, ref, destination image."""
    table = _table("Build ID", "Status", "Start time", "End time", "Source URL", "Ref", "Image")
    for build in builds:
        table.add_row(
            _text(build.build_id),
            _state(build.state),
            _text(build.start_time or "n/a"),
            _text(build.end_time or "n/a"),
            _text(build.parameters.source_url),
            _text(build.parameters.ref),
            _text(build.destination_image),
        )
    return table


def build_detail_table(build: Build) -> Table:
    """``show``: one row per property of the build. Env vars by name only."""
    table = Table(box=box.SIMPLE, show_header=False, show_edge=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    params = build.parameters
    names = params.envvar_names
    rows: list[tuple[str, Text]] = [
        ("Build ID:", _text(build.build_id)),
        ("Status:", _state(build.state)),
        ("Start time:", _text(build.start_time or "n/a")),
        ("End time:", _text(build.end_time or "n/a")),
        ("Source URL:", _text(params.source_url)),
        ("Ref:", _text(params.ref)),
        ("Resolved ref:", _text(build.resolved_ref)),
        ("Image name:", _text(params.image_name)),
        ("Destination image:", _text(build.destination_image)),
        ("Env vars:", _text(", ".join(names) if names else "none")),
        ("Use latest versions:", _text("yes" if params.use_latest_versions else "no")),
        ("Use deprecated versions:", _text("yes" if params.use_deprecated_versions else "no")),
        ("Message:", _text(build.message or "")),
    ]
    for label, value in rows:
        table.add_row(label, value)
    return table


def upstream_build(build: Build) -> dict[str, Any]:
    """A build as ``toolforge-build list|show --json`` prints it (0.0.29, ``_format_build``):
    ``status`` ok|error|pending|running|cancelled|timeout|unknown, ``N/A`` for unset times and
    ref, ``envvars`` a list of ``NAME=value`` (names only when the API sent names only)."""
    params = build.parameters
    if isinstance(params.envvars, dict):
        envvars = [f"{name}={value}" for name, value in params.envvars.items()]
    else:
        envvars = list(params.envvars)
    return {
        "build_id": build.build_id,
        "start_time": build.start_time or "N/A",
        "end_time": build.end_time or "N/A",
        "status": _UPSTREAM_STATUS.get(build.state, build.state),
        "message": build.message or "",
        "ref": params.ref or "N/A",
        "image_name": params.image_name or "N/A",
        "envvars": envvars or ["N/A"],
        "source_url": params.source_url,
        "use_latest_versions": params.use_latest_versions,
        "use_deprecated_versions": params.use_deprecated_versions,
        "destination_image": build.destination_image or "",
    }


def quota_tables(quota: Quota) -> RenderableType:
    """``quota``: one table per category (name, limit, used, available, and capacity when
    the API gives it)."""
    tables: list[RenderableType] = []
    for category in quota.categories:
        with_capacity = any(item.capacity is not None for item in category.items)
        headers = ["Name", "Limit", "Used", "Available"] + (["Capacity"] if with_capacity else [])
        table = _table(*headers)
        table.title = category.name
        table.title_justify = "left"
        table.title_style = "bold"
        for item in category.items:
            cells = [_text(v) for v in (item.name, item.limit, item.used, item.available)]
            if with_capacity:
                cells.append(_text(item.capacity))
            table.add_row(*cells)
        tables.append(table)
    return Group(*tables)


def log_line_text(raw: str) -> Text:
    """One NDJSON record ``{"line": "[step] <ts> text"}`` -> its ``line``; anything else
    (not JSON, no ``line``) is shown as it came. A record ``{"message": ...}`` without
    ``line`` is the API reporting an error in the stream: :class:`UserError` (exit 1), as
    upstream's client treats it."""
    try:
        entry = json.loads(raw)
    except ValueError:
        return Text(raw)
    if isinstance(entry, dict):
        if isinstance(entry.get("line"), str):
            return Text(entry["line"])
        if isinstance(entry.get("message"), str):
            raise UserError(entry["message"])
    return Text(raw)
