"""The log collector: ``vlagent -kubernetesCollector`` as a DaemonSet, as its project runs it.

vlagent (VictoriaLogs' agent, same module and version as the store) watches the pods of its
node through the API, tails each container's log file through the kubelet's symlinks in
``/var/log/containers``, adds the pod's metadata and ships the lines to the store's
``/insert/native`` endpoint (VictoriaLogs docs, vlagent "Collect Kubernetes Pod logs").

What :func:`deploy` creates (the namespace ``logging``, the ServiceAccount ``vlagent`` and its
ClusterRole come from ``devtools/manifests/40-logging.yaml``):

- the image ``registry.local/toolforge/vlagent:<version>-<key>``: one layer with the static
  ``vlagent`` binary (``/vlagent``) and an empty ``/tmp``, written as an OCI archive
  (:func:`toolforge_dev.images.write_oci_layout`), cached by the binary's digest and imported
  into containerd like the other local images;
- Secret ``logging/vlagent-remote-write``: the store's HTTP Basic credentials;
- DaemonSet ``logging/vlagent``: in-cluster config (service-account token, API at
  ``KUBERNETES_SERVICE_HOST``), read-only ``hostPath`` mounts of ``/var/log/containers`` and of
  the kubelet's ``podLogsDir`` (``<run dir>/pod-logs``, mounted at the same path, since the
  symlinks are absolute), and ``<run dir>/vlagent`` for the checkpoints (read offsets, so a
  restart neither loses nor repeats lines) and the on-disk send buffer (lines wait there while
  the store is down). Root without capabilities, read-only root filesystem.

Flags (``vlagent -help``): :func:`collector_args`. The collector ships only tool namespaces
(``tool-*``): the platform's own pods (build pods, whose logs the builds API filters for
secrets, and the services) stay out of the store. The stream fields are
:data:`toolforge_logstore.fields.STREAM_FIELDS`: namespace, job (the pod label
``app.kubernetes.io/name``), pod, container.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import yaml

from toolforge_dev import binaries as go_binaries
from toolforge_dev import images
from toolforge_dev.binaries import Binaries
from toolforge_dev.cluster import Cluster, ClusterError
from toolforge_dev.logstore import LOGSTORE_USER, LogStore
from toolforge_logstore import fields

__all__ = [
    "NAMESPACE",
    "collector_args",
    "deploy",
    "image_archive",
    "image_ref",
    "manifests",
]

Progress = Callable[[str], None]

NAMESPACE: Final = "logging"
NAME: Final = "vlagent"
SECRET: Final = "vlagent-remote-write"  # noqa: S105 - a Secret's name
#: Bump to rebuild the image.
RECIPE_VERSION: Final = 1
#: In-container paths.
_DATA: Final = "/var/lib/vlagent"
_AUTH: Final = "/etc/vlagent/auth"
_SA_CA: Final = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
_LOGS: Final = "/var/log/containers"
#: Only tool namespaces are collected (LogsQL exact-prefix filter, negated).
EXCLUDE_FILTER: Final = f'NOT {fields.NAMESPACE}:="tool-"*'
#: Cap of the on-disk send buffer while the store is unreachable.
MAX_BUFFER: Final = "1GiB"


def _binary() -> Path:
    return go_binaries.victorialogs().path("vlagent")


def _key() -> str:
    digest = hashlib.sha256(f"{RECIPE_VERSION}|{images.DEFAULT_ENV}".encode())
    with _binary().open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def image_ref() -> str:
    """``registry.local/toolforge/vlagent:<version>-<content key>``."""
    return f"registry.local/toolforge/vlagent:{go_binaries.VICTORIALOGS_VERSION}-{_key()}"


def image_archive(progress: Progress = print) -> Path:
    """Build the image archive unless cached; returns its path. The vlagent binary must be
    built (``make binaries``), else :class:`go_binaries.BuildError`."""
    if not go_binaries.victorialogs().is_built():
        raise go_binaries.BuildError("vlagent is not built yet (run `make binaries`)")
    directory = images.images_cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    archive = directory / f"vlagent-{_key()}.tar"
    if archive.exists():
        return archive
    progress("building the vlagent image")
    with tempfile.TemporaryDirectory(prefix=".build-vlagent-", dir=directory) as tmp:
        layer = Path(tmp) / "layer.tar"
        with tarfile.open(layer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tmp_dir = tarfile.TarInfo("tmp")
            tmp_dir.type, tmp_dir.mode = tarfile.DIRTYPE, 0o1777
            tar.addfile(tmp_dir)
            info = tarfile.TarInfo("vlagent")
            info.size, info.mode = _binary().stat().st_size, 0o755
            with _binary().open("rb") as binary:
                tar.addfile(info, binary)
        partial = Path(tmp) / "image.tar"
        images.write_oci_layout(
            partial,
            ref=image_ref(),
            layers=[(layer, f"vlagent {go_binaries.VICTORIALOGS_VERSION} (go install)")],
            container_config={
                "Env": list(images.DEFAULT_ENV),
                "Entrypoint": ["/vlagent"],
                "Labels": {"dev.toolforge.recipe": _key()},
            },
        )
        shutil.move(partial, archive)
    for old in directory.glob("vlagent-*.tar"):
        if old != archive:
            old.unlink()
    return archive


def collector_args(store_url: str) -> list[str]:
    """vlagent's command line (after the entrypoint)."""
    return [
        "-kubernetesCollector",
        f"-kubernetesCollector.logsPath={_LOGS}",
        f"-kubernetesCollector.checkpointsPath={_DATA}/checkpoints.json",
        f"-kubernetesCollector.streamFields={','.join(fields.STREAM_FIELDS)}",
        f"-kubernetesCollector.excludeFilter={EXCLUDE_FILTER}",
        f"-tmpDataPath={_DATA}",
        f"-remoteWrite.url={store_url}/insert/native",
        f"-remoteWrite.tlsCAFile={_SA_CA}",
        f"-remoteWrite.basicAuth.usernameFile={_AUTH}/username",
        f"-remoteWrite.basicAuth.passwordFile={_AUTH}/password",
        f"-remoteWrite.maxDiskUsagePerURL={MAX_BUFFER}",
        # /health for the probes; /metrics needs the same credentials as the store.
        "-httpListenAddr=:9429",
        f"-httpAuth.username={LOGSTORE_USER}",
        f"-httpAuth.password=file://{_AUTH}/password",
        "-loggerFormat=json",
    ]


def manifests(store: LogStore, run_dir: Path, ref: str) -> list[dict[str, Any]]:
    """The Secret and the DaemonSet (objects for ``kubectl apply``)."""
    creds = store.credentials
    labels = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "toolforge"}
    pod_logs = str(run_dir / "pod-logs")
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET, "namespace": NAMESPACE, "labels": labels},
        "type": "kubernetes.io/basic-auth",
        "stringData": {"username": creds.username, "password": creds.password},
    }
    container = {
        "name": NAME,
        "image": ref,
        "imagePullPolicy": "Never",
        "args": collector_args(store.url),
        "ports": [{"name": "http", "containerPort": 9429}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 5},
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": 20,
            "failureThreshold": 3,
        },
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"memory": "512Mi"},
        },
        "securityContext": {
            # Root reads the runtime's log files (0640 root); no capability is needed for that.
            "runAsUser": 0,
            "runAsNonRoot": False,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "containers", "mountPath": _LOGS, "readOnly": True},
            {"name": "pod-logs", "mountPath": pod_logs, "readOnly": True},
            {"name": "data", "mountPath": _DATA},
            {"name": "auth", "mountPath": _AUTH, "readOnly": True},
        ],
    }
    daemonset = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": NAME,
                    "automountServiceAccountToken": True,
                    "tolerations": [{"operator": "Exists"}],
                    "terminationGracePeriodSeconds": 10,
                    "containers": [container],
                    "volumes": [
                        {"name": "containers", "hostPath": {"path": _LOGS, "type": "Directory"}},
                        {"name": "pod-logs", "hostPath": {"path": pod_logs, "type": "Directory"}},
                        {
                            "name": "data",
                            "hostPath": {
                                "path": str(run_dir / "vlagent"),
                                "type": "DirectoryOrCreate",
                            },
                        },
                        {"name": "auth", "secret": {"secretName": SECRET, "defaultMode": 0o400}},
                    ],
                },
            },
        },
    }
    return [secret, daemonset]


def deploy(cluster: Cluster, store: LogStore, progress: Progress = print) -> None:
    """Import the image, apply the Secret and the DaemonSet, and wait (90 s) until the
    collector is ready. Raises :class:`ClusterError` (with the pod's state) when it is not."""
    archive = image_archive(progress)
    ctr = shutil.which("ctr")
    if ctr is None:
        raise ClusterError("ctr not found on PATH (run `make deps`)")
    images.import_images(
        [archive], ctr=ctr, address=cluster.containerd_socket, progress=lambda m: progress(f"  {m}")
    )
    binaries = Binaries.from_cache()
    objects = manifests(store, cluster.directory, image_ref())
    text = "\n---\n".join(yaml.safe_dump(m) for m in objects)
    cluster.kubectl(
        binaries, "apply", "--server-side", "--force-conflicts", "-f", "-", input_text=text
    )
    try:
        cluster.kubectl(
            binaries, "-n", NAMESPACE, "rollout", "status", f"daemonset/{NAME}", "--timeout=90s"
        )
    except ClusterError as exc:
        pods = cluster.kubectl(binaries, "-n", NAMESPACE, "get", "pods", "-o", "json")
        raise ClusterError(f"{exc}\npods: {_pod_states(pods)}") from exc


def _pod_states(pods_json: str) -> str:
    out = io.StringIO()
    for pod in json.loads(pods_json).get("items", []):
        statuses = pod.get("status", {}).get("containerStatuses", [])
        out.write(f"{pod['metadata']['name']}: {json.dumps([s.get('state') for s in statuses])}\n")
    return out.getvalue()
