"""``toolforge jobs load`` and ``dump``: jobs.yaml in and out (format:
:mod:`toolforge_cli.jobsfile`; keys: :mod:`toolforge_cli.jobspec`).

``dump`` and ``load --dry-run`` read the jobs with ``include_unset=false``, so that a job
shows only what its user set (REFERENCE.md, "The wire as production serves it"). ``load``
prints, per job, the API's own words on stdout (``Job NAME is already up to date``, as
upstream's client prints them), or ``created|updated|unchanged NAME`` when the API gave none.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.text import Text

from toolforge_cli.client import ApiError
from toolforge_cli.commands import open_api
from toolforge_cli.errors import InternalError, UserError
from toolforge_cli.jobsapi import Job, JobsApi
from toolforge_cli.jobsdiff import plan_job
from toolforge_cli.jobsfile import dump_jobs_yaml, parse_jobs_file
from toolforge_cli.jobspec import JobOptions, options_from_job
from toolforge_cli.jobsrun import wait_with_spinner
from toolforge_cli.output import err, handle_errors, out, print_messages

__all__ = ["DUMP_EPILOG", "LOAD_EPILOG", "dump", "load"]


class DumpFormat(StrEnum):
    yaml = "yaml"
    json = "json"


DUMP_EPILOG = (
    "Examples:\n  toolforge jobs dump > jobs.yaml\n  toolforge jobs dump -f jobs.yaml\n"
    "  toolforge jobs dump -o json"
)


def dump(
    ctx: typer.Context,
    to_file: Annotated[
        Path | None,
        typer.Option("-f", "--to-file", metavar="FILE", help="Write to FILE, not stdout."),
    ] = None,
    output: Annotated[
        DumpFormat, typer.Option("-o", "--output", help="yaml (jobs.yaml format) or json.")
    ] = DumpFormat.yaml,
) -> None:
    """Write the tool's jobs in jobs.yaml format, to load them again with `load`."""
    with open_api(ctx, JobsApi) as api:
        jobs = api.list_jobs(include_unset=False).jobs
        try:
            options = [options_from_job(job) for job in jobs]
        except (KeyError, ValidationError) as exc:
            raise InternalError(f"unexpected job in the jobs API's answer: {exc}") from None
        if output is DumpFormat.json:
            text = json.dumps([o.to_entry() for o in options], indent=2, ensure_ascii=False) + "\n"
        else:
            text = dump_jobs_yaml(options)
        if to_file is None:
            out.print(Text(text.rstrip("\n")), soft_wrap=True)
            return
        try:
            to_file.write_text(text)
        except OSError as exc:
            raise UserError(f"cannot write {to_file}: {exc.strerror or exc}") from None
        err.print(Text(f"Wrote {len(options)} job(s) to {to_file}"))


def _value_text(value: Any) -> str:
    return "(not set)" if value is None else json.dumps(value, ensure_ascii=False)


def _dry_run(entries: list[JobOptions], jobs: list[Job]) -> None:
    """``load --dry-run``: print the :class:`~toolforge_cli.jobsdiff.JobPlan` of every entry
    against ``jobs`` (the answer of GET ``/jobs``) on stdout, a summary on stderr."""
    by_name = {j.name: j for j in jobs}
    counts: dict[str, int] = {}
    for options in entries:
        try:
            plan = plan_job(options, by_name.get(options.name))
        except (KeyError, ValidationError) as exc:
            raise InternalError(f"unexpected job in the jobs API's answer: {exc}") from None
        counts[plan.action] = counts.get(plan.action, 0) + 1
        out.print(Text(f"{plan.action:<9} {plan.name}"), soft_wrap=True)
        for change in plan.changes:
            new = _value_text(change.new)
            line = new if plan.action == "create" else f"{_value_text(change.old)} -> {new}"
            out.print(Text(f"    {change.key}: {line}"), soft_wrap=True)
    summary = ", ".join(f"{counts[a]} to {a}" for a in ("create", "update") if a in counts)
    err.print(Text(f"Dry run: nothing was changed ({summary or 'all unchanged'})."))


LOAD_EPILOG = """Example jobs.yaml:
  - name: daily
    command: ./daily.sh
    image: bookworm
    schedule: "@daily"
    emails: onfailure
  - name: web
    command: python3 app.py
    image: python3.11
    continuous: true
    port: 8000
    health-check-http: /healthz

Examples:
  toolforge jobs load jobs.yaml
  toolforge jobs load jobs.yaml --dry-run
  toolforge jobs load jobs.yaml --job web"""


def _read_entries(file: Path, job: str | None) -> list[JobOptions]:
    try:
        text = file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}") from None
    entries = parse_jobs_file(text, str(file))
    if job is not None:
        entries = [e for e in entries if e.name == job]
        if not entries:
            raise UserError(f"there is no job named {job!r} in {file}")
    return entries


def load(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE", help="jobs.yaml to load.")],
    job: Annotated[
        str | None, typer.Option("--job", metavar="NAME", help="Load only this job.")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Only show what would change (create, update with the changed keys, "
            "unchanged); change nothing.",
        ),
    ] = False,
) -> None:
    """Create or update the jobs of a jobs.yaml file (keys: the `run` flags).

    The whole file is checked before anything is sent. Jobs that are not in the file are
    kept. An entry with `wait: true` (or seconds) is waited for after it changed, before the
    next entry is loaded. Loading stops at the first job the API refuses. For each job the
    API's message is printed (e.g. `Job web is already up to date`).

    With --dry-run only the tool's jobs are read, and each entry is printed as `create`,
    `update` (one `key: old -> new` line per change) or `unchanged`. The API checks the
    values only when they are loaded for real.
    """
    with handle_errors():
        entries = _read_entries(file, job)
    with open_api(ctx, JobsApi) as api:
        if dry_run:
            _dry_run(entries, api.list_jobs(include_unset=False).jobs)
            return
        existing = {j.name for j in api.list_jobs().jobs}
        for done, options in enumerate(entries):
            try:
                answer = api.upsert_job(options.to_body(), report=False)
            except ApiError as exc:
                exc.message = f"job {options.name!r}: {exc.message}"
                exc.details.append(f"{done} of {len(entries)} job(s) were loaded before this one")
                raise
            changed = answer.job_changed
            for line in answer.messages.info:
                out.print(Text(line), soft_wrap=True)
            if not answer.messages.info:
                action = "unchanged"
                if changed:
                    action = "updated" if options.name in existing else "created"
                out.print(Text(f"{action:<9} {options.name}"), soft_wrap=True)
            print_messages(answer.messages.model_dump(), levels=("warning",))
            if changed and options.wait_seconds is not None:
                wait_with_spinner(api, options.name, options.wait_seconds)
