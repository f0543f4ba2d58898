"""Human views of jobs API answers: rich tables and text lines (pure: data in, renderable out).

Columns follow upstream's ``toolforge jobs list``: Job name, Job type, Status; ``-o long`` adds
command, image, port, file logs, emails, resources, replicas, mounts, retry, health check and
the long status. Every value from the API is a :class:`rich.text.Text`, never markup, so a
command such as ``echo [bold]`` prints as written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from toolforge_cli.apibase import Quota
from toolforge_cli.jobsapi import Image, Job, format_duration

__all__ = [
    "image_text",
    "images_table",
    "job_detail_table",
    "job_type_text",
    "jobs_table",
    "log_line_text",
    "quota_tables",
]


def _text(value: Any) -> Text:
    return Text("" if value is None else str(value))


def job_type_text(job: Job) -> str:
    """``schedule: <cron>`` for scheduled jobs, ``continuous`` or ``one-off``."""
    if job.kind == "scheduled":
        return f"schedule: {job.schedule}"
    return job.kind


def image_text(job: Job) -> str:
    """The image's short name, with its state when it is not ``stable`` (as upstream:
    ``python3.9 (deprecated)``)."""
    name = job.imagename or ""
    if job.image_state and job.image_state != "stable":
        return f"{name} ({job.image_state})"
    return name


def _port_text(job: Job) -> str:
    if job.port is None:
        return "none"
    return f"{job.port}/{job.port_protocol or 'tcp'}"


def _health_check_text(job: Job) -> str:
    check = job.health_check
    if check is None:
        return "none"
    if check.type == "script":
        return f"script: {check.script}"
    if check.type == "http":
        return f"http: {check.path}"
    return check.type


def _resources_text(job: Job) -> str:
    return f"mem: {job.memory or 'default'}, cpu: {job.cpu or 'default'}"


def _yes_no(value: Any) -> str:
    return "yes" if value else "no"


def _table(*headers: str) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for header in headers:
        table.add_column(header, overflow="fold")
    return table


def jobs_table(jobs: Iterable[Job], *, long: bool = False) -> Table:
    """``list`` (normal: name, type, status) or ``list -o long``."""
    if not long:
        table = _table("Job name", "Job type", "Status")
        for job in jobs:
            table.add_row(_text(job.name), _text(job_type_text(job)), _text(job.status_short))
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
        continuous = job.kind == "continuous"
        table.add_row(
            *(
                _text(v)
                for v in (
                    job.name,
                    job.cmd,
                    job_type_text(job),
                    image_text(job),
                    _port_text(job),
                    _yes_no(job.filelog),
                    job.filelog_stdout if job.filelog else "",
                    job.filelog_stderr if job.filelog else "",
                    job.emails,
                    _resources_text(job),
                    job.replicas if continuous else "",
                    job.mount,
                    "" if continuous else job.retry,
                    _health_check_text(job),
                    job.status_long or job.status_short,
                )
            )
        )
    return table


def job_detail_table(job: Job) -> Table:
    """``show``: one row per property of the job."""
    table = Table(box=box.SIMPLE, show_header=False, show_edge=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    kind = job.kind
    rows: list[tuple[str, Any]] = [
        ("Job name:", job.name),
        ("Command:", job.cmd),
        ("Job type:", job_type_text(job)),
        ("Image:", f"{image_text(job)} ({job.image})"),
        ("Port:", _port_text(job)),
    ]
    if job.publish:
        rows.append(("Public:", job.public_url or job.publish))
    rows.append(("File log:", _yes_no(job.filelog)))
    if job.filelog:
        rows += [("Output log:", job.filelog_stdout), ("Error log:", job.filelog_stderr)]
    if kind == "scheduled":
        rows.append(("Schedule:", job.schedule))
        if job.schedule_actual and job.schedule_actual != job.schedule:
            rows.append(("Actual schedule:", job.schedule_actual))
        if job.timeout is not None:
            rows.append(("Timeout:", f"{job.timeout} seconds"))
    rows += [("Emails:", job.emails), ("Resources:", _resources_text(job))]
    if kind == "continuous":
        rows += [("Replicas:", job.replicas), ("Health check:", _health_check_text(job))]
    else:
        rows.append(("Retry:", job.retry))
    rows += [
        ("Mounts:", job.mount),
        ("Status:", job.status_short),
        ("Status details:", job.status_long),
    ]
    status = job.status
    if status is not None:
        duration = format_duration(status.duration)
        if duration:
            rows.append(("Duration:", duration))
        if status.previous_schedule:
            rows.append(("Last run:", status.previous_schedule))
        if status.next_schedule:
            rows.append(("Next run:", status.next_schedule))
        if status.messages:
            rows.append(("Hints:", "\n".join(status.messages)))
    for label, value in rows:
        table.add_row(label, _text(value))
    return table


def images_table(images: Sequence[Image]) -> Table:
    """``images``: short name and image reference, plus the aliases when the API names
    any."""
    with_aliases = any(image.aliases for image in images)
    headers = ["Short name", "Container image URL"] + (["Aliases"] if with_aliases else [])
    table = _table(*headers)
    for image in images:
        cells = [_text(image.shortname), _text(image.image)]
        if with_aliases:
            cells.append(_text(", ".join(image.aliases)))
        table.add_row(*cells)
    return table


def quota_tables(quota: Quota) -> RenderableType:
    """``quota``: one table per category (name, limit, used)."""
    tables: list[RenderableType] = []
    for category in quota.categories:
        table = _table("Name", "Limit", "Used")
        table.title = category.name
        table.title_justify = "left"
        table.title_style = "bold"
        for item in category.items:
            table.add_row(_text(item.name), _text(item.limit), _text(item.used))
        tables.append(table)
    return Group(*tables)


def log_line_text(entry: Mapping[str, Any]) -> Text:
    """One log line as ``<datetime> [<pod>] <message>``."""
    return Text(f"{entry.get('datetime', '')} [{entry.get('pod', '')}] {entry.get('message', '')}")
