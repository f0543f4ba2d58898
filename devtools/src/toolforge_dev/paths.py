"""Where the dev tooling keeps things.

- the cache (``$TOOLFORGE_DEV_CACHE``, default ``~/.cache/toolforge-dev``) holds what is slow
  to make and safe to keep between runs: Go-built binaries and OCI image archives, each keyed
  by version. It lives outside the work tree.
- the run directory (``$TOOLFORGE_DEV_RUN_DIR``, default ``/var/lib/toolforge-dev``) holds one
  cluster's state: PKI, etcd data, containerd state, kubelet root, logs. It is wiped when a
  new cluster starts.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Root of the repository checkout (devtools/src/toolforge_dev/paths.py -> repo root).
REPO_ROOT = Path(__file__).resolve().parents[3]
#: Go wrapper modules that pin the cluster components.
GO_MODULES_DIR = REPO_ROOT / "devtools" / "go"


def cache_dir() -> Path:
    """Cache for built binaries and images (outside the work tree)."""
    default = Path.home() / ".cache" / "toolforge-dev"
    return Path(os.environ.get("TOOLFORGE_DEV_CACHE", default))


def run_dir() -> Path:
    """State directory of the local cluster."""
    return Path(os.environ.get("TOOLFORGE_DEV_RUN_DIR", "/var/lib/toolforge-dev"))
