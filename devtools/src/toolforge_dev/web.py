"""Install the web-traffic path (Traefik, the Gateway, fourohfour) into the local cluster.

:func:`install` runs as the last step of :meth:`toolforge_dev.cluster.Cluster.start`:

1. build (or take from the cache) two OCI images: Traefik (:func:`build_traefik_image`: the
   static binary of :func:`toolforge_dev.binaries.traefik` alone, as uid 65532) and
   fourohfour (:data:`FOUROHFOUR`, a service image of :mod:`toolforge_dev.service_images`),
   and import them into the cluster's containerd;
2. apply :func:`toolforge_dev.web_manifests.web_objects` (server-side apply, idempotent);
3. wait for both Deployments to roll out, then until ``http://127.0.0.1:30000/`` answers with
   fourohfour's JSON 404 (:func:`wait_for_web`): that proves the NodePort, Traefik, the
   Gateway, its catch-all route and fourohfour all work, end to end.

NodePorts answer on loopback because kube-proxy (iptables mode) has ``127.0.0.0/8`` in its
``nodePortAddresses`` (``cluster.py``): kube-proxy then sets ``net.ipv4.conf.all.route_localnet=1``
itself, which lets the DNAT of a 127.0.0.1 connection to a pod address be routed; the launcher
sets nothing else.

API: :func:`install`, :func:`wait_for_web`, :func:`web_url`, :func:`build_traefik_image`,
:data:`FOUROHFOUR`. Errors: :class:`WebError`, plus those of :mod:`toolforge_dev.images`
and :class:`toolforge_dev.cluster.ClusterError` from kubectl.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import yaml

from toolforge_dev import binaries as go_binaries
from toolforge_dev import images, service_images
from toolforge_dev.web_manifests import (
    NAMESPACE,
    NODE_PORT,
    PUBLIC_DOMAIN,
    TRAEFIK_UID,
    web_objects,
)

if TYPE_CHECKING:
    from toolforge_dev.binaries import Binaries
    from toolforge_dev.cluster import Cluster

Progress = Callable[[str], None]

#: Bump to rebuild the Traefik image.
TRAEFIK_RECIPE_VERSION = 1
#: fourohfour's service image (python3.11 plus its uv-locked wheels).
FOUROHFOUR = service_images.ServiceImage(
    "toolforge-fourohfour",
    "toolforge-fourohfour",
    "toolforge_fourohfour",
    ("services/fourohfour",),
)


class WebError(RuntimeError):
    """The web-traffic path did not come up; the message says what was last seen."""


def web_url(port: int = NODE_PORT) -> str:
    """``http://127.0.0.1:30000``: where web traffic enters (send ``Host: <tool>.<domain>``)."""
    return f"http://127.0.0.1:{port}"


def traefik_image_ref() -> str:
    """``registry.local/toolforge/traefik:<version>-<recipe key>``."""
    component = go_binaries.traefik()
    recipe = json.dumps(
        [TRAEFIK_RECIPE_VERSION, component.version, TRAEFIK_UID, images.DEFAULT_ENV]
    ).encode()
    key = hashlib.sha256(recipe).hexdigest()[:12]
    return f"{service_images.REGISTRY_PREFIX}/traefik:{component.version}-{key}"


def build_traefik_image(progress: Progress = print) -> Path:
    """The Traefik image archive, built unless cached (``cache_dir()/images/traefik-*.tar``).

    One layer: ``/traefik`` (the cached static binary, mode 0755) and an empty ``/tmp``
    (1777); entrypoint ``["/traefik"]``, user ``65532:65532``. Builds the binary first when it
    is not cached (:class:`toolforge_dev.binaries.BuildError` if that fails).
    """
    ref = traefik_image_ref()
    directory = images.images_cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    archive = directory / f"traefik-{ref.rsplit(':', 1)[1]}.tar"
    if archive.exists():
        progress(f"traefik image: cached ({archive.name})")
        return archive
    binary = go_binaries.traefik().build(progress) / "traefik"
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=".build-traefik-", dir=directory) as tmp:
        layer, partial = Path(tmp) / "layer.tar", Path(tmp) / "image.tar"
        with tarfile.open(layer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tmp_dir = tarfile.TarInfo("tmp")
            tmp_dir.type, tmp_dir.mode = tarfile.DIRTYPE, 0o1777
            tar.addfile(tmp_dir)
            info = tarfile.TarInfo("traefik")
            info.size, info.mode = binary.stat().st_size, 0o755
            with binary.open("rb") as f:
                tar.addfile(info, f)
        images.write_oci_layout(
            partial,
            ref=ref,
            layers=[(layer, f"traefik {go_binaries.traefik().version} (devtools/go/traefik)")],
            container_config={
                "Env": list(images.DEFAULT_ENV),
                "Entrypoint": ["/traefik"],
                "User": f"{TRAEFIK_UID}:{TRAEFIK_UID}",
                "WorkingDir": "/",
            },
        )
        os.replace(partial, archive)
    for old in directory.glob("traefik-*.tar"):
        if old != archive:
            old.unlink()
    size_mib = archive.stat().st_size / 2**20
    progress(
        f"traefik image: built {archive.name} ({size_mib:.0f} MiB, "
        f"{time.monotonic() - started:.0f} s)"
    )
    return archive


def wait_for_web(url: str | None = None, timeout: float = 60) -> None:
    """Wait until ``url`` (default :func:`web_url`) answers a request for an unknown host with
    fourohfour's JSON 404 (``{"error": "not_found", ...}``); Traefik's own 404 for "no router"
    is plain text, so this tells them apart. Raises :class:`WebError` after ``timeout`` s."""
    target = url or web_url()
    headers = {"Host": f"no-such-tool-check.{PUBLIC_DOMAIN}", "Accept": "application/json"}
    deadline = time.monotonic() + timeout
    last = "nothing yet"
    while time.monotonic() < deadline:
        try:
            with httpx.Client(trust_env=False, timeout=5) as client:
                response = client.get(target, headers=headers)
            is_json = "json" in response.headers.get("content-type", "")
            if (
                response.status_code == 404
                and is_json
                and response.json().get("error") == "not_found"
            ):
                return
            last = f"HTTP {response.status_code} {response.text[:100]!r}"
        except (httpx.HTTPError, ValueError) as exc:
            last = repr(exc)
        time.sleep(0.5)
    raise WebError(f"web traffic did not reach fourohfour through {target}: {last}")


def install(cluster: Cluster, binaries: Binaries, progress: Progress | None = None) -> None:
    """Build and import the images, apply the objects and wait until web traffic flows
    (module docstring). Idempotent: a second call changes nothing and returns quickly."""
    say = progress or cluster.progress
    ctr = shutil.which("ctr")
    if ctr is None:
        raise WebError("ctr not found on PATH (run `make deps`)")
    archives = [
        build_traefik_image(lambda m: say(f"    {m}")),
        service_images.build_service_image(FOUROHFOUR, lambda m: say(f"    {m}")),
    ]
    images.import_images(
        archives, ctr=ctr, address=cluster.containerd_socket, progress=lambda m: say(f"    {m}")
    )
    objects = web_objects(traefik_image_ref(), service_images.image_ref(FOUROHFOUR))
    cluster.kubectl(
        binaries,
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        "-",
        input_text=yaml.safe_dump_all(objects),
    )
    for deployment in ("traefik", "fourohfour"):
        cluster.kubectl(
            binaries,
            "-n",
            NAMESPACE,
            "rollout",
            "status",
            f"deployment/{deployment}",
            "--timeout=120s",
        )
    wait_for_web()
