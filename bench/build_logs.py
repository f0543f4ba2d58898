"""Benchmark: build log streaming through the gateway, with filtering and scrubbing on and off.

Reproduce (cluster and platform services running, e.g. after ``make up``/``make run``)::

    uv run python bench/build_logs.py --lines 200000 --repeats 3

What runs:

- a tool ``bench-builds`` is onboarded (for its client certificate) and starts two builds
  through the running gateway (``https://127.0.0.1:8443``), a full commit id as ``ref`` so
  nothing leaves the machine: build *A* with an env var ``BENCH_TOKEN`` (a secret value),
  build *B* without env vars;
- acting as the Tekton controller (``tests/builds/tekton_standin.py``; the real controller is
  stopped for the duration, ``real_controller_stopped``), each build gets one TaskRun pod with
  Tekton's labels and container names: init containers ``prepare`` and ``place-scripts`` (one
  line each), the steps ``step-build-0`` and ``step-build-1`` printing ``--lines`` lines between
  them (about 55 characters each; one in 1000 carries the env value or the registry password,
  read from Secret ``buildpacks-registry-auth``), and ``step-export`` printing 100 lines; then
  the PipelineRuns are marked succeeded. Two steps, because one container's log file must stay
  under the kubelet's ``containerLogMaxSize`` (10 MiB): a rotation while the container runs
  would cut what the pod log API returns;
- this script starts, next to the shared services, one gateway and two builds API processes
  on ephemeral loopback ports, with the platform's certificates and the builds API's own
  cluster identity (``PlatformServices.builds_api_config()``):

  - **on**: the default settings, as deployed (the default ``log_deny_list``; the redactor
    with the registry credentials in all their forms and the build's env values);
  - **off**: ``log_deny_list: []`` and a redactor without secrets: the same server, started
    through this script (``--serve-unfiltered``), which replaces
    ``BuildsService._redactor`` by one returning ``Redactor(())`` (so the registry Secret is
    not read either). Nothing else differs.

  The gateway routes ``/builds/...`` to *on* and ``/builds-off/...`` to *off*;
- ``GET /<route>/v1/tool/bench-builds/builds/<id>/logs`` (not following; the runs have
  finished) is streamed with httpx presenting the tool's certificate, alternating on (build A)
  and off (build B), ``--repeats`` times each; lines/s = NDJSON lines received / seconds from
  sending the request to the last byte. Each response is checked afterwards: *on* shows no
  secret, hides ``step-export`` and the init containers; *off* shows the secrets. *on* is also
  read through the shared platform gateway (``:8443`` to the shared builds API) for
  comparison, and the steps' raw logs straight from kube-apiserver as the admin give the
  ceiling.
- the builds API's own filtering cost without the noise of the shared machine: its
  per-container pipeline (``ContainerLogStream`` and NDJSON encoding) over ``step-build-0``'s
  raw log, in process, CPU time with the *on* redactor and without secrets (best of 3).

At the end the started processes are stopped and, as the admin, the tool's PipelineRuns, their
pods and its quota ConfigMap in ``image-build`` are deleted, and then the tool.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from builds.tekton_standin import IMAGE, NAMESPACE, real_controller_stopped, set_condition

from toolforge_admin.cli import onboarder
from toolforge_admin.onboarding import ToolOnboarder
from toolforge_dev.cli import admin_settings
from toolforge_dev.cluster import Cluster
from toolforge_dev.pytest_plugin import new_admin_api
from toolforge_dev.services import PlatformServices

TOOL = "bench-builds"
ENV_SECRET = "bench-env-secret-4f1c9a"  # noqa: S105 (a fake value to scrub)
BUILD_STEPS = ("step-build-0", "step-build-1")
REGISTRY_SECRET = "buildpacks-registry-auth"  # noqa: S105 (a Secret's name)


@dataclass
class Stream:
    mode: str
    path: str
    lines: int
    megabytes: float
    seconds: float

    @property
    def lines_per_second(self) -> float:
        return self.lines / self.seconds


# ----------------------------------------------------------------------------- processes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


@contextlib.contextmanager
def _process(argv: list[str], port: int, log: Path) -> Iterator[None]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_port(port, proc, log)
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def bench_servers(platform: PlatformServices, directory: Path) -> Iterator[str]:
    """Builds API *on* and *off* and a gateway in front of both; yields the gateway URL."""
    on_port, off_port, gw_port = _free_port(), _free_port(), _free_port()
    on = {**platform.builds_api_config(), "port": on_port, "log_level": "WARNING"}
    off = {**on, "port": off_port, "log_deny_list": []}
    gateway = {
        **platform.gateway_config(),
        "port": gw_port,
        "routes": {
            "builds": {"url": f"https://localhost:{on_port}"},
            "builds-off": {"url": f"https://localhost:{off_port}"},
        },
        "public_url": f"https://127.0.0.1:{gw_port}",
        "log_level": "WARNING",
        "graceful_shutdown_seconds": 1,
    }
    for name, config in (("on", on), ("off", off), ("gateway", gateway)):
        (directory / f"{name}.yaml").write_text(yaml.safe_dump(config))
    python = sys.executable
    with (
        _process(
            [python, "-m", "toolforge_builds", "--config", str(directory / "on.yaml")],
            on_port,
            directory / "on.log",
        ),
        _process(
            [python, __file__, "--serve-unfiltered", str(directory / "off.yaml")],
            off_port,
            directory / "off.log",
        ),
        _process(
            [python, "-m", "toolforge_gateway", "--config", str(directory / "gateway.yaml")],
            gw_port,
            directory / "gateway.log",
        ),
    ):
        yield f"https://127.0.0.1:{gw_port}"


def serve_unfiltered(config: Path) -> None:
    """Run the builds API with a redactor without secrets (the *off* case)."""
    from toolforge_builds import __main__ as builds_main
    from toolforge_builds.logs import Redactor
    from toolforge_builds.service import BuildsService

    async def no_redactor(self: BuildsService, run: dict[str, Any]) -> Redactor:
        return Redactor(())

    setattr(BuildsService, "_redactor", no_redactor)  # noqa: B010
    builds_main.main(["--config", str(config)])


# ----------------------------------------------------------------------------- cluster side


def _step_script(lines: int, secrets: list[str]) -> str:
    return (
        "import sys\n"
        "w = sys.stdout.write\n"
        f"secrets = {secrets!r}\n"
        f"for i in range({lines}):\n"
        "    if i % 1000 == 999:\n"
        "        w(f'line {i:07d} uploading with token={secrets[(i // 1000) % 2]} done\\n')\n"
        "    else:\n"
        "        w(f'line {i:07d} compiling module_{i % 97:02d}.py, writing layer data\\n')\n"
    )


async def create_pod(admin: k8s.ApiClient, run: str, lines: int, secrets: list[str]) -> str:
    """A TaskRun pod of ``run`` (labels and container names as Tekton's; see
    ``tests/builds/tekton_standin.py``) whose :data:`BUILD_STEPS` print ``lines`` lines."""
    per_step = lines // len(BUILD_STEPS)
    taskrun = f"{run}-build"
    name = f"{taskrun}-pod"

    def container(name: str, script: str) -> dict[str, Any]:
        return {
            "name": name,
            "image": IMAGE,
            "imagePullPolicy": "IfNotPresent",
            "command": ["python3", "-c", script],
        }

    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {
                "tekton.dev/pipelineRun": run,
                "tekton.dev/taskRun": taskrun,
                "tekton.dev/pipelineTask": "build",
                "app.kubernetes.io/managed-by": "tekton-standin",
            },
        },
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 0,
            "initContainers": [
                container("prepare", "print('copying the entrypoint binary')"),
                container("place-scripts", "print('writing step scripts')"),
            ],
            "containers": [
                *(container(step, _step_script(per_step, secrets)) for step in BUILD_STEPS),
                container("step-export", _step_script(100, secrets)),
            ],
        },
    }
    await k8s.CoreV1Api(admin).create_namespaced_pod(NAMESPACE, pod)  # type: ignore[arg-type]
    return name


async def wait_succeeded(admin: k8s.ApiClient, pod: str, timeout: float = 180) -> None:
    core = k8s.CoreV1Api(admin)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        phase = (await core.read_namespaced_pod(pod, NAMESPACE)).status.phase
        if phase == "Succeeded":
            return
        if phase == "Failed":
            raise RuntimeError(f"pod {pod} failed")
        await asyncio.sleep(0.5)
    raise RuntimeError(f"pod {pod} did not finish in {timeout:.0f} s")


async def registry_credentials(admin: k8s.ApiClient) -> tuple[str, str]:
    """``(username, password)`` of the registry Secret, which the *on* redactor scrubs."""
    secret = await k8s.CoreV1Api(admin).read_namespaced_secret(REGISTRY_SECRET, NAMESPACE)
    data = {key: base64.b64decode(value).decode() for key, value in secret.data.items()}
    return data["username"], data["password"]


async def raw_bytes(admin: k8s.ApiClient, pod: str, container: str) -> bytes:
    response: Any = await k8s.CoreV1Api(admin).read_namespaced_pod_log(
        pod, NAMESPACE, container=container, timestamps=True, _preload_content=False
    )
    body = await response.read()
    response.release()
    return bytes(body)


def filtering_cpu(raw: bytes, credentials: tuple[str, str]) -> dict[str, float]:
    """CPU seconds of the builds API's per-container log pipeline
    (``ContainerLogStream`` + NDJSON encoding, as ``BuildsService._container`` runs it) over
    ``raw`` in 64 KiB chunks, with the *on* redactor and with ``Redactor(())``; best of 3."""
    from toolforge_builds.logs import ContainerLogStream, Redactor, build_log_redactor, ndjson

    redactors = {
        "on": build_log_redactor([ENV_SECRET], credentials),
        "off": Redactor(()),
    }
    chunks = [raw[i : i + 65536] for i in range(0, len(raw), 65536)]
    best: dict[str, float] = {}
    for _ in range(3):
        for mode, redactor in redactors.items():
            start = time.process_time()
            stream = ContainerLogStream("step-build-0", redactor)
            for chunk in chunks:
                for line in stream.feed(chunk):
                    ndjson(line)
            for line in stream.close():
                ndjson(line)
            best[mode] = min(best.get(mode, float("inf")), time.process_time() - start)
    return best


async def raw_log(admin: k8s.ApiClient, pod: str) -> Stream:
    """The steps' logs straight from kube-apiserver (timestamps on, as the API asks)."""
    start = time.perf_counter()
    size = lines = 0
    for step in BUILD_STEPS:
        # With _preload_content=False the answer is the aiohttp response, not the typed str.
        response: Any = await k8s.CoreV1Api(admin).read_namespaced_pod_log(
            pod, NAMESPACE, container=step, timestamps=True, _preload_content=False
        )
        async for chunk in response.content.iter_any():
            size += len(chunk)
            lines += chunk.count(b"\n")
        response.release()
    return Stream("raw", "kube-apiserver (admin)", lines, size / 1e6, time.perf_counter() - start)


# ----------------------------------------------------------------------------- client side


def tool_client(cluster: Cluster, ob: ToolOnboarder, base_url: str) -> httpx.AsyncClient:
    context = ssl.create_default_context(cafile=cluster.pki_dir / "cluster-ca.crt")
    context.load_cert_chain(ob.cert_path(TOOL), ob.key_path(TOOL))
    return httpx.AsyncClient(verify=context, base_url=base_url, timeout=120)


async def stream_logs(
    client: httpx.AsyncClient, route: str, build: str, mode: str, path: str
) -> tuple[Stream, bytes]:
    url = f"/{route}/v1/tool/{TOOL}/builds/{build}/logs"
    chunks = []
    start = time.perf_counter()
    async with client.stream("GET", url) as response:
        if response.status_code != 200:
            await response.aread()
            raise RuntimeError(f"GET {url}: {response.status_code} {response.text}")
        async for chunk in response.aiter_raw():
            chunks.append(chunk)
    seconds = time.perf_counter() - start
    body = b"".join(chunks)
    return Stream(mode, path, body.count(b"\n"), len(body) / 1e6, seconds), body


def check_body(body: bytes, mode: str, secrets: list[str], lines: int) -> None:
    """The *on* response hides and scrubs; the *off* one shows everything."""
    text = "\n".join(json.loads(line)["line"] for line in body.splitlines())
    leaked = [s for s in secrets if s in text]
    if mode == "on":
        expected = lines + 3  # the build steps, and 3 "output hidden" markers
        if leaked or "[step-export] output hidden" not in text or "***" not in text:
            raise RuntimeError(f"filtering on: leaked {leaked} or step-export shown")
    else:
        expected = lines + 100 + 2
        if len(leaked) != len(secrets) or "output hidden" in text:
            raise RuntimeError("filtering off: secrets scrubbed or steps hidden")
    received = body.count(b"\n")
    if received != expected:
        raise RuntimeError(f"{mode}: {received} lines, expected {expected}")


# ----------------------------------------------------------------------------- main


async def cleanup(admin: k8s.ApiClient, ob: ToolOnboarder) -> None:
    """Remove the bench tool's PipelineRuns, their stand-in pods, its quota ConfigMap in
    ``image-build`` and the tool itself."""
    core = k8s.CoreV1Api(admin)
    runs = await _runs(admin)
    if runs:
        await core.delete_collection_namespaced_pod(
            NAMESPACE, label_selector=f"tekton.dev/pipelineRun in ({','.join(runs)})"
        )
    for run in runs:
        with contextlib.suppress(ApiException):
            await k8s.CustomObjectsApi(admin).delete_namespaced_custom_object(
                "tekton.dev", "v1", NAMESPACE, "pipelineruns", run
            )
    with contextlib.suppress(ApiException):
        await core.delete_namespaced_config_map(f"builds-quota-{TOOL}", NAMESPACE)
    await ob.delete(TOOL, purge_home=True)


async def _runs(admin: k8s.ApiClient) -> list[str]:
    """PipelineRuns of the bench tool (left by this or an earlier, interrupted run)."""
    runs = await k8s.CustomObjectsApi(admin).list_namespaced_custom_object(
        "tekton.dev", "v1", NAMESPACE, "pipelineruns"
    )
    return [
        r["metadata"]["name"] for r in runs["items"] if r["metadata"]["name"].startswith(f"{TOOL}-")
    ]


@contextlib.asynccontextmanager
async def bench_tool(cluster: Cluster) -> AsyncIterator[tuple[ToolOnboarder, k8s.ApiClient]]:
    async with onboarder(admin_settings(cluster)) as ob:
        admin = await new_admin_api(cluster)
        async with admin:
            await cleanup(admin, ob)
            await ob.create(TOOL)
            try:
                yield ob, admin
            finally:
                await cleanup(admin, ob)


Case = tuple[httpx.AsyncClient, str, str, str]


async def measure_once(
    cases: list[Case], builds: dict[str, str], secrets: list[str], lines: int
) -> list[Stream]:
    """Stream each case's build log once (``(client, route, mode, description)``), checked."""
    results = []
    for client, route, mode, path in cases:
        result, body = await stream_logs(client, route, builds[mode], mode, path)
        check_body(body, mode, secrets, lines)
        results.append(result)
        print(_row(result), flush=True)
    return results


async def run(args: argparse.Namespace) -> list[Stream]:
    cluster = Cluster(progress=lambda _: None)
    platform = PlatformServices(cluster)
    if not all(platform.health().values()):
        sys.exit(f"the platform services are not all healthy: {platform.health()}")
    results: list[Stream] = []
    async with bench_tool(cluster) as (ob, admin):
        credentials = await registry_credentials(admin)
        secrets = [ENV_SECRET, credentials[1]]
        async with tool_client(cluster, ob, platform.gateway_url) as shared:
            builds = {}
            for mode, envvars in (("on", {"BENCH_TOKEN": ENV_SECRET}), ("off", {})):
                response = await shared.post(
                    f"/builds/v1/tool/{TOOL}/builds",
                    json={
                        "source_url": "https://gitlab.example.org/bench/app.git",
                        "ref": "a" * 40,
                        "envvars": envvars,
                    },
                )
                response.raise_for_status()
                builds[mode] = response.json()["new_build"]["name"]
            pods = {
                mode: await create_pod(admin, build, args.lines, secrets)
                for mode, build in builds.items()
            }
            for mode, build in builds.items():
                await wait_succeeded(admin, pods[mode])
                await set_condition(admin, build, "True", "Succeeded")
            print(f"builds {builds} ready", flush=True)
            with (
                tempfile.TemporaryDirectory(prefix="build-logs-bench-") as tmp,
                bench_servers(platform, Path(tmp)) as url,
            ):
                async with tool_client(cluster, ob, url) as own:
                    cases = [
                        (own, "builds", "on", "bench gateway -> builds API (on)"),
                        (own, "builds-off", "off", "bench gateway -> builds API (off)"),
                        (shared, "builds", "on", "platform gateway -> builds API"),
                    ]
                    for _ in range(args.repeats):
                        results += await measure_once(cases, builds, secrets, args.lines)
                        results.append(await raw_log(admin, pods["on"]))
                        print(_row(results[-1]), flush=True)
            raw = await raw_bytes(admin, pods["on"], BUILD_STEPS[0])
            cpu = filtering_cpu(raw, credentials)
            lines = raw.count(b"\n")
            print(
                f"builds API log pipeline, CPU for {lines:,} lines ({len(raw) / 1e6:.1f} MB raw): "
                f"on {cpu['on']:.2f} s ({lines / cpu['on']:,.0f} lines/s), "
                f"off {cpu['off']:.2f} s ({lines / cpu['off']:,.0f} lines/s), "
                f"filtering +{(cpu['on'] / cpu['off'] - 1) * 100:.0f} % CPU",
                flush=True,
            )
    return results


def _row(r: Stream) -> str:
    return (
        f"| {r.mode} | {r.path} | {r.lines:,} | {r.megabytes:.1f} | {r.seconds:.2f} "
        f"| {r.lines_per_second:,.0f} |"
    )


def summary(results: list[Stream]) -> str:
    by_path: dict[str, list[Stream]] = {}
    for r in results:
        by_path.setdefault(r.path, []).append(r)
    lines = [
        "| filtering | path | lines | MB | median s | median lines/s |",
        "|---|---|---|---|---|---|",
    ]
    medians: dict[str, float] = {}
    for path, runs in by_path.items():
        rate = statistics.median(r.lines_per_second for r in runs)
        seconds = statistics.median(r.seconds for r in runs)
        medians[path] = rate
        first = runs[0]
        lines.append(
            f"| {first.mode} | {path} | {first.lines:,} | {first.megabytes:.1f} "
            f"| {seconds:.2f} | {rate:,.0f} |"
        )
    on = medians["bench gateway -> builds API (on)"]
    off = medians["bench gateway -> builds API (off)"]
    lines.append("")
    lines.append(f"filtering cost (1 - on/off in lines/s): {(1 - on / off) * 100:.1f} %")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-unfiltered":
        serve_unfiltered(Path(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--lines", type=int, default=200_000, help="lines the build steps print (even)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    with real_controller_stopped(Cluster(progress=lambda _m: None)):
        results = asyncio.run(run(args))
    print()
    print(summary(results))
    if args.json:
        data = [{**asdict(r), "lines_per_second": r.lines_per_second} for r in results]
        args.json.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
