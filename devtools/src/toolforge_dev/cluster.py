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

import base64
import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from cryptography.hazmat.primitives import serialization

from toolforge_admin.pki import CertificateAuthority, PlatformPKI, generate_key, subject, write_key
from toolforge_dev import images, netpol, web
from toolforge_dev.binaries import Binaries
from toolforge_dev.paths import REPO_ROOT, run_dir

Progress = Callable[[str], None]

NODE_NAME = "toolforge-dev"
BRIDGE = "tfdev0"
NODE_IP = "10.244.0.1"
POD_SUBNET = "10.244.0.0/24"
CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
DNS_SERVICE_IP = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
APISERVER_URL = f"https://{NODE_IP}:6443"

#: Start order; stop runs it backwards.
COMPONENTS = (
    "containerd",
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "coredns",
)

_MANIFESTS = REPO_ROOT / "devtools" / "manifests"
_CRDS = REPO_ROOT / "devtools" / "crds"


class ClusterError(Exception):
    """The cluster could not be started or stopped; the message says which component and why."""


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
        return self._config(f"{service}.kubeconfig")

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

    def _config(self, name: str) -> Path:
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
            self._step("PKI", self._write_pki)
            self._step("network", self._setup_network)
            self._start_containerd()
            self._step("images", lambda: self._import_images(image_archives))
            self._start_etcd(binaries)
            self._start_apiserver(binaries)
            self._start_controller_manager(binaries)
            self._start_scheduler(binaries)
            self._start_kubelet(binaries)
            self._start_kube_proxy(binaries)
            self._step("bootstrap objects", lambda: self._bootstrap(binaries, image_archives))
            self._start_coredns(binaries)
            self._step("NetworkPolicy engine", lambda: netpol.start(self, binaries))
            self._step("web traffic (Traefik, fourohfour)", lambda: web.install(self, binaries))
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
                result[component] = self._alive(component) and self._check(component)
            except (OSError, httpx.HTTPError, ssl.SSLError, ClusterError):
                result[component] = False
        return result

    def pids(self) -> dict[str, int]:
        """Component name -> pid, for components whose pid file names a live process."""
        found = {}
        for component in COMPONENTS:
            pid = self._read_pid(component)
            if pid is not None and _pid_alive(pid):
                found[component] = pid
        return found

    def stop_apiserver(self) -> None:
        """Stop kube-apiserver alone (for fault tests); :meth:`start_apiserver` brings it back."""
        pid = self._read_pid("kube-apiserver")
        if pid is not None and _pid_alive(pid) and self._is_ours(pid):
            _terminate(pid, grace=5)

    def start_apiserver(self, binaries: Binaries) -> None:
        """Start kube-apiserver again with the same flags and wait until it is healthy.
        Raises :class:`ClusterError` when it does not come back."""
        self._start_apiserver(binaries)

    def leftovers(self) -> list[str]:
        """What a stop should have removed but is still there (empty after a clean stop)."""
        left = [f"process {pid}: {cmd}" for pid, cmd in self._our_processes()]
        left += [f"mount {m}" for m in self._our_mounts()]
        left += [f"pod process {pid}" for pid in _cgroup_pids()]
        if Path(f"/sys/class/net/{BRIDGE}").exists():
            left.append(f"bridge {BRIDGE}")
        left += [f"netns {n}" for n in _cni_netns()]
        for tool in ("iptables", "ip6tables"):
            left += [f"{tool}: {r}" for r in _iptables_lines(tool) if _OUR_CHAIN.search(r)]
        left += [f"ipset {name}" for name in netpol.leftover_ipsets()]
        return left

    # ----- steps ------------------------------------------------------------------------------

    def _step(self, what: str, fn: Callable[[], None]) -> None:
        t0 = time.monotonic()
        fn()
        self.progress(f"  {what}: done in {time.monotonic() - t0:.1f} s")

    def _write_pki(self) -> None:
        d = self.pki_dir
        platform = PlatformPKI.ensure(d)
        ca = platform.cluster_ca
        etcd_ca = CertificateAuthority.load_or_create(d, "etcd-ca", "toolforge-etcd-ca")
        etcd_ca.issue_pair(
            d,
            "etcd-server",
            subject("etcd"),
            server=True,
            client=True,
            dns_names=["localhost"],
            ip_addresses=["127.0.0.1"],
        )
        etcd_ca.issue_pair(d, "apiserver-etcd-client", subject("kube-apiserver"), client=True)
        ca.issue_pair(
            d,
            "apiserver",
            subject("kube-apiserver"),
            server=True,
            dns_names=[
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                f"kubernetes.default.svc.{CLUSTER_DOMAIN}",
                "localhost",
            ],
            ip_addresses=[KUBERNETES_SERVICE_IP, NODE_IP, "127.0.0.1"],
        )
        ca.issue_pair(
            d,
            "apiserver-kubelet-client",
            subject("kube-apiserver-kubelet-client", ["system:masters"]),
            client=True,
        )
        # kube-apiserver's client identity towards admission webhooks (the envvars webhook
        # requires it): see _admission_config.
        ca.issue_pair(d, "apiserver-webhook-client", subject("kube-apiserver"), client=True)
        ca.issue_pair(
            d,
            "kubelet-server",
            subject(NODE_NAME),
            server=True,
            dns_names=[NODE_NAME, "localhost"],
            ip_addresses=[NODE_IP, "127.0.0.1"],
        )
        for name in ("kube-controller-manager", "kube-scheduler"):
            ca.issue_pair(
                d,
                f"{name}-server",
                subject(name),
                server=True,
                dns_names=["localhost"],
                ip_addresses=["127.0.0.1"],
            )
        clients = {
            "admin": subject("toolforge-dev-admin", ["system:masters"]),
            "kube-controller-manager": subject("system:kube-controller-manager"),
            "kube-scheduler": subject("system:kube-scheduler"),
            "kubelet": subject(f"system:node:{NODE_NAME}", ["system:nodes"]),
            "kube-proxy": subject("system:kube-proxy"),
            "coredns": subject("system:coredns"),
            # The platform APIs' own identities (RBAC in manifests/20-platform-apis.yaml).
            "jobs-api": subject("toolforge-jobs-api"),
            "builds-api": subject("toolforge-builds-api"),
            "envvars-api": subject("toolforge-envvars-api"),
            "envvars-webhook": subject("toolforge-envvars-webhook"),
            "emailer": subject("toolforge-emailer"),  # RBAC: manifests/50-emailer.yaml
        }
        for name, dn in clients.items():
            cert, key = ca.issue_pair(d, f"{name}-client", dn, client=True)
            embed = name == "admin"
            path = self.admin_kubeconfig if embed else self._config(f"{name}.kubeconfig")
            write_kubeconfig(
                path, user=name, cert=cert, key=key, ca=d / "cluster-ca.crt", embed=embed
            )
        # The aggregation layer's front proxy has a CA of its own, as in kubeadm.
        front = CertificateAuthority.load_or_create(d, "front-proxy-ca", "toolforge-front-proxy-ca")
        front.issue_pair(d, "front-proxy-client", subject("front-proxy-client"), client=True)
        sa_key = generate_key()
        write_key(d / "sa.key", sa_key)
        pub = sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        (d / "sa.pub").write_bytes(pub)

    def _setup_network(self) -> None:
        for key, value in (
            ("net/ipv4/ip_forward", "1"),
            ("net/bridge/bridge-nf-call-iptables", "1"),
            ("net/bridge/bridge-nf-call-ip6tables", "1"),
        ):
            Path("/proc/sys", key).write_text(value)
        prefix = ipaddress.ip_network(POD_SUBNET).prefixlen
        _run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        _run(["ip", "addr", "add", f"{NODE_IP}/{prefix}", "dev", BRIDGE])
        _run(["ip", "link", "set", BRIDGE, "up"])
        conflist = {
            "cniVersion": "1.0.0",
            "name": "tfdev",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [
                            [
                                {
                                    "subnet": POD_SUBNET,
                                    "gateway": NODE_IP,
                                    "rangeStart": str(ipaddress.ip_network(POD_SUBNET)[10]),
                                }
                            ]
                        ],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.directory / "cni" / "ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }
        (self.directory / "cni" / "net.d" / "10-tfdev.conflist").write_text(json.dumps(conflist))

    def _start_containerd(self) -> None:
        root = self.directory / "containerd"
        pause = images.PAUSE.ref
        config = f"""version = 2
root = "{root}/root"
state = "{root}/state"
[grpc]
  address = "{self.containerd_socket}"
[ttrpc]
  address = ""
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{self.directory}/cni/net.d"
"""
        # restrict_oom_score_adj: these machines drop CAP_SYS_RESOURCE, so runc cannot set a
        # negative oom_score_adj for the sandbox (CLUSTER-NOTES.md).
        path = self._config("containerd.toml")
        path.write_text(config)
        self._launch("containerd", [_which("containerd"), "--config", str(path)])
        self._wait("containerd", timeout=30)

    def _import_images(self, archives: dict[str, Path]) -> None:
        images.import_images(
            archives.values(),
            ctr=_which("ctr"),
            address=self.containerd_socket,
            progress=lambda m: self.progress(f"    {m}"),
        )

    def _start_etcd(self, binaries: Binaries) -> None:
        d = self.pki_dir
        self._launch(
            "etcd",
            [
                str(binaries.etcd),
                "--name",
                NODE_NAME,
                "--data-dir",
                str(self.directory / "etcd"),
                "--listen-client-urls",
                "https://127.0.0.1:2379",
                "--advertise-client-urls",
                "https://127.0.0.1:2379",
                "--listen-peer-urls",
                "https://127.0.0.1:2380",
                "--initial-advertise-peer-urls",
                "https://127.0.0.1:2380",
                "--initial-cluster",
                f"{NODE_NAME}=https://127.0.0.1:2380",
                "--listen-metrics-urls",
                "http://127.0.0.1:2381",
                "--cert-file",
                str(d / "etcd-server.crt"),
                "--key-file",
                str(d / "etcd-server.key"),
                "--client-cert-auth",
                "--trusted-ca-file",
                str(d / "etcd-ca.crt"),
                "--peer-cert-file",
                str(d / "etcd-server.crt"),
                "--peer-key-file",
                str(d / "etcd-server.key"),
                "--peer-client-cert-auth",
                "--peer-trusted-ca-file",
                str(d / "etcd-ca.crt"),
                "--log-level",
                "warn",
            ],
        )
        self._wait("etcd", timeout=30)

    def _start_apiserver(self, binaries: Binaries) -> None:
        d = self.pki_dir
        admission = ",".join(
            [
                "NamespaceLifecycle",
                "LimitRanger",
                "ServiceAccount",
                "DefaultStorageClass",
                "DefaultTolerationSeconds",
                "NodeRestriction",
                "PodSecurity",
                "Priority",
                "StorageObjectInUseProtection",
                "RuntimeClass",
                "CertificateApproval",
                "CertificateSigning",
                "CertificateSubjectRestriction",
                "TaintNodesByCondition",
                "MutatingAdmissionWebhook",
                "ValidatingAdmissionPolicy",
                "ValidatingAdmissionWebhook",
                "ResourceQuota",
                # CVE-2020-8554: no Service may claim externalIPs (charts/README.md).
                "DenyServiceExternalIPs",
            ]
        )
        self._launch(
            "kube-apiserver",
            [
                str(binaries.kube_apiserver),
                "--bind-address",
                NODE_IP,
                "--advertise-address",
                NODE_IP,
                "--secure-port",
                "6443",
                "--etcd-servers",
                "https://127.0.0.1:2379",
                "--etcd-cafile",
                str(d / "etcd-ca.crt"),
                "--etcd-certfile",
                str(d / "apiserver-etcd-client.crt"),
                "--etcd-keyfile",
                str(d / "apiserver-etcd-client.key"),
                "--tls-cert-file",
                str(d / "apiserver.crt"),
                "--tls-private-key-file",
                str(d / "apiserver.key"),
                "--client-ca-file",
                str(d / "cluster-ca.crt"),
                "--kubelet-client-certificate",
                str(d / "apiserver-kubelet-client.crt"),
                "--kubelet-client-key",
                str(d / "apiserver-kubelet-client.key"),
                "--kubelet-certificate-authority",
                str(d / "cluster-ca.crt"),
                "--kubelet-preferred-address-types",
                "InternalIP",
                "--service-account-issuer",
                f"https://kubernetes.default.svc.{CLUSTER_DOMAIN}",
                "--service-account-key-file",
                str(d / "sa.pub"),
                "--service-account-signing-key-file",
                str(d / "sa.key"),
                "--service-cluster-ip-range",
                SERVICE_CIDR,
                "--authorization-mode",
                "Node,RBAC",
                "--enable-admission-plugins",
                admission,
                "--admission-control-config-file",
                str(self._admission_config()),
                "--allow-privileged=true",
                "--profiling=false",
                "--anonymous-auth=true",  # default; RBAC allows anonymous only /livez, /readyz ...
                "--requestheader-client-ca-file",
                str(d / "front-proxy-ca.crt"),
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                "--proxy-client-cert-file",
                str(d / "front-proxy-client.crt"),
                "--proxy-client-key-file",
                str(d / "front-proxy-client.key"),
            ],
        )
        self._wait("kube-apiserver", timeout=90)

    def _admission_config(self) -> Path:
        """The AdmissionConfiguration that makes kube-apiserver present its webhook client
        certificate (CN ``kube-apiserver``, cluster CA) to every admission webhook (Kubernetes
        "Dynamic Admission Control", "Authenticate apiservers")."""
        d = self.pki_dir
        kubeconfig = self._config("apiserver-webhook.kubeconfig")
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "users": [
                        {
                            "name": "*",
                            "user": {
                                "client-certificate": str(d / "apiserver-webhook-client.crt"),
                                "client-key": str(d / "apiserver-webhook-client.key"),
                            },
                        }
                    ],
                }
            )
        )
        webhook = {
            "apiVersion": "apiserver.config.k8s.io/v1",
            "kind": "WebhookAdmissionConfiguration",
            "kubeConfigFile": str(kubeconfig),
        }
        path = self._config("admission.yaml")
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "apiserver.config.k8s.io/v1",
                    "kind": "AdmissionConfiguration",
                    "plugins": [
                        {"name": name, "configuration": webhook}
                        for name in ("MutatingAdmissionWebhook", "ValidatingAdmissionWebhook")
                    ],
                }
            )
        )
        return path

    def _control_plane_flags(self, component: str) -> list[str]:
        """Flags shared by controller-manager and scheduler: identity, serving TLS, no HA."""
        d, kc = self.pki_dir, str(self._config(f"{component}.kubeconfig"))
        return [
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            f"--tls-cert-file={d / f'{component}-server.crt'}",
            f"--tls-private-key-file={d / f'{component}-server.key'}",
            f"--client-ca-file={d / 'cluster-ca.crt'}",
            "--leader-elect=false",
            "--profiling=false",
        ]

    def _start_controller_manager(self, binaries: Binaries) -> None:
        d = self.pki_dir
        component = "kube-controller-manager"
        argv = [str(binaries.kube_controller_manager), *self._control_plane_flags(component)]
        argv += [
            f"--root-ca-file={d / 'cluster-ca.crt'}",
            f"--service-account-private-key-file={d / 'sa.key'}",
            "--use-service-account-credentials=true",
            # The CSR signer (kubernetes.io/kube-apiserver-client and the other built-in
            # signers) signs with the cluster CA, so tool certificates authenticate.
            f"--cluster-signing-cert-file={d / 'cluster-ca.crt'}",
            f"--cluster-signing-key-file={d / 'cluster-ca.key'}",
            "--cluster-signing-duration=8760h",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--cluster-cidr={CLUSTER_CIDR}",
        ]
        self._launch(component, argv)
        self._wait(component, timeout=60)

    def _start_scheduler(self, binaries: Binaries) -> None:
        component = "kube-scheduler"
        self._launch(
            component, [str(binaries.kube_scheduler), *self._control_plane_flags(component)]
        )
        self._wait(component, timeout=60)

    def _start_kubelet(self, binaries: Binaries) -> None:
        d = self.pki_dir
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": NODE_IP,
            "port": 10250,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 10248,
            "readOnlyPort": 0,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(d / "cluster-ca.crt")},
            },
            "authorization": {"mode": "Webhook"},
            "tlsCertFile": str(d / "kubelet-server.crt"),
            "tlsPrivateKeyFile": str(d / "kubelet-server.key"),
            "cgroupDriver": "cgroupfs",
            "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "clusterDNS": [DNS_SERVICE_IP],
            "clusterDomain": CLUSTER_DOMAIN,
            "resolvConf": "",  # pods get cluster DNS only, never the host's resolvers
            "podLogsDir": str(self.directory / "pod-logs"),
            "volumePluginDir": str(self.directory / "kubelet" / "volume-plugins"),
            "hairpinMode": "hairpin-veth",
            # Images come only from local import: never garbage-collect or evict them.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "serializeImagePulls": False,
            "rotateCertificates": False,
            "serverTLSBootstrap": False,
            "protectKernelDefaults": False,
            "makeIPTablesUtilChains": False,
        }
        path = self._config("kubelet.yaml")
        path.write_text(yaml.safe_dump(config))
        self._launch(
            "kubelet",
            [
                str(binaries.kubelet),
                "--config",
                str(path),
                "--kubeconfig",
                str(self._config("kubelet.kubeconfig")),
                "--root-dir",
                str(self.directory / "kubelet"),
                "--cert-dir",
                str(self.directory / "kubelet" / "pki"),
                "--hostname-override",
                NODE_NAME,
                "--node-ip",
                NODE_IP,
                "--v",
                "1",
            ],
        )
        self._wait("kubelet", timeout=90)

    def _start_kube_proxy(self, binaries: Binaries) -> None:
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "iptables",
            "clientConnection": {"kubeconfig": str(self._config("kube-proxy.kubeconfig"))},
            "hostnameOverride": NODE_NAME,
            "clusterCIDR": CLUSTER_CIDR,
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            # NodePorts answer on loopback and on the node address only.
            "nodePortAddresses": ["127.0.0.0/8", f"{NODE_IP}/32"],
            # Leave the host's conntrack sysctls alone.
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
        }
        path = self._config("kube-proxy.yaml")
        path.write_text(yaml.safe_dump(config))
        self._launch("kube-proxy", [str(binaries.kube_proxy), "--config", str(path)])
        self._wait("kube-proxy", timeout=60)

    def _start_coredns(self, binaries: Binaries) -> None:
        corefile = f""".:53 {{
    bind {NODE_IP}
    errors
    health 127.0.0.1:18080
    ready 127.0.0.1:18181
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {self._config("coredns.kubeconfig")}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    cache 30
}}
"""
        # No `forward`: cluster names only, nothing leaves the machine.
        path = self._config("Corefile")
        path.write_text(corefile)
        self._launch("coredns", [str(binaries.coredns), "-conf", str(path)])
        self._wait("coredns", timeout=60)

    def _bootstrap(self, binaries: Binaries, archives: dict[str, Path]) -> None:
        """Apply the cluster's own objects: DNS, RBAC for host components, the image list.

        CRDs (``devtools/crds/``) go first and must be established before the manifests,
        which may hold objects of their kinds (the ``buildpacks`` Pipeline and Task)."""
        crds = sorted(_CRDS.glob("*/*.yaml"))
        if crds:
            self.kubectl(
                binaries,
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                ",".join(map(str, crds)),
            )
            self.kubectl(
                binaries, "wait", "--for=condition=established", "--timeout=60s", "crd", "--all"
            )
            # Established is not yet servable: until each resource's watch cache is initialised,
            # lists answer 429 "storage is (re)initializing". kubectl retries 429s, so one
            # successful list per resource means the API is ready for the services.
            plurals = self.kubectl(
                binaries, "get", "crd", "-o", "jsonpath={.items[*].metadata.name}"
            ).split()
            deadline = time.monotonic() + 60
            while True:
                try:
                    self.kubectl(binaries, "get", ",".join(plurals), "-A", "-o", "name")
                    break
                except ClusterError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        manifests = sorted(_MANIFESTS.glob("*.yaml"))
        text = "\n---\n".join(
            m.read_text().replace("@DNS_SERVICE_IP@", DNS_SERVICE_IP).replace("@NODE_IP@", NODE_IP)
            for m in manifests
        )
        image_config = images.image_config_yaml(
            [s for s in images.ALL_IMAGES if s.short in archives]
        )
        config_map = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "image-config", "namespace": "tf-public"},
            "data": {"images-v1.yaml": image_config},
        }
        text += "\n---\n" + yaml.safe_dump(config_map)
        self.kubectl(
            binaries, "apply", "--server-side", "--force-conflicts", "-f", "-", input_text=text
        )

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

    def _launch(self, component: str, argv: list[str]) -> None:
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

    def _read_pid(self, component: str) -> int | None:
        try:
            return int(self._pidfile(component).read_text().strip())
        except (OSError, ValueError):
            return None

    def _alive(self, component: str) -> bool:
        pid = self._read_pid(component)
        return pid is not None and _pid_alive(pid)

    def _wait(self, component: str, timeout: float) -> None:
        t0 = time.monotonic()
        deadline = t0 + timeout
        last_error = "not checked yet"
        while time.monotonic() < deadline:
            if not self._alive(component):
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
                [_which("ctr"), "-a", str(self.containerd_socket), "version"],
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
            pid = self._read_pid(component)
            if pid is not None and _pid_alive(pid) and self._is_ours(pid):
                _terminate(pid, grace=10 if component == "etcd" else 5)
        _kill_cgroup_pods()
        for pid, _ in self._our_processes():  # shims and anything whose pid file was lost
            _terminate(pid, grace=2)
        for netns in _cni_netns():
            _run(["ip", "netns", "delete", netns], check=False)
        for mount in sorted(self._our_mounts(), key=lambda m: m.count("/"), reverse=True):
            if subprocess.run(["umount", mount], capture_output=True).returncode != 0:
                _run(["umount", "-l", mount], check=False)
        if Path(f"/sys/class/net/{BRIDGE}").exists():
            _run(["ip", "link", "delete", BRIDGE], check=False)
        for tool in ("iptables", "ip6tables"):
            _remove_our_chains(tool)
        netpol.remove_ipsets()  # kube-router's; only once no rule uses them

    def _is_ours(self, pid: int) -> bool:
        return str(self.directory) in _cmdline(pid)

    def _our_processes(self) -> list[tuple[int, str]]:
        marker = str(self.directory)
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                cmd = _cmdline(int(entry.name))
                if marker + "/" in cmd or cmd.endswith(marker):
                    found.append((int(entry.name), cmd))
        return found

    def _our_mounts(self) -> list[str]:
        prefix = str(self.directory) + "/"
        return [m for m in _mount_points() if m.startswith(prefix)]


# ----- helpers ------------------------------------------------------------------------------

_OUR_CHAIN = re.compile(r"\b(KUBE|CNI)-[A-Z0-9-]*")


def write_kubeconfig(
    path: Path,
    *,
    user: str,
    cert: Path,
    key: Path,
    ca: Path,
    embed: bool,
    server: str = APISERVER_URL,
    namespace: str | None = None,
) -> None:
    """Write a kubeconfig for a client-certificate user (mode 0600).

    With ``embed`` the PEM data is inlined (a portable file); otherwise the file refers to the
    certificate paths.
    """

    def ref(kind: str, p: Path) -> dict[str, str]:
        if embed:
            return {f"{kind}-data": base64.b64encode(p.read_bytes()).decode()}
        return {kind: str(p)}

    context: dict[str, str] = {"cluster": "toolforge-dev", "user": user}
    if namespace:
        context["namespace"] = namespace
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "toolforge-dev",
                "cluster": {"server": server, **ref("certificate-authority", ca)},
            }
        ],
        "users": [
            {"name": user, "user": {**ref("client-certificate", cert), **ref("client-key", key)}}
        ],
        "contexts": [{"name": "toolforge-dev", "context": context}],
        "current-context": "toolforge-dev",
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(doc, f)


def _run(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise ClusterError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    return proc


def _which(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise ClusterError(f"{name} not found on PATH (run `make deps`)")
    return path


def _pid_alive(pid: int) -> bool:
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


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def _terminate(pid: int, grace: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _pid_alive(pid):
        time.sleep(0.05)


_CGROUP_ROOT = Path("/sys/fs/cgroup")


def _kubepods_cgroups() -> Iterator[Path]:
    """Every ``kubepods`` cgroup directory (cgroup v1: one per hierarchy), deepest first."""
    for hierarchy in _CGROUP_ROOT.iterdir():
        top = hierarchy / "kubepods"
        if top.is_dir():
            dirs = [Path(p) for p, _, _ in os.walk(top)]
            yield from sorted(dirs, key=lambda p: len(p.parts), reverse=True)


def _cgroup_pids() -> set[int]:
    pids: set[int] = set()
    for cg in _kubepods_cgroups():
        with contextlib.suppress(OSError):
            pids.update(int(x) for x in (cg / "cgroup.procs").read_text().split())
    return pids


def _kill_cgroup_pods() -> None:
    """SIGKILL every process in the kubelet's pod cgroups, then remove those cgroups."""
    for _ in range(50):
        pids = _cgroup_pids()
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    for cg in _kubepods_cgroups():
        with contextlib.suppress(OSError):
            cg.rmdir()


def _mount_points() -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        raw = line.split()[4]
        points.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), raw))
    return points


def _cni_netns() -> list[str]:
    """Network namespaces that the CNI plugins made for pods (``cni-<uuid>``)."""
    netns_dir = Path("/run/netns")
    if not netns_dir.is_dir():
        return []
    return sorted(p.name for p in netns_dir.iterdir() if p.name.startswith("cni-"))


def _iptables_lines(tool: str) -> list[str]:
    save = shutil.which(f"{tool}-save")
    if not save:
        return []
    proc = subprocess.run([save], capture_output=True, text=True)
    return proc.stdout.splitlines() if proc.returncode == 0 else []


def _remove_our_chains(tool: str) -> None:
    """Drop every ``KUBE-*`` and ``CNI-*`` chain and every rule that jumps to one.

    This is what ``kube-proxy --cleanup`` and the CNI plugins' DEL would do, done in one
    ``iptables-restore`` of the filtered ruleset so it also works when they cannot run.
    """
    lines = _iptables_lines(tool)
    if not any(_OUR_CHAIN.search(line) for line in lines):
        return
    kept = [line for line in lines if not _OUR_CHAIN.search(line)]
    restore = shutil.which(f"{tool}-restore")
    if restore:
        subprocess.run([restore], input="\n".join(kept) + "\n", text=True, capture_output=True)
