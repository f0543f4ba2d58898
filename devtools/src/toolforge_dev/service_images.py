"""OCI images of the platform's own services (gateway, jobs API, builds API).

Each image is the local ``python3.11`` image (:data:`toolforge_dev.images.PYTHON311`, Debian
bookworm's ``python3``) plus one layer holding the uv-locked wheels of the service and nothing
else: the third-party wheels exactly as pinned (with hashes) in ``uv.lock``
(``uv export --frozen --no-dev --no-emit-workspace --package <service>``), and wheels built
from the workspace members the service needs (``toolforge-auth``, ``toolforge-kit`` and the
service itself).
They are installed with ``uv pip install --target /opt/toolforge/lib --compile-bytecode``, so
the image has no virtualenv, no pip, no uv and no compiler; ``PYTHONPATH`` points at that
directory. The image runs as the non-root user ``10001:10001`` (no passwd entry needed), and
its entrypoint is ``python3 -m <module>``; arguments (``--config FILE``) come from the pod.

The tag is a content key (12 hex digits hashing the recipe, the base image's key, ``uv.lock``
and every file of the member packages), so a changed source gives a new tag and a Helm upgrade
rolls the pods, while an unchanged tree reuses the cached archive
(``cache_dir()/images/<name>-<key>.tar``) without any work.

API: :data:`SERVICES`, :func:`image_ref`, :func:`build_service_images`.
Errors: :class:`toolforge_dev.images.ImageBuildError` with the failing command's log.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from toolforge_dev.images import (
    DEFAULT_ENV,
    PYTHON311,
    ImageBuildError,
    build_images,
    images_cache_dir,
    write_oci_layout,
    write_rootfs_layer,
)
from toolforge_dev.paths import REPO_ROOT

Progress = Callable[[str], None]

#: Bump to rebuild every service image.
RECIPE_VERSION = 1
#: Repository part of every service image reference.
REGISTRY_PREFIX = "registry.local/toolforge"
#: uid:gid the services run as (matches the charts' ``runAsUser``/``runAsGroup``).
SERVICE_USER = "10001:10001"
#: Where the wheels are installed inside the image.
SITE_DIR = "/opt/toolforge/lib"


@dataclass(frozen=True)
class ServiceImage:
    """One service image: ``name`` (image and chart name), Python ``package`` (distribution
    name in ``uv.lock``), ``module`` run with ``python3 -m``, and the workspace ``members``
    (directories) whose wheels go in."""

    name: str
    package: str
    module: str
    members: tuple[str, ...]


SERVICES: tuple[ServiceImage, ...] = (
    ServiceImage(
        "toolforge-gateway",
        "toolforge-gateway",
        "toolforge_gateway",
        ("libs/toolforge_auth", "services/gateway"),
    ),
    ServiceImage(
        "toolforge-jobs-api",
        "toolforge-jobs",
        "toolforge_jobs",
        ("libs/toolforge_auth", "libs/toolforge_kit", "libs/toolforge_logstore", "services/jobs"),
    ),
    ServiceImage(
        "toolforge-builds-api",
        "toolforge-builds",
        "toolforge_builds",
        ("libs/toolforge_auth", "libs/toolforge_kit", "services/builds"),
    ),
    ServiceImage(
        "toolforge-envvars-api",
        "toolforge-envvars",
        "toolforge_envvars",
        ("libs/toolforge_auth", "libs/toolforge_kit", "services/envvars"),
    ),
    ServiceImage(
        "toolforge-envvars-webhook",
        "toolforge-envvars",
        "toolforge_envvars.webhook",
        ("libs/toolforge_auth", "libs/toolforge_kit", "services/envvars"),
    ),
    ServiceImage(
        "toolforge-logs-api",
        "toolforge-logs",
        "toolforge_logs",
        (
            "libs/toolforge_auth",
            "libs/toolforge_kit",
            "libs/toolforge_logstore",
            "services/logs",
        ),
    ),
    ServiceImage(
        "toolforge-emailer",
        "toolforge-emailer",
        "toolforge_emailer",
        ("libs/toolforge_auth", "libs/toolforge_kit", "services/emailer"),
    ),
)


def _member_files(member: str) -> list[Path]:
    root = REPO_ROOT / member
    files = [root / "pyproject.toml"]
    for path in sorted((root / "src").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            files.append(path)
    return files


def content_key(service: ServiceImage) -> str:
    """12 hex digits over the recipe, the base image, ``uv.lock`` and the members' files."""
    digest = hashlib.sha256()
    digest.update(f"{RECIPE_VERSION}|{service}|{PYTHON311.recipe_key()}|{SERVICE_USER}".encode())
    for path in [REPO_ROOT / "uv.lock", *(f for m in service.members for f in _member_files(m))]:
        digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:12]


def image_ref(service: ServiceImage) -> str:
    """``registry.local/toolforge/<name>:<content key>``."""
    return f"{REGISTRY_PREFIX}/{service.name}:{content_key(service)}"


def _run(argv: list[str], log: Path, what: str) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        proc = subprocess.run(argv, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-20:])
        raise ImageBuildError(f"{what} failed (log: {log}):\n{tail}")


def _member(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    """An archive member's content; :class:`ImageBuildError` when it is missing."""
    try:
        f = tar.extractfile(name)
    except KeyError:
        f = None
    if f is None:
        raise ImageBuildError(f"{tar.name!r}: no {name}")
    return f


def _manifest(tar: tarfile.TarFile) -> dict[str, Any]:
    """The one image manifest of an OCI archive written by :func:`write_oci_layout`."""
    digest = json.load(_member(tar, "index.json"))["manifests"][0]["digest"]
    manifest: dict[str, Any] = json.load(_member(tar, _blob_name(digest)))
    return manifest


def _blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def _extract_base_layer(base_archive: Path, out: Path) -> None:
    """Copy the single layer of a one-layer OCI archive (the python3.11 image) to ``out``."""
    with tarfile.open(base_archive, mode="r:") as tar:
        layers = _manifest(tar)["layers"]
        if len(layers) != 1:
            raise ImageBuildError(f"{base_archive}: expected one layer, found {len(layers)}")
        src = _member(tar, _blob_name(layers[0]["digest"]))
        with out.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)


def _uv() -> list[str]:
    """The uv command: ``$UV`` (set by ``uv run``), else ``uv`` on PATH, else ``python3 -m uv``."""
    if os.environ.get("UV"):
        return [os.environ["UV"]]
    found = shutil.which("uv")
    return [found] if found else ["python3", "-m", "uv"]


def _build_app_layer(service: ServiceImage, work: Path, layer: Path, log: Path) -> None:
    uv = _uv()
    requirements = work / "requirements.txt"
    _run(
        [
            *uv,
            "export",
            "--frozen",
            "--no-dev",
            "--no-emit-workspace",
            "--no-header",
            "--package",
            service.package,
            "--format",
            "requirements-txt",
            "--output-file",
            str(requirements),
        ],
        log,
        "uv export",
    )
    wheels = work / "wheels"
    for member in service.members:
        _run([*uv, "build", "--wheel", "--out-dir", str(wheels), member], log, f"uv build {member}")
    stage = work / "root"
    target = stage / SITE_DIR.lstrip("/")
    install = [
        *uv,
        "pip",
        "install",
        "--target",
        str(target),
        "--python",
        "/usr/bin/python3.11",
        "--compile-bytecode",
        "--quiet",
    ]
    _run([*install, "--require-hashes", "-r", str(requirements)], log, "uv pip install (locked)")
    _run([*install, "--no-deps", *map(str, sorted(wheels.glob("*.whl")))], log, "uv pip install")
    # Console scripts are not used (the entrypoint is python3 -m); drop them and their
    # host-specific shebangs.
    for script in sorted((target / "bin").glob("*")) if (target / "bin").is_dir() else []:
        script.unlink()
    if (target / "bin").is_dir():
        (target / "bin").rmdir()
    os.chmod(stage, 0o755)  # noqa: S103 - the image's root directory: world-readable by design
    with layer.open("wb") as out:
        write_rootfs_layer(stage, out)


def build_service_image(service: ServiceImage, progress: Progress = print) -> Path:
    """Build ``service``'s archive unless cached; returns its path.

    Raises :class:`ImageBuildError` when a uv step fails (the message has the log's tail).
    """
    directory = images_cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    key = content_key(service)
    archive = directory / f"{service.name}-{key}.tar"
    if archive.exists():
        progress(f"{service.name} image: cached ({archive.name})")
        return archive
    base = build_images(progress=progress, specs=(PYTHON311,))[PYTHON311.short]
    progress(f"building {service.name} image (uv-locked wheels on python3.11)...")
    started = time.monotonic()
    log = directory / f"{service.name}.build.log"
    log.write_text("")
    # ".svc-" not ".build-": build_images removes stale ".build-*" directories, and another
    # process may build base images while this one builds a service image.
    with tempfile.TemporaryDirectory(prefix=f".svc-{service.name}-", dir=directory) as tmp:
        work = Path(tmp)
        base_layer, app_layer = work / "base.tar", work / "app.tar"
        _extract_base_layer(base, base_layer)
        _build_app_layer(service, work, app_layer, log)
        partial = work / "image.tar"
        write_oci_layout(
            partial,
            ref=image_ref(service),
            layers=[
                (base_layer, "debootstrap " + " ".join(PYTHON311.debootstrap_args())),
                (app_layer, f"uv pip install --target {SITE_DIR} (uv.lock, {service.package})"),
            ],
            container_config={
                "Env": [*DEFAULT_ENV, f"PYTHONPATH={SITE_DIR}", "PYTHONDONTWRITEBYTECODE=1"],
                "Entrypoint": ["/usr/bin/python3", "-m", service.module],
                "User": SERVICE_USER,
                "WorkingDir": "/",
                "Labels": {"dev.toolforge.recipe": key},
            },
        )
        os.replace(partial, archive)
    for old in directory.glob(f"{service.name}-*.tar"):
        if old != archive:
            old.unlink()
    size_mib = archive.stat().st_size / 2**20
    progress(
        f"{service.name} image: built {archive.name} ({size_mib:.0f} MiB, "
        f"app layer {app_layer_size(archive) / 2**20:.0f} MiB, "
        f"{time.monotonic() - started:.0f} s)"
    )
    return archive


def app_layer_size(archive: Path) -> int:
    """Size in bytes of the top (application) layer of a service image archive."""
    with tarfile.open(archive, mode="r:") as tar:
        return int(_manifest(tar)["layers"][-1]["size"])


def build_service_images(progress: Progress = print) -> dict[str, Path]:
    """Build every service image that is not cached; returns ``{name: archive path}``."""
    return {s.name: build_service_image(s, progress) for s in SERVICES}
