"""Tests of the local OCI images (toolforge_dev.images); no cluster needed.

The archives are really built (gcc, debootstrap) into ``cache_dir()/images`` and then
reused, so only the first run on a machine is slow (~2 min). Debian images need root.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from toolforge_dev import images, oci
from toolforge_dev.images import (
    ALL_IMAGES,
    BOOKWORM,
    PAUSE,
    PYTHON311,
    ImageBuildError,
    ImageSpec,
)

needs_debootstrap = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("debootstrap") is None,
    reason="building Debian images needs root and debootstrap",
)


def _build(spec: ImageSpec) -> Path:
    return images.build_images(progress=lambda _msg: None, specs=[spec])[spec.short]


@pytest.fixture(scope="module")
def pause_archive() -> Path:
    return _build(PAUSE)


@pytest.fixture(scope="module")
def bookworm_archive() -> Path:
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        pytest.skip("building Debian images needs root and debootstrap")
    return _build(BOOKWORM)


@pytest.fixture(scope="module")
def python_archive() -> Path:
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        pytest.skip("building Debian images needs root and debootstrap")
    return _build(PYTHON311)


# --------------------------------------------------------------------------------------------
# helpers


def _blob(tar: tarfile.TarFile, digest: str) -> bytes:
    algo, _, hexdigest = digest.partition(":")
    assert algo == "sha256"
    f = tar.extractfile(f"blobs/sha256/{hexdigest}")
    assert f is not None
    return f.read()


def _check_blob(tar: tarfile.TarFile, desc: dict[str, Any]) -> bytes:
    data = _blob(tar, desc["digest"])
    assert len(data) == desc["size"], desc
    assert "sha256:" + hashlib.sha256(data).hexdigest() == desc["digest"]
    return data


def check_oci_archive(archive: Path, spec: ImageSpec) -> tuple[dict[str, Any], list[bytes]]:
    """Validate the OCI layout; return (config, [layer tar bytes])."""
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        assert names[0] == "index.json"
        assert "oci-layout" in names
        blob_names = [
            n for n in names if n.startswith("blobs/sha256/") and tar.getmember(n).isreg()
        ]
        layout_f = tar.extractfile("oci-layout")
        index_f = tar.extractfile("index.json")
        assert layout_f is not None
        assert index_f is not None
        assert json.load(layout_f) == {"imageLayoutVersion": "1.0.0"}
        index = json.load(index_f)
        assert index["schemaVersion"] == 2
        assert index["mediaType"] == oci.MEDIA_TYPE_INDEX
        (mdesc,) = index["manifests"]
        assert mdesc["mediaType"] == oci.MEDIA_TYPE_MANIFEST
        assert mdesc["annotations"] == {
            "io.containerd.image.name": spec.ref,
            "org.opencontainers.image.ref.name": spec.tag,
        }
        assert mdesc["platform"] == {"architecture": "amd64", "os": "linux"}
        manifest = json.loads(_check_blob(tar, mdesc))
        assert manifest["schemaVersion"] == 2
        assert manifest["mediaType"] == oci.MEDIA_TYPE_MANIFEST
        assert manifest["config"]["mediaType"] == oci.MEDIA_TYPE_CONFIG
        config = json.loads(_check_blob(tar, manifest["config"]))
        layers = []
        for ldesc in manifest["layers"]:
            assert ldesc["mediaType"] == "application/vnd.oci.image.layer.v1.tar"
            layers.append(_check_blob(tar, ldesc))
        # Uncompressed layers: diff_id == digest.
        assert config["rootfs"] == {
            "type": "layers",
            "diff_ids": [d["digest"] for d in manifest["layers"]],
        }
        # No stray blobs.
        expected = {mdesc["digest"], manifest["config"]["digest"]}
        expected |= {d["digest"] for d in manifest["layers"]}
        assert {"sha256:" + n.rsplit("/", 1)[1] for n in blob_names} == expected
    assert config["architecture"] == "amd64"
    assert config["os"] == "linux"
    assert config["config"]["Env"] == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG=C.UTF-8",
    ]
    info = images.read_archive_index(archive)
    assert info.ref == spec.ref
    assert info.manifest_digest == mdesc["digest"]
    return config, layers


def _layer_members(layer: bytes, tmp_path: Path) -> list[tarfile.TarInfo]:
    path = tmp_path / "layer.tar"
    path.write_bytes(layer)
    with tarfile.open(path) as tar:
        return tar.getmembers()


def check_rootfs_hygiene(members: list[tarfile.TarInfo]) -> dict[str, tarfile.TarInfo]:
    by_name = {m.name: m for m in members}
    names = [m.name for m in members]
    assert names == sorted(names, key=lambda n: n.split("/")), "entries not in sorted order"
    assert len(by_name) == len(names), "duplicate entries"
    for m in members:
        assert not m.name.startswith(("/", "./")), m.name
        assert m.uname == ""
        assert m.gname == ""
        parent, _, base = m.name.rpartition("/")
        assert parent not in ("dev", "proc", "sys", "var/lib/apt/lists"), m.name
        assert not (parent == "var/cache/apt/archives" and base.endswith(".deb")), m.name
    for d in ("dev", "proc", "sys", "tmp", "var/lib/apt/lists", "var/cache/apt/archives"):
        assert by_name[d].isdir(), d
    assert by_name["tmp"].mode == 0o1777
    assert by_name["usr/bin/bash"].isreg()
    assert by_name["etc/resolv.conf"].size == 0
    assert "var/log/bootstrap.log" not in by_name
    return by_name


# --------------------------------------------------------------------------------------------
# pause


def test_pause_archive_is_valid_oci(pause_archive: Path, tmp_path: Path) -> None:
    config, layers = check_oci_archive(pause_archive, PAUSE)
    assert config["config"]["Entrypoint"] == ["/pause"]
    assert "Cmd" not in config["config"]
    (layer,) = layers
    (member,) = _layer_members(layer, tmp_path)
    assert member.name == "pause"
    assert member.isreg()
    assert member.mode == 0o755
    assert (member.uid, member.gid) == (0, 0)
    with tarfile.open(tmp_path / "layer.tar") as tar:
        f = tar.extractfile(member)
        assert f is not None
        binary = f.read()
    assert binary.startswith(b"\x7fELF")
    assert b".symtab" not in binary  # stripped
    assert b"toolforge-dev-pause" in binary


def test_pause_archive_is_reproducible(
    pause_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cold build in a fresh cache yields the same bytes."""
    monkeypatch.setenv("TOOLFORGE_DEV_CACHE", str(tmp_path / "cache"))
    messages: list[str] = []
    fresh = images.build_images(progress=messages.append, specs=[PAUSE])["pause"]
    assert fresh.parent == tmp_path / "cache" / "images"
    assert fresh.name == pause_archive.name
    assert fresh.read_bytes() == pause_archive.read_bytes()
    assert messages[0].startswith("building pause image")
    assert not [p for p in fresh.parent.iterdir() if p.name.startswith(".build-")]


# --------------------------------------------------------------------------------------------
# Debian images


@needs_debootstrap
def test_bookworm_archive_is_valid_oci(bookworm_archive: Path, tmp_path: Path) -> None:
    config, layers = check_oci_archive(bookworm_archive, BOOKWORM)
    assert config["config"]["Cmd"] == ["/bin/bash"]
    assert "Entrypoint" not in config["config"]
    (layer,) = layers
    by_name = check_rootfs_hygiene(_layer_members(layer, tmp_path))
    assert "usr/bin/python3" not in by_name
    assert by_name["etc/debian_version"].isreg()


@needs_debootstrap
def test_python_archive_has_python(python_archive: Path, tmp_path: Path) -> None:
    config, layers = check_oci_archive(python_archive, PYTHON311)
    assert config["config"]["Cmd"] == ["/bin/bash"]
    (layer,) = layers
    by_name = check_rootfs_hygiene(_layer_members(layer, tmp_path))
    python3 = by_name["usr/bin/python3"]
    assert python3.issym()
    assert by_name["usr/bin/" + python3.linkname].isreg()


@needs_debootstrap
def test_second_build_is_cached(
    pause_archive: Path, bookworm_archive: Path, python_archive: Path
) -> None:
    before = {p: p.stat().st_mtime_ns for p in (pause_archive, bookworm_archive, python_archive)}
    messages: list[str] = []
    start = time.monotonic()
    again = images.build_images(progress=messages.append)
    elapsed = time.monotonic() - start
    assert again == {
        "pause": pause_archive,
        "bookworm": bookworm_archive,
        "python3.11": python_archive,
    }
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert messages == ["pause image: cached", "bookworm image: cached", "python3.11 image: cached"]
    assert elapsed < 5


# --------------------------------------------------------------------------------------------
# pieces that need no build


def test_cache_key_depends_on_recipe() -> None:
    keys = {spec.recipe_key() for spec in ALL_IMAGES}
    assert len(keys) == len(ALL_IMAGES)
    assert all(len(k) == 12 for k in keys)
    assert BOOKWORM.recipe_key() == BOOKWORM.recipe_key()
    other = ImageSpec(short="bookworm", ref=BOOKWORM.ref, kind="debootstrap", include=("curl",))
    assert other.recipe_key() != BOOKWORM.recipe_key()
    for spec in ALL_IMAGES:
        assert spec.archive_path().name == f"{spec.short}-{spec.recipe_key()}.tar"
        assert spec.archive_path().parent == images.images_cache_dir()


def test_image_config_yaml_lists_user_images() -> None:
    parsed = yaml.safe_load(images.image_config_yaml())
    assert parsed == {
        "bookworm": {
            "image": "registry.local/toolforge/bookworm:stable",
            "aliases": ["tf-bookworm"],
            "state": "stable",
        },
        "python3.11": {
            "image": "registry.local/toolforge/python3.11:stable",
            "aliases": ["tf-python311", "python3"],
            "state": "stable",
        },
    }
    assert "pause" not in images.image_config_yaml()


def test_debian_mirror_from_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(images.MIRROR_ENV, raising=False)
    sources_list = tmp_path / "sources.list"
    sources_dir = tmp_path / "sources.list.d"
    sources_dir.mkdir()

    def mirror() -> str:
        return images.debian_mirror("bookworm", sources_list=sources_list, sources_dir=sources_dir)

    with pytest.raises(ImageBuildError, match="no Debian mirror"):
        mirror()

    (sources_dir / "a.sources").write_text(
        "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\nComponents: main\n"
        "\n"
        "Types: deb\nURIs: http://disabled.example/debian\nSuites: bookworm\n"
        "Components: main\nEnabled: no\n"
        "\n"
        "Types: deb\n# a comment\nURIs: http://sec.example/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n"
        "\n"
        "Types: deb\nURIs: http://deb822.example/debian/\n"
        "Suites: bookworm\n bookworm-updates\nComponents: main contrib\n"
    )
    (sources_dir / "b.list.disabled").write_text("deb http://ignored.example/ bookworm main\n")
    assert mirror() == "http://deb822.example/debian"

    sources_list.write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb-src http://src.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://oneline.example/debian bookworm main\n"
    )
    assert mirror() == "http://oneline.example/debian"

    monkeypatch.setenv(images.MIRROR_ENV, "http://override.example/debian/")
    assert mirror() == "http://override.example/debian"


def test_debian_mirror_of_this_machine() -> None:
    if not Path("/etc/apt").is_dir():
        pytest.skip("no apt on this machine")
    assert images.debian_mirror().startswith(("http://", "https://", "file:/"))


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "rootfs"
    for d in (
        "dev",
        "proc/1",
        "sys",
        "tmp",
        "var/lib/apt/lists/partial",
        "var/cache/apt/archives/partial",
        "usr/bin",
    ):
        (root / d).mkdir(parents=True)
    (root / "tmp").chmod(0o1777)
    (root / "dev" / "null").write_text("not a device, but excluded anyway")
    (root / "var/lib/apt/lists/deb.example_Packages").write_text("x")
    (root / "var/cache/apt/archives/bash_5.2_amd64.deb").write_text("x")
    (root / "var/cache/apt/archives/lock").write_text("")
    (root / "usr/bin/b").write_text("#!/bin/sh\n")
    (root / "usr/bin/a").hardlink_to(root / "usr/bin/b")
    (root / "usr/bin/c").symlink_to("b")
    (root / "bin").symlink_to("usr/bin")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "tmp" / "sock"))
    try:
        yield root
    finally:
        sock.close()


def test_write_rootfs_layer(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "layer.tar"
    with open(out, "wb") as f:
        images.write_rootfs_layer(tree, f)
    with tarfile.open(out) as tar:
        members = tar.getmembers()
    by_name = {m.name: m for m in members}
    assert [m.name for m in members] == [
        "bin",
        "dev",
        "proc",
        "sys",
        "tmp",
        "usr",
        "usr/bin",
        "usr/bin/a",
        "usr/bin/b",
        "usr/bin/c",
        "var",
        "var/cache",
        "var/cache/apt",
        "var/cache/apt/archives",
        "var/cache/apt/archives/lock",
        "var/cache/apt/archives/partial",
        "var/lib",
        "var/lib/apt",
        "var/lib/apt/lists",
    ]
    assert by_name["bin"].issym()
    assert by_name["bin"].linkname == "usr/bin"
    assert by_name["tmp"].mode == 0o1777
    assert by_name["usr/bin/a"].isreg()
    assert by_name["usr/bin/b"].islnk()
    assert by_name["usr/bin/b"].linkname == "usr/bin/a"
    assert by_name["usr/bin/c"].linkname == "b"
    assert all(m.uname == "" and m.gname == "" for m in members)
