"""The layer rules are enforced by import-linter (contracts in ``pyproject.toml``, run by
``make lint``). These tests show that the contracts hold on the tree and that breaking one on
purpose is caught: a copy of the jobs API whose pure core imports ``kubernetes_asyncio``, and
one whose storage imports its service, put first on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from toolforge_dev.paths import REPO_ROOT

JOBS_SRC = REPO_ROOT / "services" / "jobs" / "src" / "toolforge_jobs"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(*contracts: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = f"{pythonpath}{os.pathsep}{env.get('PYTHONPATH', '')}"
    argv = [str(LINT_IMPORTS), "--no-cache"]
    for contract in contracts:
        argv += ["--contract", contract]
    return subprocess.run(
        argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _broken_copy(tmp_path: Path, module: str, line: str) -> Path:
    shutil.copytree(JOBS_SRC, tmp_path / "toolforge_jobs")
    target = tmp_path / "toolforge_jobs" / f"{module}.py"
    target.write_text(target.read_text() + f"\n{line}  # broken on purpose\n")
    return tmp_path


def test_the_contracts_hold_on_the_tree() -> None:
    result = _lint()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_pure_core_module_importing_kubernetes_is_caught(tmp_path: Path) -> None:
    root = _broken_copy(tmp_path, "models", "import kubernetes_asyncio")
    result = _lint("pure-core", pythonpath=root)
    assert result.returncode == 1, result.stdout
    assert "BROKEN" in result.stdout
    assert "toolforge_jobs.models -> kubernetes_asyncio" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract", "arrow"),
    [
        (
            "storage",
            "import toolforge_jobs.service",
            "jobs-layers",
            "toolforge_jobs.storage -> toolforge_jobs.service",
        ),
        (
            "service",
            "import kubernetes_asyncio",
            "kubernetes-in-storage-only",
            "toolforge_jobs.service -> kubernetes_asyncio",
        ),
    ],
)
def test_a_layer_broken_on_purpose_is_caught(
    tmp_path: Path, module: str, line: str, contract: str, arrow: str
) -> None:
    root = _broken_copy(tmp_path, module, line)
    result = _lint(contract, pythonpath=root)
    assert result.returncode == 1, result.stdout
    assert arrow in result.stdout
