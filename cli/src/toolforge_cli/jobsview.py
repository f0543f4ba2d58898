"""Human views of jobs API answers: rich tables and text lines (pure: data in, renderable out).

Columns follow upstream's ``toolforge jobs list``: Job name, Job type, Status; ``-o long`` adds
command, image, port, file logs, emails, resources, replicas, mounts, retry, health check and
the long status. Every value from the API is a :class:`rich.text.Text`, never markup, so a
command such as ``echo [bold]`` prints as written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

__all__ = [
    "images_table",
    "job_detail_table",
    "job_type_text",
    "jobs_table",
    "log_line_text",
    "quota_tables",
]


def _text(value: Any) -> Text:
    return Text("" if value is None else str(value))


def job_type_text(job: Mapping[str, Any]) -> str:
    """``schedule: <cron>`` for scheduled jobs, ``continuous`` or ``one-off``."""
    kind = job.get("job_type")
    if kind == "scheduled" or (kind is None and job.get("schedule")):
        return f"schedule: {job.get('schedule')}"
    if kind == "continuous" or (kind is None and job.get("continuous")):
        return "continuous"
    return "one-off"


def _port_text(job: Mapping[str, Any]) -> str:
    if job.get("port") is None:
        return "none"
    return f"{job['port']}/{job.get('port_protocol') or 'tcp'}"


def _health_check_text(job: Mapping[str, Any]) -> str:
    check = job.get("health_check")
    if not isinstance(check, Mapping):
        return "none"
    if check.get("type") == "script":
        return f"script: {check.get('script')}"
    if check.get("type") == "http":
        return f"http: {check.get('path')}"
    return str(check)


def _resources_text(job: Mapping[str, Any]) -> str:
    return f"mem: {job.get('memory', 'default')}, cpu: {job.get('cpu', 'default')}"


def _yes_no(value: Any) -> str:
    return "yes" if value else "no"


def _status_messages(job: Mapping[str, Any]) -> list[str]:
    status = job.get("status")
    if isinstance(status, Mapping) and isinstance(status.get("messages"), list):
        return [str(m) for m in status["messages"]]
    return []


def _table(*headers: str) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for header in headers:
        table.add_column(header, overflow="fold")
    return table


def jobs_table(jobs: Iterable[Mapping[str, Any]], *, long: bool = False) -> Table:
    """``list`` (normal: name, type, status) or ``list -o long``."""
    if not long:
        table = _table("Job name", "Job type", "Status")
        for job in jobs:
            table.add_row(
                _text(job.get("name")), _text(job_type_text(job)), _text(job.get("status_short"))
            )
        return table
    table = _table(
        "Job name",
        "Command",
        "Job type",
        "Image",
        "Port",
        "File log",
        "Output log",
        "Error log",
        "Emails",
        "Resources",
        "Replicas",
        "Mounts",
        "Retry",
        "Health check",
        "Status",
    )
    for job in jobs:
        continuous = job_type_text(job) == "continuous"
        table.add_row(
            *(
                _text(v)
                for v in (
                    job.get("name"),
                    job.get("cmd"),
                    job_type_text(job),
                    job.get("imagename"),
                    _port_text(job),
                    _yes_no(job.get("filelog")),
                    job.get("filelog_stdout") if job.get("filelog") else "",
                    job.get("filelog_stderr") if job.get("filelog") else "",
                    job.get("emails"),
                    _resources_text(job),
                    job.get("replicas") if continuous else "",
                    job.get("mount"),
                    "" if continuous else job.get("retry"),
                    _health_check_text(job),
                    job.get("status_long") or job.get("status_short"),
                )
            )
        )
    return table


def job_detail_table(job: Mapping[str, Any]) -> Table:
    """``show``: one row per property of the job."""
    table = Table(box=box.SIMPLE, show_header=False, show_edge=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    kind = job_type_text(job)
    rows: list[tuple[str, Any]] = [
        ("Job name:", job.get("name")),
        ("Command:", job.get("cmd")),
        ("Job type:", kind),
        ("Image:", f"{job.get('imagename')} ({job.get('image')})"),
        ("Port:", _port_text(job)),
        ("File log:", _yes_no(job.get("filelog"))),
    ]
    if job.get("filelog"):
        rows += [
            ("Output log:", job.get("filelog_stdout")),
            ("Error log:", job.get("filelog_stderr")),
        ]
    if kind.startswith("schedule"):
        rows.append(("Schedule:", job.get("schedule")))
        if job.get("schedule_actual") and job.get("schedule_actual") != job.get("schedule"):
            rows.append(("Actual schedule:", job.get("schedule_actual")))
        if job.get("timeout") is not None:
            rows.append(("Timeout:", f"{job['timeout']} seconds"))
    rows += [("Emails:", job.get("emails")), ("Resources:", _resources_text(job))]
    if kind == "continuous":
        rows += [("Replicas:", job.get("replicas")), ("Health check:", _health_check_text(job))]
    else:
        rows.append(("Retry:", job.get("retry")))
    rows += [
        ("Mounts:", job.get("mount")),
        ("Status:", job.get("status_short")),
        ("Status details:", job.get("status_long")),
    ]
    status = job.get("status")
    if isinstance(status, Mapping):
        for key, label in (("previous_schedule", "Last run:"), ("next_schedule", "Next run:")):
            if status.get(key):
                rows.append((label, status[key]))
    hints = _status_messages(job)
    if hints:
        rows.append(("Hints:", "\n".join(hints)))
    for label, value in rows:
        table.add_row(label, _text(value))
    return table


def images_table(images: Iterable[Mapping[str, Any]]) -> Table:
    """``images``: short name and image reference."""
    table = _table("Short name", "Container image URL")
    for image in images:
        table.add_row(_text(image.get("shortname")), _text(image.get("image")))
    return table


def quota_tables(quota: Mapping[str, Any]) -> RenderableType:
    """``quota``: one table per category (name, limit, used)."""
    tables: list[RenderableType] = []
    for category in quota.get("categories") or []:
        table = _table("Name", "Limit", "Used")
        table.title = str(category.get("name", ""))
        table.title_justify = "left"
        table.title_style = "bold"
        for item in category.get("items") or []:
            table.add_row(
                _text(item.get("name")), _text(item.get("limit")), _text(item.get("used"))
            )
        tables.append(table)
    return Group(*tables)


def log_line_text(entry: Mapping[str, Any]) -> Text:
    """One log line as ``<datetime> [<pod>] <message>``."""
    return Text(f"{entry.get('datetime', '')} [{entry.get('pod', '')}] {entry.get('message', '')}")
