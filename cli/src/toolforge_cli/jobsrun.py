"""``toolforge jobs run``: create a job from upstream's ``run`` flags (REFERENCE.md, CLI
paragraph), and ``--wait`` for it.

Upstream's spellings are accepted: ``--wait`` with an optional number of seconds,
``--publish`` with an optional ``/`` (serve a continuous job at ``https://<tool>.<domain>/``). Flags
are checked before anything is sent (:func:`run_options`); see
:mod:`toolforge_cli.jobspec` for the body they become.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.text import Text
from typer.core import TyperCommand

from toolforge_cli.commands import open_api
from toolforge_cli.errors import UserError
from toolforge_cli.jobsapi import Job, JobsApi
from toolforge_cli.jobspec import (
    DEFAULT_WAIT_SECONDS,
    JobOptions,
    flag_name,
    key_name,
)
from toolforge_cli.output import err, handle_errors
from toolforge_cli.wait import WaitResult, wait_for_job

__all__ = [
    "RUN_EPILOG",
    "OptionalValuesCommand",
    "run",
    "run_options",
    "wait_with_spinner",
    "with_optional_values",
]


class Emails(StrEnum):
    none = "none"
    all = "all"
    onfinish = "onfinish"
    onfailure = "onfailure"


class Mount(StrEnum):
    all = "all"
    none = "none"


#: Options whose value is optional, as argparse's ``nargs="?"`` upstream, with their value
#: when none is given.
OPTIONAL_VALUES = {"--wait": str(DEFAULT_WAIT_SECONDS), "--publish": "/"}


def with_optional_values(args: list[str], defaults: Mapping[str, str]) -> list[str]:
    """Give the options in ``defaults`` an optional value, as argparse's ``nargs="?"`` does
    upstream: ``--wait`` not followed by a number (or by its default value, ``--publish /``)
    becomes ``--wait=<default>``; ``--wait 30`` and ``--wait=30`` stay. Arguments after
    ``--`` are left alone."""
    result: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            result += args[i:]
            break
        following = args[i + 1] if i + 1 < len(args) else None
        if arg in defaults and not (
            following is not None and (following.isdigit() or following == defaults[arg])
        ):
            result.append(f"{arg}={defaults[arg]}")
        else:
            result.append(arg)
    return result


class OptionalValuesCommand(TyperCommand):
    """A command whose ``--wait`` takes an optional number of seconds and whose
    ``--publish`` an optional ``/`` (:data:`OPTIONAL_VALUES`)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, with_optional_values(args, OPTIONAL_VALUES))


def wait_with_spinner(api: JobsApi, name: str, seconds: int) -> None:
    """Wait for the job with a spinner on stderr; success -> message, failure -> UserError."""
    started = time.monotonic()
    label = f"Waiting for job {name!r}"
    with err.status(f"{label}...") as spinner:

        def progress(job: Job) -> None:
            elapsed = time.monotonic() - started
            spinner.update(f"{label}: {job.status_short or 'unknown'} ({elapsed:.0f}s)")

        result: WaitResult = wait_for_job(api, name, seconds, on_status=progress)
    if not result.ok:
        raise UserError(result.message)
    err.print(Text(result.message))


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
    publish: str | None = None,
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
        "publish": publish,
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


RUN_EPILOG = """Examples:
  toolforge jobs run hello --command "echo hello" --image bookworm --wait
  toolforge jobs run nightly --command ./backup.sh --image bookworm --schedule "0 3 * * *" \\
      --emails onfailure --retry 2 --timeout 3600
  toolforge jobs run web --command "python3 app.py" --image python3.11 --continuous \\
      -p 8000 --health-check-http /healthz --replicas 2 --publish /
  toolforge jobs run dns --command ./dns.sh --image bookworm --continuous -p 5353/udp"""


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
            help="Append stdout/stderr to files in the home [API default: yes for standard "
            "images with --mount all, no for images built by the build service].",
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
    publish: Annotated[
        str | None,
        typer.Option(
            "--publish",
            metavar="[/]",
            help="Continuous with a TCP --port: serve the job on the web at the root of the "
            "tool's host (https://<tool>.<public domain>/); one job per tool.",
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
            publish=publish,
        )
    with open_api(ctx, JobsApi) as api:
        api.create_job(options.to_body())
        if options.wait_seconds is not None:
            wait_with_spinner(api, options.name, options.wait_seconds)
