"""The local cluster's NetworkPolicy engine: kube-router's firewall controller, run as kube-router
documents it (a privileged ``hostNetwork`` DaemonSet in ``kube-system`` with an in-cluster
configuration, ``daemonset/kube-router-firewall-daemonset.yaml`` of its v2.1.0 module), with
only ``--run-firewall``: no routing, no service proxy (kube-proxy stays the proxy, the CNI
bridge stays the network).

Why kube-router v2.1.0. The kernel of these machines refuses the nftables ``queue`` statement,
while the iptables ``NFQUEUE`` target and ``ipset`` work (``CLUSTER-NOTES.md``). Candidates,
each checked on the Go module proxy at an exact version:

- ``sigs.k8s.io/kube-network-policies`` v0.8.0 (kind's engine): builds, but every rule sync
  fails with ``conn.Receive: netlink receive: no such file or directory`` (its nftables ruleset
  uses ``queue``). v0.7.0 is served, but its source programs the same nftables
  ``expr.Queue`` through ``github.com/google/nftables`` (``pkg/networkpolicy/controller.go``),
  so it cannot work here either (not run). v0.1.0 to v0.6.0 are refused by the proxy (403
  "This module version is not available"), so whether an early release used iptables could
  not be checked.
- Calico (v3.30.0) and kube-router after v2.1.0 (v2.1.1, v2.1.2, v2.1.3, v2.2.0): refused by
  the proxy (403).
- ``github.com/cloudnativelabs/kube-router/v2`` v2.1.0: served, builds through the wrapper
  module ``devtools/go/kube-router``, and programs iptables (``iptables-restore``) and ipset,
  which this kernel supports. Its published security advisories are GHSA-phqm-jgc3-qf8g
  (the *service proxy* copies Service externalIPs and LoadBalancer IPs onto the node without
  checking them against the configured ranges) and GHSA-v5mh-h5hx-7v92 (the *routing*
  controller exposes GoBGP's unauthenticated gRPC API on the node address). Neither controller
  runs here (``--run-service-proxy=false --run-router=false``), and externalIPs are refused by
  kube-apiserver anyway (``DenyServiceExternalIPs``), so neither applies. What does apply is a
  documented limitation of its firewall: it "fails open" for a new pod until its first sync
  after the pod got its address (newer releases add ``--netpol-default-deny``); tests wait for
  the pod's rules (:func:`wait_programmed`) before they send traffic.

The image (:func:`build_image`) is Debian bookworm with ``iptables`` (the nft backend, as on
the host, where kube-proxy uses it) and ``ipset``, plus the binary. The health port is off
(``--health-port=0``): kube-router can only bind it on every interface, and nothing of the
cluster listens outside the machine; readiness is instead "the top-level chain
``KUBE-ROUTER-FORWARD`` exists", checked with ``iptables``.

API: :func:`build_image`, :func:`manifests`, :func:`start` (called by ``Cluster.start``),
:func:`remove_ipsets` / :func:`leftover_ipsets` (``Cluster.cleanup`` / ``leftovers``),
:func:`pod_chain`, :func:`programmed`, :func:`wait_programmed`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import yaml

from toolforge_dev import binaries as go_binaries
from toolforge_dev import images

if TYPE_CHECKING:
    from toolforge_dev.binaries import Binaries
    from toolforge_dev.cluster import Cluster

Progress = Callable[[str], None]

NAMESPACE = "kube-system"
NAME = "kube-router"
#: Bump to rebuild the kube-router image.
RECIPE_VERSION = 1
BASE = images.ImageSpec(
    short="netpol-base",
    ref="registry.local/toolforge/netpol-base:bookworm",
    kind="debootstrap",
    include=("iptables", "ipset"),
    user_facing=False,
)
BINARY_PATH = "usr/local/bin/kube-router"
#: The top-level chain kube-router hooks into FORWARD; it exists after its first sync.
READY_CHAIN = "KUBE-ROUTER-FORWARD"
#: ipsets kube-router makes (``KUBE-SRC-*``, ``KUBE-DST-*``, ``TMP-*`` while it swaps them).
_OUR_SETS = re.compile(r"^(inet6:)?(KUBE-|TMP-)")


class NetpolError(RuntimeError):
    """The engine could not be built or did not become ready; the message says why."""


# ----- image -----------------------------------------------------------------------------------


def _base_layer(archive: Path, out: Path) -> None:
    """Copy the one layer of a one-layer OCI archive (:data:`BASE`) to ``out``."""
    with tarfile.open(archive, mode="r:") as tar:

        def member(name: str) -> IO[bytes]:
            f = tar.extractfile(name)
            if f is None:
                raise NetpolError(f"{archive}: no {name}")
            return f

        index = json.load(member("index.json"))
        manifest_digest = index["manifests"][0]["digest"].removeprefix("sha256:")
        manifest = json.load(member(f"blobs/sha256/{manifest_digest}"))
        (layer,) = manifest["layers"]
        with out.open("wb") as dst:
            shutil.copyfileobj(member("blobs/sha256/" + layer["digest"][7:]), dst, 1 << 20)


def _binary_layer(binary: Path, out: Path) -> None:
    """A layer holding only ``/usr/local/bin/kube-router`` (mode 0755, mtime 0)."""
    with out.open("wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("usr", "usr/local", "usr/local/bin"):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        info = tarfile.TarInfo(BINARY_PATH)
        info.size = binary.stat().st_size
        info.mode = 0o755
        with binary.open("rb") as src:
            tar.addfile(info, src)


def image_ref(binary: Path) -> str:
    """``registry.local/toolforge/kube-router:<version>-<key>``; the key hashes the recipe,
    the base image's recipe and the binary."""
    digest = hashlib.sha256(f"{RECIPE_VERSION}|{BASE.recipe_key()}|".encode())
    with binary.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return (
        f"registry.local/toolforge/kube-router:{go_binaries.kube_router().version}-"
        + (digest.hexdigest()[:12])
    )


def build_image(progress: Progress = print) -> tuple[str, Path]:
    """Build (unless cached) the kube-router image; returns ``(ref, archive)``.

    Needs the kube-router binary (``make binaries``) and root for the base image's
    debootstrap. Raises :class:`NetpolError` or :class:`images.ImageBuildError`.
    """
    component = go_binaries.kube_router()
    binary = component.path("kube-router")
    if not binary.is_file():
        raise NetpolError("kube-router is not built yet (run `make binaries`)")
    ref = image_ref(binary)
    directory = images.images_cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    archive = directory / f"kube-router-{ref.rsplit(':', 1)[1]}.tar"
    if archive.is_file():
        return ref, archive
    base = images.build_images(progress=progress, specs=(BASE,))[BASE.short]
    progress(f"building the kube-router image ({ref})")
    with tempfile.TemporaryDirectory(prefix=".kube-router-build-", dir=directory) as tmp:
        work = Path(tmp)
        _base_layer(base, work / "base.tar")
        _binary_layer(binary, work / "bin.tar")
        partial = work / "image.tar"
        images.write_oci_layout(
            partial,
            ref=ref,
            layers=[
                (work / "base.tar", "debootstrap " + " ".join(BASE.debootstrap_args())),
                (work / "bin.tar", f"kube-router {component.version} (devtools/go/kube-router)"),
            ],
            container_config={
                "Env": list(images.DEFAULT_ENV),
                "Entrypoint": [f"/{BINARY_PATH}"],
                "Labels": {"dev.toolforge.recipe": ref.rsplit("-", 1)[1]},
            },
        )
        os.replace(partial, archive)
    for old in directory.glob("kube-router-*.tar"):
        if old != archive:
            old.unlink()
    return ref, archive


# ----- objects ---------------------------------------------------------------------------------


def manifests(image: str, service_cidr: str) -> list[dict[str, Any]]:
    """ServiceAccount, ClusterRole (read-only: what the firewall controller watches),
    ClusterRoleBinding and DaemonSet of kube-router, after its firewall DaemonSet manifest,
    without the CNI installer (the launcher owns the CNI configuration)."""
    labels = {"k8s-app": NAME}
    read = ["get", "list", "watch"]
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": NAME, "namespace": NAMESPACE},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": NAME},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["namespaces", "pods", "services", "nodes", "endpoints"],
                    "verbs": read,
                },
                {
                    "apiGroups": ["networking.k8s.io"],
                    "resources": ["networkpolicies"],
                    "verbs": read,
                },
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": NAME},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": NAME,
            },
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}],
        },
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "priorityClassName": "system-node-critical",
                        "serviceAccountName": NAME,
                        "hostNetwork": True,
                        "hostPID": True,
                        "containers": [
                            {
                                "name": NAME,
                                "image": image,
                                "imagePullPolicy": "Never",
                                "args": [
                                    "--run-router=false",
                                    "--run-firewall=true",
                                    "--run-service-proxy=false",
                                    "--run-loadbalancer=false",
                                    f"--service-cluster-ip-range={service_cidr}",
                                    "--health-port=0",
                                ],
                                "env": [
                                    {
                                        "name": "NODE_NAME",
                                        "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}},
                                    }
                                ],
                                "securityContext": {"privileged": True},
                                "readinessProbe": {
                                    "exec": {"command": ["iptables", "-w", "5", "-S", READY_CHAIN]},
                                    "periodSeconds": 2,
                                },
                                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
                                "volumeMounts": [
                                    {
                                        "name": "lib-modules",
                                        "mountPath": "/lib/modules",
                                        "readOnly": True,
                                    },
                                    {"name": "xtables-lock", "mountPath": "/run/xtables.lock"},
                                ],
                            }
                        ],
                        "tolerations": [
                            {"effect": "NoSchedule", "operator": "Exists"},
                            {"key": "CriticalAddonsOnly", "operator": "Exists"},
                            {"effect": "NoExecute", "operator": "Exists"},
                        ],
                        "volumes": [
                            {"name": "lib-modules", "hostPath": {"path": "/lib/modules"}},
                            {
                                "name": "xtables-lock",
                                "hostPath": {"path": "/run/xtables.lock", "type": "FileOrCreate"},
                            },
                        ],
                    },
                },
            },
        },
    ]


def start(cluster: Cluster, binaries: Binaries, timeout: float = 120) -> None:
    """Build and import the image, apply :func:`manifests` and wait until the DaemonSet's pod
    is ready (kube-router has synced once). Raises ``ClusterError`` when the image cannot be
    built, a kubectl step fails, or the pod is not ready within ``timeout`` seconds (with the
    pod's log)."""
    from toolforge_dev.topology import ClusterError

    try:
        ref, archive = build_image(progress=cluster.progress)
    except (NetpolError, images.ImageBuildError) as exc:
        raise ClusterError(f"NetworkPolicy engine: {exc}") from exc
    images.import_images(
        [archive],
        ctr=shutil.which("ctr") or "ctr",
        address=cluster.containerd_socket,
        progress=lambda m: cluster.progress(f"    {m}"),
    )
    text = yaml.safe_dump_all(manifests(ref, cluster.describe()["service_cidr"]))
    cluster.kubectl(binaries, "apply", "--server-side", "-f", "-", input_text=text)
    proc = subprocess.run(
        [
            str(binaries.kubectl),
            "--kubeconfig",
            str(cluster.admin_kubeconfig),
            "-n",
            NAMESPACE,
            "rollout",
            "status",
            f"daemonset/{NAME}",
            f"--timeout={timeout:.0f}s",
        ],
        capture_output=True,
        text=True,
        timeout=timeout + 30,
    )
    if proc.returncode != 0:
        logs = subprocess.run(
            [
                str(binaries.kubectl),
                "--kubeconfig",
                str(cluster.admin_kubeconfig),
                "-n",
                NAMESPACE,
                "logs",
                f"daemonset/{NAME}",
                "--tail=30",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        raise ClusterError(
            f"kube-router not ready after {timeout:.0f} s: {proc.stderr.strip()}\n"
            f"{logs.stdout}{logs.stderr}"
        )


# ----- host state ------------------------------------------------------------------------------


def _ipsets() -> list[str]:
    ipset = shutil.which("ipset")
    if ipset is None:
        return []
    proc = subprocess.run([ipset, "list", "-n"], capture_output=True, text=True, check=False)
    return proc.stdout.split() if proc.returncode == 0 else []


def leftover_ipsets() -> list[str]:
    """kube-router's ipsets still on the host (none after a clean stop)."""
    return [s for s in _ipsets() if _OUR_SETS.match(s)]


def remove_ipsets() -> None:
    """Destroy kube-router's ipsets. Call after the iptables rules that use them are gone (a
    set in use cannot be destroyed) and after kube-router itself stopped."""
    ipset = shutil.which("ipset")
    for name in leftover_ipsets():
        if ipset is not None:
            subprocess.run([ipset, "destroy", name], capture_output=True, check=False)


def _filter_rules() -> list[str]:
    proc = subprocess.run(
        [shutil.which("iptables-save") or "iptables-save", "-t", "filter"],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.splitlines()


def pod_chain(namespace: str, pod: str, rules: Iterable[str] | None = None) -> str | None:
    """The ``KUBE-POD-FW-*`` chain kube-router programmed for a pod, or ``None``."""
    pattern = re.compile(
        rf"POD name:{re.escape(pod)} namespace: {re.escape(namespace)} to chain (KUBE-POD-FW-\w+)"
    )
    for line in _filter_rules() if rules is None else rules:
        found = pattern.search(line)
        if found:
            return found.group(1)
    return None


def programmed(namespace: str, pod: str, policies: Iterable[str]) -> bool:
    """True when kube-router has a chain for the pod that runs every named NetworkPolicy (of
    the pod's namespace) on its traffic: the pod's rules are in force."""
    rules = _filter_rules()
    chain = pod_chain(namespace, pod, rules)
    if chain is None:
        return False
    in_chain = [line for line in rules if line.startswith(f"-A {chain} ")]
    return all(
        any(f"run through nw policy {policy}" in line for line in in_chain) for policy in policies
    )


def wait_programmed(
    namespace: str, pod: str, policies: Iterable[str] = (), timeout: float = 60
) -> None:
    """Wait until :func:`programmed`; raises :class:`NetpolError` after ``timeout`` s."""
    wanted = tuple(policies)
    deadline = time.monotonic() + timeout
    while not programmed(namespace, pod, wanted):
        if time.monotonic() > deadline:
            raise NetpolError(
                f"kube-router did not program pod {namespace}/{pod} with {list(wanted)} "
                f"within {timeout:.0f} s"
            )
        time.sleep(0.25)
