"""``toolforge jobs ...``: the commands of upstream's jobs CLI (REFERENCE.md, CLI paragraph).

Read commands (``list``, ``show``, ``logs``, ``images``, ``quota``, ``dump``) take
``-o/--output json`` (``list`` also ``normal|long|name``): ``json`` prints the API's answer as
it came (``logs``: its NDJSON lines; ``dump``: the jobs.yaml entries as JSON). Results go to
stdout; the API's messages, progress and errors to stderr.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.text import Text
from typer.core import TyperCommand

from toolforge_cli.client import ApiError
from toolforge_cli.context import api_client
from toolforge_cli.errors import InternalError, UserError
from toolforge_cli.jobsapi import JobsApi
from toolforge_cli.jobsdiff import plan_job
from toolforge_cli.jobsfile import dump_jobs_yaml, parse_jobs_file
from toolforge_cli.jobspec import (
    DEFAULT_WAIT_SECONDS,
    JobOptions,
    flag_name,
    key_name,
    options_from_job,
)
from toolforge_cli.jobsview import (
    images_table,
    job_detail_table,
    jobs_table,
    log_line_text,
    quota_tables,
)
from toolforge_cli.output import (
    ReadFormat,
    err,
    handle_errors,
    list_field,
    mapping_field,
    out,
    print_json,
)
from toolforge_cli.wait import WaitResult, wait_for_job

__all__ = ["app", "run_options", "with_optional_values"]

app = typer.Typer(
    help="""Run and manage jobs: one-off, scheduled (cron) and continuous.

Examples:
  toolforge jobs run hello --command "echo hello" --image bookworm --wait
  toolforge jobs run daily --command ./daily.sh --image bookworm --schedule "@daily"
  toolforge jobs run web --command ./serve.sh --image python3.11 --continuous -p 8000
  toolforge jobs list -o long
  toolforge jobs logs web -f""",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


class ListFormat(StrEnum):
    normal = "normal"
    long = "long"
    name = "name"
    json = "json"


class DumpFormat(StrEnum):
    yaml = "yaml"
    json = "json"


class Emails(StrEnum):
    none = "none"
    all = "all"
    onfinish = "onfinish"
    onfailure = "onfailure"


class Mount(StrEnum):
    all = "all"
    none = "none"


# -- plumbing -----------------------------------------------------------------------------


def with_optional_values(args: list[str], defaults: Mapping[str, str]) -> list[str]:
    """Give the options in ``defaults`` an optional value, as argparse's ``nargs="?"`` does
    upstream: ``--wait`` not followed by a number becomes ``--wait=<default>``; ``--wait 30``
    and ``--wait=30`` stay. Arguments after ``--`` are left alone."""
    result: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            result += args[i:]
            break
        if arg in defaults and (i + 1 >= len(args) or not args[i + 1].isdigit()):
            result.append(f"{arg}={defaults[arg]}")
        else:
            result.append(arg)
    return result


class OptionalWaitCommand(TyperCommand):
    """A command whose ``--wait`` takes an optional number of seconds."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        args = with_optional_values(args, {"--wait": str(DEFAULT_WAIT_SECONDS)})
        return super().parse_args(ctx, args)


@contextmanager
def jobs_api(ctx: typer.Context) -> Iterator[JobsApi]:
    """Handle errors (message + exit code) and open the jobs API for the command."""
    with handle_errors(), api_client(ctx) as client:
        yield JobsApi(client)


def _wait(api: JobsApi, name: str, seconds: int) -> None:
    """Wait for the job with a spinner on stderr; success -> message, failure -> UserError."""
    started = time.monotonic()
    label = f"Waiting for job {name!r}"
    with err.status(f"{label}...") as spinner:

        def progress(job: Mapping[str, Any]) -> None:
            elapsed = time.monotonic() - started
            spinner.update(f"{label}: {job.get('status_short') or 'unknown'} ({elapsed:.0f}s)")

        result: WaitResult = wait_for_job(api, name, seconds, on_status=progress)
    if not result.ok:
        raise UserError(result.message)
    err.print(Text(result.message))


# -- run ----------------------------------------------------------------------------------


def run_options(
    *,
    name: str,
    command: str,
    image: str,
    schedule: str | None = None,
    continuous: bool = False,
    retry: int | None = None,
    mem: str | None = None,
    cpu: str | None = None,
    emails: str | None = None,
    mount: str | None = None,
    filelog: bool | None = None,
    filelog_stdout: str | None = None,
    filelog_stderr: str | None = None,
    timeout: int | None = None,
    health_check_script: str | None = None,
    health_check_http: str | None = None,
    port: str | None = None,
    replicas: int | None = None,
    wait: int | None = None,
) -> JobOptions:
    """The :class:`JobOptions` of ``run``'s flags. Raises :class:`UserError` listing every
    problem, naming the flags."""
    given = {
        "name": name,
        "command": command,
        "image": image,
        "schedule": schedule,
        "continuous": continuous,
        "retry": retry,
        "mem": mem,
        "cpu": cpu,
        "emails": str(emails) if emails is not None else None,
        "mount": str(mount) if mount is not None else None,
        "filelog": filelog,
        "filelog_stdout": filelog_stdout,
        "filelog_stderr": filelog_stderr,
        "timeout": timeout,
        "health_check_script": health_check_script,
        "health_check_http": health_check_http,
        "port": port,
        "replicas": replicas,
        "wait": wait,
    }
    try:
        options = JobOptions.model_validate(
            {key_name(k): v for k, v in given.items() if v is not None}
        )
    except ValidationError as exc:
        problems = [
            f"{flag_name(str(e['loc'][0]))}: {str(e['msg']).removeprefix('Value error, ')}"
            for e in exc.errors()
        ]
        raise UserError("invalid options", details=problems) from None
    problems = options.problems(flag_name)
    if problems:
        raise UserError("invalid options", details=problems)
    return options


@app.command(
    cls=OptionalWaitCommand,
    epilog="""Examples:
  toolforge jobs run hello --command "echo hello" --image bookworm --wait
  toolforge jobs run nightly --command ./backup.sh --image bookworm --schedule "0 3 * * *" \\
      --emails onfailure --retry 2 --timeout 3600
  toolforge jobs run web --command "python3 app.py" --image python3.11 --continuous \\
      -p 8000 --health-check-http /healthz --replicas 2
  toolforge jobs run dns --command ./dns.sh --image bookworm --continuous -p 5353/udp""",
)
def run(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="Job name (lower case, digits, '-', '.').")
    ],
    command: Annotated[
        str, typer.Option("--command", help="Command to run, e.g. './run.sh --fast'.")
    ],
    image: Annotated[
        str, typer.Option("--image", help="Image short name (see `toolforge jobs images`).")
    ],
    schedule: Annotated[
        str | None,
        typer.Option(
            "--schedule",
            help="Run on a cron schedule ('*/10 * * * *', '@daily', ...). Not with --continuous.",
        ),
    ] = None,
    continuous: Annotated[
        bool,
        typer.Option("--continuous", help="Keep the job running (restart when it stops)."),
    ] = False,
    retry: Annotated[
        int | None,
        typer.Option("--retry", min=0, max=5, help="Retries on failure, 0-5 (not continuous)."),
    ] = None,
    mem: Annotated[
        str | None, typer.Option("--mem", help="Memory, e.g. 1Gi [API default 512Mi].")
    ] = None,
    cpu: Annotated[
        str | None, typer.Option("--cpu", help="CPU, e.g. 0.5 or 500m [API default 100m].")
    ] = None,
    emails: Annotated[
        Emails | None, typer.Option("--emails", help="Mail about the job [API default none].")
    ] = None,
    mount: Annotated[
        Mount | None,
        typer.Option("--mount", help="Mount the tool's home (all) or not [API default all]."),
    ] = None,
    filelog: Annotated[
        bool | None,
        typer.Option(
            "--filelog/--no-filelog",
            help="Append stdout/stderr to files in the home [API default: no].",
        ),
    ] = None,
    filelog_stdout: Annotated[
        str | None,
        typer.Option(
            "-o", "--filelog-stdout", metavar="FILE", help="stdout file (implies --filelog)."
        ),
    ] = None,
    filelog_stderr: Annotated[
        str | None,
        typer.Option(
            "-e", "--filelog-stderr", metavar="FILE", help="stderr file (implies --filelog)."
        ),
    ] = None,
    timeout: Annotated[
        int | None,
        typer.Option("--timeout", min=1, help="Seconds a scheduled run may take."),
    ] = None,
    health_check_script: Annotated[
        str | None,
        typer.Option(
            "--health-check-script",
            metavar="SCRIPT",
            help="Continuous: healthy while this shell script exits 0.",
        ),
    ] = None,
    health_check_http: Annotated[
        str | None,
        typer.Option(
            "--health-check-http",
            metavar="PATH",
            help="Continuous: healthy while GET PATH on the port answers 2xx/3xx.",
        ),
    ] = None,
    port: Annotated[
        str | None,
        typer.Option(
            "-p",
            "--port",
            metavar="PORT[/tcp|udp]",
            help="Continuous: expose this port as a Service named after the job.",
        ),
    ] = None,
    replicas: Annotated[
        int | None,
        typer.Option("--replicas", min=1, help="Continuous: number of pods [API default 1]."),
    ] = None,
    wait: Annotated[
        int | None,
        typer.Option(
            "--wait",
            metavar="[SECONDS]",
            min=1,
            help="Wait until a one-off job finished (exit 1 if it failed) or a continuous job "
            f"runs; at most SECONDS [{DEFAULT_WAIT_SECONDS}].",
        ),
    ] = None,
) -> None:
    """Create a job: one-off (default), scheduled (--schedule) or continuous (--continuous)."""
    with handle_errors():
        options = run_options(
            name=name,
            command=command,
            image=image,
            schedule=schedule,
            continuous=continuous,
            retry=retry,
            mem=mem,
            cpu=cpu,
            emails=emails,
            mount=mount,
            filelog=filelog,
            filelog_stdout=filelog_stdout,
            filelog_stderr=filelog_stderr,
            timeout=timeout,
            health_check_script=health_check_script,
            health_check_http=health_check_http,
            port=port,
            replicas=replicas,
            wait=wait,
        )
    with jobs_api(ctx) as api:
        api.create_job(options.to_body())
        if options.wait_seconds is not None:
            _wait(api, options.name, options.wait_seconds)


# -- read commands --------------------------------------------------------------------------


@app.command(
    "list",
    epilog="Examples:\n  toolforge jobs list\n  toolforge jobs list -o long\n"
    "  toolforge jobs list -o name | xargs -n1 toolforge jobs restart\n"
    "  toolforge jobs list -o json | jq '.jobs[].name'",
)
def list_(
    ctx: typer.Context,
    output: Annotated[
        ListFormat, typer.Option("-o", "--output", help="normal, long, name (one per line), json.")
    ] = ListFormat.normal,
) -> None:
    """List the tool's jobs with their type and status."""
    with jobs_api(ctx) as api:
        data = api.list_jobs()
        jobs = list_field(data, "jobs", api="jobs")
        if output is ListFormat.json:
            print_json(data)
        elif output is ListFormat.name:
            for job in jobs:
                out.print(Text(str(job.get("name"))), soft_wrap=True)
        elif not jobs:
            err.print("No jobs.")
        else:
            out.print(jobs_table(jobs, long=output is ListFormat.long))


@app.command(epilog="Examples:\n  toolforge jobs show web\n  toolforge jobs show web -o json")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Job name.")],
    output: Annotated[
        ReadFormat, typer.Option("-o", "--output", help="normal or json.")
    ] = ReadFormat.normal,
) -> None:
    """Show everything about one job, with its status and hints."""
    with jobs_api(ctx) as api:
        data = api.get_job(name)
        job = mapping_field(data, "job", api="jobs")
        if output is ReadFormat.json:
            print_json(data)
        else:
            out.print(job_detail_table(job))


@app.command(
    epilog="Examples:\n  toolforge jobs logs hello\n  toolforge jobs logs web -f -l 100\n"
    "  toolforge jobs logs web -o json | jq -r .message",
)
def logs(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Job name.")],
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep printing new lines (Ctrl-C stops).")
    ] = False,
    lines: Annotated[
        int | None, typer.Option("-l", "--last", min=0, help="Only the last N lines.")
    ] = None,
    output: Annotated[
        ReadFormat,
        typer.Option("-o", "--output", help="normal or json (the API's NDJSON lines as is)."),
    ] = ReadFormat.normal,
) -> None:
    """Print the job's logs (stdout/stderr of its pods), as they arrive."""
    with jobs_api(ctx) as api:
        for line in api.log_lines(name, follow=follow, lines=lines):
            if output is ReadFormat.json:
                out.print(Text(line), soft_wrap=True)
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            if isinstance(entry, dict):
                out.print(log_line_text(entry), soft_wrap=True)
            else:
                out.print(Text(line), soft_wrap=True)


@app.command(epilog="Examples:\n  toolforge jobs images\n  toolforge jobs images -o json")
def images(
    ctx: typer.Context,
    output: Annotated[
        ReadFormat, typer.Option("-o", "--output", help="normal or json.")
    ] = ReadFormat.normal,
) -> None:
    """List the images jobs can use (--image takes the short name)."""
    with jobs_api(ctx) as api:
        data = api.images()
        items = list_field(data, "images", api="jobs")
        if output is ReadFormat.json:
            print_json(data)
        else:
            out.print(images_table(items))


@app.command(epilog="Examples:\n  toolforge jobs quota\n  toolforge jobs quota -o json")
def quota(
    ctx: typer.Context,
    output: Annotated[
        ReadFormat, typer.Option("-o", "--output", help="normal or json.")
    ] = ReadFormat.normal,
) -> None:
    """Show the tool's quota: limits and what is used."""
    with jobs_api(ctx) as api:
        data = api.quota()
        quota_data = mapping_field(data, "quota", api="jobs")
        if output is ReadFormat.json:
            print_json(data)
        else:
            out.print(quota_tables(quota_data))


@app.command(
    epilog="Examples:\n  toolforge jobs dump > jobs.yaml\n  toolforge jobs dump -f jobs.yaml\n"
    "  toolforge jobs dump -o json",
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
    with jobs_api(ctx) as api:
        jobs = list_field(api.list_jobs(), "jobs", api="jobs")
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


def _dry_run(entries: list[JobOptions], jobs: list[Mapping[str, Any]]) -> None:
    """``load --dry-run``: print the :class:`~toolforge_cli.jobsdiff.JobPlan` of every entry
    against ``jobs`` (the answer of GET ``/jobs``) on stdout, a summary on stderr."""
    by_name = {str(j.get("name")): j for j in jobs}
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


# -- changes ------------------------------------------------------------------------------


@app.command(epilog="Examples:\n  toolforge jobs delete web")
def delete(
    ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME", help="Job name.")]
) -> None:
    """Delete a job (and its pods)."""
    with jobs_api(ctx) as api:
        api.delete_job(name)


@app.command(epilog="Examples:\n  toolforge jobs flush")
def flush(ctx: typer.Context) -> None:
    """Delete ALL jobs of the tool."""
    with jobs_api(ctx) as api:
        api.flush()


@app.command(epilog="Examples:\n  toolforge jobs restart web")
def restart(
    ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME", help="Job name.")]
) -> None:
    """Restart a job: continuous jobs roll over to new pods, scheduled jobs run now
    (one-off jobs cannot be restarted)."""
    with jobs_api(ctx) as api:
        api.restart(name)


@app.command(
    epilog="""Example jobs.yaml:
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
  toolforge jobs load jobs.yaml --job web""",
)
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
    next entry is loaded. Loading stops at the first job the API refuses.

    With --dry-run only the tool's jobs are read, and each entry is printed as `create`,
    `update` (one `key: old -> new` line per change) or `unchanged`. The API checks the
    values only when they are loaded for real.
    """
    with handle_errors():
        try:
            text = file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(
                f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}"
            ) from None
        entries = parse_jobs_file(text, str(file))
        if job is not None:
            entries = [e for e in entries if e.name == job]
            if not entries:
                raise UserError(f"there is no job named {job!r} in {file}")
    if dry_run:
        with jobs_api(ctx) as api:
            _dry_run(entries, list_field(api.list_jobs(), "jobs", api="jobs"))
        return
    with jobs_api(ctx) as api:
        existing = {str(j.get("name")) for j in list_field(api.list_jobs(), "jobs", api="jobs")}
        for done, options in enumerate(entries):
            try:
                answer = api.upsert_job(options.to_body())
            except ApiError as exc:
                exc.message = f"job {options.name!r}: {exc.message}"
                exc.details.append(f"{done} of {len(entries)} job(s) were loaded before this one")
                raise
            changed = answer.get("job_changed")
            if not isinstance(changed, bool):
                raise InternalError("unexpected answer from the jobs API: no job_changed")
            if not changed:
                action = "unchanged"
            else:
                action = "updated" if options.name in existing else "created"
            out.print(Text(f"{action:<9} {options.name}"), soft_wrap=True)
            if changed and options.wait_seconds is not None:
                _wait(api, options.name, options.wait_seconds)
