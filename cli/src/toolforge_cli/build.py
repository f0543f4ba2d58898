"""``toolforge build ...``: build container images from git repositories (REFERENCE.md,
"Builds API (v1)"), with the conventions of ``toolforge jobs``.

Read commands (``list``, ``show``, ``logs``, ``quota``) take ``-o/--output json``: the API's
answer as it came (``logs``: its NDJSON lines). Results go to stdout; the API's messages,
progress and errors to stderr. Exit codes: :mod:`toolforge_cli.errors`; ``start`` without
``--detach`` also exits 1 when the build ends in failure, cancelled or timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.text import Text

from toolforge_cli.buildsapi import FINISHED_STATUSES, BuildsApi
from toolforge_cli.buildspec import start_body
from toolforge_cli.buildsview import build_detail_table, builds_table, log_line_text, quota_tables
from toolforge_cli.client import ApiClientError
from toolforge_cli.context import api_client
from toolforge_cli.errors import UserError
from toolforge_cli.output import (
    ReadFormat,
    err,
    handle_errors,
    list_field,
    mapping_field,
    out,
    print_error,
    print_json,
)

__all__ = ["FOLLOW_RETRY_SECONDS", "app", "follow_build"]

app = typer.Typer(
    help="""Build container images of your tool from a public git repository (buildpacks).

Examples:
  toolforge build start https://gitlab.wikimedia.org/toolforge-repos/my-tool
  toolforge build start https://gitlab.wikimedia.org/toolforge-repos/my-tool --ref v1.2 \\
      --image-name web -e NODE_ENV=production --detach
  toolforge build list
  toolforge build logs -f
  toolforge build show -o json""",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

#: Seconds between two attempts to follow a build whose log stream ended before the build.
FOLLOW_RETRY_SECONDS = 2.0


class ListFormat(StrEnum):
    normal = "normal"
    name = "name"
    json = "json"


@contextmanager
def builds_api(ctx: typer.Context) -> Iterator[BuildsApi]:
    """Handle errors (message + exit code) and open the builds API for the command."""
    with handle_errors(), api_client(ctx) as client:
        yield BuildsApi(client)


def _build_id_or_latest(api: BuildsApi, build_id: str | None) -> str:
    if build_id is not None:
        return build_id
    return str(mapping_field(api.latest(), "build", api="builds").get("build_id"))


def follow_build(
    api: BuildsApi,
    build_id: str,
    *,
    show: Callable[[str], None],
    retry_seconds: float = FOLLOW_RETRY_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> Mapping[str, Any]:
    """Print the build's log lines with ``show`` until the build ended; return the build as
    GET ``/builds/{id}`` last returned it (``status`` in :data:`FINISHED_STATUSES`).

    The API's follow stream ends when the run ends, but also after its bounded wait for a
    pending run or its longest follow time. Then the build is read again and, while it has not
    finished, followed again after ``retry_seconds``, skipping the lines already shown (a log
    stream always starts at the first line). Ctrl-C stops (the build keeps going).
    """
    shown = 0
    while True:
        for seen, raw in enumerate(api.log_lines(build_id, follow=True), start=1):
            if seen > shown:
                show(raw)
                shown = seen
        build = mapping_field(api.get_build(build_id, report=False), "build", api="builds")
        if build.get("status") in FINISHED_STATUSES:
            return build
        sleep(retry_seconds)


def _outcome(build: Mapping[str, Any]) -> None:
    """Success -> a message on stderr; any other end -> :class:`UserError` (exit code 1)."""
    build_id = build.get("build_id")
    status = build.get("status")
    if status == "success":
        image = build.get("destination_image")
        err.print(Text(f"Build {build_id} succeeded" + (f"; image: {image}" if image else "")))
        return
    message = build.get("message")
    raise UserError(
        f"build {build_id} ended with status {status}" + (f": {message}" if message else ""),
        hint=f"see `toolforge build show {build_id}` and `toolforge build logs {build_id}`",
    )


# -- start --------------------------------------------------------------------------------


@app.command(
    epilog="""Examples:
  toolforge build start https://gitlab.wikimedia.org/toolforge-repos/my-tool
  toolforge build start https://github.com/me/app.git --ref main --image-name web
  toolforge build start https://github.com/me/app.git -e PIP_INDEX_URL=https://... \\
      -e DEBUG=0 --use-latest-versions
  id=$(toolforge build start https://github.com/me/app.git --detach)""",
)
def start(
    ctx: typer.Context,
    source_url: Annotated[
        str,
        typer.Argument(metavar="URL", help="https URL of the public git repository to build."),
    ],
    ref: Annotated[
        str | None,
        typer.Option(
            "--ref", metavar="REF", help="Branch, tag or commit to build [default: HEAD]."
        ),
    ] = None,
    image_name: Annotated[
        str | None,
        typer.Option(
            "--image-name",
            metavar="NAME",
            help="Name of the image to build [default: tool-<tool>].",
        ),
    ] = None,
    envvars: Annotated[
        list[str] | None,
        typer.Option(
            "-e",
            "--envvar",
            metavar="NAME=VALUE",
            help="Environment variable for the build (repeatable); NAME: letters, digits, "
            "'_', at least 3 characters.",
        ),
    ] = None,
    use_latest_versions: Annotated[
        bool,
        typer.Option(
            "--use-latest-versions",
            help="Build with the newest builder image instead of the default one.",
        ),
    ] = False,
    detach: Annotated[
        bool,
        typer.Option(
            "--detach",
            "-d",
            help="Do not follow the logs: print the build ID on stdout and exit.",
        ),
    ] = False,
) -> None:
    """Start a build of URL. Without --detach, print its logs until it ends; exit 0 when it
    succeeded, 1 when it failed, was cancelled or timed out (Ctrl-C stops following only)."""
    with handle_errors():
        body = start_body(
            source_url,
            ref=ref,
            image_name=image_name,
            envvars=envvars or [],
            use_latest_versions=use_latest_versions,
        )
    with builds_api(ctx) as api:
        new = mapping_field(api.start(body), "new_build", api="builds")
        build_id = str(new.get("name"))
        resolved = new.get("resolved_ref")
        err.print(
            Text(f"Started build {build_id}" + (f" of commit {resolved}" if resolved else ""))
        )
        if detach:
            out.print(Text(build_id), soft_wrap=True)
            err.print(Text(f"Follow it with: toolforge build logs {build_id} -f"))
            return
        build = follow_build(
            api, build_id, show=lambda raw: out.print(log_line_text(raw), soft_wrap=True)
        )
        _outcome(build)


# -- read commands ------------------------------------------------------------------------


@app.command(
    "list",
    epilog="Examples:\n  toolforge build list\n  toolforge build list -o name\n"
    "  toolforge build list -o json | jq -r '.builds[] | .build_id + \" \" + .status'",
)
def list_(
    ctx: typer.Context,
    output: Annotated[
        ListFormat, typer.Option("-o", "--output", help="normal, name (one per line) or json.")
    ] = ListFormat.normal,
) -> None:
    """List the tool's builds, newest first."""
    with builds_api(ctx) as api:
        data = api.list_builds()
        builds = list_field(data, "builds", api="builds")
        if output is ListFormat.json:
            print_json(data)
        elif output is ListFormat.name:
            for build in builds:
                out.print(Text(str(build.get("build_id"))), soft_wrap=True)
        elif not builds:
            err.print("No builds.")
        else:
            out.print(builds_table(builds))


@app.command(
    epilog="Examples:\n  toolforge build show\n"
    "  toolforge build show mytool-buildpacks-pipelinerun-abcde -o json",
)
def show(
    ctx: typer.Context,
    build_id: Annotated[
        str | None,
        typer.Argument(metavar="[ID]", help="Build ID [default: the latest build]."),
    ] = None,
    output: Annotated[
        ReadFormat, typer.Option("-o", "--output", help="normal or json.")
    ] = ReadFormat.normal,
) -> None:
    """Show one build (the latest when no ID is given): status, times, source, image."""
    with builds_api(ctx) as api:
        data = api.latest() if build_id is None else api.get_build(build_id)
        build = mapping_field(data, "build", api="builds")
        if output is ReadFormat.json:
            print_json(data)
        else:
            out.print(build_detail_table(build))


@app.command(
    epilog="Examples:\n  toolforge build logs\n  toolforge build logs -f\n"
    "  toolforge build logs mytool-buildpacks-pipelinerun-abcde -o json | jq -r .line",
)
def logs(
    ctx: typer.Context,
    build_id: Annotated[
        str | None,
        typer.Argument(metavar="[ID]", help="Build ID [default: the latest build]."),
    ] = None,
    follow: Annotated[
        bool,
        typer.Option(
            "-f", "--follow", help="Keep printing new lines until the build ends (Ctrl-C stops)."
        ),
    ] = False,
    output: Annotated[
        ReadFormat,
        typer.Option("-o", "--output", help="normal or json (the API's NDJSON lines as is)."),
    ] = ReadFormat.normal,
) -> None:
    """Print a build's logs (the latest build when no ID is given): its steps in order, each
    line `[step] <time> text`. Steps that hold registry credentials are hidden by the API."""
    with builds_api(ctx) as api:
        build_id = _build_id_or_latest(api, build_id)
        for raw in api.log_lines(build_id, follow=follow):
            if output is ReadFormat.json:
                out.print(Text(raw), soft_wrap=True)
            else:
                out.print(log_line_text(raw), soft_wrap=True)


@app.command(epilog="Examples:\n  toolforge build quota\n  toolforge build quota -o json")
def quota(
    ctx: typer.Context,
    output: Annotated[
        ReadFormat, typer.Option("-o", "--output", help="normal or json.")
    ] = ReadFormat.normal,
) -> None:
    """Show the tool's build quotas: parallel builds, and the registry storage its images
    use (human units; -o json adds exact bytes). Limits, use and what is available."""
    with builds_api(ctx) as api:
        data = api.quota()
        quota_data = mapping_field(data, "quota", api="builds")
        if output is ReadFormat.json:
            print_json(data)
        else:
            out.print(quota_tables(quota_data))


# -- changes ------------------------------------------------------------------------------


def _each(
    api: BuildsApi,
    build_ids: list[str],
    call: Callable[[str], Mapping[str, Any]],
    done: str,
    verb: str,
) -> None:
    """Apply ``call`` to every ID. A 4xx for one ID is reported and the others go on; the
    command then exits 1. 5xx and transport errors stop at once (exit 2)."""
    failed = 0
    for build_id in build_ids:
        try:
            answer = call(build_id)
        except ApiClientError as exc:
            print_error(exc)
            failed += 1
            continue
        messages = answer.get("messages")
        if not (isinstance(messages, Mapping) and messages.get("info")):
            err.print(Text(f"{done} build {build_id}"))
    if failed:
        raise UserError(f"{failed} of {len(build_ids)} build(s) could not be {verb}")


@app.command(epilog="Examples:\n  toolforge build cancel mytool-buildpacks-pipelinerun-abcde")
def cancel(
    ctx: typer.Context,
    build_ids: Annotated[list[str], typer.Argument(metavar="ID...", help="Build IDs.")],
) -> None:
    """Cancel running or pending builds (a finished build cannot be cancelled)."""
    with builds_api(ctx) as api:
        _each(api, build_ids, api.cancel, "Cancelled", "cancelled")


@app.command(
    epilog="Examples:\n  toolforge build delete mytool-buildpacks-pipelinerun-abcde\n"
    "  toolforge build list -o name | tail -n +2 | xargs toolforge build delete",
)
def delete(
    ctx: typer.Context,
    build_ids: Annotated[list[str], typer.Argument(metavar="ID...", help="Build IDs.")],
) -> None:
    """Delete builds: their PipelineRuns and logs (the images stay in the registry)."""
    with builds_api(ctx) as api:
        _each(api, build_ids, api.delete, "Deleted", "deleted")


@app.command(epilog="Examples:\n  toolforge build clean\n  toolforge build clean --yes")
def clean(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("-y", "--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete ALL images of the tool from the registry (jobs using them cannot start until
    the next build). Prints what was deleted; asks first unless --yes."""
    if not yes:
        typer.confirm("Delete all images of your tool from the registry?", abort=True, err=True)
    with builds_api(ctx) as api:
        try:
            answer = api.clean()
        except ApiClientError as exc:
            if exc.status in (404, 405):
                raise UserError(
                    "cleaning the tool's images is not available on this platform yet: the "
                    f"builds API does not serve POST /clean (HTTP {exc.status})",
                    hint="nothing was deleted",
                ) from None
            raise
        messages = answer.get("messages")
        if not (isinstance(messages, Mapping) and messages.get("info")):
            err.print("The tool's images were deleted from the registry.")
