"""``toolforge-admin``: operator commands for onboarding tools.

Exit codes: 0 success, 1 user error (bad name, unknown tool), 2 internal or cluster error.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from toolforge_admin.onboarding import (
    ClusterAccess,
    InvalidToolName,
    OnboardingError,
    ToolOnboarder,
    ToolResult,
)
from toolforge_admin.settings import AdminSettings
from toolforge_kit.kube import KubeClient

T = TypeVar("T")

app = typer.Typer(help="Toolforge admin commands.", no_args_is_help=True)
tool_app = typer.Typer(help="Onboard, list, renew and delete tools.", no_args_is_help=True)
app.add_typer(tool_app, name="tool")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class Output(StrEnum):
    """Output formats."""

    normal = "normal"
    json = "json"


OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="Output format.")]


def kubeconfig_path(settings: AdminSettings) -> Path:
    """The admin kubeconfig: settings, then ``$KUBECONFIG``, then ``~/.kube/config``."""
    if settings.kubeconfig:
        return settings.kubeconfig
    env = os.environ.get("KUBECONFIG")
    return Path(env.split(os.pathsep)[0]) if env else Path.home() / ".kube" / "config"


@asynccontextmanager
async def onboarder(settings: AdminSettings) -> AsyncIterator[ToolOnboarder]:
    """A :class:`ToolOnboarder` on an admin client (the kit's transport) that is closed
    afterwards."""
    path = kubeconfig_path(settings)
    cluster = ClusterAccess.from_kubeconfig(path)
    kube = await KubeClient.connect(
        kubeconfig=path,
        user_agent="toolforge-admin",
        max_connections=8,
        timeout=settings.kube_timeout_seconds,
        retry_after=5,
    )
    try:
        yield ToolOnboarder(kube, cluster, settings)
    finally:
        await kube.close()


def _run(fn: Callable[[ToolOnboarder], Awaitable[T]]) -> T:
    async def go() -> T:
        async with onboarder(AdminSettings()) as ob:
            return await fn(ob)

    try:
        return asyncio.run(go())
    except InvalidToolName as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    except OnboardingError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc


def _print_result(result: ToolResult, output: Output) -> None:
    if output is Output.json:
        out.print_json(json.dumps(result.as_dict()))
        return
    for step in result.steps:
        colour = {"unchanged": "dim", "absent": "dim", "deleted": "yellow"}.get(
            step.action, "green"
        )
        out.print(f"  [{colour}]{step.action:<9}[/] {step.name:<14} {step.detail}")
    summary = "changed" if result.changed else "already up to date"
    out.print(
        f"tool [bold]{result.tool}[/] (namespace {result.namespace}, uid {result.uid}): {summary}"
    )


@tool_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Tool name (DNS-1123 label).")],
    output: OutputOpt = Output.normal,
) -> None:
    """Onboard a tool: namespace, RBAC, quota, uid, home, certificate, kubeconfig.

    Safe to run again: it only creates or repairs what is missing or wrong.
    """
    _print_result(_run(lambda ob: ob.create(name)), output)


@tool_app.command("delete")
def delete(
    name: Annotated[str, typer.Argument(help="Tool name.")],
    purge_home: Annotated[
        bool, typer.Option("--purge-home", help="Also delete the home directory and its data.")
    ] = False,
    output: OutputOpt = Output.normal,
) -> None:
    """Delete a tool's namespace (with all its objects) and credentials."""
    _print_result(_run(lambda ob: ob.delete(name, purge_home=purge_home)), output)


@tool_app.command("renew")
def renew(
    names: Annotated[
        list[str] | None, typer.Argument(help="Tools to renew; default: every tool.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Re-issue even if not close to expiry.")
    ] = False,
    output: OutputOpt = Output.normal,
) -> None:
    """Renew tool certificates that expire within the renewal window."""

    async def go(ob: ToolOnboarder) -> list[ToolResult]:
        targets = names or [t.tool for t in await ob.list()]
        return [await ob.renew(n, force=force) for n in targets]

    results = _run(go)
    if output is Output.json:
        out.print_json(json.dumps([r.as_dict() for r in results]))
        return
    for result in results:
        _print_result(result, output)


@tool_app.command("list")
def list_tools(output: OutputOpt = Output.normal) -> None:
    """List onboarded tools with their uid and certificate expiry."""
    tools = _run(lambda ob: ob.list())
    if output is Output.json:
        out.print_json(json.dumps([t.as_dict() for t in tools]))
        return
    table = Table("tool", "namespace", "uid", "phase", "certificate expires")
    for t in tools:
        expiry = f"{t.cert_expires:%Y-%m-%d %H:%M}" if t.cert_expires else "-"
        table.add_row(t.tool, t.namespace, str(t.uid), t.phase, expiry)
    out.print(table)


def main() -> None:
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
