"""Tekton Pipelines in the local cluster: its images, its installation and its readiness.

**Images.** Each Tekton command built by :func:`toolforge_dev.binaries.tekton` (controller,
webhook, and the helpers the controller puts into TaskRun pods: entrypoint, nop,
sidecarlogresults, workingdirinit) becomes a one-layer OCI image
``registry.local/toolforge/tekton-<command>:<version>`` holding ``/ko-app/<command>``, the path
the controller hard-codes for its helpers (``pkg/pod/pod.go``, ``workingdir_init.go``), with
that binary as its Entrypoint, plus ``/tmp`` and an ``/etc/passwd`` naming the distroless
``nonroot`` user (65532) the Deployments run as. The shell image of ``place-scripts`` is the
local bookworm image. :func:`build_images` caches the archives like :mod:`toolforge_dev.images`
(``<cache>/images/tekton-<command>-<key>.tar``; the key hashes the recipe and the binary).

**Installation.** :func:`render_manifests` fills the image references and the version into
``devtools/manifests/tekton/*.yaml`` (the release manifests of v1.15.0 with the local changes
their header lists); :func:`install` applies them and waits with :func:`wait_ready` until
Tekton can take work: both Deployments available, the webhook's CA in both admission webhook
configurations and in every Tekton CRD's conversion stanza, a ``tekton.dev/v1beta1`` Task
accepted (converted by the webhook) and an invalid one refused (validated by it).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from toolforge_dev import binaries as go_binaries
from toolforge_dev import images
from toolforge_dev.image_layers import Entry, cache_key, file_digest, write_layer
from toolforge_dev.paths import REPO_ROOT

__all__ = [
    "MANIFESTS_DIR",
    "NAMESPACE",
    "TektonError",
    "build_images",
    "image_ref",
    "install",
    "render_manifests",
    "wait_ready",
]

Progress = Callable[[str], None]
#: ``kubectl(*args, input_text=None) -> stdout``; raises on a non-zero exit.
Kubectl = Callable[..., str]

NAMESPACE = "tekton-pipelines"
MANIFESTS_DIR = REPO_ROOT / "devtools" / "manifests" / "tekton"
#: Bump to rebuild the Tekton images.
RECIPE_VERSION = 1
_PASSWD = (
    b"root:x:0:0:root:/root:/sbin/nologin\n"
    b"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
)
_GROUP = b"root:x:0:\nnonroot:x:65532:\n"
#: The CRDs with more than one version, whose conversion stanza names the webhook.
CONVERTED_CRDS = (
    "pipelines.tekton.dev",
    "pipelineruns.tekton.dev",
    "tasks.tekton.dev",
    "taskruns.tekton.dev",
    "stepactions.tekton.dev",
    "resolutionrequests.resolution.tekton.dev",
)
_WEBHOOK_CONFIGS = (
    ("mutatingwebhookconfiguration", "webhook.pipeline.tekton.dev"),
    ("validatingwebhookconfiguration", "validation.webhook.pipeline.tekton.dev"),
    ("validatingwebhookconfiguration", "config.webhook.pipeline.tekton.dev"),
)


class TektonError(Exception):
    """Tekton's images could not be built or Tekton did not become ready; says what is missing."""


def image_ref(command: str) -> str:
    """``registry.local/toolforge/tekton-<command>:<version>`` (never ``:latest``, so the
    kubelet's default pull policy is IfNotPresent and it never asks a registry)."""
    return f"registry.local/toolforge/tekton-{command}:{go_binaries.tekton().version}"


def _archive_path(command: str, binary: Path) -> Path:
    key = cache_key(
        {
            "recipe": RECIPE_VERSION,
            "ref": image_ref(command),
            "binary": file_digest(binary),
            "passwd": _PASSWD.decode(),
        }
    )
    return images.images_cache_dir() / f"tekton-{command}-{key}.tar"


def build_images(progress: Progress = print) -> dict[str, Path]:
    """Build the missing Tekton image archives; returns ``{"tekton-<command>": archive}``.

    Needs the Tekton binaries (:func:`toolforge_dev.binaries.tekton`, built here when
    missing). Raises :class:`toolforge_dev.binaries.BuildError` when they do not build.
    """
    component = go_binaries.tekton()
    component.build(progress)
    cache = images.images_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    result: dict[str, Path] = {}
    for command in go_binaries.TEKTON_COMMANDS:
        binary = component.path(command)
        archive = _archive_path(command, binary)
        result[f"tekton-{command}"] = archive
        if archive.is_file():
            continue
        with tempfile.TemporaryDirectory(prefix=".build-tekton-", dir=cache) as tmp:
            layer = Path(tmp) / "layer.tar"
            write_layer(
                layer,
                [
                    Entry(f"ko-app/{command}", mode=0o755, source=binary),
                    Entry("tmp", kind="dir", mode=0o1777),
                    Entry("etc/passwd", data=_PASSWD),
                    Entry("etc/group", data=_GROUP),
                ],
            )
            partial = Path(tmp) / "image.tar"
            images.write_oci_layout(
                partial,
                ref=image_ref(command),
                layers=[(layer, f"tekton {component.version} cmd/{command}")],
                container_config={
                    "Entrypoint": [f"/ko-app/{command}"],
                    "Env": ["PATH=/ko-app:/usr/local/bin:/usr/bin:/bin"],
                    "Labels": {"dev.toolforge.recipe": archive.stem.rsplit("-", 1)[1]},
                },
            )
            shutil.move(partial, archive)
        progress(f"tekton-{command} image: built {archive.name}")
    return result


def render_manifests(manifests_dir: Path = MANIFESTS_DIR) -> str:
    """The Tekton installation manifests with images and version filled in (one YAML stream).

    Raises :class:`TektonError` when a placeholder is left unfilled.
    """
    values = {
        "@TEKTON_VERSION@": go_binaries.tekton().version,
        "@IMAGE_SHELL@": images.BOOKWORM.ref,
        **{f"@IMAGE_{c.upper()}@": image_ref(c) for c in go_binaries.TEKTON_COMMANDS},
    }
    text = "\n---\n".join(p.read_text() for p in sorted(manifests_dir.glob("*.yaml")))
    for key, value in values.items():
        text = text.replace(key, value)
    if "@IMAGE_" in text or "@TEKTON_" in text:
        raise TektonError(f"unfilled placeholder in {manifests_dir}")
    return text


def install(kubectl: Kubectl, progress: Progress = print, timeout: float = 180) -> None:
    """Apply the Tekton manifests (server-side) and wait until Tekton is ready.

    Raises :class:`TektonError` (see :func:`wait_ready`)."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input_text=render_manifests())
    wait_ready(kubectl, progress, timeout)


def _probe_task(api_version: str, steps: list[dict[str, str]]) -> str:
    return json.dumps(
        {
            "apiVersion": f"tekton.dev/{api_version}",
            "kind": "Task",
            "metadata": {"name": "toolforge-readiness-probe", "namespace": NAMESPACE},
            "spec": {"steps": steps},
        }
    )


def _not_ready(kubectl: Kubectl) -> str | None:
    """What Tekton still lacks, or ``None`` when it is ready."""
    for deployment in ("tekton-pipelines-webhook", "tekton-pipelines-controller"):
        status = json.loads(kubectl("get", "deployment", "-n", NAMESPACE, deployment, "-o", "json"))
        if not status.get("status", {}).get("availableReplicas"):
            return f"deployment {deployment} has no available replica"
    for kind, name in _WEBHOOK_CONFIGS:
        config = json.loads(kubectl("get", kind, name, "-o", "json"))
        hooks = config.get("webhooks") or [{}]
        if not all(h.get("clientConfig", {}).get("caBundle") for h in hooks):
            return f"{kind} {name} has no CA yet"
    for crd in CONVERTED_CRDS:
        obj = json.loads(kubectl("get", "crd", crd, "-o", "json"))
        client = obj["spec"].get("conversion", {}).get("webhook", {}).get("clientConfig", {})
        if not client.get("caBundle"):
            return f"CRD {crd} has no conversion CA yet"
    step = {"name": "probe", "image": images.BOOKWORM.ref, "script": "true"}
    # v1beta1 -> v1 (stored) needs the conversion webhook; defaulting and validation run too.
    kubectl("create", "--dry-run=server", "-f", "-", input_text=_probe_task("v1beta1", [step]))
    try:
        kubectl("create", "--dry-run=server", "-f", "-", input_text=_probe_task("v1", []))
    except Exception as exc:  # any refusal (the kubectl callable's error); text checked below
        if "steps" not in str(exc):
            return f"an invalid Task was refused for another reason: {exc}"
        return None
    return "an invalid Task (no steps) was accepted: the validating webhook is not active yet"


def wait_ready(kubectl: Kubectl, progress: Progress = print, timeout: float = 180) -> None:
    """Block until Tekton is ready (see the module docstring), polling every second.

    Raises :class:`TektonError` with the last thing missing after ``timeout`` seconds.
    """
    started = time.monotonic()
    last = "not checked yet"
    while time.monotonic() - started < timeout:
        try:
            missing = _not_ready(kubectl)
        except Exception as exc:  # kubectl failures while things start up
            missing = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if missing is None:
            progress(f"  tekton: ready after {time.monotonic() - started:.1f} s")
            return
        last = missing
        time.sleep(1)
    raise TektonError(f"Tekton not ready after {timeout:.0f} s: {last}")


# ----- hooks of the cluster's start ------------------------------------------------------------


def platform_images(progress: Progress = print) -> dict[str, Path]:
    """Every image the build service adds to the cluster: Tekton's and those of
    :func:`toolforge_dev.buildpacks.build_images` (``{short: archive}``, built when missing)."""
    # Imported here: both modules import toolforge_dev.cluster, which imports this one.
    from toolforge_dev import buildpacks
    from toolforge_dev.cluster import NODE_IP
    from toolforge_dev.services import REGISTRY_PORT

    return {
        **build_images(progress),
        **buildpacks.build_images(f"{NODE_IP}:{REGISTRY_PORT}", progress),
    }


def install_platform(kubectl: Kubectl, progress: Progress = print) -> None:
    """Install Tekton, wait until it is ready, then apply the ``buildpacks`` Pipeline and Task.

    Raises :class:`TektonError` or whatever ``kubectl`` raises."""
    from toolforge_dev import buildpacks

    install(kubectl, progress)
    buildpacks.install_pipeline(kubectl)


def write_registry_hosts(certs_dir: Path, ca_file: Path) -> list[Path]:
    """containerd's registry host configuration (``config_path`` of the CRI plugin) for the
    platform registry and its read-only pull endpoint (:mod:`toolforge_dev.registry_pull`):
    ``<certs_dir>/<node>:<port>/hosts.toml`` naming that address as the only host (pull and
    resolve) with ``ca_file`` as its CA, so the kubelet pulls
    ``<node>:8450/tool-<tool>/<name>:<tag>`` over verified TLS. Trust is not access:
    credentials come from each pod's image pull secret. Returns the files written."""
    from toolforge_dev.cluster import NODE_IP
    from toolforge_dev.registry_pull import PULL_PORT
    from toolforge_dev.services import REGISTRY_PORT

    written = []
    for port in (REGISTRY_PORT, PULL_PORT):
        address = f"{NODE_IP}:{port}"
        path = certs_dir / address / "hosts.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            f'server = "https://{address}"\n\n'
            f'[host."https://{address}"]\n'
            f'  capabilities = ["pull", "resolve"]\n'
            f"  ca = {json.dumps(str(ca_file))}\n"
        )
        written.append(path)
    return written
