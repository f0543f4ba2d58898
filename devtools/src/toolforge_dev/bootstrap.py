"""The local cluster's own objects, applied once kube-apiserver and the node run: the vendored
CRDs (established and servable first), the manifests in ``devtools/manifests/`` and the image
list ConfigMap ``tf-public/image-config``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from toolforge_dev import images
from toolforge_dev.binaries import Binaries
from toolforge_dev.topology import CRDS_DIR, DNS_SERVICE_IP, MANIFESTS_DIR, NODE_IP, ClusterError

if TYPE_CHECKING:
    from toolforge_dev.cluster import Cluster

__all__ = ["bootstrap"]


def bootstrap(c: Cluster, binaries: Binaries, archives: dict[str, Path]) -> None:
    """Apply the cluster's own objects: DNS, RBAC for host components, the image list.

    CRDs (``devtools/crds/``) go first and must be established before the manifests,
    which may hold objects of their kinds (the ``buildpacks`` Pipeline and Task)."""
    crds = sorted(CRDS_DIR.glob("*/*.yaml"))
    if crds:
        c.kubectl(
            binaries,
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            ",".join(map(str, crds)),
        )
        c.kubectl(binaries, "wait", "--for=condition=established", "--timeout=60s", "crd", "--all")
        # Established is not yet servable: until each resource's watch cache is initialised,
        # lists answer 429 "storage is (re)initializing". kubectl retries 429s, so one
        # successful list per resource means the API is ready for the services.
        plurals = c.kubectl(
            binaries, "get", "crd", "-o", "jsonpath={.items[*].metadata.name}"
        ).split()
        deadline = time.monotonic() + 60
        while True:
            try:
                c.kubectl(binaries, "get", ",".join(plurals), "-A", "-o", "name")
                break
            except ClusterError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    manifests = sorted(MANIFESTS_DIR.glob("*.yaml"))
    text = "\n---\n".join(
        m.read_text().replace("@DNS_SERVICE_IP@", DNS_SERVICE_IP).replace("@NODE_IP@", NODE_IP)
        for m in manifests
    )
    image_config = images.image_config_yaml([s for s in images.ALL_IMAGES if s.short in archives])
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "image-config", "namespace": "tf-public"},
        "data": {"images-v1.yaml": image_config},
    }
    text += "\n---\n" + yaml.safe_dump(config_map)
    c.kubectl(binaries, "apply", "--server-side", "--force-conflicts", "-f", "-", input_text=text)
