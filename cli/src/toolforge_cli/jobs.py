"""``toolforge jobs ...``: the commands of upstream's jobs CLI (REFERENCE.md, CLI paragraph;
``toolforge-jobs`` 16.2.3), with upstream's spellings (``cli/COMPATIBILITY.md``).

Read commands (``list``, ``show``, ``logs``, ``images``, ``quota``, ``dump``) take
``-o/--output json`` (``list`` also ``normal|long|name``), and ``--json`` for the same:
``json`` prints the API's answer as it came (``logs``: one JSON object a line; ``dump``: the
jobs.yaml entries as JSON). Results go to stdout; the API's messages, progress and errors to
stderr. ``run`` is in :mod:`toolforge_cli.jobsrun`, ``load``/``dump`` in
:mod:`toolforge_cli.jobsload`.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer
from rich.text import Text

from toolforge_cli.commands import (
    ReadFormat,
    json_option,
    open_api,
    output_option,
    print_list,
    print_one,
    read_format,
)
from toolforge_cli.jobsapi import JobsApi
from toolforge_cli.jobsload import DUMP_EPILOG, LOAD_EPILOG, dump, load
from toolforge_cli.jobsrun import (
    RUN_EPILOG,
    OptionalValuesCommand,
    run,
    run_options,
    with_optional_values,
)
from toolforge_cli.jobsview import (
    images_table,
    job_detail_table,
    jobs_table,
    log_line_text,
    quota_tables,
)
from toolforge_cli.logsapi import LogsApi
from toolforge_cli.output import err, out

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
app.command(cls=OptionalValuesCommand, epilog=RUN_EPILOG)(run)


class ListFormat(StrEnum):
    normal = "normal"
    long = "long"
    name = "name"
    json = "json"


JsonFlag = Annotated[bool, json_option()]


@app.command(
    "list",
    epilog="Examples:\n  toolforge jobs list\n  toolforge jobs list -o long\n"
    "  toolforge jobs list -o name | xargs -n1 toolforge jobs restart\n"
    "  toolforge jobs list -o json | jq '.jobs[].name'",
)
def list_(
    ctx: typer.Context,
    output: Annotated[
        ListFormat, output_option("normal, long, name (one per line), json.")
    ] = ListFormat.normal,
    long: Annotated[
        bool, typer.Option("-l", "--long", hidden=True, help="Deprecated: -o long.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """List the tool's jobs with their type and status."""
    if long:
        err.print("warning: the `--long` flag is deprecated, use `--output long` instead")
        output = ListFormat.long
    with open_api(ctx, JobsApi) as api:
        answer = api.list_jobs()
        print_list(
            read_format(output, as_json),
            answer.jobs,
            json_data=answer.raw,
            name=lambda job: job.name,
            table=lambda jobs: jobs_table(jobs, long=output is ListFormat.long),
            empty="No jobs.",
        )


@app.command(epilog="Examples:\n  toolforge jobs show web\n  toolforge jobs show web -o json")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Job name.")],
    output: Annotated[ReadFormat, output_option()] = ReadFormat.normal,
    as_json: JsonFlag = False,
) -> None:
    """Show everything about one job, with its status and hints."""
    with open_api(ctx, JobsApi) as api:
        answer = api.get_job(name)
        print_one(read_format(output, as_json), answer.raw, lambda: job_detail_table(answer.job))


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
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="TIME",
            help="Lines from TIME: ISO 8601 (2026-03-02T21:29:55+01:00) or a duration before "
            "now (1h32m22s). Default: 1h.",
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until", metavar="TIME", help="Lines until TIME (same forms). Default: now."
        ),
    ] = None,
    output: Annotated[
        ReadFormat, output_option("normal or json (one JSON object a line, as the API has it).")
    ] = ReadFormat.normal,
) -> None:
    """Print the job's logs from the logs API: they outlive the job's pods."""
    with open_api(ctx, LogsApi) as api:
        entries = api.job_lines(name, follow=follow, lines=lines, since=since, until=until)
        for entry in entries:
            if output is ReadFormat.json:
                out.print(Text(json.dumps(entry, ensure_ascii=False)), soft_wrap=True)
            else:
                out.print(log_line_text(entry), soft_wrap=True)


@app.command(epilog="Examples:\n  toolforge jobs images\n  toolforge jobs images -o json")
def images(
    ctx: typer.Context,
    output: Annotated[ReadFormat, output_option()] = ReadFormat.normal,
    as_json: JsonFlag = False,
) -> None:
    """List the images jobs can use (--image takes the short name or an alias)."""
    with open_api(ctx, JobsApi) as api:
        answer = api.images()
        print_one(read_format(output, as_json), answer.raw, lambda: images_table(answer.images))


@app.command(epilog="Examples:\n  toolforge jobs quota\n  toolforge jobs quota -o json")
def quota(
    ctx: typer.Context,
    output: Annotated[ReadFormat, output_option()] = ReadFormat.normal,
    as_json: JsonFlag = False,
) -> None:
    """Show the tool's quota: limits and what is used."""
    with open_api(ctx, JobsApi) as api:
        answer = api.quota()
        print_one(read_format(output, as_json), answer.raw, lambda: quota_tables(answer.quota))


app.command(epilog=DUMP_EPILOG)(dump)


# -- changes ------------------------------------------------------------------------------


@app.command(epilog="Examples:\n  toolforge jobs delete web")
def delete(
    ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME", help="Job name.")]
) -> None:
    """Delete a job (and its pods)."""
    with open_api(ctx, JobsApi) as api:
        api.delete_job(name)


@app.command(epilog="Examples:\n  toolforge jobs flush")
def flush(ctx: typer.Context) -> None:
    """Delete ALL jobs of the tool."""
    with open_api(ctx, JobsApi) as api:
        api.flush()


@app.command(epilog="Examples:\n  toolforge jobs restart web")
def restart(
    ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME", help="Job name.")]
) -> None:
    """Restart a job: continuous jobs roll over to new pods, scheduled jobs run now
    (one-off jobs cannot be restarted)."""
    with open_api(ctx, JobsApi) as api:
        api.restart(name)


app.command(epilog=LOAD_EPILOG)(load)
