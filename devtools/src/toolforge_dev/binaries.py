"""Go-built cluster binaries, cached outside the work tree and keyed by version.

No binaries can be downloaded on these machines, so every cluster component is compiled from
the published Go modules:

- Kubernetes (kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy,
  kubectl) from ``k8s.io/kubernetes``, through the wrapper module ``devtools/go/kubernetes``
  that pins each staging module (``k8s.io/api``, ...) to the matching ``v0.34.x`` tag;
- etcd from ``go.etcd.io/etcd/server/v3``, through ``devtools/go/etcd`` the same way;
- CoreDNS with ``go install github.com/coredns/coredns@<version>``;
- for the benchmarks only, vegeta, through ``devtools/go/vegeta``;
- Helm (``helm.sh/helm/v4``, the newest release line the proxy serves) for the charts, through
  ``devtools/go/helm``;
- the CNCF distribution registry (``github.com/distribution/distribution/v3``), the real
  registry that tool images are pushed to, through ``devtools/go/registry``;
- Traefik (``github.com/traefik/traefik/v3``), the Gateway API controller of the web-traffic
  path, through ``devtools/go/traefik``;
- kube-router (``github.com/cloudnativelabs/kube-router/v2``), the cluster's NetworkPolicy
  engine, through ``devtools/go/kube-router``;
- Tekton Pipelines (``github.com/tektoncd/pipeline``): its controller, webhook and the helper
  binaries the controller injects into TaskRun pods, through ``devtools/go/tekton``;
- the Cloud Native Buildpacks lifecycle (``github.com/buildpacks/lifecycle``: ``lifecycle``
  and ``launcher``), through ``devtools/go/lifecycle``;
- VictoriaLogs (``victoria-logs``, the log store, and ``vlagent``, its collector) and Mailpit
  (the SMTP server), with ``go install pkg@version`` (see :mod:`toolforge_dev.logstore`,
  :mod:`toolforge_dev.mailpit`).

The version is read from the wrapper module's ``require`` line, so ``go.mod`` is the one place
to bump it. Each component lands in ``<cache>/bin/<component>-<version>/``; a directory that
exists is complete (it is renamed into place only after a successful build), so a second run
builds nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from toolforge_dev.paths import GO_MODULES_DIR, cache_dir

Progress = Callable[[str], None]

COREDNS_VERSION = "v1.12.4"
VICTORIALOGS_VERSION = "v1.52.2"
MAILPIT_VERSION = "v1.33.1"


class BuildError(Exception):
    """A Go build failed; the message names the component and the log file."""


def _required_version(go_mod: Path, module: str) -> str:
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", go_mod.read_text(), re.M)
    if not match:
        raise BuildError(f"{go_mod} does not require {module}")
    return match.group(1)


def _kubernetes_ldflags(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return " ".join(flags)


@dataclass(frozen=True)
class GoComponent:
    """One cached build: a set of binaries from one Go module at one version."""

    name: str
    version: str
    #: ``(binary name, package path)`` pairs.
    binaries: tuple[tuple[str, str], ...]
    #: Wrapper module to build in, or ``None`` for ``go install pkg@version``.
    module_dir: Path | None
    ldflags: str = "-s -w"

    @property
    def directory(self) -> Path:
        """``<cache>/bin/<name>-<version>``."""
        return cache_dir() / "bin" / f"{self.name}-{self.version}"

    def path(self, binary: str) -> Path:
        """Path of one binary of this component (whether built or not)."""
        return self.directory / binary

    def is_built(self) -> bool:
        """True when every binary is in the cache."""
        return all(self.path(b).is_file() for b, _ in self.binaries)

    def build(self, progress: Progress = print) -> Path:
        """Build into the cache unless already there; returns the component directory.

        Raises :class:`BuildError` with the tail of the Go output when a build fails.
        """
        if self.is_built():
            progress(f"{self.name} {self.version}: cached in {self.directory}")
            return self.directory
        tmp = self.directory.with_name(self.directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        log = cache_dir() / "bin" / f"{self.name}-{self.version}.build.log"
        env = {**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": "-trimpath"}
        names = ", ".join(b for b, _ in self.binaries)
        progress(f"{self.name} {self.version}: building {names} (several minutes on 2 cores)...")
        started = time.monotonic()
        with log.open("w") as out:
            for binary, package in self.binaries:
                if self.module_dir is None:
                    cmd = ["go", "install", f"-ldflags={self.ldflags}", f"{package}@{self.version}"]
                    env["GOBIN"] = str(tmp)
                else:
                    cmd = ["go", "build", f"-ldflags={self.ldflags}", "-o", str(tmp / binary)]
                    cmd.append(package)
                progress(f"  go build {binary}")
                out.write(f"$ {' '.join(cmd)}\n")
                out.flush()
                proc = subprocess.run(
                    cmd, cwd=self.module_dir, env=env, stdout=out, stderr=subprocess.STDOUT
                )
                if proc.returncode != 0:
                    tail = "\n".join(log.read_text().splitlines()[-20:])
                    raise BuildError(f"building {binary} failed (log: {log}):\n{tail}")
        if self.directory.exists():
            shutil.rmtree(self.directory)
        tmp.rename(self.directory)
        progress(f"{self.name} {self.version}: built in {time.monotonic() - started:.0f} s")
        return self.directory


def kubernetes() -> GoComponent:
    """kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl."""
    module = GO_MODULES_DIR / "kubernetes"
    version = _required_version(module / "go.mod", "k8s.io/kubernetes")
    commands = (
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubelet",
        "kube-proxy",
        "kubectl",
    )
    return GoComponent(
        name="kubernetes",
        version=version,
        binaries=tuple((c, f"k8s.io/kubernetes/cmd/{c}") for c in commands),
        module_dir=module,
        ldflags=_kubernetes_ldflags(version),
    )


def etcd() -> GoComponent:
    """The etcd server (its module root is package main)."""
    module = GO_MODULES_DIR / "etcd"
    version = _required_version(module / "go.mod", "go.etcd.io/etcd/server/v3")
    return GoComponent(
        name="etcd",
        version=version,
        binaries=(("etcd", "go.etcd.io/etcd/server/v3"),),
        module_dir=module,
    )


def coredns() -> GoComponent:
    """CoreDNS, go-installable as published."""
    return GoComponent(
        name="coredns",
        version=COREDNS_VERSION,
        binaries=(("coredns", "github.com/coredns/coredns"),),
        module_dir=None,
    )


def vegeta() -> GoComponent:
    """vegeta, the HTTP load generator of the benchmarks (it presents client certificates).

    Built in the wrapper module ``devtools/go/vegeta``: ``go install pkg@version`` fails here,
    because it reads the module's version list (to check for deprecation) and the proxy
    refuses that list. v12.13.0 is the newest version the proxy serves.
    """
    module = GO_MODULES_DIR / "vegeta"
    return GoComponent(
        name="vegeta",
        version=_required_version(module / "go.mod", "github.com/tsenart/vegeta/v12"),
        binaries=(("vegeta", "github.com/tsenart/vegeta/v12"),),
        module_dir=module,
    )


def helm() -> GoComponent:
    """Helm, built from ``helm.sh/helm/v4`` with its version stamped in (``helm version``)."""
    module = GO_MODULES_DIR / "helm"
    version = _required_version(module / "go.mod", "helm.sh/helm/v4")
    return GoComponent(
        name="helm",
        version=version,
        binaries=(("helm", "helm.sh/helm/v4/cmd/helm"),),
        module_dir=module,
        ldflags=f"-s -w -X helm.sh/helm/v4/internal/version.version={version}",
    )


def registry() -> GoComponent:
    """The CNCF distribution registry (``registry serve config.yml``)."""
    module = GO_MODULES_DIR / "registry"
    return GoComponent(
        name="registry",
        version=_required_version(module / "go.mod", "github.com/distribution/distribution/v3"),
        binaries=(("registry", "github.com/distribution/distribution/v3/cmd/registry"),),
        module_dir=module,
    )


def traefik() -> GoComponent:
    """Traefik with its Kubernetes Gateway provider, the web-traffic proxy (runs as a pod).

    v3.6.9 through the wrapper module ``devtools/go/traefik``, which repeats Traefik's own
    ``replace``/``exclude`` lines (they apply only in the main module). v3.7.x needs
    ``github.com/ucloud/ucloud-sdk-go``, which the Go module proxy refuses (403). About 6 min
    cold on 2 cores.
    """
    module = GO_MODULES_DIR / "traefik"
    version = _required_version(module / "go.mod", "github.com/traefik/traefik/v3")
    return GoComponent(
        name="traefik",
        version=version,
        binaries=(("traefik", "github.com/traefik/traefik/v3/cmd/traefik"),),
        module_dir=module,
        ldflags=f"-s -w -X github.com/traefik/traefik/v3/pkg/version.Version={version}",
    )


def kube_router() -> GoComponent:
    """kube-router, run with only its NetworkPolicy controller (:mod:`toolforge_dev.netpol`)."""
    module = GO_MODULES_DIR / "kube-router"
    version = _required_version(module / "go.mod", "github.com/cloudnativelabs/kube-router/v2")
    return GoComponent(
        name="kube-router",
        version=version,
        binaries=(("kube-router", "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"),),
        module_dir=module,
        ldflags=f"-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version={version}",
    )


#: Tekton commands: the two services and the helpers its controller puts into TaskRun pods
#: (``-entrypoint-image``, ``-nop-image``, ``-sidecarlogresults-image``,
#: ``-workingdirinit-image``; cmd/controller/main.go of v1.15.0).
TEKTON_COMMANDS = (
    "controller",
    "webhook",
    "entrypoint",
    "nop",
    "sidecarlogresults",
    "workingdirinit",
)


def tekton() -> GoComponent:
    """Tekton Pipelines: the controller, the webhook and the TaskRun pod helpers."""
    module = GO_MODULES_DIR / "tekton"
    return GoComponent(
        name="tekton",
        version=_required_version(module / "go.mod", "github.com/tektoncd/pipeline"),
        binaries=tuple((c, f"github.com/tektoncd/pipeline/cmd/{c}") for c in TEKTON_COMMANDS),
        module_dir=module,
    )


def lifecycle() -> GoComponent:
    """The buildpacks lifecycle (one binary for every phase, chosen by its name) and the
    launcher, with the version stamped in (the exporter records it in the image labels)."""
    module = GO_MODULES_DIR / "lifecycle"
    version = _required_version(module / "go.mod", "github.com/buildpacks/lifecycle")
    return GoComponent(
        name="lifecycle",
        version=version,
        binaries=(
            ("lifecycle", "github.com/buildpacks/lifecycle/cmd/lifecycle"),
            ("launcher", "github.com/buildpacks/lifecycle/cmd/launcher"),
        ),
        module_dir=module,
        ldflags=f"-s -w -X github.com/buildpacks/lifecycle/cmd.Version={version.lstrip('v')}",
    )


def victorialogs() -> GoComponent:
    """VictoriaLogs: the store ``victoria-logs`` and the collector ``vlagent`` (Apache-2.0),
    go-installable as published; the version is stamped into ``-version``."""
    app = "github.com/VictoriaMetrics/VictoriaLogs/app"
    stamp = "github.com/VictoriaMetrics/VictoriaMetrics/lib/buildinfo.Version"
    return GoComponent(
        name="victorialogs",
        version=VICTORIALOGS_VERSION,
        binaries=(("victoria-logs", f"{app}/victoria-logs"), ("vlagent", f"{app}/vlagent")),
        module_dir=None,
        ldflags=f"-s -w -X {stamp}=victoria-logs-{VICTORIALOGS_VERSION}",
    )


def mailpit() -> GoComponent:
    """Mailpit, the SMTP server with a web UI and API, go-installable as published."""
    return GoComponent(
        name="mailpit",
        version=MAILPIT_VERSION,
        binaries=(("mailpit", "github.com/axllent/mailpit"),),
        module_dir=None,
        ldflags=f"-s -w -X github.com/axllent/mailpit/config.Version={MAILPIT_VERSION}",
    )


def bench_components() -> tuple[GoComponent, ...]:
    """Tools only the benchmarks need (``make bench``), not the cluster."""
    return (vegeta(),)


def all_components() -> tuple[GoComponent, ...]:
    """Every component the local platform needs (cluster, registry, Helm, web traffic,
    network policy, builds, log store, SMTP)."""
    return (
        etcd(),
        kubernetes(),
        coredns(),
        registry(),
        helm(),
        traefik(),
        kube_router(),
        tekton(),
        lifecycle(),
        victorialogs(),
        mailpit(),
    )


@dataclass(frozen=True)
class Binaries:
    """Resolved paths of every cluster binary."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubelet: Path
    kube_proxy: Path
    kubectl: Path
    coredns: Path
    registry: Path

    @classmethod
    def from_cache(cls) -> Binaries:
        """Paths in the cache; raises :class:`BuildError` if any component is not built."""
        missing = [c.name for c in all_components() if not c.is_built()]
        if missing:
            raise BuildError(f"not built yet: {', '.join(missing)} (run `make binaries`)")
        k8s = kubernetes()
        return cls(
            etcd=etcd().path("etcd"),
            kube_apiserver=k8s.path("kube-apiserver"),
            kube_controller_manager=k8s.path("kube-controller-manager"),
            kube_scheduler=k8s.path("kube-scheduler"),
            kubelet=k8s.path("kubelet"),
            kube_proxy=k8s.path("kube-proxy"),
            kubectl=k8s.path("kubectl"),
            coredns=coredns().path("coredns"),
            registry=registry().path("registry"),
        )


def build_all(progress: Progress = print) -> Binaries:
    """Build whatever is not cached yet, then return the binary paths."""
    for component in all_components():
        component.build(progress)
    return Binaries.from_cache()
