"""``toolforge-dev``: build, start and stop the local platform.

``make run`` is ``toolforge-dev run``; ``make up``/``make down`` are ``up``/``down``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from pydantic import SecretStr
from rich.console import Console

from toolforge_admin.cli import onboarder
from toolforge_admin.onboarding import OnboardingError
from toolforge_admin.settings import AdminSettings, EgressEndpoint, RegistryPull
from toolforge_dev import binaries as go_binaries
from toolforge_dev import build_demo, images, netpol, tekton
from toolforge_dev import deploy as deploy_mod
from toolforge_dev.cluster import APISERVER_URL, COMPONENTS, NODE_IP, Cluster, ClusterError
from toolforge_dev.emailer import EMAILER_PORT
from toolforge_dev.logstore import platform_store
from toolforge_dev.mailpit import platform_mailpit
from toolforge_dev.registry_pull import PULL_CREDENTIALS, PULL_PORT
from toolforge_dev.services import PlatformServices

app = typer.Typer(help="Local Toolforge platform for development and tests.", no_args_is_help=True)


class _Console(Console):
    """A console that goes quiet when its terminal or pipe is gone.

    rich's default is ``SystemExit(1)`` on a broken pipe (``Console.on_broken_pipe``), which
    would abort a stop half-way and leave the cluster running.
    """

    def on_broken_pipe(self) -> None:
        self.quiet = True


console = _Console(stderr=True, highlight=False, soft_wrap=True)

DEMO_TOOL = "demo"


class Output(StrEnum):
    """Output formats."""

    normal = "normal"
    json = "json"


def _say(message: str) -> None:
    """Print to stderr; a closed terminal or pipe must not stop the work."""
    with contextlib.suppress(OSError, ValueError):
        console.print(message)


def _progress(message: str) -> None:
    _say(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}")


@app.command()
def build(
    bench: Annotated[
        bool, typer.Option("--bench", help="Build the benchmark tools (vegeta) instead.")
    ] = False,
) -> None:
    """Build the Go binaries (etcd, Kubernetes, CoreDNS) into the cache, unless cached."""
    try:
        if bench:
            for component in go_binaries.bench_components():
                component.build(_progress)
        else:
            go_binaries.build_all(_progress)
    except go_binaries.BuildError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc


@app.command("images")
def build_images() -> None:
    """Build the local OCI images (pause, bookworm, python3.11, the NetworkPolicy engine's
    base, Tekton's, the buildpacks builder, run and git images) into the cache, unless
    cached."""
    images.build_images(progress=_progress, specs=(*images.ALL_IMAGES, netpol.BASE))
    tekton.platform_images(_progress)


#: Where tool pods pull build service images from (the registry's read-only endpoint).
PULL_ADDRESS = f"{NODE_IP}:{PULL_PORT}"


def admin_settings(cluster: Cluster) -> AdminSettings:
    """Admin settings that point at the local cluster: its homes, the local registry's
    read-only pull endpoint for the tools' own images (pods never use the push side, port
    ``REGISTRY_PORT``) and the image pull Secret of its pull-only account, and the node
    address (kubelet, registry) closed to tool pods except for kube-apiserver
    (``toolforge_admin.policies``)."""
    return AdminSettings(
        kubeconfig=cluster.admin_kubeconfig,
        homes_dir=cluster.homes_dir,
        tool_image_registries=["registry.local", PULL_ADDRESS],
        registry_pull=RegistryPull(
            address=PULL_ADDRESS,
            username=PULL_CREDENTIALS.username,
            password=SecretStr(PULL_CREDENTIALS.password),
        ),
        tool_egress_denied_cidrs=["169.254.169.254/32", f"{NODE_IP}/32"],
        tool_egress_allowed=[
            EgressEndpoint(cidr=f"{NODE_IP}/32", port=int(APISERVER_URL.rsplit(":", 1)[1]))
        ],
    )


def _start(cluster: Cluster) -> bool:
    """Start the cluster unless it is up; returns True if this call started it."""
    if cluster.is_up():
        _progress(f"cluster already up ({cluster.directory}); reusing it")
        return False
    bins = go_binaries.build_all(_progress)
    archives = images.build_images(progress=_progress)
    _progress(f"starting cluster in {cluster.directory}")
    cluster.start(bins, archives)
    _progress(f"onboarding demo tool {DEMO_TOOL!r}")

    async def onboard() -> None:
        async with onboarder(admin_settings(cluster)) as ob:
            await ob.create(DEMO_TOOL)

    asyncio.run(onboard())
    return True


def _start_services(cluster: Cluster) -> PlatformServices:
    services = PlatformServices(cluster, progress=_progress)
    _progress("starting the platform APIs")
    services.start()
    return services


def _usage(cluster: Cluster) -> str:
    info = cluster.describe()
    gateway = PlatformServices(cluster).gateway_url
    curl = " ".join(curl_example(cluster))
    kubectl = go_binaries.kubernetes().path("kubectl")
    demo_home = Path(info["homes_dir"]) / DEMO_TOOL
    demo_kc = demo_home / ".kube" / "config"
    return f"""
[bold green]Toolforge local platform is up.[/]

[bold]Cluster[/] Kubernetes {go_binaries.kubernetes().version}, node {info["node"]}, \
API {info["apiserver"]}
  export KUBECONFIG={info["admin_kubeconfig"]}
  {kubectl} get nodes,pods -A
[bold]Tools[/] (homes in {info["homes_dir"]})
  export TOOLFORGE_ADMIN_KUBECONFIG={info["admin_kubeconfig"]}
  export TOOLFORGE_ADMIN_HOMES_DIR={info["homes_dir"]}
  uv run toolforge-admin tool create mytool
  uv run toolforge-admin tool list
[bold]Demo tool[/] '{DEMO_TOOL}' with the toolforge CLI (through the gateway, {gateway}):
  export TOOLFORGE_CERT={demo_home}/.toolskube/client.crt \\
         TOOLFORGE_KEY={demo_home}/.toolskube/client.key TOOLFORGE_KUBECONFIG={demo_kc}
  uv run toolforge jobs run hello --command "echo hello" --image python3.11 --wait
  uv run toolforge jobs list
  uv run toolforge jobs logs hello
[bold]Gateway[/] with curl, as the demo tool:
  {curl}
[bold]Kubernetes[/] as the demo tool (its own namespace only):
  {kubectl} --kubeconfig {demo_kc} get jobs,pods
{build_demo.usage(build_demo.prepare(PlatformServices(cluster)), cluster.admin_kubeconfig)}\
[bold]Logs[/] {info["logs_dir"]}/<component>.log
[bold]Mailbox[/] {platform_mailpit(cluster).url} (Mailpit; SMTP with STARTTLS on \
{":".join(map(str, platform_mailpit(cluster).smtp_address))})
[bold]Job mails[/] the jobs emailer sends what jobs run with --emails onfailure|onfinish|all \
do to tools.<tool>@toolforge.org, batched per tool for 30 s; read them in the Mailbox above. \
Its metrics: https://localhost:{EMAILER_PORT}/metrics
[bold]Log store[/] {platform_store(cluster).url} (VictoriaLogs, user \
{platform_store(cluster).credentials.username}, password in \
{platform_store(cluster).password_file}); the logs API reads it: \
{gateway}/logs/v1/tool/{DEMO_TOOL}/job/hello/logs (what `toolforge jobs logs` reads)
"""


def curl_example(cluster: Cluster, tool: str = DEMO_TOOL) -> list[str]:
    """A curl command that lists ``tool``'s jobs through the local gateway."""
    home = cluster.homes_dir / tool
    return [
        "curl",
        "--cert",
        str(home / ".toolskube" / "client.crt"),
        "--key",
        str(home / ".toolskube" / "client.key"),
        "--cacert",
        str(cluster.pki_dir / "cluster-ca.crt"),
        f"{PlatformServices(cluster).gateway_url}/jobs/v1/tool/{tool}/jobs",
    ]


@app.command()
def up() -> None:
    """Start the cluster in the background (or reuse a healthy one) and return."""
    cluster = Cluster(progress=_progress)
    try:
        _start(cluster)
        _start_services(cluster)
    except (ClusterError, go_binaries.BuildError, OnboardingError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    console.print(_usage(cluster))
    console.print("Stop it with: [bold]make down[/]")


@app.command()
def deploy() -> None:
    """Run the platform APIs as pods: build the service images, helm upgrade --install the
    charts (values-local.yaml) into namespace toolforge-api and wait for the rollout.

    Starts the cluster first if it is not up (and onboards the demo tool).
    """
    cluster = Cluster(progress=_progress)
    try:
        _start(cluster)
        report = deploy_mod.deploy(cluster, progress=_progress)
    except (
        ClusterError,
        go_binaries.BuildError,
        OnboardingError,
        deploy_mod.DeployError,
        images.ImageBuildError,
        images.ImageImportError,
    ) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    demo_home = cluster.homes_dir / DEMO_TOOL
    kubectl = go_binaries.kubernetes().path("kubectl")
    took = ", ".join(f"{k} {v:.0f} s" for k, v in report.seconds.items())
    console.print(
        f"""
[bold green]Deployed[/] into namespace {deploy_mod.NAMESPACE} ({took}).
[bold]In-cluster gateway[/] {report.gateway_url} (NodePort), as the demo tool:
  export TOOLFORGE_API_URL={report.gateway_url} \\
         TOOLFORGE_CERT={demo_home}/.toolskube/client.crt \\
         TOOLFORGE_KEY={demo_home}/.toolskube/client.key \\
         TOOLFORGE_CA={cluster.pki_dir / "cluster-ca.crt"}
  uv run toolforge jobs run hello --command "echo hello" --image python3.11 --wait
  uv run toolforge jobs logs hello
[bold]Pods[/]
  {kubectl} --kubeconfig {cluster.admin_kubeconfig} -n {deploy_mod.NAMESPACE} get pods
"""
    )


@app.command()
def down() -> None:
    """Stop the platform APIs and the cluster; remove processes, mounts and network state."""
    cluster = Cluster(progress=_progress)
    PlatformServices(cluster, progress=_progress).stop()
    cluster.stop()
    left = cluster.leftovers()
    if left:
        console.print("[red]left behind:[/]\n  " + "\n  ".join(left))
        raise typer.Exit(2)


@app.command()
def run() -> None:
    """Start everything, print how to use it, and stay in the foreground until Ctrl-C.

    Ctrl-C, SIGTERM or SIGHUP stop everything cleanly, even when the terminal or a pipe
    that took the output is already gone.
    """
    cluster = Cluster(progress=_progress)
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    failed: Exception | None = None
    services = PlatformServices(cluster, progress=_progress)
    try:
        _start(cluster)
        services.start()
        _say(_usage(cluster))
        _say("[bold]Press Ctrl-C to stop.[/]")
        while not stopping:
            time.sleep(1)
            dead = [c for c in COMPONENTS if c not in cluster.pids()] + services.dead()
            for component in dead:
                _say(f"[red]{component} exited[/]; last log lines:\n{cluster.log_tail(component)}")
            if dead:
                break
    except (ClusterError, go_binaries.BuildError, OnboardingError) as exc:
        _say(f"[red]error:[/] {exc}")
        failed = exc
    finally:
        services.stop()
        cluster.stop()
    if failed is not None:
        raise typer.Exit(2) from failed


@app.command()
def status(
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.normal,
) -> None:
    """Health of every component. Exit code 0 when all are healthy, 1 otherwise."""
    cluster = Cluster(progress=_progress)
    health = {**cluster.health(), **PlatformServices(cluster).health()}
    if output is Output.json:
        print(
            json.dumps(
                {"healthy": all(health.values()), "components": health, **cluster.describe()},
                indent=2,
            )
        )
    else:
        for component, ok in health.items():
            mark = "[green]ok[/]" if ok else "[red]down[/]"
            console.print(f"{component:<24} {mark}")
    if not all(health.values()):
        raise typer.Exit(1)


def main() -> None:
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
