"""Small pieces for images derived from others: layers made of a few files, and the layers of
an archive that :mod:`toolforge_dev.images` wrote.

- :class:`Entry` describes one file, directory or symlink of a layer;
  :func:`write_layer` writes entries as an uncompressed, reproducible layer tar (sorted, mtime
  0, numeric owners, missing parent directories added as ``root:root 0755``).
- :func:`extract_layers` copies the layer blobs of a one-manifest OCI archive to files, bottom
  first, so :func:`toolforge_dev.images.write_oci_layout` can stack new layers on them (the
  digests stay the same, so containerd stores a shared base layer once).
- :func:`cache_key` hashes a recipe (any JSON-serialisable value) to 12 hex digits.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["Entry", "cache_key", "extract_layers", "file_digest", "write_layer"]


@dataclass(frozen=True)
class Entry:
    """One member of a layer: ``path`` is relative (``cnb/lifecycle/launcher``).

    A ``file`` takes its content from ``data`` or from the file ``source``; a ``symlink``
    points at ``target``.
    """

    path: str
    kind: Literal["file", "dir", "symlink"] = "file"
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    data: bytes | None = None
    source: Path | None = None
    target: str = ""


def _parents(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def write_layer(out: Path, entries: Iterable[Entry]) -> None:
    """Write ``entries`` as an uncompressed layer tar at ``out`` (same input, same bytes).

    Raises :class:`ValueError` for an absolute path, a ``..`` component or a path given twice.
    """
    by_path: dict[str, Entry] = {}
    for entry in entries:
        path = entry.path.strip("/")
        if entry.path.startswith("/") or ".." in path.split("/") or not path:
            raise ValueError(f"bad layer path {entry.path!r}")
        if path in by_path:
            raise ValueError(f"{path} given twice")
        by_path[path] = entry
    for path in list(by_path):
        for parent in _parents(path):
            by_path.setdefault(parent, Entry(parent, kind="dir", mode=0o755))
    with tarfile.open(out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(by_path):
            entry = by_path[path]
            info = tarfile.TarInfo(path)
            info.mode, info.uid, info.gid, info.mtime = entry.mode, entry.uid, entry.gid, 0
            if entry.kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif entry.kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = entry.target
                tar.addfile(info)
            elif entry.source is not None:
                info.size = entry.source.stat().st_size
                with entry.source.open("rb") as f:
                    tar.addfile(info, f)
            else:
                data = entry.data or b""
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def extract_layers(archive: Path, directory: Path) -> list[Path]:
    """Copy the layer blobs of ``archive`` (an OCI image layout tar with one manifest) into
    ``directory`` as ``layer-<n>.tar``; returns their paths, bottom first.

    Raises :class:`ValueError` when the archive does not hold one manifest with its blobs.
    """
    directory.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, mode="r:") as tar:

        def blob(digest: str) -> io.BufferedReader:
            name = "blobs/sha256/" + digest.removeprefix("sha256:")
            f = tar.extractfile(name)
            if f is None:
                raise ValueError(f"{archive}: no blob {digest}")
            return f  # type: ignore[return-value]

        index_file = tar.extractfile("index.json")
        if index_file is None:
            raise ValueError(f"{archive}: no index.json")
        manifests = json.load(index_file)["manifests"]
        if len(manifests) != 1:
            raise ValueError(f"{archive}: expected one manifest, got {len(manifests)}")
        manifest = json.load(blob(manifests[0]["digest"]))
        paths = []
        for n, layer in enumerate(manifest["layers"]):
            path = directory / f"layer-{n}.tar"
            with blob(layer["digest"]) as src, path.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            paths.append(path)
    return paths


def file_digest(path: Path) -> str:
    """sha256 hex digest of a file's content."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_key(recipe: object) -> str:
    """12 hex digits of the sha256 of ``recipe`` as canonical JSON."""
    blob = json.dumps(recipe, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
