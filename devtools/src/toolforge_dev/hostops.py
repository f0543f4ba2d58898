"""Host-level operations of the launcher: commands, processes, pod cgroups, mounts, network
namespaces and iptables chains of the local cluster (what a stop must remove, CLUSTER-NOTES.md
"What a stop leaves behind")."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from toolforge_dev.topology import ClusterError

__all__ = [
    "OUR_CHAIN",
    "cgroup_pids",
    "cmdline",
    "cni_netns",
    "iptables_lines",
    "kill_cgroup_pods",
    "mount_points",
    "pid_alive",
    "remove_our_chains",
    "run",
    "terminate",
    "which",
]

OUR_CHAIN = re.compile(r"\b(KUBE|CNI)-[A-Z0-9-]*")


def run(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``; raises :class:`ClusterError` on a non-zero exit when ``check``."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise ClusterError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    return proc


def which(name: str) -> str:
    """The path of an installed program; raises :class:`ClusterError` when absent."""
    path = shutil.which(name)
    if not path:
        raise ClusterError(f"{name} not found on PATH (run `make deps`)")
    return path


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0): treat it as gone.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            return False
    return True


def cmdline(pid: int) -> str:
    """The command line of ``pid`` ( when it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def terminate(pid: int, grace: float) -> None:
    """SIGTERM ``pid``, then SIGKILL after ``grace`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.05)


CGROUP_ROOT = Path("/sys/fs/cgroup")


def kubepods_cgroups() -> Iterator[Path]:
    """Every ``kubepods`` cgroup directory (cgroup v1: one per hierarchy), deepest first."""
    for hierarchy in CGROUP_ROOT.iterdir():
        top = hierarchy / "kubepods"
        if top.is_dir():
            dirs = [Path(p) for p, _, _ in os.walk(top)]
            yield from sorted(dirs, key=lambda p: len(p.parts), reverse=True)


def cgroup_pids() -> set[int]:
    """Pids in the pods' cgroups (``kubepods``)."""
    pids: set[int] = set()
    for cg in kubepods_cgroups():
        with contextlib.suppress(OSError):
            pids.update(int(x) for x in (cg / "cgroup.procs").read_text().split())
    return pids


def kill_cgroup_pods() -> None:
    """SIGKILL every process in the kubelet's pod cgroups, then remove those cgroups."""
    for _ in range(50):
        pids = cgroup_pids()
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    for cg in kubepods_cgroups():
        with contextlib.suppress(OSError):
            cg.rmdir()


def mount_points() -> list[str]:
    """Every mount point of this machine."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        raw = line.split()[4]
        points.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), raw))
    return points


def cni_netns() -> list[str]:
    """Network namespaces that the CNI plugins made for pods (``cni-<uuid>``)."""
    netns_dir = Path("/run/netns")
    if not netns_dir.is_dir():
        return []
    return sorted(p.name for p in netns_dir.iterdir() if p.name.startswith("cni-"))


def iptables_lines(tool: str) -> list[str]:
    """``<tool> -S`` of every table, as lines."""
    save = shutil.which(f"{tool}-save")
    if not save:
        return []
    proc = subprocess.run([save], capture_output=True, text=True)
    return proc.stdout.splitlines() if proc.returncode == 0 else []


def remove_our_chains(tool: str) -> None:
    """Drop every ``KUBE-*`` and ``CNI-*`` chain and every rule that jumps to one.

    This is what ``kube-proxy --cleanup`` and the CNI plugins' DEL would do, done in one
    ``iptables-restore`` of the filtered ruleset so it also works when they cannot run.
    """
    lines = iptables_lines(tool)
    if not any(OUR_CHAIN.search(line) for line in lines):
        return
    kept = [line for line in lines if not OUR_CHAIN.search(line)]
    restore = shutil.which(f"{tool}-restore")
    if restore:
        subprocess.run([restore], input="\n".join(kept) + "\n", text=True, capture_output=True)
