"""Human views of builds API answers: rich tables and log lines (pure: data in, renderable
out). Every value from the API is a :class:`rich.text.Text`, never markup.

Shapes: ``Build`` (``build_id``, ``status``, ``start_time``, ``end_time``, ``message``,
``resolved_ref``, ``destination_image``, ``parameters: {source_url, ref, image_name,
envvars, use_latest_versions}``) and ``Quota`` of ``services/builds/openapi.json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

__all__ = ["build_detail_table", "builds_table", "log_line_text", "quota_tables"]

_STATUS_STYLES = {
    "success": "green",
    "failure": "red",
    "timeout": "red",
    "cancelled": "yellow",
    "running": "cyan",
}


def _text(value: Any) -> Text:
    return Text("" if value is None else str(value))


def _status(value: Any) -> Text:
    return Text(str(value or "unknown"), style=_STATUS_STYLES.get(str(value), ""))


def _parameters(build: Mapping[str, Any]) -> Mapping[str, Any]:
    params = build.get("parameters")
    return params if isinstance(params, Mapping) else {}


def _table(*headers: str) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for header in headers:
        table.add_column(header, overflow="fold")
    return table


def builds_table(builds: Iterable[Mapping[str, Any]]) -> Table:
    """``list``: id, status, start and end time, source URL, ref, destination image."""
    table = _table("Build ID", "Status", "Start time", "End time", "Source URL", "Ref", "Image")
    for build in builds:
        params = _parameters(build)
        table.add_row(
            _text(build.get("build_id")),
            _status(build.get("status")),
            _text(build.get("start_time") or "n/a"),
            _text(build.get("end_time") or "n/a"),
            _text(params.get("source_url")),
            _text(params.get("ref")),
            _text(build.get("destination_image")),
        )
    return table


def build_detail_table(build: Mapping[str, Any]) -> Table:
    """``show``: one row per property of the build. Env vars are names only (the API never
    returns their values)."""
    table = Table(box=box.SIMPLE, show_header=False, show_edge=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    params = _parameters(build)
    envvars = params.get("envvars") or []
    rows: list[tuple[str, Any]] = [
        ("Build ID:", build.get("build_id")),
        ("Status:", build.get("status")),
        ("Start time:", build.get("start_time") or "n/a"),
        ("End time:", build.get("end_time") or "n/a"),
        ("Source URL:", params.get("source_url")),
        ("Ref:", params.get("ref")),
        ("Resolved ref:", build.get("resolved_ref")),
        ("Image name:", params.get("image_name")),
        ("Destination image:", build.get("destination_image")),
        ("Env vars:", ", ".join(str(e) for e in envvars) if envvars else "none"),
        ("Use latest versions:", "yes" if params.get("use_latest_versions") else "no"),
        ("Message:", build.get("message") or ""),
    ]
    for label, value in rows:
        table.add_row(label, _status(value) if label == "Status:" else _text(value))
    return table


def quota_tables(quota: Mapping[str, Any]) -> RenderableType:
    """``quota``: one table per category (name, limit, used, available)."""
    tables: list[RenderableType] = []
    for category in quota.get("categories") or []:
        table = _table("Name", "Limit", "Used", "Available")
        table.title = str(category.get("name", ""))
        table.title_justify = "left"
        table.title_style = "bold"
        for item in category.get("items") or []:
            table.add_row(
                _text(item.get("name")),
                _text(item.get("limit")),
                _text(item.get("used")),
                _text(item.get("available")),
            )
        tables.append(table)
    return Group(*tables)


def log_line_text(raw: str) -> Text:
    """One NDJSON record ``{"line": "[step] <ts> text"}`` -> its ``line``; anything else
    (not JSON, no ``line``) is shown as it came."""
    try:
        entry = json.loads(raw)
    except ValueError:
        return Text(raw)
    if isinstance(entry, dict) and isinstance(entry.get("line"), str):
        return Text(entry["line"])
    return Text(raw)
