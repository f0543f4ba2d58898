"""A service's OpenAPI document against its committed snapshot (jobs and builds APIs).

``UPDATE_OPENAPI=1`` rewrites the snapshot instead of failing on a difference.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openapi_spec_validator import validate

from toolforge_admin.pki import PlatformPKI
from toolforge_dev.paths import REPO_ROOT


def service_spec(create_app: Callable[[Any], Any], settings_cls: Any, directory: Path) -> Any:
    """``create_app(settings_cls(backend_ca_file=...)).openapi()`` with a backend CA made in
    ``directory`` (the app loads it at creation)."""
    PlatformPKI.ensure(directory)
    return create_app(settings_cls(backend_ca_file=directory / "backend-ca.crt")).openapi()


def assert_snapshot_and_valid(spec: dict[str, Any], service: str, test_file: str) -> None:
    """``spec`` is valid OpenAPI 3.1 and equal to ``services/<service>/openapi.json``."""
    assert spec["openapi"].startswith("3.1")
    validate(spec)
    snapshot = REPO_ROOT / "services" / service / "openapi.json"
    text = json.dumps(spec, indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_OPENAPI") == "1":
        snapshot.write_text(text)
    assert snapshot.read_text() == text, (
        f"the API changed: review it, then run UPDATE_OPENAPI=1 pytest {test_file}"
    )
