"""OCI image archives without Docker: root filesystem layer tars, OCI image layout archives
(OCI image-spec: ``oci-layout``, ``index.json``, blobs), their index, and the import into
containerd with ``ctr images import`` (:mod:`toolforge_dev.images` builds the platform's images
with these; :mod:`toolforge_dev.service_images` and the component modules too).

Errors: :class:`ImageImportError` (importing); a malformed archive is a :class:`ValueError`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = [
    "ANNOTATION_CONTAINERD_NAME",
    "ANNOTATION_REF_NAME",
    "ARCHITECTURE",
    "MEDIA_TYPE_CONFIG",
    "MEDIA_TYPE_INDEX",
    "MEDIA_TYPE_LAYER",
    "MEDIA_TYPE_MANIFEST",
    "ArchiveInfo",
    "ImageImportError",
    "import_images",
    "present_images",
    "read_archive_index",
    "write_oci_layout",
    "write_rootfs_layer",
]

Progress = Callable[[str], None]
ARCHITECTURE = "amd64"
#: OCI media types (OCI image-spec) and the annotations containerd and the spec name images by.
MEDIA_TYPE_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPE_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_TYPE_LAYER = "application/vnd.oci.image.layer.v1.tar"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"


class ImageImportError(RuntimeError):
    """Importing an archive into containerd failed."""


# --------------------------------------------------------------------------------------------
# Layer tars


def _is_excluded(rel: str, is_dir: bool) -> bool:
    """Whether rootfs path ``rel`` (no leading slash) is left out of the layer."""
    parent, _, name = rel.rpartition("/")
    if parent in ("dev", "proc", "sys", "var/lib/apt/lists"):
        return True
    return parent == "var/cache/apt/archives" and name.endswith(".deb") and not is_dir


def _normalize(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uname = ""
    info.gname = ""
    info.mtime = int(info.mtime)
    return info


def write_rootfs_layer(root: Path, out: IO[bytes]) -> None:
    """Write directory ``root`` as an uncompressed layer tar to ``out``.

    Entries are sorted, relative (``usr/bin/python3``), with numeric owners and mtimes kept;
    hard links become tar links to their first path; sockets are skipped; ``/dev``, ``/proc``,
    ``/sys``, ``/var/lib/apt/lists`` keep only the directory itself, and
    ``/var/cache/apt/archives`` loses its ``*.deb`` files.
    """
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def walk(rel_dir: str) -> None:
            base = root / rel_dir if rel_dir else root
            for name in sorted(os.listdir(base)):
                rel = f"{rel_dir}/{name}" if rel_dir else name
                full = base / name
                is_dir = full.is_dir() and not full.is_symlink()
                if _is_excluded(rel, is_dir):
                    continue
                info = tar.gettarinfo(str(full), arcname=rel)
                if info is None:  # socket
                    continue
                _normalize(info)
                if info.isreg():
                    with open(full, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
                if info.isdir():
                    walk(rel)

        walk("")


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# OCI layout archives


def _json_bytes(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


def write_oci_layout(
    out: Path,
    *,
    ref: str,
    layers: Sequence[tuple[Path, str]],
    container_config: dict[str, Any],
) -> None:
    """Write an OCI image layout tar at ``out`` with ``layers`` (bottom first).

    ``layers`` are ``(uncompressed layer tar, history line)`` pairs; ``container_config`` is the
    image config's ``config`` object (``Env``, ``Entrypoint``, ``User``, ...). ``index.json``
    comes first (cheap to read back, see :func:`read_archive_index`); its one manifest
    descriptor carries the ``io.containerd.image.name`` (``ref``) and
    ``org.opencontainers.image.ref.name`` (the tag) annotations. Every blob is in
    ``blobs/sha256/<digest>``; the config's ``rootfs.diff_ids`` are the layer digests (the
    layers are uncompressed, so digest and diff_id are the same). OCI image spec v1.1.
    """
    described = [
        ("sha256:" + _sha256_file(layer), layer.stat().st_size, layer, history)
        for layer, history in layers
    ]
    config = _json_bytes(
        {
            "architecture": ARCHITECTURE,
            "os": "linux",
            "config": container_config,
            "rootfs": {"type": "layers", "diff_ids": [d for d, _, _, _ in described]},
            "history": [{"created_by": h} for _, _, _, h in described],
        }
    )
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = _json_bytes(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_MANIFEST,
            "config": {
                "mediaType": MEDIA_TYPE_CONFIG,
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {"mediaType": MEDIA_TYPE_LAYER, "digest": d, "size": size}
                for d, size, _, _ in described
            ],
        }
    )
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    index = _json_bytes(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_INDEX,
            "manifests": [
                {
                    "mediaType": MEDIA_TYPE_MANIFEST,
                    "digest": manifest_digest,
                    "size": len(manifest),
                    "platform": {"architecture": ARCHITECTURE, "os": "linux"},
                    "annotations": {
                        ANNOTATION_CONTAINERD_NAME: ref,
                        ANNOTATION_REF_NAME: ref.rsplit(":", 1)[1],
                    },
                }
            ],
        }
    )
    with tarfile.open(out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, "index.json", index)
        _add_bytes(tar, "oci-layout", _json_bytes({"imageLayoutVersion": "1.0.0"}))
        _add_dir(tar, "blobs")
        _add_dir(tar, "blobs/sha256")
        _add_bytes(tar, "blobs/sha256/" + manifest_digest.removeprefix("sha256:"), manifest)
        _add_bytes(tar, "blobs/sha256/" + config_digest.removeprefix("sha256:"), config)
        written: set[str] = set()
        for digest, size, layer, _ in described:
            if digest in written:
                continue
            written.add(digest)
            info = tarfile.TarInfo("blobs/sha256/" + digest.removeprefix("sha256:"))
            info.size = size
            info.mode = 0o644
            with open(layer, "rb") as f:
                tar.addfile(info, f)


@dataclass(frozen=True)
class ArchiveInfo:
    """What an archive's ``index.json`` says: image ``ref`` and ``manifest_digest``
    (``sha256:<hex>``, the digest containerd shows for the imported image)."""

    ref: str
    manifest_digest: str


def read_archive_index(archive: Path) -> ArchiveInfo:
    """Read the ref and manifest digest of an OCI archive written by :func:`build_images`.

    Raises :class:`ValueError` when the archive has no ``index.json`` with one named manifest.
    """
    with tarfile.open(archive, mode="r:") as tar:
        member = tar.next()
        while member is not None and member.name.removeprefix("./") != "index.json":
            member = tar.next()
        f = tar.extractfile(member) if member is not None else None
        if f is None:
            raise ValueError(f"{archive}: no index.json")
        index = json.load(f)
    manifests = index.get("manifests", [])
    if len(manifests) != 1:
        raise ValueError(f"{archive}: expected one manifest in index.json, got {len(manifests)}")
    desc = manifests[0]
    ref = desc.get("annotations", {}).get(ANNOTATION_CONTAINERD_NAME)
    if not ref:
        raise ValueError(f"{archive}: manifest has no {ANNOTATION_CONTAINERD_NAME} annotation")
    return ArchiveInfo(ref=str(ref), manifest_digest=str(desc["digest"]))


# --------------------------------------------------------------------------------------------
# containerd import


def _ctr_base(ctr: Path | str, address: Path | str, namespace: str) -> list[str]:
    return [str(ctr), "--address", str(address), "--namespace", namespace]


def present_images(
    *, ctr: Path | str = "ctr", address: Path | str, namespace: str = "k8s.io"
) -> dict[str, tuple[str, bool]]:
    """Images in containerd: ``{ref: (target digest, unpacked)}`` from ``ctr images check``.

    Raises :class:`ImageImportError` when ``ctr`` fails.
    """
    argv = [*_ctr_base(ctr, address, namespace), "images", "check"]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ImageImportError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    found: dict[str, tuple[str, bool]] = {}
    for line in proc.stdout.splitlines()[1:]:
        # REF TYPE DIGEST STATUS SIZE UNPACKED; STATUS and SIZE contain spaces.
        words = line.split()
        if len(words) >= 4 and words[2].startswith("sha256:"):
            found[words[0]] = (words[2], words[-1] == "true")
    return found


def import_images(
    archives: Iterable[Path],
    *,
    ctr: Path | str = "ctr",
    address: Path | str,
    namespace: str = "k8s.io",
    snapshotter: str = "overlayfs",
    progress: Progress = print,
) -> None:
    """Import OCI archives into the containerd listening on socket ``address``.

    Runs ``ctr --address <address> --namespace <namespace> images import --snapshotter
    <snapshotter> <archive>``, which stores the image under the ref of its
    ``io.containerd.image.name`` annotation and unpacks it, so CRI can run it at once. An
    archive whose ref is already present, unpacked, with the same manifest digest is skipped
    (one ``ctr images check`` per call). Raises :class:`ImageImportError` when ``ctr`` fails
    and :class:`ValueError` for an archive without a named manifest in its ``index.json``.
    """
    base = _ctr_base(ctr, address, namespace)
    present = present_images(ctr=ctr, address=address, namespace=namespace)
    for archive in archives:
        info = read_archive_index(archive)
        if present.get(info.ref) == (info.manifest_digest, True):
            progress(f"{info.ref}: already imported")
            continue
        start = time.monotonic()
        argv = [*base, "images", "import", "--snapshotter", snapshotter, str(archive)]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ImageImportError(
                f"{' '.join(argv)} failed (exit {proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()}"
            )
        progress(f"{info.ref}: imported ({time.monotonic() - start:.0f}s)")
