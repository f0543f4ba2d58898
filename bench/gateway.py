"""Benchmark: our gateway against the seed gateway (nginx), same backend, same certificates.

Reproduce (after ``make deps`` and ``uv run toolforge-dev build --bench`` for vegeta)::

    uv run python bench/gateway.py --duration 8 --concurrency 1 32 256 --repeat 3

Both gateways run at the same time as host processes on loopback, in the configuration the
issue gives: TLS with a client certificate from the cluster CA, the verified subject DN
forwarded in ``ssl-client-subject-dn``, mTLS to the backend with the backend-CA client
certificate, one worker process per core (nginx ``worker_processes auto``, ours ``workers:
<cores>``). The backend is nginx answering ``200 {"ok":true}`` over mTLS, so that the backend
costs little and the gateways' own cost shows. vegeta is the load generator; it presents a
tool's client certificate (``CN=bench,O=toolforge``) and requests ``/jobs/v1/tool/bench/ping``,
which passes our gateway's authorisation check.

Each case runs ``vegeta attack -rate=0`` (as fast as the workers go) with N workers, once
with keep-alive and once with a new connection (a full TLS handshake) per request. The
gateways take turns case by case, ``--repeat`` times with the order rotated each time, and
the median of the repeats is reported, so that other work on the machine weighs on both
alike. Reported: requests per second, p50 and p99 latency, success, the gateway's CPU time
per request (all its processes, user + system, from ``/proc``), and its peak memory sampled
every 100 ms over all its processes: RSS summed (shared pages counted once per process) and
PSS summed (shared pages split between the processes that share them: the memory the group
really uses). Everything shares the machine's cores, load generator included.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from toolforge_admin.pki import PlatformPKI, subject
from toolforge_dev import binaries
from toolforge_dev.seed_gateway import SeedGateway, free_port, run_seed_gateway

PATH = "/jobs/v1/tool/bench/ping"


@dataclass
class Result:
    gateway: str
    concurrency: int
    keepalive: bool
    rps: float
    p50_ms: float
    p99_ms: float
    success: float
    cpu_us: float
    peak_rss_mib: float
    peak_pss_mib: float


def backend_config(directory: Path, pki: Path, port: int) -> str:
    """nginx as the trivial backend: mTLS (backend CA), answers 200 to everything."""
    return f"""
worker_processes 1;
user root;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {directory}/body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {pki}/jobs-api-server.crt;
        ssl_certificate_key {pki}/jobs-api-server.key;
        ssl_client_certificate {pki}/backend-ca.crt;
        ssl_verify_client on;
        location / {{
            default_type application/json;
            return 200 '{{"ok":true}}';
        }}
    }}
}}
"""


@contextlib.contextmanager
def nginx_backend(directory: Path, pki: Path) -> Iterator[str]:
    directory.mkdir(parents=True)
    port = free_port()
    conf = directory / "nginx.conf"
    conf.write_text(backend_config(directory, pki, port))
    proc = subprocess.Popen(
        ["nginx", "-p", str(directory), "-c", str(conf), "-g", "daemon off;"],
        stderr=subprocess.PIPE,
    )
    try:
        _wait_port(port, proc)
        yield f"https://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def our_gateway(
    directory: Path, pki: Path, backend: str, workers: int, source: Path | None = None
) -> Iterator[tuple[str, int]]:
    """Our gateway from this tree, or with ``source`` (a directory holding a
    ``toolforge_gateway`` package, e.g. another version's ``services/gateway/src``) first on
    ``PYTHONPATH``."""
    port = free_port()
    config = {
        "host": "127.0.0.1",
        "port": port,
        "tls_cert_file": str(pki / "gateway-server.crt"),
        "tls_key_file": str(pki / "gateway-server.key"),
        "client_ca_files": [str(pki / "cluster-ca.crt")],
        "backend_client_cert_file": str(pki / "gateway-backend-client.crt"),
        "backend_client_key_file": str(pki / "gateway-backend-client.key"),
        "backend_ca_file": str(pki / "backend-ca.crt"),
        "routes": {"jobs": {"url": backend.replace("127.0.0.1", "localhost")}},
        "log_level": "WARNING",
        "graceful_shutdown_seconds": 1,
        "workers": workers,
    }
    path = directory / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    log = (directory / "gateway.log").open("wb")
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(source.resolve()), *filter(None, [env.get("PYTHONPATH")])]
        )
    proc = subprocess.Popen(
        [sys.executable, "-m", "toolforge_gateway", "--config", str(path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        _wait_port(port, proc)
        yield f"https://127.0.0.1:{port}", proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        log.close()


def _wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    import socket

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def _memory_kib(pids: list[int]) -> tuple[int, int]:
    """(RSS, PSS) in KiB, summed over ``pids``."""
    rss = pss = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
    return rss, pss


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` (live processes only)."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = [pid]
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            found += _children(int(child))
    return found


def attack(
    vegeta: Path,
    url: str,
    pki: Path,
    *,
    concurrency: int,
    keepalive: bool,
    duration: float,
    pid: int,
) -> tuple[dict[str, object], float, float, float]:
    """Run one vegeta attack against the gateway whose main process is ``pid``; returns
    (vegeta's JSON report, CPU seconds of the gateway's processes, peak RSS and PSS in MiB)."""
    target = f"GET {url}{PATH}\n"
    attack_cmd = [
        str(vegeta),
        "attack",
        "-rate=0",
        f"-workers={concurrency}",
        f"-max-workers={concurrency}",
        f"-connections={concurrency}",
        f"-duration={duration}s",
        f"-keepalive={'true' if keepalive else 'false'}",
        f"-cert={pki / 'bench.crt'}",
        f"-key={pki / 'bench.key'}",
        f"-root-certs={pki / 'cluster-ca.crt'}",
        "-timeout=30s",
    ]
    peak_rss = peak_pss = 0
    done = threading.Event()
    pids = _children(pid)

    def sample() -> None:
        nonlocal peak_rss, peak_pss
        while not done.is_set():
            rss, pss = _memory_kib(_children(pid))
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu_before = _cpu_seconds(pids)
    attack_proc = subprocess.run(attack_cmd, input=target.encode(), capture_output=True, check=True)
    cpu = _cpu_seconds(pids) - cpu_before
    done.set()
    sampler.join()
    report = subprocess.run(
        [str(vegeta), "report", "-type=json"],
        input=attack_proc.stdout,
        capture_output=True,
        check=True,
    )
    return json.loads(report.stdout), cpu, peak_rss / 1024, peak_pss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per case")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32, 256])
    parser.add_argument("--repeat", type=int, default=1, help="runs per case (median shown)")
    parser.add_argument(
        "--workers",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="our gateway's worker processes (default: one per core, as nginx's auto)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=SRC",
        help="also run our gateway from SRC (a directory with a toolforge_gateway package, "
        "e.g. another checkout's services/gateway/src), named NAME, side by side with the "
        "others; repeatable",
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument(
        "--profile",
        type=Path,
        help="record our gateway's workers with py-spy during the keep-alive run at the middle "
        "concurrency; writes collapsed stacks here and prints where the samples fall",
    )
    args = parser.parse_args()

    vegeta = binaries.vegeta()
    if not vegeta.is_built():
        sys.exit("vegeta is not built: uv run toolforge-dev build --bench")
    vegeta_bin = vegeta.path("vegeta")

    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        root = Path(tmp)
        pki_dir = root / "pki"
        platform = PlatformPKI.ensure(pki_dir)
        platform.cluster_ca.issue_pair(
            pki_dir, "bench", subject("bench", ["toolforge"]), client=True
        )
        with nginx_backend(root / "backend", pki_dir) as backend:
            sources: dict[str, Path | None] = {"toolforge-gateway": None}
            for variant in args.variant:
                name, _, source = variant.partition("=")
                if not source or not (Path(source) / "toolforge_gateway").is_dir():
                    sys.exit(f"--variant {variant}: no toolforge_gateway package in {source!r}")
                sources[name] = Path(source)
            seed = SeedGateway(root / "seed", pki_dir, 0, {"jobs": backend})
            with contextlib.ExitStack() as stack:
                gateways = {}
                for index, (name, source) in enumerate(sources.items()):
                    (root / f"ours-{index}").mkdir()
                    gateways[name] = stack.enter_context(
                        our_gateway(root / f"ours-{index}", pki_dir, backend, args.workers, source)
                    )
                gateways["nginx"] = stack.enter_context(_seed(seed))
                middle = args.concurrency[len(args.concurrency) // 2]
                for keepalive in (True, False):
                    for concurrency in args.concurrency:
                        runs: dict[str, list[Result]] = {name: [] for name in gateways}
                        for repeat in range(args.repeat):
                            # Each gateway takes each place in the order in turn.
                            names = list(gateways)
                            shift = repeat % len(names)
                            order = names[shift:] + names[:shift]
                            for name in order:
                                url, pid = gateways[name]
                                profile = (
                                    args.profile
                                    if name == "toolforge-gateway"
                                    and keepalive
                                    and concurrency == middle
                                    and repeat == 0
                                    else None
                                )
                                runs[name].append(
                                    _case(
                                        vegeta_bin,
                                        pki_dir,
                                        name,
                                        url,
                                        pid,
                                        concurrency,
                                        keepalive,
                                        args.duration,
                                        profile,
                                    )
                                )
                        for name in gateways:
                            result = _median(runs[name])
                            results.append(result)
                            print(_row(result), flush=True)
    print()
    print(_table(results))
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=2) + "\n")


def _case(
    vegeta_bin: Path,
    pki_dir: Path,
    name: str,
    url: str,
    pid: int,
    concurrency: int,
    keepalive: bool,
    duration: float,
    profile: Path | None,
) -> Result:
    profiler = None
    if profile is not None:
        workers = [p for p in _children(pid) if p != pid] or [pid]
        profiler = _start_profiler(workers, profile, duration)
    report, cpu, rss, pss = attack(
        vegeta_bin,
        url,
        pki_dir,
        concurrency=concurrency,
        keepalive=keepalive,
        duration=duration,
        pid=pid,
    )
    if profiler is not None and profile is not None:
        for process in profiler:
            process.wait()
        print(_profile_summary(profile), flush=True)
    latencies: dict[str, float] = report["latencies"]  # type: ignore[assignment]
    requests = max(int(report["requests"]), 1)  # type: ignore[call-overload]
    return Result(
        gateway=name,
        concurrency=concurrency,
        keepalive=keepalive,
        rps=float(report["throughput"]),  # type: ignore[arg-type]
        p50_ms=latencies["50th"] / 1e6,
        p99_ms=latencies["99th"] / 1e6,
        success=float(report["success"]),  # type: ignore[arg-type]
        cpu_us=cpu / requests * 1e6,
        peak_rss_mib=rss,
        peak_pss_mib=pss,
    )


def _median(runs: list[Result]) -> Result:
    """The run with the median throughput (its other figures kept with it); memory is the
    peak over all runs."""
    ordered = sorted(runs, key=lambda r: r.rps)
    chosen = ordered[(len(ordered) - 1) // 2]
    return Result(
        **{
            **chosen.__dict__,
            "peak_rss_mib": max(r.peak_rss_mib for r in runs),
            "peak_pss_mib": max(r.peak_pss_mib for r in runs),
        }
    )


def _start_profiler(pids: list[int], out: Path, duration: float) -> list[subprocess.Popen[bytes]]:
    """py-spy (``pip install py-spy``) sampling each of ``pids`` for the length of one case;
    the collapsed stacks of all go to ``out`` (one file per process, then concatenated)."""
    seconds = str(max(1, int(duration) - 1))
    return [
        subprocess.Popen(
            [
                *("py-spy", "record", "--format", "raw", "--rate", "200", "--nonblocking"),
                *("--duration", seconds, "--pid", str(pid), "--output", f"{out}.{pid}"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in pids
    ]


def _profile_summary(collapsed: Path, top: int = 12) -> str:
    """Share of samples by the package of the innermost frame ("self" time). Joins the
    per-process files of :func:`_start_profiler` into ``collapsed`` first."""
    pieces = sorted(collapsed.parent.glob(f"{collapsed.name}.*"))
    collapsed.write_text("".join(piece.read_text() for piece in pieces))
    for piece in pieces:
        piece.unlink()
    by_package: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        leaf = stack.rsplit(";", 1)[-1]
        # A frame reads "function (path/to/module.py:line)".
        where = leaf.rpartition("(")[2]
        parts = where.split("site-packages/")[-1].split("/")
        package = parts[0].split(".py")[0] if len(parts) > 1 else where.split(":")[0]
        by_package[package] = by_package.get(package, 0) + int(count)
        total += int(count)
    rows = sorted(by_package.items(), key=lambda kv: kv[1], reverse=True)[:top]
    lines = [f"py-spy self time by package ({total} samples):"]
    lines += [f"  {pkg:<40} {n / total * 100:5.1f} %" for pkg, n in rows]
    return "\n".join(lines)


@contextlib.contextmanager
def _seed(seed: SeedGateway) -> Iterator[tuple[str, int]]:
    with run_seed_gateway(seed) as url:
        pid = int((seed.directory / "nginx.pid").read_text())
        yield url, pid


def _row(r: Result) -> str:
    mode = "keep-alive" if r.keepalive else "handshake/request"
    return (
        f"| {r.gateway} | {mode} | {r.concurrency} | {r.rps:,.0f} | {r.p50_ms:.2f} | "
        f"{r.p99_ms:.2f} | {r.success * 100:.1f} % | {r.cpu_us:.0f} | {r.peak_rss_mib:.0f} | "
        f"{r.peak_pss_mib:.0f} |"
    )


def _table(results: list[Result]) -> str:
    head = (
        "| gateway | connections | concurrency | requests/s | p50 ms | p99 ms | success "
        "| CPU µs/request | peak RSS MiB | peak PSS MiB |\n"
        "|---|---|---|---|---|---|---|---|---|---|"
    )
    rows = [head, *(_row(r) for r in results)]
    theirs = {(r.keepalive, r.concurrency): r for r in results if r.gateway == "nginx"}
    rows += [
        "",
        "| gateway | connections | concurrency | requests/s ours/nginx | p99 ours/nginx |",
        "|---|---|---|---|---|",
    ]
    for mine in results:
        other = theirs.get((mine.keepalive, mine.concurrency))
        if mine.gateway != "nginx" and other is not None and other.rps and other.p99_ms:
            mode = "keep-alive" if mine.keepalive else "handshake/request"
            rows.append(
                f"| {mine.gateway} | {mode} | {mine.concurrency} "
                f"| {mine.rps / other.rps * 100:.0f} % | {mine.p99_ms / other.p99_ms:.1f}x |"
            )
    return "\n".join(rows)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
