"""Benchmark: the in-cluster deployment (make deploy): pod RSS at idle and under the gateway
load, image sizes.

Reproduce (cluster up, ``make deploy`` done, vegeta built with ``uv run toolforge-dev build
--bench``)::

    uv run python bench/deployment.py --duration 20 --concurrency 32

The pods' processes are found on the host by their command line (``python3 -m <module>
--config /etc/toolforge/config/config.yaml``), and their RSS is read from ``/proc``. The load
is ``vegeta attack -rate=0`` with N workers and keep-alive, from the host to the in-cluster
gateway's NodePort (``https://127.0.0.1:30003``), as the demo tool. Two targets:

- ``GET /healthz`` of the gateway: the gateway alone (TLS, authorisation, no backend);
- ``GET /jobs/v1/tool/demo/jobs``: gateway -> jobs API (mTLS) -> kube-apiserver
  (impersonation), the whole path.

RSS is sampled every 100 ms during each attack; the peak per pod is reported.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import threading
import time
from pathlib import Path

from toolforge_dev import binaries, service_images
from toolforge_dev.cluster import Cluster
from toolforge_dev.deploy import NODE_PORT

MODULES = {
    "gateway": "toolforge_gateway",
    "jobs-api": "toolforge_jobs",
    "builds-api": "toolforge_builds",
}


def pod_processes() -> dict[str, list[int]]:
    """``{chart: [host pid, ...]}`` of the in-cluster services' processes."""
    found: dict[str, list[int]] = {name: [] for name in MODULES}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"/etc/toolforge/config/config.yaml" not in argv:
            continue
        for name, module in MODULES.items():
            if module.encode() in argv:
                found[name].append(int(proc.name))
    return found


def rss_mib(pid: int) -> float:
    """VmRSS of ``pid`` in MiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def attack(
    url: str, tool_dir: Path, ca: Path, concurrency: int, duration: float
) -> dict[str, float]:
    """One vegeta attack; returns rps, p50/p99 ms, success ratio and peak RSS per pod."""
    vegeta = binaries.vegeta().path("vegeta")
    pids = pod_processes()
    peaks = {pid: rss_mib(pid) for pids_ in pids.values() for pid in pids_}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for pid in peaks:
                peaks[pid] = max(peaks[pid], rss_mib(pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    attacked = subprocess.run(
        [
            str(vegeta), "attack", "-rate=0", f"-workers={concurrency}",
            f"-max-workers={concurrency}", f"-connections={concurrency}",
            f"-duration={duration}s", "-keepalive=true",
            f"-cert={tool_dir / 'client.crt'}", f"-key={tool_dir / 'client.key'}",
            f"-root-certs={ca}", "-timeout=30s",
        ],
        input=f"GET {url}\n".encode(),
        capture_output=True,
        check=True,
    )  # fmt: skip
    done.set()
    sampler.join()
    report = json.loads(
        subprocess.run(
            [str(vegeta), "report", "-type=json"],
            input=attacked.stdout,
            capture_output=True,
            check=True,
        ).stdout
    )
    result: dict[str, float] = {
        "rps": report["throughput"],
        "p50_ms": report["latencies"]["50th"] / 1e6,
        "p99_ms": report["latencies"]["99th"] / 1e6,
        "success": report["success"],
    }
    for name, pids_ in pids.items():
        result[f"peak_rss_mib_{name}"] = max((peaks[p] for p in pids_), default=0.0)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20, help="seconds per attack")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--tool", default="demo")
    args = parser.parse_args()
    cluster = Cluster(progress=lambda _m: None)
    tool_dir = cluster.homes_dir / args.tool / ".toolskube"
    ca = cluster.pki_dir / "cluster-ca.crt"

    print("## image sizes (uncompressed OCI archive; app layer = the wheels)")
    for service in service_images.SERVICES:
        archive = service_images.build_service_image(service, progress=lambda _m: None)
        print(
            f"{service.name}: {archive.stat().st_size / 2**20:.0f} MiB, "
            f"app layer {service_images.app_layer_size(archive) / 2**20:.0f} MiB"
        )
    print("## idle RSS per pod (MiB)")
    for name, pids in pod_processes().items():
        print(f"{name}: " + ", ".join(f"{rss_mib(p):.0f}" for p in pids))
    base = f"https://127.0.0.1:{NODE_PORT}"
    for label, path in (
        ("gateway /healthz", "/healthz"),
        ("list jobs (gateway -> jobs API -> apiserver)", f"/jobs/v1/tool/{args.tool}/jobs"),
    ):
        result = attack(base + path, tool_dir, ca, args.concurrency, args.duration)
        print(f"## {label}, {args.concurrency} workers, {args.duration:.0f} s")
        print(json.dumps({k: round(v, 1) for k, v in result.items()}))


if __name__ == "__main__":
    main()
