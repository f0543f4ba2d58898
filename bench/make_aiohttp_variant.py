"""Build a copy of the gateway whose upstream client is aiohttp's, to measure it against ours.

Usage::

    uv run python bench/make_aiohttp_variant.py /tmp/gw-aiohttp
    uv run python bench/gateway.py --variant aiohttp=/tmp/gw-aiohttp ...     # side by side
    PYTHONPATH=/tmp/gw-aiohttp uv run pytest tests/gateway -m "not cluster"  # the tests

DIR gets this tree's ``toolforge_gateway`` package with ``bench/variants/upstream_aiohttp.py``
added and ``app.py`` importing ``UpstreamPool``/``UpstreamResponse`` from it instead of from
``upstream.py``. Exits 1 if ``app.py``'s import no longer reads as expected.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "services/gateway/src/toolforge_gateway"
OURS = """from toolforge_gateway.upstream import (
    ReadError,
    Timeouts,
    UpstreamError,
    UpstreamPool,
    UpstreamResponse,
    classify_upstream_error,
)"""
AIOHTTP = """from toolforge_gateway.upstream import (
    ReadError,
    Timeouts,
    UpstreamError,
    classify_upstream_error,
)
from toolforge_gateway.upstream_aiohttp import UpstreamPool, UpstreamResponse"""


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    target = Path(sys.argv[1]) / "toolforge_gateway"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(Path(__file__).parent / "variants/upstream_aiohttp.py", target)
    app = target / "app.py"
    text = app.read_text()
    if text.count(OURS) != 1:
        sys.exit(f"{app}: the import of UpstreamPool changed; update {__file__}")
    app.write_text(text.replace(OURS, AIOHTTP))
    print(target.parent)


if __name__ == "__main__":
    main()
