"""Benchmark: local cluster start-up time and peak memory.

Run (as root, with the binaries and images cached, and no cluster running)::

    uv run python bench/cluster_startup.py --runs 3

Each run starts a fresh cluster (``Cluster.start``), runs one pod (``python3 -c
'print(42)'``) through the API, then stops it. Throughout, a sampler sums the resident set
size (VmRSS) of every cluster process: the components (found by the run directory in their
command line), containerd shims, and every process in the kubelet's pod cgroups. Reported:
start-up wall time, pod round-trip time, stop time, and the peak summed RSS.
Results are printed as a table and, with ``--json``, as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import threading
import time
from pathlib import Path

from toolforge_dev import binaries, images
from toolforge_dev.cluster import Cluster
from toolforge_dev.hostops import cgroup_pids

MIB = 1024 * 1024


def _rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cluster_rss(cluster: Cluster) -> int:
    """Summed RSS (bytes) of every process of the cluster, pods included."""
    marker = str(cluster.directory) + "/"
    pids = set(cgroup_pids())
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmd:
                pids.add(int(entry.name))
    return sum(_rss_bytes(p) for p in pids)


class Sampler(threading.Thread):
    """Samples :func:`cluster_rss` every ``interval`` seconds, keeping the peak."""

    def __init__(self, cluster: Cluster, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.cluster, self.interval, self.peak = cluster, interval, 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, cluster_rss(self.cluster))
            time.sleep(self.interval)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


def one_run(
    cluster: Cluster, bins: binaries.Binaries, archives: dict[str, Path]
) -> dict[str, float]:
    sampler = Sampler(cluster)
    sampler.start()
    t0 = time.monotonic()
    cluster.start(bins, archives)
    started = time.monotonic() - t0
    t1 = time.monotonic()
    ns = "bench"
    cluster.kubectl(bins, "create", "namespace", ns)
    deadline = time.monotonic() + 30
    while "default" not in cluster.kubectl(bins, "get", "sa", "-n", ns, "-o", "name"):
        if time.monotonic() > deadline:
            raise RuntimeError("no default ServiceAccount")
        time.sleep(0.2)
    cluster.kubectl(
        bins,
        "run",
        "p42",
        "-n",
        ns,
        "--restart=Never",
        f"--image={images.PYTHON311.ref}",
        "--",
        "python3",
        "-c",
        "print(42)",
    )
    cluster.kubectl(
        bins,
        "wait",
        "-n",
        ns,
        "--for=jsonpath={.status.phase}=Succeeded",
        "pod/p42",
        "--timeout=120s",
    )
    log = cluster.kubectl(bins, "logs", "-n", ns, "p42").strip()
    if log != "42":
        raise RuntimeError(f"unexpected pod log {log!r}")
    pod = time.monotonic() - t1
    peak = sampler.stop()
    t2 = time.monotonic()
    cluster.stop()
    stopped = time.monotonic() - t2
    return {"start_s": started, "pod_s": pod, "stop_s": stopped, "peak_rss_mib": peak / MIB}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    cluster = Cluster(progress=lambda m: None)
    if cluster.is_up():
        raise SystemExit("a cluster is running; stop it first (make down)")
    bins = binaries.Binaries.from_cache()
    archives = images.build_images(progress=lambda m: None)
    results = [one_run(cluster, bins, archives) for _ in range(args.runs)]
    cpu = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    summary = {
        key: {
            "median": statistics.median(r[key] for r in results),
            "max": max(r[key] for r in results),
        }
        for key in results[0]
    }
    if args.json:
        print(json.dumps({"runs": results, "summary": summary, "cpus": cpu}, indent=2))
        return
    print(f"{args.runs} runs, {cpu} CPUs")
    print(f"{'metric':<14}{'median':>10}{'max':>10}")
    for key, stats in summary.items():
        print(f"{key:<14}{stats['median']:>10.1f}{stats['max']:>10.1f}")


if __name__ == "__main__":
    main()
