"""``toolforge``: the command-line client of the Toolforge platform APIs.

``toolforge [GLOBAL OPTIONS] jobs|build|envvars ...``; sub-apps share the plumbing in
:mod:`.config`, :mod:`.client`, :mod:`.context` and :mod:`.output`. Exit codes:
:mod:`toolforge_cli.errors`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from toolforge_cli import __version__, build, envvars, jobs
from toolforge_cli.config import DEFAULT_API_URL
from toolforge_cli.context import GlobalOptions
from toolforge_cli.output import out

__all__ = ["app", "main"]

app = typer.Typer(
    name="toolforge",
    help=f"""Toolforge command-line client: manage your tool's jobs, image builds and environment
variables through the API gateway.

Connection (options > environment > defaults):
  API URL      --api-url, TOOLFORGE_API_URL, then where upstream's clients look:
               TOOL_TOOLFORGE_API_URL, api_gateway.url in ~/.config/toolforge.yaml,
               ~/.toolforge.yaml, /etc/toolforge/common.yaml; default {DEFAULT_API_URL}
  certificate  --cert/--key, TOOLFORGE_CERT/TOOLFORGE_KEY; default ~/.toolskube/client.crt/.key
  CA           --ca, TOOLFORGE_CA; default: the cluster CA of ~/.kube/config ($KUBECONFIG)
The tool is the CN of the client certificate (CN=<tool>,O=toolforge).

Exit codes: 0 ok, 1 user error (HTTP 4xx, bad input, credentials), 2 internal error (HTTP 5xx,
connection, TLS, command-line syntax), 130 interrupted.""",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(jobs.app, name="jobs")
app.add_typer(build.app, name="build")
app.add_typer(envvars.app, name="envvars")


def _version(value: bool) -> None:
    if value:
        out.print(f"toolforge-cli {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    api_url: Annotated[
        str | None,
        typer.Option(
            "--api-url",
            metavar="URL",
            help="Gateway base URL (env TOOLFORGE_API_URL, then TOOL_TOOLFORGE_API_URL or "
            f"api_gateway.url in ~/.toolforge.yaml as upstream; default {DEFAULT_API_URL}).",
        ),
    ] = None,
    cert: Annotated[
        Path | None,
        typer.Option(
            "--cert",
            metavar="FILE",
            help="Client certificate, PEM (env TOOLFORGE_CERT, default ~/.toolskube/client.crt).",
        ),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option(
            "--key",
            metavar="FILE",
            help="Client key, PEM (env TOOLFORGE_KEY, default ~/.toolskube/client.key).",
        ),
    ] = None,
    ca: Annotated[
        Path | None,
        typer.Option(
            "--ca",
            metavar="FILE",
            help="CA certificate(s) to verify the gateway, PEM (env TOOLFORGE_CA, default: "
            "the current cluster's CA in ~/.kube/config).",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    ctx.obj = GlobalOptions(api_url=api_url, cert=cert, key=key, ca=ca)


def main() -> None:
    """Console-script entry point (``toolforge``)."""
    app(prog_name="toolforge")


if __name__ == "__main__":
    main()
