"""``toolforge build ...``: build container images from git repositories (REFERENCE.md,
"Builds API (v1)"), with the conventions of ``toolforge jobs`` and the spellings of
upstream's ``toolforge-build`` 0.0.29 (``cli/COMPATIBILITY.md``).

Read commands (``list``, ``show``, ``logs``, ``quota``) take ``-o/--output json``: the API's
answer as it came (``logs``: its NDJSON lines). ``--json`` prints what upstream's client
prints: for ``list`` and ``show`` its reshaped builds (status ``ok``/``error``...), for
``quota``, ``clean`` and ``start --detach`` the API's answer. Results go to stdout; the API's
messages, progress and errors to stderr. Exit codes: :mod:`toolforge_cli.errors`; ``start``
without ``--detach`` also exits 1 when the build ends in failure, cancelled or timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated

import typer
from rich.text import Text

from toolforge_cli.buildsapi import Build, BuildsApi, IdAnswer
from toolforge_cli.buildspec import start_body
from toolforge_cli.buildsview import (
    build_detail_table,
    builds_table,
    log_line_text,
    quota_tables,
    upstream_build,
)
from toolforge_cli.client import ApiClientError
from toolforge_cli.commands import (
    ListFormat,
    ReadFormat,
    json_option,
    open_api,
    output_option,
    print_list,
    print_one,
    read_format,
)
from toolforge_cli.errors import UserError
from toolforge_cli.output import err, handle_errors, out, print_error, print_json

__all__ = ["FOLLOW_RETRY_SECONDS", "NO_BUILDS", "app", "follow_build"]

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
#: ``list`` with no builds (upstream's words).
NO_BUILDS = (
    "No builds found, you can start one using `toolforge build start`, "
    "run `toolforge build start --help` for more details"
)
_UPSTREAM_JSON = "Print JSON as upstream's toolforge-build does (status ok/error...)."
_RAW_JSON = "Print the API's answer as JSON (the same as -o json)."


def follow_build(
    api: BuildsApi,
    build_id: str,
    *,
    show: Callable[[str], None],
    retry_seconds: float = FOLLOW_RETRY_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> Build:
    """Print the build's log lines with ``show`` until the build ended; return the build as
    GET ``/builds/{id}`` last returned it (:attr:`~toolforge_cli.buildsapi.Build.finished`).

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
        build = api.get_build(build_id, report=False).build
        if build.finished:
            return build
        sleep(retry_seconds)


def _outcome(build: Build) -> None:
    """Success -> a message on stderr; any other end -> :class:`UserError` (exit code 1)."""
    if build.state == "success":
        image = build.destination_image
        err.print(
            Text(f"Build {build.build_id} succeeded" + (f"; image: {image}" if image else ""))
        )
        return
    message = build.message
    raise UserError(
        f"build {build.build_id} ended with status {build.state}"
        + (f": {message}" if message else ""),
        hint=f"see `toolforge build show {build.build_id}` and "
        f"`toolforge build logs {build.build_id}`",
    )


# -- start --------------------------------------------------------------------------------


@app.command(
    epilog="""Examples:
  toolforge build start https://gitlab.wikimedia.org/toolforge-repos/my-tool
  toolforge build start https://github.com/me/app.git --ref main -i web
  toolforge build start https://github.com/me/app.git -e PIP_INDEX_URL=https://... \\
      -e DEBUG=0 -L
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
            "-i",
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
            "-L",
            "--use-latest-versions",
            help="Build with the newest builder image instead of the default one.",
        ),
    ] = False,
    use_deprecated_versions: Annotated[
        bool,
        typer.Option(
            "--use-deprecated-versions",
            help="Build with the deprecated (older) versions of the buildpacks.",
        ),
    ] = False,
    detach: Annotated[
        bool,
        typer.Option(
            "-D",
            "-d",
            "--detach",
            help="Do not follow the logs: print the build ID on stdout and exit.",
        ),
    ] = False,
    as_json: Annotated[
        bool, json_option("With --detach: print the API's answer as JSON, not the ID.")
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
            use_deprecated_versions=use_deprecated_versions,
        )
    with open_api(ctx, BuildsApi) as api:
        answer = api.start(body)
        build_id = answer.new_build.name
        resolved = answer.new_build.resolved_ref
        err.print(
            Text(f"Started build {build_id}" + (f" of commit {resolved}" if resolved else ""))
        )
        if detach:
            if as_json:
                print_json(answer.raw)
            else:
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
    "  toolforge build list -o json | jq -r '.builds[] | .build_id + \" \" + .status'\n"
    "  toolforge build list --json | jq -r '.builds[].status'",
)
def list_(
    ctx: typer.Context,
    output: Annotated[
        ListFormat, output_option("normal, name (one per line) or json.")
    ] = ListFormat.normal,
    as_json: Annotated[bool, json_option(_UPSTREAM_JSON)] = False,
) -> None:
    """List the tool's builds, newest first."""
    with open_api(ctx, BuildsApi) as api:
        answer = api.list_builds()
        if as_json:
            builds = [upstream_build(b) for b in answer.builds]
            print_json({"messages": answer.messages.model_dump(), "builds": builds})
            return
        print_list(
            str(output),
            answer.builds,
            json_data=answer.raw,
            name=lambda build: build.build_id,
            table=builds_table,
            empty=NO_BUILDS,
        )


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
    output: Annotated[ReadFormat, output_option()] = ReadFormat.normal,
    as_json: Annotated[bool, json_option(_UPSTREAM_JSON)] = False,
) -> None:
    """Show one build (the latest when no ID is given): status, times, source, image."""
    with open_api(ctx, BuildsApi) as api:
        answer = api.latest() if build_id is None else api.get_build(build_id)
        if as_json:
            build = upstream_build(answer.build)
            print_json({"messages": answer.messages.model_dump(), "build": build})
            return
        print_one(str(output), answer.raw, lambda: build_detail_table(answer.build))


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
        ReadFormat, output_option("normal or json (the API's NDJSON lines as is).")
    ] = ReadFormat.normal,
) -> None:
    """Print a build's logs (the latest build when no ID is given): its steps in order, each
    line `[step] <time> text`. Steps that hold registry credentials are hidden by the API."""
    with open_api(ctx, BuildsApi) as api:
        if build_id is None:
            build_id = api.latest().build.build_id
        for raw in api.log_lines(build_id, follow=follow):
            if output is ReadFormat.json:
                out.print(Text(raw), soft_wrap=True)
            else:
                out.print(log_line_text(raw), soft_wrap=True)


@app.command(epilog="Examples:\n  toolforge build quota\n  toolforge build quota -o json")
def quota(
    ctx: typer.Context,
    output: Annotated[ReadFormat, output_option()] = ReadFormat.normal,
    as_json: Annotated[bool, json_option(_RAW_JSON)] = False,
) -> None:
    """Show the tool's build quotas: the registry storage its images use (limit, used,
    available, capacity) and, where the API counts them, parallel builds."""
    with open_api(ctx, BuildsApi) as api:
        answer = api.quota()
        print_one(read_format(output, as_json), answer.raw, lambda: quota_tables(answer.quota))


# -- changes ------------------------------------------------------------------------------

YesIKnow = Annotated[
    bool, typer.Option("-y", "--yes-i-know", help="Do not ask for confirmation (with --all).")
]
AllBuilds = Annotated[bool, typer.Option("--all", help="Every build of the tool.")]
BuildIds = Annotated[list[str] | None, typer.Argument(metavar="ID", help="Build IDs (or --all).")]


def _check_choice(build_ids: list[str] | None, every: bool, verb: str) -> None:
    """Build IDs or ``--all``, exactly one of them; :class:`UserError` (exit 1) otherwise,
    before anything is sent."""
    if every == bool(build_ids):
        with handle_errors():
            raise UserError(
                f"No build passed to {verb}." if not every else "give build IDs or --all, not both",
                hint=f"toolforge build {verb} <build-id>, or toolforge build {verb} --all",
            )


def _chosen(
    api: BuildsApi,
    build_ids: list[str] | None,
    every: bool,
    *,
    verb: str,
    keep: Callable[[Build], bool],
    yes: bool,
) -> list[str]:
    """The IDs to act on: those given, or with ``--all`` every build ``keep`` selects (after
    a confirmation unless ``yes``)."""
    if not every:
        return list(build_ids or [])
    chosen = [b.build_id for b in api.list_builds(report=False).builds if keep(b)]
    if chosen and not yes:
        typer.confirm(f"I'm going to {verb} {len(chosen)} builds, continue?", abort=True, err=True)
    return chosen


def _each(build_ids: list[str], call: Callable[[str], IdAnswer], done: str, verb: str) -> None:
    """Apply ``call`` to every ID. A 4xx for one ID is reported and the others go on; the
    command then exits 1. 5xx and transport errors stop at once (exit 2). Ends with
    upstream's ``<Done> N builds``."""
    failed = 0
    for build_id in build_ids:
        try:
            answer = call(build_id)
        except ApiClientError as exc:
            print_error(exc)
            failed += 1
            continue
        if not answer.messages.info:
            err.print(Text(f"{done} build {build_id}"))
    err.print(Text(f"{done} {len(build_ids) - failed} builds"))
    if failed:
        raise UserError(f"{failed} of {len(build_ids)} build(s) could not be {verb}")


@app.command(
    epilog="Examples:\n  toolforge build cancel mytool-buildpacks-pipelinerun-abcde\n"
    "  toolforge build cancel --all -y",
)
def cancel(
    ctx: typer.Context,
    build_ids: BuildIds = None,
    every: AllBuilds = False,
    yes_i_know: YesIKnow = False,
) -> None:
    """Cancel running or pending builds (a finished build cannot be cancelled); --all:
    every build that has not finished."""
    _check_choice(build_ids, every, "cancel")
    with open_api(ctx, BuildsApi) as api:
        chosen = _chosen(
            api, build_ids, every, verb="cancel", keep=lambda b: not b.finished, yes=yes_i_know
        )
        _each(chosen, api.cancel, "Cancelled", "cancelled")


@app.command(
    epilog="Examples:\n  toolforge build delete mytool-buildpacks-pipelinerun-abcde\n"
    "  toolforge build list -o name | tail -n +2 | xargs toolforge build delete\n"
    "  toolforge build delete --all --yes-i-know",
)
def delete(
    ctx: typer.Context,
    build_ids: BuildIds = None,
    every: AllBuilds = False,
    yes_i_know: YesIKnow = False,
) -> None:
    """Delete builds: their PipelineRuns and logs (the images stay in the registry); --all:
    every build of the tool."""
    _check_choice(build_ids, every, "delete")
    with open_api(ctx, BuildsApi) as api:
        chosen = _chosen(api, build_ids, every, verb="delete", keep=lambda b: True, yes=yes_i_know)
        _each(chosen, api.delete, "Deleted", "deleted")


@app.command(
    epilog="Examples:\n  toolforge build clean\n  toolforge build clean --yes-i-know\n"
    "  toolforge build clean -y --json"
)
def clean(
    ctx: typer.Context,
    yes: Annotated[
        bool,
        typer.Option("-y", "--yes", "--yes-i-know", help="Do not ask for confirmation."),
    ] = False,
    as_json: Annotated[bool, json_option(_RAW_JSON)] = False,
) -> None:
    """Delete ALL images of the tool from the registry (jobs using them cannot start until
    the next build). Prints what was deleted; asks first unless --yes-i-know."""
    if not yes:
        typer.confirm("Delete all images of your tool from the registry?", abort=True, err=True)
    with open_api(ctx, BuildsApi) as api:
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
        if as_json:
            print_json(answer.raw)
        elif not answer.messages.info:
            err.print("The tool's images were deleted from the registry.")
