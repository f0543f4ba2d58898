"""Golden files: a pure builder's output against the reviewed text committed beside the test.

``UPDATE_GOLDEN=1 pytest ...`` rewrites the files instead of failing on a difference (then
review the diff).
"""

from __future__ import annotations

import os
from pathlib import Path


def assert_golden(path: Path, text: str) -> None:
    """``text`` equals the golden file ``path`` (written instead with ``UPDATE_GOLDEN=1``)."""
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{path} differs: review, then run with UPDATE_GOLDEN=1"
