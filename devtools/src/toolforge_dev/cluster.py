"""The local Kubernetes cluster: start, health-check and stop every component.

One node, secured like a real cluster, all from Go-built binaries (see :mod:`binaries`):

==================  =============================================  ==========================
component           listens on                                     health check
==================  =============================================  ==========================
containerd          ``<run>/containerd/containerd.sock``           ``ctr version``
etcd                ``https://127.0.0.1:2379`` (mTLS, own CA)      ``http://127.0.0.1:2381/health``
kube-apiserver      ``https://10.244.0.1:6443``                    ``/readyz``
controller-manager  ``https://127.0.0.1:10257``                    ``/healthz``
scheduler           ``https://127.0.0.1:10259``                    ``/healthz``
kubelet             ``https://10.244.0.1:10250``                   node ``Ready``
kube-proxy          iptables mode                                  ``http://127.0.0.1:10256/healthz``
CoreDNS             ``10.244.0.1:53`` (Service ``10.96.0.10``)      ``http://127.0.0.1:18181/ready``
==================  =============================================  ==========================

The node's address is the gateway of the pod bridge ``tfdev0`` (``10.244.0.1/24``), which the
launcher creates before anything starts: pods reach kube-apiserver and CoreDNS there, and
nothing listens on an outside interface. CoreDNS has no ``forward``: it answers cluster names
only (CLUSTER-NOTES.md, network rule).

The launcher is split by component: :mod:`toolforge_dev.topology` (addresses, names, order),
:mod:`toolforge_dev.cluster_pki` (certificates, kubeconfigs, the admission configuration),
:mod:`toolforge_dev.node` (network, containerd, kubelet, kube-proxy, CoreDNS),
:mod:`toolforge_dev.control_plane` (etcd, kube-apiserver, controller-manager, scheduler),
:mod:`toolforge_dev.bootstrap` (CRDs, manifests, the image list), :mod:`toolforge_dev.netpol`
and :mod:`toolforge_dev.web` (the NetworkPolicy engine and the web path), and
:mod:`toolforge_dev.hostops` (processes, cgroups, mounts, iptables). This module is the
:class:`Cluster` handle that runs them in order and checks their health.

Everything lives in the run directory (:func:`toolforge_dev.paths.run_dir`)::

    pki/ etcd/ containerd/ kubelet/ cni/ config/ logs/<component>.log pids/<component>.pid
    homes/<tool>/   tool homes (stand-in for Toolforge's NFS /data/project/<tool>)
    admin.kubeconfig  cluster-admin credentials (O=system:masters)
    cluster.json      written once the cluster is up

Stopping (and starting, since a killed session leaves state behind) removes every process,
the pods' processes (via their cgroups), mounts under the run directory, the pods' network
namespaces, the bridge, and the ``KUBE-*``/``CNI-*`` iptables chains.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from toolforge_dev import bootstrap, cluster_pki, control_plane, netpol, node, tekton, web
from toolforge_dev.binaries import Binaries
from toolforge_dev.cluster_pki import write_kubeconfig
from toolforge_dev.hostops import (
    OUR_CHAIN,
    cgroup_pids,
    cmdline,
    cni_netns,
    iptables_lines,
    kill_cgroup_pods,
    mount_points,
    pid_alive,
    remove_our_chains,
    run,
    terminate,
    which,
)
from toolforge_dev.paths import run_dir
from toolforge_dev.topology import (
    APISERVER_URL,
    BRIDGE,
    CLUSTER_CIDR,
    CLUSTER_DOMAIN,
    COMPONENTS,
    DNS_SERVICE_IP,
    KUBERNETES_SERVICE_IP,
    NODE_IP,
    NODE_NAME,
    POD_SUBNET,
    SERVICE_CIDR,
    ClusterError,
    Progress,
)

__all__ = [
    "APISERVER_URL",
    "BRIDGE",
    "CLUSTER_CIDR",
    "CLUSTER_DOMAIN",
    "COMPONENTS",
    "DNS_SERVICE_IP",
    "KUBERNETES_SERVICE_IP",
    "NODE_IP",
    "NODE_NAME",
    "POD_SUBNET",
    "SERVICE_CIDR",
    "Cluster",
    "ClusterError",
    "write_kubeconfig",
]


@dataclass
class Cluster:
    """A handle on the local cluster in ``directory`` (default: the configured run directory).

    The handle holds no process objects: every operation reads the run directory, so a
    cluster started by one process (``make up``) can be used or stopped by another.
    """

    directory: Path = field(default_factory=run_dir)
    progress: Progress = print

    # ----- layout -----------------------------------------------------------------------------

    @property
    def pki_dir(self) -> Path:
        """PKI: cluster CA, backend CA, etcd CA, component certificates."""
        return self.directory / "pki"

    @property
    def logs_dir(self) -> Path:
        """One log file per component."""
        return self.directory / "logs"

    @property
    def homes_dir(self) -> Path:
        """Tool homes, the local stand-in for Toolforge's NFS ``/data/project``."""
        return self.directory / "homes"

    def service_kubeconfig(self, service: str) -> Path:
        """Kubeconfig of a platform API's own identity (``jobs-api``, ``builds-api``):
        user ``toolforge-<service>``, with only the RBAC of ``manifests/20-platform-apis.yaml``."""
        return self.config_file(f"{service}.kubeconfig")

    @property
    def admin_kubeconfig(self) -> Path:
        """Cluster-admin kubeconfig (``O=system:masters``)."""
        return self.directory / "admin.kubeconfig"

    @property
    def containerd_socket(self) -> Path:
        """containerd's gRPC socket."""
        return self.directory / "containerd" / "containerd.sock"

    @property
    def state_file(self) -> Path:
        """Written when the cluster is up: addresses and paths, as JSON."""
        return self.directory / "cluster.json"

    def config_file(self, name: str) -> Path:
        """``<run>/config/<name>``: a generated configuration file."""
        return self.directory / "config" / name

    def _pidfile(self, component: str) -> Path:
        return self.directory / "pids" / f"{component}.pid"

    def log_path(self, component: str) -> Path:
        """The log file of ``component``."""
        return self.logs_dir / f"{component}.log"

    # ----- public operations ------------------------------------------------------------------

    def start(self, binaries: Binaries, image_archives: dict[str, Path]) -> None:
        """Start a fresh cluster, clearing whatever an earlier run left behind.

        ``image_archives`` maps image short names to OCI archives (see :mod:`images`); they are
        imported into containerd's ``k8s.io`` namespace. Blocks until every component is
        healthy and the node is Ready. Raises :class:`ClusterError` (after stopping what was
        started) when a component fails; its log is in :meth:`log_path`.
        """
        started = time.monotonic()
        image_archives = {**image_archives, **tekton.platform_images(self.progress)}
        self.cleanup()
        shutil.rmtree(self.directory, ignore_errors=True)
        for sub in (
            "pki",
            "etcd",
            "containerd",
            "kubelet",
            "cni/net.d",
            "cni/ipam",
            "config",
            "logs",
            "pids",
            "homes",
            "pod-logs",
        ):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o755)  # noqa: S103 - homes below must be reachable
        try:
            self.step("PKI", lambda: cluster_pki.write_pki(self))
            self.step("network", lambda: node.setup_network(self))
            # containerd reads the platform registry's hosts.toml (CA, pull endpoint) at start.
            tekton.write_registry_hosts(
                self.directory / "containerd" / "certs.d", self.pki_dir / "cluster-ca.crt"
            )
            node.start_containerd(self)
            self.step("images", lambda: node.import_images(self, image_archives))
            control_plane.start_etcd(self, binaries)
            control_plane.start_apiserver(self, binaries)
            control_plane.start_controller_manager(self, binaries)
            control_plane.start_scheduler(self, binaries)
            node.start_kubelet(self, binaries)
            node.start_kube_proxy(self, binaries)
            self.step(
                "bootstrap objects", lambda: bootstrap.bootstrap(self, binaries, image_archives)
            )
            node.start_coredns(self, binaries)
            self.step("NetworkPolicy engine", lambda: netpol.start(self, binaries))
            self.step("web traffic (Traefik, fourohfour)", lambda: web.install(self, binaries))
            kubectl = functools.partial(self.kubectl, binaries)
            self.step("tekton", lambda: tekton.install_platform(kubectl, self.progress))
        except BaseException:
            self.progress("start failed; stopping what was started")
            self.stop()
            raise
        elapsed = time.monotonic() - started
        self.state_file.write_text(json.dumps(self.describe(), indent=2) + "\n")
        self.progress(f"cluster up in {elapsed:.1f} s")

    def stop(self) -> None:
        """Stop every component and remove processes, mounts and network state."""
        self.progress("stopping cluster")
        self.state_file.unlink(missing_ok=True)
        self.cleanup()
        self.progress("cluster stopped")

    def is_up(self) -> bool:
        """True when the cluster was started and every component is healthy now."""
        if not self.state_file.exists():
            return False
        return all(self.health().values())

    def describe(self) -> dict[str, Any]:
        """Addresses and paths for users of the cluster (the content of ``cluster.json``)."""
        return {
            "apiserver": APISERVER_URL,
            "node": NODE_NAME,
            "node_ip": NODE_IP,
            "pod_subnet": POD_SUBNET,
            "service_cidr": SERVICE_CIDR,
            "dns_service_ip": DNS_SERVICE_IP,
            "run_dir": str(self.directory),
            "admin_kubeconfig": str(self.admin_kubeconfig),
            "homes_dir": str(self.homes_dir),
            "pki_dir": str(self.pki_dir),
            "logs_dir": str(self.logs_dir),
            "containerd_socket": str(self.containerd_socket),
        }

    def health(self) -> dict[str, bool]:
        """Component name -> healthy, checked now (each check times out after 2 s)."""
        result: dict[str, bool] = {}
        for component in COMPONENTS:
            try:
                result[component] = self.alive(component) and self._check(component)
            except (OSError, httpx.HTTPError, ssl.SSLError, ClusterError):
                result[component] = False
        return result

    def pids(self) -> dict[str, int]:
        """Component name -> pid, for components whose pid file names a live process."""
        found = {}
        for component in COMPONENTS:
            pid = self.read_pid(component)
            if pid is not None and pid_alive(pid):
                found[component] = pid
        return found

    def stop_apiserver(self) -> None:
        """Stop kube-apiserver alone (for fault tests); :meth:`start_apiserver` brings it back."""
        pid = self.read_pid("kube-apiserver")
        if pid is not None and pid_alive(pid) and self._is_ours(pid):
            terminate(pid, grace=5)

    def start_apiserver(self, binaries: Binaries) -> None:
        """Start kube-apiserver again with the same flags and wait until it is healthy.
        Raises :class:`ClusterError` when it does not come back."""
        control_plane.start_apiserver(self, binaries)

    def leftovers(self) -> list[str]:
        """What a stop should have removed but is still there (empty after a clean stop)."""
        left = [f"process {pid}: {cmd}" for pid, cmd in self._our_processes()]
        left += [f"mount {m}" for m in self._our_mounts()]
        left += [f"pod process {pid}" for pid in cgroup_pids()]
        if Path(f"/sys/class/net/{BRIDGE}").exists():
            left.append(f"bridge {BRIDGE}")
        left += [f"netns {n}" for n in cni_netns()]
        for tool in ("iptables", "ip6tables"):
            left += [f"{tool}: {r}" for r in iptables_lines(tool) if OUR_CHAIN.search(r)]
        left += [f"ipset {name}" for name in netpol.leftover_ipsets()]
        return left

    # ----- steps ------------------------------------------------------------------------------

    def step(self, what: str, fn: Callable[[], None]) -> None:
        """Run one start-up step ``fn``, reporting ``what`` and its duration."""
        t0 = time.monotonic()
        fn()
        self.progress(f"  {what}: done in {time.monotonic() - t0:.1f} s")

    def kubectl(self, binaries: Binaries, *args: str, input_text: str | None = None) -> str:
        """Run kubectl as cluster-admin; returns stdout. Raises :class:`ClusterError`."""
        proc = subprocess.run(
            [str(binaries.kubectl), "--kubeconfig", str(self.admin_kubeconfig), *args],
            input=input_text,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if proc.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    # ----- processes --------------------------------------------------------------------------

    def launch(self, component: str, argv: list[str]) -> None:
        """Start ``argv`` as the host process of ``component`` (own session; log and pid
        file in the run directory)."""
        self.progress(f"  starting {component}")
        log = self.log_path(component).open("ab")
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.directory,
        )
        log.close()
        self._pidfile(component).write_text(f"{proc.pid}\n")

    def read_pid(self, component: str) -> int | None:
        """The pid recorded for ``component``, ``None`` when there is none."""
        try:
            return int(self._pidfile(component).read_text().strip())
        except (OSError, ValueError):
            return None

    def alive(self, component: str) -> bool:
        """Whether ``component``'s recorded process is alive."""
        pid = self.read_pid(component)
        return pid is not None and pid_alive(pid)

    def wait_for(self, component: str, timeout: float) -> None:
        """Wait up to ``timeout`` seconds until ``component`` is healthy; raises
        :class:`ClusterError` with its log tail when it exits or stays unhealthy."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        last_error = "not checked yet"
        while time.monotonic() < deadline:
            if not self.alive(component):
                raise ClusterError(
                    f"{component} exited during start-up; last log lines:\n"
                    f"{self.log_tail(component)}"
                )
            try:
                if self._check(component):
                    self.progress(f"  {component}: healthy after {time.monotonic() - t0:.1f} s")
                    return
                last_error = "not ready"
            except (OSError, httpx.HTTPError, ssl.SSLError, ClusterError) as exc:
                last_error = str(exc) or type(exc).__name__
            time.sleep(0.25)
        raise ClusterError(
            f"{component} not healthy after {timeout:.0f} s ({last_error}); last log lines:\n"
            f"{self.log_tail(component)}"
        )

    def log_tail(self, component: str, lines: int = 30) -> str:
        """The last ``lines`` lines of a component's log."""
        try:
            text = self.log_path(component).read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _client(self) -> httpx.Client:
        d = self.pki_dir
        ctx = ssl.create_default_context(cafile=str(d / "cluster-ca.crt"))
        ctx.load_cert_chain(str(d / "admin-client.crt"), str(d / "admin-client.key"))
        return httpx.Client(verify=ctx, timeout=2.0)

    def _check(self, component: str) -> bool:
        if component == "containerd":
            proc = subprocess.run(
                [which("ctr"), "-a", str(self.containerd_socket), "version"],
                capture_output=True,
                timeout=5,
            )
            return proc.returncode == 0
        if component == "etcd":
            r = httpx.get("http://127.0.0.1:2381/health", timeout=2.0)
            return r.status_code == 200 and r.json().get("health") == "true"
        if component == "kube-proxy":
            return httpx.get("http://127.0.0.1:10256/healthz", timeout=2.0).status_code == 200
        if component == "coredns":
            return httpx.get("http://127.0.0.1:18181/ready", timeout=2.0).status_code == 200
        urls = {
            "kube-apiserver": f"{APISERVER_URL}/readyz",
            "kube-controller-manager": "https://127.0.0.1:10257/healthz",
            "kube-scheduler": "https://127.0.0.1:10259/healthz",
        }
        with self._client() as client:
            if component in urls:
                return client.get(urls[component]).status_code == 200
            if component == "kubelet":
                r = client.get(f"{APISERVER_URL}/api/v1/nodes/{NODE_NAME}")
                if r.status_code != 200:
                    return False
                conditions = r.json().get("status", {}).get("conditions", [])
                return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        raise ClusterError(f"unknown component {component}")

    # ----- cleanup ----------------------------------------------------------------------------

    def cleanup(self) -> None:
        """Remove every trace of a cluster in this run directory, running or not.

        Order matters: the kubelet goes first so that it restarts nothing, then the pods'
        processes (found through their cgroups), then everything else, then mounts and the
        network state.
        """
        stop_order = ["kubelet", *[c for c in reversed(COMPONENTS) if c != "kubelet"]]
        for component in stop_order:
            pid = self.read_pid(component)
            if pid is not None and pid_alive(pid) and self._is_ours(pid):
                terminate(pid, grace=10 if component == "etcd" else 5)
        kill_cgroup_pods()
        for pid, _ in self._our_processes():  # shims and anything whose pid file was lost
            terminate(pid, grace=2)
        for netns in cni_netns():
            run(["ip", "netns", "delete", netns], check=False)
        for mount in sorted(self._our_mounts(), key=lambda m: m.count("/"), reverse=True):
            if subprocess.run(["umount", mount], capture_output=True).returncode != 0:
                run(["umount", "-l", mount], check=False)
        if Path(f"/sys/class/net/{BRIDGE}").exists():
            run(["ip", "link", "delete", BRIDGE], check=False)
        for tool in ("iptables", "ip6tables"):
            remove_our_chains(tool)
        netpol.remove_ipsets()  # kube-router's; only once no rule uses them

    def _is_ours(self, pid: int) -> bool:
        return str(self.directory) in cmdline(pid)

    def _our_processes(self) -> list[tuple[int, str]]:
        marker = str(self.directory)
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                cmd = cmdline(int(entry.name))
                if marker + "/" in cmd or cmd.endswith(marker):
                    found.append((int(entry.name), cmd))
        return found

    def _our_mounts(self) -> list[str]:
        prefix = str(self.directory) + "/"
        return [m for m in mount_points() if m.startswith(prefix)]
