"""Local OCI container images for the dev cluster, built without Docker or a registry.

The cluster runs three images. They are built on this machine, saved as OCI image layout
archives in the cache and imported straight into containerd, so the kubelet finds them with
``imagePullPolicy: IfNotPresent``/``Never``:

- :data:`PAUSE` ``registry.local/toolforge/pause:3.10``: the pod sandbox image. Its only file
  is ``/pause``, built from ``devtools/images/pause.c`` with ``gcc -static -Os`` and stripped.
  Entrypoint ``["/pause"]``. Its archive is byte-for-byte reproducible (same gcc).
- :data:`BOOKWORM` ``registry.local/toolforge/bookworm:stable``: Debian bookworm from
  ``debootstrap --variant=minbase``. Cmd ``["/bin/bash"]``.
- :data:`PYTHON311` ``registry.local/toolforge/python3.11:stable``: the same plus
  ``python3`` (its own full rootfs from ``debootstrap --include=python3``, one layer).

Every image is one uncompressed layer (``application/vnd.oci.image.layer.v1.tar``, so its
diff_id equals its digest), has ``Env`` ``PATH=...`` and ``LANG=C.UTF-8`` and platform
linux/amd64. Root filesystems are packed with numeric owners, sorted entries, and without the
contents of ``/dev``, ``/proc``, ``/sys``, ``/var/lib/apt/lists`` or the ``*.deb`` files of
``/var/cache/apt/archives``.

The Debian mirror is the one this machine's apt uses for bookworm (see :func:`debian_mirror`);
``$TOOLFORGE_DEV_DEBIAN_MIRROR`` overrides it.

API:

- :func:`build_images` ``(progress=print, specs=ALL_IMAGES) -> {short: archive Path}``: build
  what is missing, cached as ``cache_dir()/images/<short>-<key>.tar``; the key hashes the recipe
  (:data:`RECIPE_VERSION`, image ref, ``pause.c``, debootstrap arguments), so a cached archive
  is reused without any work and a changed recipe builds a new one. Needs root for debootstrap.
- :func:`import_images` ``(archives, *, ctr="ctr", address, namespace="k8s.io", ...)``: import
  archives into a running containerd with ``ctr images import`` (unpacked into the overlayfs
  snapshotter, ready for CRI), skipping each one whose ref is already there, unpacked, with the
  same manifest digest.
- :func:`image_config_yaml` ``(specs=ALL_IMAGES) -> str``: the Toolforge ``images-v1.yaml``
  (ConfigMap ``image-config``) listing the user-facing images.
- :func:`present_images` ``(*, ctr, address, namespace) -> {ref: (digest, unpacked)}``: what
  containerd holds (``ctr images check``).
- :func:`image_config` ``(specs) -> dict``: the same as :func:`image_config_yaml`, unserialised.
- :func:`read_archive_index` ``(archive) -> ArchiveInfo``: ref and manifest digest of an archive.
- :func:`debian_mirror`, :func:`write_oci_archive`: the pieces; the OCI layout and the
  containerd import are in :mod:`toolforge_dev.oci` (re-exported here).

Errors are reported as :class:`ImageBuildError` (building) and :class:`ImageImportError`
(importing).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from toolforge_dev.oci import (
    ARCHITECTURE,
    ArchiveInfo,
    ImageImportError,
    import_images,
    present_images,
    read_archive_index,
    write_oci_layout,
    write_rootfs_layer,
)
from toolforge_dev.paths import REPO_ROOT, cache_dir

__all__ = [
    "ALL_IMAGES",
    "BOOKWORM",
    "PAUSE",
    "PYTHON311",
    "RECIPE_VERSION",
    "ArchiveInfo",
    "ImageBuildError",
    "ImageImportError",
    "ImageSpec",
    "build_images",
    "debian_mirror",
    "image_config",
    "image_config_yaml",
    "images_cache_dir",
    "import_images",
    "present_images",
    "read_archive_index",
    "write_oci_archive",
    "write_oci_layout",
    "write_rootfs_layer",
]

#: Bump to rebuild every image (part of each archive's cache key).
RECIPE_VERSION = 2
#: Directory holding the sources of the images (``pause.c``).
IMAGES_SRC_DIR = REPO_ROOT / "devtools" / "images"
PAUSE_SOURCE = IMAGES_SRC_DIR / "pause.c"

DEBIAN_SUITE = "bookworm"
DEFAULT_ENV: tuple[str, ...] = (
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG=C.UTF-8",
)


#: Environment variable that overrides the Debian mirror read from the apt sources.
MIRROR_ENV = "TOOLFORGE_DEV_DEBIAN_MIRROR"

Progress = Callable[[str], None]


class ImageBuildError(RuntimeError):
    """An image could not be built (missing tool, not root, debootstrap failed, no mirror)."""


@dataclass(frozen=True)
class ImageSpec:
    """Recipe of one image.

    ``short`` names the image in the cache and in ``images-v1.yaml``; ``ref`` is the fully
    qualified reference (``registry.local/toolforge/<name>:<tag>``); ``aliases`` and ``state``
    go to ``images-v1.yaml`` when ``user_facing``. ``kind`` selects the builder: ``"pause"``
    (static ``/pause`` only) or ``"debootstrap"`` (minbase rootfs plus ``include`` packages).
    """

    short: str
    ref: str
    kind: Literal["pause", "debootstrap"]
    aliases: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    user_facing: bool = True
    state: str = "stable"

    @property
    def tag(self) -> str:
        """The tag part of ``ref`` (``"stable"``, ``"3.10"``)."""
        return self.ref.rsplit(":", 1)[1]

    def debootstrap_args(self) -> list[str]:
        """debootstrap options (without target and mirror); empty for non-debootstrap images."""
        if self.kind != "debootstrap":
            return []
        args = ["--variant=minbase", f"--arch={ARCHITECTURE}"]
        if self.include:
            args.append("--include=" + ",".join(self.include))
        return [*args, DEBIAN_SUITE]

    def recipe_key(self) -> str:
        """12 hex digits hashing everything that determines the image's content."""
        recipe: dict[str, Any] = {
            "recipe_version": RECIPE_VERSION,
            "ref": self.ref,
            "kind": self.kind,
            "debootstrap": self.debootstrap_args(),
            "entrypoint": self.entrypoint,
            "cmd": self.cmd,
            "env": DEFAULT_ENV,
        }
        if self.kind == "pause":
            recipe["pause.c"] = hashlib.sha256(PAUSE_SOURCE.read_bytes()).hexdigest()
        blob = json.dumps(recipe, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def archive_path(self) -> Path:
        """Where the cached archive of this recipe lives (``cache_dir()/images/...tar``)."""
        return images_cache_dir() / f"{self.short}-{self.recipe_key()}.tar"


PAUSE = ImageSpec(
    short="pause",
    ref="registry.local/toolforge/pause:3.10",
    kind="pause",
    entrypoint=("/pause",),
    user_facing=False,
)
BOOKWORM = ImageSpec(
    short="bookworm",
    ref="registry.local/toolforge/bookworm:stable",
    kind="debootstrap",
    aliases=("tf-bookworm",),
    cmd=("/bin/bash",),
)
PYTHON311 = ImageSpec(
    short="python3.11",
    ref="registry.local/toolforge/python3.11:stable",
    kind="debootstrap",
    aliases=("tf-python311", "python3"),
    include=("python3",),
    cmd=("/bin/bash",),
)
ALL_IMAGES: tuple[ImageSpec, ...] = (PAUSE, BOOKWORM, PYTHON311)


def images_cache_dir() -> Path:
    """``cache_dir()/images``: archives, the debootstrap package cache, build scratch space."""
    return cache_dir() / "images"


# --------------------------------------------------------------------------------------------
# Debian mirror


def _deb822_paragraphs(text: str) -> Iterator[dict[str, str]]:
    fields: dict[str, str] = {}
    key: str | None = None
    for raw in [*text.splitlines(), ""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if fields:
                yield fields
            fields, key = {}, None
            continue
        if raw[0] in " \t" and key is not None:
            fields[key] += " " + raw.strip()
            continue
        name, sep, value = raw.partition(":")
        if sep:
            key = name.strip().lower()
            fields[key] = value.strip()


def _usable_uri(uri: str) -> bool:
    return uri.startswith(("http://", "https://", "file:/"))


def _mirrors_from_deb822(text: str, suite: str) -> list[str]:
    found = []
    for para in _deb822_paragraphs(text):
        if para.get("enabled", "yes").lower() == "no":
            continue
        if "deb" not in para.get("types", "").split():
            continue
        if suite not in para.get("suites", "").split():
            continue
        if "main" not in para.get("components", "").split():
            continue
        found += [u for u in para.get("uris", "").split() if _usable_uri(u)]
    return found


def _mirrors_from_one_line(text: str, suite: str) -> list[str]:
    found = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        line = re.sub(r"\[[^\]]*\]", " ", line)  # drop [arch=... signed-by=...] options
        words = line.split()
        if (
            len(words) >= 4
            and words[0] == "deb"
            and words[2] == suite
            and "main" in words[3:]
            and _usable_uri(words[1])
        ):
            found.append(words[1])
    return found


def debian_mirror(
    suite: str = DEBIAN_SUITE,
    *,
    sources_list: Path = Path("/etc/apt/sources.list"),
    sources_dir: Path = Path("/etc/apt/sources.list.d"),
) -> str:
    """The Debian mirror URL this machine's apt uses for ``suite`` (main component).

    ``$TOOLFORGE_DEV_DEBIAN_MIRROR`` wins if set. Otherwise the first matching ``deb`` source
    in apt's order: ``sources_list`` (one-line format), then ``sources_dir``'s ``*.list``
    (one-line) and ``*.sources`` (deb822) files by name. Raises :class:`ImageBuildError` when
    there is none.
    """
    override = os.environ.get(MIRROR_ENV, "").strip()
    if override:
        return override.rstrip("/")
    candidates: list[str] = []
    if sources_list.is_file():
        candidates += _mirrors_from_one_line(sources_list.read_text(errors="replace"), suite)
    if sources_dir.is_dir():
        for path in sorted(sources_dir.iterdir()):
            if path.suffix == ".list":
                candidates += _mirrors_from_one_line(path.read_text(errors="replace"), suite)
            elif path.suffix == ".sources":
                candidates += _mirrors_from_deb822(path.read_text(errors="replace"), suite)
    if not candidates:
        raise ImageBuildError(
            f"no Debian mirror for suite {suite!r} (component main) found in {sources_list} "
            f"or {sources_dir}/*.sources|*.list; set ${MIRROR_ENV} to a mirror URL"
        )
    return candidates[0].rstrip("/")


# --------------------------------------------------------------------------------------------
# Mount and scratch-space safety


def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` (deepest first)."""
    prefix = str(path.resolve())
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            mount_point = re.sub(
                r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4]
            )
            if mount_point == prefix or mount_point.startswith(prefix + "/"):
                found.append(mount_point)
    return sorted(found, key=len, reverse=True)


def _remove_tree(path: Path) -> None:
    """Unmount whatever debootstrap left mounted under ``path``, then delete it."""
    if not path.exists():
        return
    for mount_point in _mounts_under(path):
        if subprocess.run(["umount", mount_point], check=False).returncode != 0:
            subprocess.run(["umount", "--lazy", mount_point], check=False)
    left = _mounts_under(path)
    if left:
        raise ImageBuildError(f"refusing to delete {path}: still mounted: {', '.join(left)}")
    shutil.rmtree(path)


@contextlib.contextmanager
def _build_lock(directory: Path) -> Iterator[None]:
    """Serialise builds between processes sharing the cache."""
    with open(directory / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# --------------------------------------------------------------------------------------------
# OCI archives of the specs


def write_oci_archive(spec: ImageSpec, layer: Path, out: Path, *, history: str) -> None:
    """Pack the layer tar ``layer`` as a one-layer OCI image layout tar at ``out``.

    The container config has :data:`DEFAULT_ENV`, the spec's entrypoint/cmd and the label
    ``dev.toolforge.recipe``; see :func:`write_oci_layout` for the archive's layout.
    """
    container_config: dict[str, Any] = {"Env": list(DEFAULT_ENV)}
    if spec.entrypoint is not None:
        container_config["Entrypoint"] = list(spec.entrypoint)
    if spec.cmd is not None:
        container_config["Cmd"] = list(spec.cmd)
    container_config["Labels"] = {"dev.toolforge.recipe": spec.recipe_key()}
    write_oci_layout(
        out, ref=spec.ref, layers=[(layer, history)], container_config=container_config
    )


# --------------------------------------------------------------------------------------------
# Builders


def _run_logged(argv: Sequence[str], log: Path, what: str) -> None:
    with open(log, "ab") as f:
        f.write(("$ " + " ".join(argv) + "\n").encode())
        f.flush()
        try:
            proc = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, check=False)
        except FileNotFoundError as e:
            raise ImageBuildError(f"{what}: {argv[0]} not found (apt-get install it)") from e
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-25:]
        raise ImageBuildError(
            f"{what} failed (exit {proc.returncode}); last lines of {log}:\n" + "\n".join(tail)
        )


def _build_pause_layer(work: Path, layer: Path, log: Path) -> None:
    binary = work / "pause"
    cc = os.environ.get("CC", "gcc")
    _run_logged([cc, "-static", "-Os", "-o", str(binary), str(PAUSE_SOURCE)], log, "gcc pause.c")
    _run_logged(["strip", str(binary)], log, "strip pause")
    with open(layer, "wb") as out, tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("pause")
        info.size = binary.stat().st_size
        info.mode = 0o755
        info.mtime = 0
        with open(binary, "rb") as f:
            tar.addfile(info, f)


def _clean_rootfs(rootfs: Path) -> None:
    """Replace host-specific files debootstrap copies in (runtimes bind-mount their own
    ``/etc/resolv.conf`` and ``/etc/hostname``) and drop its log."""
    for name, content in (("resolv.conf", ""), ("hostname", "localhost\n")):
        path = rootfs / "etc" / name
        path.unlink(missing_ok=True)
        path.write_text(content)
        path.chmod(0o644)
    (rootfs / "var" / "log" / "bootstrap.log").unlink(missing_ok=True)
    (rootfs / "tmp").chmod(0o1777)


def _build_debootstrap_layer(spec: ImageSpec, work: Path, layer: Path, log: Path) -> None:
    if os.geteuid() != 0:
        raise ImageBuildError(f"building {spec.short} needs root (debootstrap)")
    if shutil.which("debootstrap") is None:
        raise ImageBuildError("debootstrap not found: apt-get install debootstrap")
    mirror = debian_mirror()
    debs = images_cache_dir() / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    rootfs = work / "rootfs"
    argv = [
        "debootstrap",
        f"--cache-dir={debs}",
        *spec.debootstrap_args(),
        str(rootfs),
        mirror,
    ]
    try:
        _run_logged(argv, log, f"debootstrap for {spec.short}")
        _clean_rootfs(rootfs)
        if _mounts_under(rootfs):
            raise ImageBuildError(f"{rootfs}: debootstrap left mounts behind")
        with open(layer, "wb") as out:
            write_rootfs_layer(rootfs, out)
    finally:
        _remove_tree(rootfs)


def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _build_one(spec: ImageSpec, images_dir: Path, progress: Progress) -> Path:
    archive = spec.archive_path()
    hint = "gcc, seconds" if spec.kind == "pause" else "debootstrap, ~1-3 min"
    progress(f"building {spec.short} image ({hint})...")
    start = time.monotonic()
    log = images_dir / f"{spec.short}.build.log"  # kept: the last build's output
    log.write_text("")
    work = Path(tempfile.mkdtemp(prefix=f".build-{spec.short}-", dir=images_dir))
    try:
        layer = work / "layer.tar"
        if spec.kind == "pause":
            _build_pause_layer(work, layer, log)
            history = "gcc -static -Os devtools/images/pause.c && strip"
        else:
            _build_debootstrap_layer(spec, work, layer, log)
            history = "debootstrap " + " ".join(spec.debootstrap_args())
        partial = work / "image.tar"
        write_oci_archive(spec, layer, partial, history=history)
        os.replace(partial, archive)
    finally:
        _remove_tree(work)
    progress(
        f"{spec.short} image: built {archive.name} "
        f"({_human_size(archive.stat().st_size)}, {time.monotonic() - start:.0f}s)"
    )
    return archive


def build_images(
    progress: Progress = print, specs: Iterable[ImageSpec] = ALL_IMAGES
) -> dict[str, Path]:
    """Build the missing image archives; return ``{spec.short: archive path}``.

    Cached archives (``cache_dir()/images/<short>-<key>.tar``) are returned untouched, so a
    warm call costs a few hashes. A build writes into a scratch directory next to the cache
    and renames the finished archive into place; builds hold a lock file so concurrent callers
    wait rather than build twice. The output of the last build of each image is kept in
    ``cache_dir()/images/<short>.build.log``. Scratch directories left by a killed build are
    removed (after unmounting anything debootstrap left mounted in them). Raises
    :class:`ImageBuildError`.
    """
    images_dir = images_cache_dir()
    images_dir.mkdir(parents=True, exist_ok=True)
    specs = tuple(specs)
    result: dict[str, Path] = {}
    missing = []
    for spec in specs:
        if spec.archive_path().is_file():
            progress(f"{spec.short} image: cached")
            result[spec.short] = spec.archive_path()
        else:
            missing.append(spec)
    if not missing:
        return result
    with _build_lock(images_dir):
        for stale in images_dir.glob(".build-*"):
            _remove_tree(stale)
        for spec in missing:
            if spec.archive_path().is_file():  # built meanwhile by another process
                progress(f"{spec.short} image: cached")
                result[spec.short] = spec.archive_path()
            else:
                result[spec.short] = _build_one(spec, images_dir, progress)
    return {spec.short: result[spec.short] for spec in specs}


# --------------------------------------------------------------------------------------------
# Toolforge image config


def image_config(specs: Iterable[ImageSpec] = ALL_IMAGES) -> dict[str, dict[str, Any]]:
    """``{short: {"image": ref, "aliases": [...], "state": state}}`` for user-facing specs."""
    return {
        spec.short: {"image": spec.ref, "aliases": list(spec.aliases), "state": spec.state}
        for spec in specs
        if spec.user_facing
    }


def image_config_yaml(specs: Iterable[ImageSpec] = ALL_IMAGES) -> str:
    """Content of the ``images-v1.yaml`` key of the ``image-config`` ConfigMap (Toolforge
    format, see :func:`image_config`); the pause image is not listed."""
    return yaml.safe_dump(image_config(specs), sort_keys=False, default_flow_style=None)
