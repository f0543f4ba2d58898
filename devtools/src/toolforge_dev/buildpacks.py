"""Cloud Native Buildpacks on the local platform: the builder, run and git images, the build
Pipeline, and publishing the run image to the registry.

Images (OCI archives in ``<cache>/images``, imported into containerd like the others):

- :data:`BASE` ``buildpacks-base``: bookworm minbase with ``python3``, ``python3-venv``, ``git``
  and ``ca-certificates`` (debootstrap, built by :mod:`toolforge_dev.images`). Not imported: its
  one layer is the bottom layer of the builder and git images, so containerd keeps it once.
- :data:`GIT_IMAGE` ``registry.local/toolforge/git:stable``: that layer alone; the clone step.
- :data:`BUILDER_IMAGE` ``registry.local/toolforge/buildpacks-builder:latest`` (the builds API's
  default ``BUILDER_IMAGE``): that layer plus a layer with what the buildpacks platform spec
  asks of a builder: ``/cnb/lifecycle/`` (the lifecycle v0.21.0 built here, its phase symlinks
  ``detector``, ``analyzer``, ``restorer``, ``builder``, ``exporter``, ``creator``, ``rebaser``,
  ``extender``, the ``launcher`` and ``lifecycle.toml``), ``/cnb/buildpacks/<id>/<version>/``
  (``devtools/buildpacks/*``), ``/cnb/order.toml``, ``/cnb/run.toml`` and the legacy
  ``/cnb/stack.toml`` naming the run image, and the ``cnb`` user (:data:`CNB_UID`) with env
  ``CNB_USER_ID``/``CNB_GROUP_ID``.
- :data:`RUN_IMAGE` ``registry.local/toolforge/buildpacks-run:latest``: the python3.11 image's
  layer plus the ``cnb`` user, with the ``io.buildpacks.base.*`` distro labels. The exporter
  builds app images on it *from the registry*, so :func:`publish_run_image` pushes it to
  :func:`run_image_in_registry` (``<node>:8446/toolforge/buildpacks-run:latest``).

The build itself is the ``buildpacks`` Pipeline and Task of ``devtools/manifests/buildpacks/``,
applied by :func:`install_pipeline` once Tekton is ready (its webhook validates them).
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from toolforge_dev import binaries as go_binaries
from toolforge_dev import images, oci
from toolforge_dev.image_layers import Entry, cache_key, extract_layers, file_digest, write_layer
from toolforge_dev.paths import REPO_ROOT

__all__ = [
    "BASE",
    "BUILDER_IMAGE",
    "CNB_UID",
    "GIT_IMAGE",
    "PIPELINE_MANIFEST",
    "PLATFORM_API",
    "RUN_IMAGE",
    "BuildpacksError",
    "build_images",
    "install_pipeline",
    "publish_run_image",
    "run_image_in_registry",
]

Progress = Callable[[str], None]
Kubectl = Callable[..., str]

BUILDPACKS_DIR = REPO_ROOT / "devtools" / "buildpacks"
PIPELINE_MANIFEST = REPO_ROOT / "devtools" / "manifests" / "buildpacks" / "pipeline.yaml"
#: Bump to rebuild the derived images.
RECIPE_VERSION = 1
#: Buildpacks platform API the Task asks the lifecycle for (``CNB_PLATFORM_API``).
PLATFORM_API = "0.14"
CNB_UID = 1000
CNB_GID = 1000
PHASES = ("detector", "analyzer", "restorer", "builder", "exporter", "creator", "rebaser")
#: Order of the builder: Python is optional, a Procfile is required (it defines the processes).
ORDER = (("toolforge/python", True), ("toolforge/procfile", False))

BASE = images.ImageSpec(
    short="buildpacks-base",
    ref="registry.local/toolforge/buildpacks-base:stable",
    kind="debootstrap",
    include=("python3", "python3-venv", "git", "ca-certificates"),
    cmd=("/bin/bash",),
    user_facing=False,
)
GIT_IMAGE = "registry.local/toolforge/git:stable"
BUILDER_IMAGE = "registry.local/toolforge/buildpacks-builder:latest"
RUN_IMAGE = "registry.local/toolforge/buildpacks-run:latest"
RUN_IMAGE_REPOSITORY = "toolforge/buildpacks-run"


class BuildpacksError(Exception):
    """An image could not be built or published; the message says why."""


def run_image_in_registry(registry_address: str) -> str:
    """The run image's reference in the platform registry (``host:port``): what the builds API
    passes as ``RUN_IMAGE``."""
    return f"{registry_address}/{RUN_IMAGE_REPOSITORY}:latest"


# ----- buildpacks ------------------------------------------------------------------------------


def _buildpack_descriptor(directory: Path) -> tuple[str, str]:
    import tomllib

    data = tomllib.loads((directory / "buildpack.toml").read_text())
    return str(data["buildpack"]["id"]), str(data["buildpack"]["version"])


def _buildpack_entries() -> tuple[list[Entry], list[dict[str, str]]]:
    entries: list[Entry] = []
    described = []
    for directory in sorted(p for p in BUILDPACKS_DIR.iterdir() if p.is_dir()):
        bp_id, version = _buildpack_descriptor(directory)
        base = f"cnb/buildpacks/{bp_id.replace('/', '_')}/{version}"
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                rel = path.relative_to(directory).as_posix()
                mode = 0o755 if rel.startswith("bin/") else 0o644
                entries.append(Entry(f"{base}/{rel}", mode=mode, data=path.read_bytes()))
        described.append({"id": bp_id, "version": version})
    return entries, described


def _order_toml(described: list[dict[str, str]]) -> str:
    versions = {d["id"]: d["version"] for d in described}
    lines = ["[[order]]"]
    for bp_id, optional in ORDER:
        lines += [
            "[[order.group]]",
            f"id = {json.dumps(bp_id)}",
            f"version = {json.dumps(versions[bp_id])}",
            f"optional = {'true' if optional else 'false'}",
        ]
    return "\n".join(lines) + "\n"


# ----- images ----------------------------------------------------------------------------------


def _read_member(layer: Path, name: str) -> bytes:
    with tarfile.open(layer, mode="r:") as tar:
        f = tar.extractfile(name)
        if f is None:
            raise BuildpacksError(f"{layer}: no {name}")
        return f.read()


def _user_entries(base_layer: Path) -> list[Entry]:
    """``/etc/passwd`` and ``/etc/group`` of the base plus the ``cnb`` user, and its home."""
    passwd = _read_member(base_layer, "etc/passwd").decode()
    group = _read_member(base_layer, "etc/group").decode()
    passwd += f"cnb:x:{CNB_UID}:{CNB_GID}:Cloud Native Buildpacks:/home/cnb:/bin/bash\n"
    group += f"cnb:x:{CNB_GID}:\n"
    return [
        Entry("etc/passwd", data=passwd.encode()),
        Entry("etc/group", data=group.encode()),
        Entry("home/cnb", kind="dir", mode=0o755, uid=CNB_UID, gid=CNB_GID),
    ]


def _cnb_env() -> list[str]:
    return [*images.DEFAULT_ENV, f"CNB_USER_ID={CNB_UID}", f"CNB_GROUP_ID={CNB_GID}"]


def _builder_layer(out: Path, base_layer: Path, run_image: str) -> dict[str, Any]:
    """Write the builder's own layer; returns its ``io.buildpacks.builder.metadata`` label."""
    lifecycle = go_binaries.lifecycle()
    version = lifecycle.version.lstrip("v")
    bp_entries, described = _buildpack_entries()
    descriptor = (
        f'[api]\n  platform = "0.7"\n  buildpack = "0.7"\n\n'
        f'[apis.platform]\n  supported = ["0.7", "0.8", "0.9", "0.10", "0.11", "0.12", '
        f'"0.13", "0.14", "0.15"]\n  deprecated = []\n'
        f'[apis.buildpack]\n  supported = ["0.7", "0.8", "0.9", "0.10", "0.11", "0.12"]\n'
        f"  deprecated = []\n\n"
        f'[lifecycle]\n  version = "{version}"\n'
    )
    entries = [
        Entry("cnb/lifecycle/lifecycle", mode=0o755, source=lifecycle.path("lifecycle")),
        Entry("cnb/lifecycle/launcher", mode=0o755, source=lifecycle.path("launcher")),
        Entry("cnb/lifecycle/lifecycle.toml", data=descriptor.encode()),
        *(Entry(f"cnb/lifecycle/{p}", kind="symlink", target="lifecycle") for p in PHASES),
        *bp_entries,
        Entry("cnb/order.toml", data=_order_toml(described).encode()),
        Entry("cnb/run.toml", data=f"[[images]]\n  image = {json.dumps(run_image)}\n".encode()),
        Entry("cnb/stack.toml", data=f"[run-image]\n  image = {json.dumps(run_image)}\n".encode()),
        *_user_entries(base_layer),
        *(
            Entry(d, kind="dir", mode=0o755, uid=CNB_UID, gid=CNB_GID)
            for d in ("workspace", "layers", "platform")
        ),
    ]
    write_layer(out, entries)
    return {
        "description": "Toolforge builder: Python (vendored wheels) and Procfile buildpacks",
        "buildpacks": described,
        "lifecycle": {"version": version},
        "images": [{"image": run_image}],
    }


def _recipe(name: str, extra: dict[str, Any]) -> str:
    sources = sorted(
        (p.relative_to(BUILDPACKS_DIR).as_posix(), file_digest(p))
        for p in BUILDPACKS_DIR.rglob("*")
        if p.is_file()
    )
    return cache_key({"recipe": RECIPE_VERSION, "image": name, "sources": sources, **extra})


def build_images(registry_address: str, progress: Progress = print) -> dict[str, Path]:
    """Build the missing archives of the git, builder and run images (and the base, the
    lifecycle and the python3.11 image they start from); returns ``{short: archive}`` for the
    three images to import.

    ``registry_address`` (``host:port``) goes into the builder's ``run.toml``. Raises
    :class:`BuildpacksError`, :class:`toolforge_dev.images.ImageBuildError` or
    :class:`toolforge_dev.binaries.BuildError`.
    """
    lifecycle = go_binaries.lifecycle()
    lifecycle.build(progress)
    bases = images.build_images(progress=progress, specs=(BASE, images.PYTHON311))
    cache = images.images_cache_dir()
    run_in_registry = run_image_in_registry(registry_address)
    wanted = {
        "git": (GIT_IMAGE, {"base": bases[BASE.short].name}),
        "buildpacks-builder": (
            BUILDER_IMAGE,
            {
                "base": bases[BASE.short].name,
                "lifecycle": lifecycle.version,
                "launcher": file_digest(lifecycle.path("launcher")),
                "run": run_in_registry,
            },
        ),
        "buildpacks-run": (RUN_IMAGE, {"base": bases[images.PYTHON311.short].name}),
    }
    result = {}
    for short, (ref, extra) in wanted.items():
        archive = cache / f"{short}-{_recipe(short, {'ref': ref, **extra})}.tar"
        result[short] = archive
        if archive.is_file():
            continue
        started = time.monotonic()
        base_archive = bases[images.PYTHON311.short if short == "buildpacks-run" else BASE.short]
        with tempfile.TemporaryDirectory(prefix=f".build-{short}-", dir=cache) as tmp:
            work = Path(tmp)
            (base_layer,) = extract_layers(base_archive, work / "base")
            layers = [(base_layer, f"from {base_archive.name}")]
            config: dict[str, Any] = {"Env": _cnb_env()}
            if short == "git":
                config = {"Env": list(images.DEFAULT_ENV), "Cmd": ["/bin/bash"]}
            elif short == "buildpacks-builder":
                own = work / "cnb.tar"
                metadata = _builder_layer(own, base_layer, run_in_registry)
                layers.append((own, "lifecycle, buildpacks, order.toml, run.toml, cnb user"))
                config |= {
                    "User": f"{CNB_UID}:{CNB_GID}",
                    "WorkingDir": "/workspace",
                    "Labels": {"io.buildpacks.builder.metadata": json.dumps(metadata)},
                }
            else:
                own = work / "user.tar"
                write_layer(own, _user_entries(base_layer))
                layers.append((own, "cnb user"))
                config |= {
                    "User": f"{CNB_UID}:{CNB_GID}",
                    "Labels": {
                        "io.buildpacks.base.distro.name": "debian",
                        "io.buildpacks.base.distro.version": "12",
                        "io.buildpacks.stack.id": "org.toolforge.bookworm",
                    },
                }
            partial = work / "image.tar"
            images.write_oci_layout(partial, ref=ref, layers=layers, container_config=config)
            shutil.move(partial, archive)
        progress(f"{short} image: built {archive.name} ({time.monotonic() - started:.0f} s)")
    return result


# ----- run image in the registry ---------------------------------------------------------------


def _manifest_digest(archive: Path) -> str:
    return images.read_archive_index(archive).manifest_digest


def publish_run_image(
    archive: Path,
    *,
    registry_url: str,
    ca_file: Path,
    username: str,
    password: str,
    progress: Progress = print,
) -> str:
    """Push the run image archive to ``<registry_url>/toolforge/buildpacks-run:latest`` with
    ``skopeo copy`` (layers kept as they are, so digests do not change) unless the registry
    already has that manifest there; returns the reference pushed.

    Raises :class:`BuildpacksError` with skopeo's output when the push fails.
    """
    address = registry_url.removeprefix("https://").rstrip("/")
    target = run_image_in_registry(address)
    digest = _manifest_digest(archive)
    context = ssl.create_default_context(cafile=str(ca_file))
    with httpx.Client(verify=context, auth=(username, password), timeout=10) as client:
        reply = client.head(
            f"{registry_url}/v2/{RUN_IMAGE_REPOSITORY}/manifests/latest",
            headers={"Accept": oci.MEDIA_TYPE_MANIFEST},
        )
        if reply.status_code == 200 and reply.headers.get("docker-content-digest") == digest:
            progress(f"  {target}: already in the registry")
            return target
    with tempfile.TemporaryDirectory() as certs:
        # skopeo reads CA certificates from a directory (*.crt), per the containers-certs.d rules.
        shutil.copy(ca_file, Path(certs) / "ca.crt")
        started = time.monotonic()
        proc = subprocess.run(
            [
                "skopeo",
                "copy",
                "--quiet",
                "--preserve-digests",
                "--dest-cert-dir",
                certs,
                "--dest-creds",
                f"{username}:{password}",
                f"oci-archive:{archive}",
                f"docker://{target}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        output = (proc.stderr or proc.stdout).replace(password, "***").strip()
        raise BuildpacksError(f"skopeo copy of the run image failed: {output}")
    progress(f"  {target}: pushed in {time.monotonic() - started:.1f} s")
    return target


# ----- Pipeline --------------------------------------------------------------------------------


def render_pipeline() -> str:
    """The ``buildpacks`` Pipeline and Task with the git image and platform API filled in."""
    text = PIPELINE_MANIFEST.read_text()
    text = text.replace("@GIT_IMAGE@", GIT_IMAGE).replace("@PLATFORM_API@", PLATFORM_API)
    if "@GIT_IMAGE@" in text or "@PLATFORM_API@" in text:
        raise BuildpacksError("unfilled placeholder in the Pipeline manifest")
    return text


def install_pipeline(kubectl: Kubectl) -> None:
    """Apply the ``buildpacks`` Pipeline and Task (Tekton's webhook must be ready: it
    validates them). Raises whatever ``kubectl`` raises."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input_text=render_pipeline())
